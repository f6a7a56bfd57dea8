//! Emulated daemons on their own NATS connections log in to a server that requires a user and
//! password (or a token), answer discovery there, and keep retrying (counted) when the
//! credentials are wrong.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "emulator/client.rs"]
mod client;
mod common;

use std::time::Duration;

use choir::actors::connection::Auth;
use choir::actors::emulator::{EmulatorMetrics, Fleet, FleetSpec};
use choir::actors::protocol::{subject, Filter};
use client::TestClient;
use common::nats::free_port;
use common::{eventually, NatsServer};

const N: usize = 20;

/// How many daemons answer a discovery ping sent by a client logged in with `options`.
async fn discovered(options: async_nats::ConnectOptions, url: &str) -> usize {
    let client = TestClient {
        nats: options.connect(url).await.unwrap(),
    };
    let ping = TestClient::request("discovery", "ping", Filter::default());
    client
        .call(
            &subject::broadcast_agent("mcollective", "discovery"),
            &ping,
            N,
            Duration::from_secs(20),
            Duration::ZERO,
        )
        .await
        .len()
}

#[actix_rt::test]
async fn daemons_log_in_with_user_and_password() {
    let server = NatsServer::start_with(free_port(), &["--user", "emu", "--pass", "s3cret"]);
    let mut spec = FleetSpec::new("auth", N, vec![server.url()]);
    spec.network.auth = Auth::UserPassword {
        user: "emu".into(),
        password: "s3cret".into(),
    };
    let fleet = Fleet::start(spec, EmulatorMetrics::unregistered()).unwrap();
    assert!(
        fleet.wait_started(Duration::from_secs(30), |_| {}).await,
        "daemons did not start: {:?}",
        fleet.progress()
    );
    let options = async_nats::ConnectOptions::with_user_and_password("emu".into(), "s3cret".into());
    assert_eq!(discovered(options, &server.url()).await, N);
    fleet.stop();
}

#[actix_rt::test]
async fn daemons_log_in_with_a_token() {
    let server = NatsServer::start_with(free_port(), &["--auth", "t0ken"]);
    let mut spec = FleetSpec::new("token", N, vec![server.url()]);
    spec.network.auth = Auth::Token("t0ken".into());
    let fleet = Fleet::start(spec, EmulatorMetrics::unregistered()).unwrap();
    assert!(
        fleet.wait_started(Duration::from_secs(30), |_| {}).await,
        "daemons did not start: {:?}",
        fleet.progress()
    );
    let options = async_nats::ConnectOptions::with_token("t0ken".into());
    assert_eq!(discovered(options, &server.url()).await, N);
    fleet.stop();
}

#[actix_rt::test]
async fn wrong_credentials_are_retried_and_counted() {
    let server = NatsServer::start_with(free_port(), &["--user", "emu", "--pass", "s3cret"]);
    let mut spec = FleetSpec::new("wrong", 3, vec![server.url()]);
    spec.network.auth = Auth::UserPassword {
        user: "emu".into(),
        password: "nope".into(),
    };
    let metrics = EmulatorMetrics::unregistered();
    let fleet = Fleet::start(spec, metrics.clone()).unwrap();
    assert!(
        eventually(Duration::from_secs(20), || {
            let failures = metrics.connect_failures.get();
            async move { failures >= 6 }
        })
        .await,
        "connect failures not counted: {}",
        metrics.connect_failures.get()
    );
    assert_eq!(fleet.progress().started, 0);
    fleet.stop();
}
