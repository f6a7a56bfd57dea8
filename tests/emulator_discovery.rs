//! 500 emulated daemons behind a real nats-server: discovered once each, `generate` answered by
//! all of them, a directed request answered by exactly one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "emulator/client.rs"]
mod client;
mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use choir::actors::emulator::{EmulatorMetrics, Fleet, FleetSpec};
use choir::actors::protocol::{subject, Filter, RpcReply, STATUS_OK};
use client::TestClient;
use common::NatsServer;

const N: usize = 500;

#[actix_rt::test]
async fn five_hundred_daemons_discover_generate_and_direct() {
    let server = NatsServer::start();
    let metrics = EmulatorMetrics::unregistered();
    let fleet = Fleet::start(
        FleetSpec::new("emu", N, vec![server.url()]),
        metrics.clone(),
    )
    .unwrap();
    assert!(
        fleet.wait_started(Duration::from_secs(60), |_| {}).await,
        "daemons did not start: {:?}",
        fleet.progress()
    );
    assert_eq!(fleet.progress().connected, N);
    let client = TestClient::connect(&server.url()).await;
    let all: BTreeSet<String> = (0..N).map(|i| format!("emu-{i}")).collect();

    // Discovery: every identity answers `pong`, once.
    let ping = TestClient::request("discovery", "ping", Filter::default());
    let replies = client
        .call(
            &subject::broadcast_agent("mcollective", "discovery"),
            &ping,
            N,
            Duration::from_secs(30),
            Duration::from_millis(300),
        )
        .await;
    assert_eq!(replies.len(), N, "discovery replies");
    let senders: BTreeSet<String> = replies
        .iter()
        .map(|(_, r)| r.reply.envelope.senderid.clone())
        .collect();
    assert_eq!(senders, all, "every identity answers exactly once");
    for (_, r) in &replies {
        assert_eq!(r.body(), b"pong");
        assert_eq!(r.reply.envelope.requestid, ping.envelope.requestid);
    }

    // generate size=100 on all: 500 replies of exactly 100 characters.
    let generate = TestClient::request(
        "emulated0",
        r#"{"agent":"emulated0","action":"generate","data":{"size":100}}"#,
        Filter::with_agent("emulated0"),
    );
    let replies = client
        .call(
            &subject::broadcast_agent("mcollective", "emulated0"),
            &generate,
            N,
            Duration::from_secs(30),
            Duration::from_millis(300),
        )
        .await;
    assert_eq!(replies.len(), N, "generate replies");
    let mut senders = BTreeSet::new();
    for (_, r) in &replies {
        let rpc = RpcReply::from_slice(r.body()).unwrap();
        assert_eq!(rpc.statuscode, STATUS_OK);
        assert_eq!(rpc.data["message"].as_str().unwrap().chars().count(), 100);
        senders.insert(r.reply.envelope.senderid.clone());
    }
    assert_eq!(senders, all);

    // A directed request to one identity: exactly one reply, from it.
    let direct = TestClient::request(
        "rpcutil",
        r#"{"agent":"rpcutil","action":"ping","data":{}}"#,
        Filter::default(),
    );
    let replies = client
        .call(
            &subject::node("mcollective", "emu-42"),
            &direct,
            1,
            Duration::from_secs(10),
            Duration::from_millis(300),
        )
        .await;
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].1.reply.envelope.senderid, "emu-42");
    let pong = RpcReply::from_slice(replies[0].1.body()).unwrap();
    assert!(pong.data["pong"].as_i64().unwrap() > 1_600_000_000);

    assert_eq!(metrics.replies.get(), (2 * N + 1) as u64);
    assert_eq!(metrics.dropped_total(), 0);
    fleet.stop();
}

#[actix_rt::test]
async fn shared_connections_answer_like_dedicated_ones() {
    let server = NatsServer::start();
    let metrics = EmulatorMetrics::unregistered();
    let mut spec = FleetSpec::new("shared", 200, vec![server.url()]);
    spec.mode = choir::actors::emulator::ConnectionMode::Shared;
    spec.shared_connections = std::num::NonZeroUsize::new(3).unwrap();
    let fleet = Fleet::start(spec, metrics.clone()).unwrap();
    assert!(fleet.wait_started(Duration::from_secs(30), |_| {}).await);
    assert_eq!(fleet.progress().connected, 3);
    let client = TestClient::connect(&server.url()).await;
    let ping = TestClient::request("discovery", "ping", Filter::default());
    let replies = client
        .call(
            &subject::broadcast_agent("mcollective", "discovery"),
            &ping,
            200,
            Duration::from_secs(30),
            Duration::from_millis(300),
        )
        .await;
    let senders: BTreeSet<String> = replies
        .iter()
        .map(|(_, r)| r.reply.envelope.senderid.clone())
        .collect();
    assert_eq!(replies.len(), 200);
    assert_eq!(senders.len(), 200);
    let direct = TestClient::request("discovery", "ping", Filter::default());
    let replies = client
        .call(
            &subject::node("mcollective", "shared-7"),
            &direct,
            1,
            Duration::from_secs(10),
            Duration::from_millis(300),
        )
        .await;
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].1.reply.envelope.senderid, "shared-7");
    fleet.stop();
}
