//! Ordered replication: every source message lands in the target exactly once, in source
//! order, with its headers, and a provenance header naming where it came from.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::jetstream::{connect, create_stream, publish_many};
use common::replication::{assert_exactly_once, replicator_config, replicator_metric, settled};
use common::{ChoirNode, NatsServer};

const N: usize = 100_000;

#[tokio::test]
async fn ordered_replication_copies_each_message_once_in_source_order_with_headers() {
    let source = NatsServer::start();
    let target = NatsServer::start();
    let src = connect(&source.url()).await;
    create_stream(&src, "ORDERS", &["orders.>"]).await;
    publish_many(&src, N, |i| {
        (
            format!("orders.{}", i % 7),
            format!("{{\"n\":{i}}}").into_bytes(),
        )
    })
    .await;

    let node = ChoirNode::start(&replicator_config(&source, &target, "mode = \"ordered\""));
    let dst = connect(&target.url()).await;
    let copied = settled(&dst, &node, N as u64, Duration::from_secs(180)).await;
    assert_exactly_once(&copied, N, true);
    for (i, m) in copied.iter().enumerate() {
        assert_eq!(m.subject, format!("orders.{}", i % 7));
        assert_eq!(
            m.header("X-Index").as_deref(),
            Some(i.to_string().as_str()),
            "header kept"
        );
        let provenance = m.header("Choir-Provenance").unwrap();
        assert!(
            provenance.starts_with(&format!("replicator=orders stream=ORDERS seq={} ", i + 1)),
            "{provenance}"
        );
        // Ordered copies land exactly once through Nats-Expected-Last-Sequence; the
        // duplicate-window id is off by default.
        assert_eq!(m.header("Nats-Msg-Id"), None);
    }
    // The chain of expected sequences lets a stored copy vouch for those before it, so only
    // some copies ask the target for an ack.
    let acks = replicator_metric(&node, "choir_replicator_target_acks_total", &[]);
    assert!(
        acks > 0.0 && acks < (N / 10) as f64,
        "{acks} target acks for {N} copies"
    );
}

#[tokio::test]
async fn ordered_copies_carry_the_deterministic_msg_id_when_asked() {
    let source = NatsServer::start();
    let target = NatsServer::start();
    let src = connect(&source.url()).await;
    create_stream(&src, "ORDERS", &["orders.>"]).await;
    publish_many(&src, 50, |i| {
        (format!("orders.{i}"), format!("{{\"n\":{i}}}").into_bytes())
    })
    .await;

    let node = ChoirNode::start(&replicator_config(
        &source,
        &target,
        "mode = \"ordered\"\nmsg_id = true",
    ));
    let dst = connect(&target.url()).await;
    let copied = settled(&dst, &node, 50, Duration::from_secs(60)).await;
    assert_exactly_once(&copied, 50, true);
    for (i, m) in copied.iter().enumerate() {
        assert_eq!(
            m.header("Nats-Msg-Id").unwrap(),
            format!("orders:ORDERS:{}", i + 1)
        );
    }
}

#[tokio::test]
async fn subjects_are_rewritten_and_the_target_stream_is_created_to_match() {
    let source = NatsServer::start();
    let target = NatsServer::start();
    let src = connect(&source.url()).await;
    create_stream(&src, "ORDERS", &["region1.orders.>"]).await;
    publish_many(&src, 100, |i| {
        (
            format!("region1.orders.{i}"),
            format!("{{\"n\":{i}}}").into_bytes(),
        )
    })
    .await;

    let extra = "target_subject_remove = \"region1\"\ntarget_subject_prefix = \"central.r1\"\n";
    let node = ChoirNode::start(&replicator_config(&source, &target, extra));
    let dst = connect(&target.url()).await;
    let copied = settled(&dst, &node, 100, Duration::from_secs(60)).await;
    assert_exactly_once(&copied, 100, true);
    assert_eq!(copied[5].subject, "central.r1.orders.5");
}
