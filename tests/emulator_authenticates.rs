//! Emulated daemons on their own NATS connections log in to a server that requires a user and
//! password (or a token), answer discovery there, and keep retrying (counted) when the
//! credentials are wrong. Daemons that need TLS or an nkey use an async-nats connection each;
//! they answer discovery too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "emulator/client.rs"]
mod client;
mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use choir::actors::connection::{Auth, TlsSettings};
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

/// Starts `spec` on `server`, waits until every daemon is up, and asserts that all of them
/// answer a discovery ping from a client connected with `options`.
async fn assert_all_answer(
    spec: FleetSpec,
    server: &NatsServer,
    options: async_nats::ConnectOptions,
) {
    let fleet = Fleet::start(spec, EmulatorMetrics::unregistered()).unwrap();
    assert!(
        fleet.wait_started(Duration::from_secs(30), |_| {}).await,
        "daemons did not start: {:?}",
        fleet.progress()
    );
    assert_eq!(discovered(options, &server.url()).await, N);
    fleet.stop();
}

/// Starts `spec` and asserts that its daemons are refused: at least `failures` connect
/// failures are counted (they keep retrying) and none starts.
async fn assert_refused(spec: FleetSpec, failures: u64) {
    let metrics = EmulatorMetrics::unregistered();
    let fleet = Fleet::start(spec, metrics.clone()).unwrap();
    assert!(
        eventually(Duration::from_secs(20), || {
            let counted = metrics.connect_failures.get();
            async move { counted >= failures }
        })
        .await,
        "connect failures not counted: {}",
        metrics.connect_failures.get()
    );
    assert_eq!(fleet.progress().started, 0);
    fleet.stop();
}

#[actix_rt::test]
async fn daemons_log_in_with_user_and_password() {
    let server = NatsServer::start_with(free_port(), &["--user", "emu", "--pass", "s3cret"]);
    let mut spec = FleetSpec::new("auth", N, vec![server.url()]);
    spec.network.auth = Auth::UserPassword {
        user: "emu".into(),
        password: "s3cret".into(),
    };
    let options = async_nats::ConnectOptions::with_user_and_password("emu".into(), "s3cret".into());
    assert_all_answer(spec, &server, options).await;
}

#[actix_rt::test]
async fn daemons_log_in_with_a_token() {
    let server = NatsServer::start_with(free_port(), &["--auth", "t0ken"]);
    let mut spec = FleetSpec::new("token", N, vec![server.url()]);
    spec.network.auth = Auth::Token("t0ken".into());
    let options = async_nats::ConnectOptions::with_token("t0ken".into());
    assert_all_answer(spec, &server, options).await;
}

#[actix_rt::test]
async fn wrong_credentials_are_retried_and_counted() {
    let server = NatsServer::start_with(free_port(), &["--user", "emu", "--pass", "s3cret"]);
    let mut spec = FleetSpec::new("wrong", 3, vec![server.url()]);
    spec.network.auth = Auth::UserPassword {
        user: "emu".into(),
        password: "nope".into(),
    };
    assert_refused(spec, 6).await;
}

/// A CA and a server certificate for 127.0.0.1 signed by it (openssl, EC P-256), in `dir`:
/// returns (ca.pem, server.pem, server.key).
fn tls_files(dir: &std::path::Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl (apt-get install openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "1", "-subj", "/CN=choir test CA"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    run(&ca);
    let mut csr = vec!["req", "-subj", "/CN=127.0.0.1"];
    csr.extend(ec);
    csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
    run(&csr);
    std::fs::write(dir.join("san.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-days",
        "1",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-extfile",
        "san.cnf",
        "-out",
        "server.pem",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

/// A nats-server that requires TLS, with its certificate files in `dir`; returns it and the
/// CA that signed its certificate.
fn tls_server(dir: &std::path::Path) -> (NatsServer, PathBuf) {
    let (ca, cert, key) = tls_files(dir);
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let server =
        NatsServer::start_with(free_port(), &["--tls", "--tlscert", cert, "--tlskey", key]);
    (server, ca)
}

#[actix_rt::test]
async fn daemons_connect_over_tls_and_verify_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let (server, ca) = tls_server(dir.path());
    let mut spec = FleetSpec::new("tls", N, vec![server.url()]);
    spec.network.tls = Some(TlsSettings {
        ca: Some(ca.clone()),
        ..TlsSettings::default()
    });
    let options = async_nats::ConnectOptions::new()
        .require_tls(true)
        .add_root_certificates(ca);
    assert_all_answer(spec, &server, options).await;
}

#[actix_rt::test]
async fn daemons_without_the_ca_do_not_trust_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = tls_server(dir.path());
    let mut spec = FleetSpec::new("untrusted", 3, vec![server.url()]);
    spec.network.tls = Some(TlsSettings::default());
    assert_refused(spec, 3).await;
}

#[actix_rt::test]
async fn daemons_log_in_with_an_nkey() {
    let user = nkeys::KeyPair::new_user();
    let seed = user.seed().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nkey.conf");
    std::fs::write(
        &conf,
        format!(
            "authorization {{ users = [ {{ nkey: \"{}\" }} ] }}\n",
            user.public_key()
        ),
    )
    .unwrap();
    let server = NatsServer::start_with(free_port(), &["-c", conf.to_str().unwrap()]);
    let mut spec = FleetSpec::new("nkey", N, vec![server.url()]);
    spec.network.auth = Auth::NkeySeed(seed.clone());
    assert_all_answer(spec, &server, async_nats::ConnectOptions::with_nkey(seed)).await;
}
