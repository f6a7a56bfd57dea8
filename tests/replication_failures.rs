//! Replication across failures: choir killed with SIGKILL mid-copy, the source server
//! restarted mid-copy, the target server down mid-copy for long enough that choir's copies
//! fail. Every time the target ends with each message exactly once (and in order for an
//! ordered replicator).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::jetstream::{connect, count, create_stream, publish_many, wait_for_count};
use common::replication::{
    assert_exactly_once, assert_publish_path, replicator_config, replicator_metric, settled,
};
use common::{eventually, ChoirNode, NatsServer};

const N: usize = 60_000;

async fn preload(source: &NatsServer) -> async_nats::Client {
    let src = connect(&source.url()).await;
    create_stream(&src, "ORDERS", &["orders.>"]).await;
    publish_many(&src, N, |i| {
        (
            format!("orders.{}", i % 5),
            format!("{{\"n\":{i}}}").into_bytes(),
        )
    })
    .await;
    src
}

async fn mid_copy(dst: &async_nats::Client, node: &ChoirNode) {
    assert!(
        wait_for_count(dst, "ORDERS", 5_000, Duration::from_secs(60)).await,
        "copy did not start; log:\n{}",
        node.log()
    );
    assert!(
        count(dst, "ORDERS").await < N as u64,
        "copy finished before the failure was injected"
    );
}

async fn survives_sigkill(mode: &str) {
    let source = NatsServer::start();
    let target = NatsServer::start();
    let _src = preload(&source).await;
    let mut node = ChoirNode::start(&replicator_config(
        &source,
        &target,
        &format!("mode = \"{mode}\"\nack_wait = \"3s\"\nwindow = 64"),
    ));
    let dst = connect(&target.url()).await;
    mid_copy(&dst, &node).await;
    assert_publish_path(&dst, &node, mode, 4).await;
    node.kill();
    node.spawn();
    let copied = settled(&dst, &node, N as u64, Duration::from_secs(180)).await;
    assert_exactly_once(&copied, N, mode == "ordered");
    assert_publish_path(&dst, &node, mode, 4).await;
}

#[tokio::test]
async fn ordered_copy_survives_sigkill_of_choir_exactly_once_in_order() {
    survives_sigkill("ordered").await;
}

#[tokio::test]
async fn queued_copy_survives_sigkill_of_choir_exactly_once() {
    survives_sigkill("queued").await;
}

async fn survives_source_restart(mode: &str) {
    let mut source = NatsServer::start();
    let target = NatsServer::start();
    let _src = preload(&source).await;
    let node = ChoirNode::start(&replicator_config(
        &source,
        &target,
        &format!("mode = \"{mode}\"\nack_wait = \"3s\"\nwindow = 64"),
    ));
    let dst = connect(&target.url()).await;
    mid_copy(&dst, &node).await;
    assert_publish_path(&dst, &node, mode, 4).await;
    source.restart();
    let copied = settled(&dst, &node, N as u64, Duration::from_secs(180)).await;
    assert_exactly_once(&copied, N, mode == "ordered");
    assert_publish_path(&dst, &node, mode, 4).await;
}

#[tokio::test]
async fn ordered_copy_survives_a_source_server_restart() {
    survives_source_restart("ordered").await;
}

#[tokio::test]
async fn queued_copy_survives_a_source_server_restart() {
    survives_source_restart("queued").await;
}

/// The state `/healthz` reports for each replica worker's own connection to `network`.
fn worker_connections(node: &ChoirNode, network: &str) -> Vec<(String, String)> {
    let (_, body) = node.get("/healthz").unwrap_or_default();
    let health: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let prefix = format!("{network}/replica worker orders");
    health["connections"]
        .as_object()
        .map(|all| {
            all.iter()
                .filter(|(key, _)| key.starts_with(&prefix))
                .map(|(key, state)| (key.clone(), state.as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `/healthz` lists `workers` worker connections to `network`, all in `state`.
fn workers_are(node: &ChoirNode, network: &str, workers: usize, state: &str) -> bool {
    let connections = worker_connections(node, network);
    connections.len() == workers && connections.iter().all(|(_, s)| s == state)
}

async fn survives_target_outage(mode: &str) {
    let source = NatsServer::start();
    let mut target = NatsServer::start();
    let _src = preload(&source).await;
    let node = ChoirNode::start(&replicator_config(
        &source,
        &target,
        &format!("mode = \"{mode}\"\nack_wait = \"3s\"\nwindow = 64"),
    ));
    {
        let dst = connect(&target.url()).await;
        mid_copy(&dst, &node).await;
        assert_publish_path(&dst, &node, mode, 4).await;
    }
    // Each worker's own connections are part of the node's health.
    let workers = if mode == "ordered" { 1 } else { 4 };
    assert!(
        workers_are(&node, "central", workers, "connected")
            && workers_are(&node, "region", workers, "connected"),
        "worker connections: {:?}",
        node.get("/healthz")
    );
    let transient = |node: &ChoirNode| {
        replicator_metric(
            node,
            "choir_replicator_failed_publishes_total",
            &[("reason", "transient")],
        )
    };
    let failed_before = transient(&node);
    target.kill();
    // choir notices: unhealthy, and every worker's own connection to the target is down.
    assert!(
        eventually(Duration::from_secs(30), || async {
            node.get("/healthz").is_some_and(|(s, _)| s == 503)
                && workers_are(&node, "central", workers, "disconnected")
        })
        .await,
        "target down but healthy: {:?}",
        node.get("/healthz")
    );
    // The outage lasts until copies in flight to the dead target have failed (their acks
    // never come: after the settle timeout they count as transient failures), so the
    // recovery below really has lost publishes to make good.
    assert!(
        eventually(Duration::from_secs(60), || async {
            transient(&node) > failed_before
        })
        .await,
        "no copy failed while the target was down; log:\n{}",
        node.log()
    );
    assert!(
        workers_are(&node, "central", workers, "disconnected"),
        "worker connections to the stopped target: {:?}",
        worker_connections(&node, "central")
    );
    target.restart();
    let dst = connect(&target.url()).await;
    let copied = settled(&dst, &node, N as u64, Duration::from_secs(180)).await;
    assert_exactly_once(&copied, N, mode == "ordered");
    assert_publish_path(&dst, &node, mode, 4).await;
    assert!(
        eventually(Duration::from_secs(30), || async {
            workers_are(&node, "central", workers, "connected")
                && node.get("/healthz").is_some_and(|(s, _)| s == 200)
        })
        .await,
        "after the outage: {:?}",
        node.get("/healthz")
    );
}

#[tokio::test]
async fn ordered_copy_survives_a_target_outage_that_fails_its_copies() {
    survives_target_outage("ordered").await;
}

#[tokio::test]
async fn queued_copy_survives_a_target_outage_that_fails_its_copies() {
    survives_target_outage("queued").await;
}

/// A work-queue source deletes what is acked, so there the ordered worker acks (explicitly) only
/// what the target stored: at no moment does the source have fewer messages left than the
/// target is missing, a SIGKILL mid-copy loses nothing, and the source ends empty.
#[tokio::test]
async fn ordered_copy_from_a_work_queue_stream_acks_only_what_the_target_stored() {
    use async_nats::jetstream::{self, consumer::AckPolicy, stream};

    let source = NatsServer::start();
    let target = NatsServer::start();
    let src = connect(&source.url()).await;
    let sjs = jetstream::new(src.clone());
    sjs.create_stream(stream::Config {
        name: "ORDERS".into(),
        subjects: vec!["orders.>".into()],
        retention: stream::RetentionPolicy::WorkQueue,
        ..Default::default()
    })
    .await
    .unwrap();
    publish_many(&src, N, |i| {
        (
            format!("orders.{}", i % 5),
            format!("{{\"n\":{i}}}").into_bytes(),
        )
    })
    .await;
    let mut node = ChoirNode::start(&replicator_config(
        &source,
        &target,
        "mode = \"ordered\"\nack_wait = \"3s\"\nwindow = 64",
    ));
    let dst = connect(&target.url()).await;
    mid_copy(&dst, &node).await;
    let info = sjs
        .get_stream("ORDERS")
        .await
        .unwrap()
        .consumer_info("choir_orders")
        .await
        .unwrap();
    assert_eq!(info.config.ack_policy, AckPolicy::Explicit);
    // Source first, then target: both only move one way, so a removal the target does not
    // cover would show.
    for _ in 0..20 {
        let removed = N as u64 - count(&src, "ORDERS").await;
        let copied = count(&dst, "ORDERS").await;
        assert!(
            removed <= copied,
            "source removed {removed}, target holds {copied}"
        );
    }
    node.kill();
    node.spawn();
    let copied = settled(&dst, &node, N as u64, Duration::from_secs(180)).await;
    assert_exactly_once(&copied, N, true);
    assert!(
        common::poll::eventually(Duration::from_secs(30), || async {
            count(&src, "ORDERS").await == 0
        })
        .await,
        "the work-queue source still holds {} messages",
        count(&src, "ORDERS").await
    );
}

/// A small xorshift generator for the kill points, seeded from the clock (or
/// `CHOIR_TEST_SEED`) and printed, so a failing run can be repeated.
struct KillPoints(u64);

impl KillPoints {
    fn new() -> Self {
        let seed = std::env::var("CHOIR_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            })
            | 1;
        println!("kill points: CHOIR_TEST_SEED={seed}");
        Self(seed)
    }

    /// A number in `0..bound`.
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

/// The replicator at its default replication settings (`window` 1024, sparse target acks in
/// ordered mode, `window_bytes` 8 MiB): only `mode` is set, plus a short `ack_wait` so that a
/// queued run's unacknowledged messages come back in 3 s instead of 30 s.
async fn survives_repeated_sigkills_at_defaults(mode: &str) {
    const MESSAGES: usize = 50_000;
    const KILLS: usize = 3;
    let source = NatsServer::start();
    let target = NatsServer::start();
    let src = connect(&source.url()).await;
    create_stream(&src, "ORDERS", &["orders.>"]).await;
    publish_many(&src, MESSAGES, |i| {
        (
            format!("orders.{}", i % 5),
            format!("{{\"n\":{i}}}").into_bytes(),
        )
    })
    .await;
    let mut node = ChoirNode::start(&replicator_config(
        &source,
        &target,
        &format!("mode = \"{mode}\"\nack_wait = \"3s\""),
    ));
    let dst = connect(&target.url()).await;
    let mut points = KillPoints::new();
    for kill in 1..=KILLS {
        // Somewhere in the next 0-6 000 copies, counted from what the target holds now: from
        // right after the start (before any copy) to well into the copying.
        let at = count(&dst, "ORDERS").await + points.below(6_000);
        assert!(
            wait_for_count(&dst, "ORDERS", at, Duration::from_secs(120)).await,
            "kill {kill}: the target never reached {at}; log:\n{}",
            node.log()
        );
        node.kill();
        let held = count(&dst, "ORDERS").await;
        println!("kill {kill}: SIGKILL with {held} of {MESSAGES} copied (aimed at {at})");
        assert!(
            held < MESSAGES as u64,
            "kill {kill}: the copy finished before the kill; lower the kill points"
        );
        node.spawn();
    }
    let copied = settled(&dst, &node, MESSAGES as u64, Duration::from_secs(180)).await;
    assert_publish_path(&dst, &node, mode, 4).await;
    // Message by message: each exactly once, and for ordered in source order.
    assert_exactly_once(&copied, MESSAGES, mode == "ordered");
    if mode == "ordered" {
        for (i, m) in copied.iter().enumerate() {
            let provenance = m.header("Choir-Provenance").unwrap();
            assert!(
                provenance.starts_with(&format!("replicator=orders stream=ORDERS seq={} ", i + 1)),
                "position {i}: {provenance}"
            );
        }
    }
}

#[tokio::test]
async fn ordered_copy_at_default_settings_survives_three_sigkills_exactly_once_in_order() {
    survives_repeated_sigkills_at_defaults("ordered").await;
}

#[tokio::test]
async fn queued_copy_at_default_settings_survives_three_sigkills_exactly_once() {
    survives_repeated_sigkills_at_defaults("queued").await;
}
