//! `window_bytes` bounds the payload a replica worker holds, but never stops a message larger
//! than the bound: it goes alone, in both modes (and a pull from the source is never bounded
//! below the largest message, or the server would refuse the pull again and again).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::jetstream::{connect, create_stream, publish_many};
use common::replication::{assert_exactly_once, replicator_config, settled};
use common::{ChoirNode, NatsServer};

const N: usize = 300;
/// Each payload is ten times `window_bytes`.
const PAD: usize = 10_240;

async fn copy_large_messages(extra: &str, ordered: bool) {
    let source = NatsServer::start();
    let target = NatsServer::start();
    let src = connect(&source.url()).await;
    create_stream(&src, "ORDERS", &["orders.>"]).await;
    let pad = "x".repeat(PAD);
    publish_many(&src, N, |i| {
        (
            format!("orders.{}", i % 3),
            format!("{{\"n\":{i},\"pad\":\"{pad}\"}}").into_bytes(),
        )
    })
    .await;

    let node = ChoirNode::start(&replicator_config(
        &source,
        &target,
        &format!("{extra}\nwindow_bytes = 1024"),
    ));
    let dst = connect(&target.url()).await;
    let copied = settled(&dst, &node, N as u64, Duration::from_secs(120)).await;
    assert_exactly_once(&copied, N, ordered);
    assert!(copied.iter().all(|m| m.payload.len() > PAD));
}

#[tokio::test]
async fn ordered_copies_messages_larger_than_window_bytes() {
    copy_large_messages("mode = \"ordered\"", true).await;
}

#[tokio::test]
async fn queued_copies_messages_larger_than_window_bytes() {
    copy_large_messages("mode = \"queued\"\nworkers = 2", false).await;
}
