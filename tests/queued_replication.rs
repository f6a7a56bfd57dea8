//! Queued replication: a pool of workers on one durable consumer copies every message exactly
//! once (no order promise).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::jetstream::{connect, count, create_stream, publish_many, wait_for_count};
use common::replication::{
    assert_exactly_once, assert_path, assert_publish_path, indices, offers_fast_batches,
    replicator_config, replicator_metric, settled,
};
use common::{ChoirNode, NatsServer};

const N: usize = 50_000;

/// Stream `ORDERS` on `source` with N messages `{"n":<i>}` over three subjects.
async fn preload(source: &NatsServer) {
    let src = connect(&source.url()).await;
    create_stream(&src, "ORDERS", &["orders.>"]).await;
    publish_many(&src, N, |i| {
        (
            format!("orders.{}", i % 3),
            format!("{{\"n\":{i}}}").into_bytes(),
        )
    })
    .await;
}

/// Runs a replicator configured with `extra` until the target holds 5 000 messages, then
/// kills it with SIGKILL, mid-copy.
async fn copy_some_then_kill(
    source: &NatsServer,
    target: &NatsServer,
    dst: &async_nats::Client,
    extra: &str,
) {
    let mut node = ChoirNode::start(&replicator_config(source, target, extra));
    assert!(
        wait_for_count(dst, "ORDERS", 5_000, Duration::from_secs(60)).await,
        "copy did not start; log:\n{}",
        node.log()
    );
    node.kill();
    assert!(
        count(dst, "ORDERS").await < N as u64,
        "copy finished before the switch"
    );
}

#[tokio::test]
async fn queued_replication_with_four_workers_copies_each_message_exactly_once() {
    let source = NatsServer::start();
    let target = NatsServer::start();
    preload(&source).await;

    let node = ChoirNode::start(&replicator_config(
        &source,
        &target,
        "mode = \"queued\"\nworkers = 4\nack_wait = \"5s\"",
    ));
    let dst = connect(&target.url()).await;
    let copied = settled(&dst, &node, N as u64, Duration::from_secs(180)).await;
    assert_exactly_once(&copied, N, false);
    assert_publish_path(&dst, &node, "queued", 4).await;
    let acks = replicator_metric(&node, "choir_replicator_target_acks_total", &[]);
    let log = node.log();
    if offers_fast_batches(&dst).await {
        // Fast-ingest batches into the stream choir created with allow_batched: the target
        // acks once per flow window (half the worker's window), not once per copy.
        assert!(
            acks < (N / 10) as f64,
            "{acks} target acks for {N} copies in fast batches"
        );
        assert!(
            log.contains("Queued worker publishes to the target in fast-ingest batches."),
            "{log}"
        );
    } else {
        // Nothing orders the workers' copies, so each is acked by the target itself.
        assert!(acks >= N as f64, "{acks} target acks for {N} copies");
        assert!(
            log.contains("Queued worker publishes to the target message by message."),
            "{log}"
        );
    }
    for worker in 0..4 {
        assert!(
            log.contains(&format!("worker=Queued({worker})")),
            "worker {worker} never started:\n{log}"
        );
    }
}

/// An ordered replicator's consumer takes no acks on a limits stream, so its position is only
/// what it delivered, which runs ahead of the target. Switching the replicator to queued must
/// resume from what the target holds, or the messages in between would never be copied.
#[tokio::test]
async fn switching_from_ordered_to_queued_resumes_from_what_the_target_holds() {
    let source = NatsServer::start();
    let target = NatsServer::start();
    preload(&source).await;
    let dst = connect(&target.url()).await;
    copy_some_then_kill(&source, &target, &dst, "mode = \"ordered\"\nwindow = 512").await;

    let queued = ChoirNode::start(&replicator_config(
        &source,
        &target,
        "mode = \"queued\"\nworkers = 2\nack_wait = \"5s\"",
    ));
    let copied = settled(&dst, &queued, N as u64, Duration::from_secs(180)).await;
    assert_exactly_once(&copied, N, false);
}

/// Queued copies land in any order, so after a queued run is killed the target's last copy
/// can sit above messages that were still in flight. An ordered worker taking over must
/// first finish those (the source redelivers them), or they would never be copied; after
/// that, copies land in source order again.
#[tokio::test]
async fn switching_from_queued_to_ordered_after_a_crash_copies_every_gap() {
    let source = NatsServer::start();
    let target = NatsServer::start();
    preload(&source).await;
    let dst = connect(&target.url()).await;
    copy_some_then_kill(
        &source,
        &target,
        &dst,
        "mode = \"queued\"\nworkers = 4\nack_wait = \"2s\"",
    )
    .await;

    let ordered = ChoirNode::start(&replicator_config(&source, &target, "mode = \"ordered\""));
    let copied = settled(&dst, &ordered, N as u64, Duration::from_secs(180)).await;
    assert_exactly_once(&copied, N, false);
    let log = ordered.log();
    assert!(
        log.contains("A queued run left copies unacknowledged"),
        "the crash left no gap to finish; log:\n{log}"
    );
    // Past what the queued run had taken, the copies are in source order.
    let tail = &indices(&copied)[N - 20_000..];
    for pair in tail.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "ordered copies out of order");
    }
}

/// A target stream that exists without `allow_batched` (made by someone else) is left as it
/// is: the queued workers say why and publish message by message, one target ack per copy,
/// on any server.
#[tokio::test]
async fn queued_replication_into_a_stream_without_allow_batched_keeps_its_config_and_per_message_acks(
) {
    let source = NatsServer::start();
    let target = NatsServer::start();
    preload(&source).await;
    let dst = connect(&target.url()).await;
    create_stream(&dst, "ORDERS", &["orders.>"]).await;

    let node = ChoirNode::start(&replicator_config(
        &source,
        &target,
        "mode = \"queued\"\nworkers = 4\nack_wait = \"5s\"",
    ));
    let copied = settled(&dst, &node, N as u64, Duration::from_secs(180)).await;
    assert_exactly_once(&copied, N, false);
    assert_path(&node, false, 4).await;
    let acks = replicator_metric(&node, "choir_replicator_target_acks_total", &[]);
    assert!(acks >= N as f64, "{acks} target acks for {N} copies");
    let log = node.log();
    assert!(
        log.contains("Queued worker publishes to the target message by message."),
        "{log}"
    );
    if offers_fast_batches(&dst).await {
        assert!(log.contains("allow_batched is false"), "{log}");
    }
    // Never changed: still no allow_batched.
    let js = async_nats::jetstream::new(dst.clone());
    let info: serde_json::Value = js
        .request("STREAM.INFO.ORDERS", &serde_json::json!({}))
        .await
        .unwrap();
    assert_ne!(
        info["config"]["allow_batched"],
        serde_json::json!(true),
        "{info}"
    );
}
