//! A message the target rejects for good (too large for the target stream) goes to the
//! dead-letter subject with the reason after bounded retries, is counted, and replication goes
//! on with the next message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use common::jetstream::{connect, create_stream, publish_many};
use common::replication::{indices, replicator_config, replicator_metric, settled};
use common::{ChoirNode, NatsServer};
use futures::StreamExt;

async fn rejected_message_is_dead_lettered(mode: &str) {
    let source = NatsServer::start();
    let target = NatsServer::start();
    let src = connect(&source.url()).await;
    create_stream(&src, "ORDERS", &["orders.>"]).await;
    publish_many(&src, 20, |i| {
        let pad = if i == 10 {
            "x".repeat(5_000)
        } else {
            String::new()
        };
        (
            format!("orders.{i}"),
            format!("{{\"n\":{i},\"pad\":\"{pad}\"}}").into_bytes(),
        )
    })
    .await;
    let dst = connect(&target.url()).await;
    jetstream::new(dst.clone())
        .create_stream(stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.>".into()],
            max_message_size: 1_000,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut dead = dst
        .subscribe("choir.replicator.orders.dead_letter")
        .await
        .unwrap();
    dst.flush().await.unwrap();

    let node = ChoirNode::start(&replicator_config(
        &source,
        &target,
        &format!("mode = \"{mode}\"\ncreate_target = false\nmax_rejections = 2"),
    ));
    let letter = tokio::time::timeout(Duration::from_secs(30), dead.next())
        .await
        .unwrap_or_else(|_| panic!("no dead letter; log:\n{}", node.log()))
        .unwrap();
    let reason = letter
        .headers
        .as_ref()
        .unwrap()
        .get("Choir-Dead-Letter-Reason")
        .unwrap();
    assert!(reason.as_str().contains("size"), "reason: {reason}");
    assert!(String::from_utf8_lossy(&letter.payload).contains("\"n\":10"));

    let copied = settled(&dst, &node, 19, Duration::from_secs(60)).await;
    let mut got = indices(&copied);
    if mode == "queued" {
        got.sort_unstable();
    }
    let expected: Vec<usize> = (0..20).filter(|i| *i != 10).collect();
    assert_eq!(got, expected);
    assert_eq!(
        replicator_metric(&node, "choir_replicator_dead_lettered_total", &[]),
        1.0
    );
    assert!(
        replicator_metric(
            &node,
            "choir_replicator_failed_publishes_total",
            &[("reason", "rejected")]
        ) >= 2.0
    );
}

#[tokio::test]
async fn ordered_replication_dead_letters_a_rejected_message_and_goes_on() {
    rejected_message_is_dead_lettered("ordered").await;
}

#[tokio::test]
async fn queued_replication_dead_letters_a_rejected_message_and_goes_on() {
    rejected_message_is_dead_lettered("queued").await;
}
