//! Queued replication: a pool of workers on one durable consumer copies every message exactly
//! once (no order promise).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::jetstream::{connect, create_stream, publish_many};
use common::replication::{assert_exactly_once, replicator_config, settled};
use common::{ChoirNode, NatsServer};

const N: usize = 50_000;

#[tokio::test]
async fn queued_replication_with_four_workers_copies_each_message_exactly_once() {
    let source = NatsServer::start();
    let target = NatsServer::start();
    let src = connect(&source.url()).await;
    create_stream(&src, "ORDERS", &["orders.>"]).await;
    publish_many(&src, N, |i| {
        (
            format!("orders.{}", i % 3),
            format!("{{\"n\":{i}}}").into_bytes(),
        )
    })
    .await;

    let node = ChoirNode::start(&replicator_config(
        &source,
        &target,
        "mode = \"queued\"\nworkers = 4\nack_wait = \"5s\"",
    ));
    let dst = connect(&target.url()).await;
    let copied = settled(&dst, &node, N as u64, Duration::from_secs(180)).await;
    assert_exactly_once(&copied, N, false);
    let log = node.log();
    for worker in 0..4 {
        assert!(
            log.contains(&format!("worker=Queued({worker})")),
            "worker {worker} never started:\n{log}"
        );
    }
}
