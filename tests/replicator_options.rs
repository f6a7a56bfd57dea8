//! Replicator options that change what is copied or what else is published, each shown by its
//! effect on the target: `max_age` skips (and counts) messages older than it, `filter_subject`
//! copies only matching subjects, `start` begins a new copy at the given sequence,
//! `advisories.reliable` stores advisories through JetStream with the event id as
//! `Nats-Msg-Id`, `heartbeat` publishes the replicator's status, and an interest-retention
//! source is emptied only of what the target stored, across a SIGKILL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, SystemTime};

use async_nats::jetstream::{self, stream};
use common::jetstream::{connect, count, create_stream, publish_many, read_all, wait_for_count};
use common::replication::{
    assert_exactly_once, indices, replicator_config, replicator_metric, settled,
};
use common::{eventually, ChoirNode, NatsServer};
use futures::StreamExt;

const WAIT: Duration = Duration::from_secs(30);

/// Publishes `{"n":i}` for every `i` in `range` to `orders.<i % 3>` (X-Index header = i).
async fn publish_range(client: &async_nats::Client, range: std::ops::Range<usize>) {
    let start = range.start;
    publish_many(client, range.len(), |i| {
        let n = start + i;
        (
            format!("orders.{}", n % 3),
            format!("{{\"n\":{n}}}").into_bytes(),
        )
    })
    .await;
}

/// The time the source stored its last message.
async fn last_stored_at(client: &async_nats::Client) -> SystemTime {
    let js = jetstream::new(client.clone());
    let mut s = js.get_stream("ORDERS").await.unwrap();
    let last = s.info().await.unwrap().state.last_timestamp;
    SystemTime::UNIX_EPOCH + Duration::from_nanos(last.unix_timestamp_nanos() as u64)
}

#[tokio::test]
async fn max_age_skips_and_counts_messages_older_than_it_and_copies_the_rest() {
    const OLD: usize = 100;
    const FRESH: usize = 100;
    let source = NatsServer::start();
    let target = NatsServer::start();
    let src = connect(&source.url()).await;
    create_stream(&src, "ORDERS", &["orders.>"]).await;
    publish_range(&src, 0..OLD).await;
    // Until the backlog is older than max_age (the source's own clock says so).
    let stored = last_stored_at(&src).await;
    assert!(
        eventually(WAIT, || async {
            SystemTime::now()
                .duration_since(stored)
                .is_ok_and(|age| age > Duration::from_secs(8))
        })
        .await
    );
    let node = ChoirNode::start(&replicator_config(&source, &target, "max_age = \"8s\""));
    assert!(
        eventually(WAIT, || async {
            replicator_metric(
                &node,
                "choir_replicator_skipped_total",
                &[("reason", "too_old")],
            ) == OLD as f64
        })
        .await,
        "the old backlog was not skipped; log:\n{}",
        node.log()
    );
    // Fresh messages reach a running, caught-up replicator well inside max_age.
    publish_range(&src, OLD..OLD + FRESH).await;
    let dst = connect(&target.url()).await;
    let copied = settled(&dst, &node, FRESH as u64, WAIT).await;
    assert_eq!(
        indices(&copied),
        (OLD..OLD + FRESH).collect::<Vec<_>>(),
        "exactly the fresh messages, in order"
    );
}

#[tokio::test]
async fn filter_subject_copies_only_the_matching_messages_in_order() {
    const N: usize = 300;
    let source = NatsServer::start();
    let target = NatsServer::start();
    let src = connect(&source.url()).await;
    create_stream(&src, "ORDERS", &["orders.>"]).await;
    publish_range(&src, 0..N).await;
    let node = ChoirNode::start(&replicator_config(
        &source,
        &target,
        "filter_subject = \"orders.1\"",
    ));
    let dst = connect(&target.url()).await;
    let copied = settled(&dst, &node, (N / 3) as u64, WAIT).await;
    assert_eq!(
        indices(&copied),
        (0..N).filter(|n| n % 3 == 1).collect::<Vec<_>>()
    );
    assert!(copied.iter().all(|m| m.subject == "orders.1"));
}

#[tokio::test]
async fn start_at_a_sequence_begins_a_new_copy_there() {
    const N: usize = 200;
    let source = NatsServer::start();
    let target = NatsServer::start();
    let src = connect(&source.url()).await;
    create_stream(&src, "ORDERS", &["orders.>"]).await;
    publish_range(&src, 0..N).await;
    // Sequence 151 holds message 150.
    let node = ChoirNode::start(&replicator_config(&source, &target, "start = 151"));
    let dst = connect(&target.url()).await;
    let copied = settled(&dst, &node, 50, WAIT).await;
    assert_eq!(indices(&copied), (150..N).collect::<Vec<_>>());
}

#[tokio::test]
async fn reliable_advisories_are_stored_through_jetstream_with_the_event_id_as_msg_id() {
    let source = NatsServer::start();
    let target = NatsServer::start();
    let src = connect(&source.url()).await;
    create_stream(&src, "ORDERS", &["orders.>"]).await;
    let dst = connect(&target.url()).await;
    create_stream(&dst, "ADVISORIES", &["choir.adv.>"]).await;
    let node = ChoirNode::start(&replicator_config(
        &source,
        &target,
        "inspect = \"sender\"\nage = \"1h\"\n\
         [replicators.orders.advisories]\nsubject = \"choir.adv.%s.%v\"\nreliable = true",
    ));
    let js = jetstream::new(src.clone());
    for sender in ["a", "b", "a"] {
        js.publish("orders.x", format!("{{\"sender\":\"{sender}\"}}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    assert!(
        wait_for_count(&dst, "ADVISORIES", 2, WAIT).await,
        "advisories not stored; log:\n{}",
        node.log()
    );
    assert!(
        eventually(WAIT, || async {
            replicator_metric(
                &node,
                "choir_replicator_advisories_total",
                &[("reason", "new")],
            ) == 2.0
        })
        .await
    );
    let stored = read_all(&dst, "ADVISORIES").await;
    assert_eq!(stored.len(), 2, "one `new` advisory per sender");
    let mut values = Vec::new();
    for m in &stored {
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(v["event"], "new");
        assert_eq!(
            m.header("Nats-Msg-Id").as_deref(),
            v["event_id"].as_str(),
            "the event id is the duplicate-window id"
        );
        assert_eq!(
            m.subject,
            format!("choir.adv.new.{}", v["value"].as_str().unwrap())
        );
        values.push(v["value"].as_str().unwrap().to_owned());
    }
    values.sort();
    assert_eq!(values, ["a", "b"]);
    assert_eq!(
        replicator_metric(
            &node,
            "choir_replicator_advisories_total",
            &[("reason", "failed")]
        ),
        0.0
    );
}

#[tokio::test]
async fn heartbeat_publishes_the_replicators_copied_count_and_lag() {
    const N: usize = 25;
    let source = NatsServer::start();
    let target = NatsServer::start();
    let src = connect(&source.url()).await;
    create_stream(&src, "ORDERS", &["orders.>"]).await;
    let dst = connect(&target.url()).await;
    let mut beats = dst
        .subscribe("choir.replicator.orders.heartbeat")
        .await
        .unwrap();
    dst.flush().await.unwrap();
    let node = ChoirNode::start(&replicator_config(
        &source,
        &target,
        "heartbeat = \"200ms\"",
    ));
    publish_range(&src, 0..N).await;
    let mut seen = Vec::new();
    let last = tokio::time::timeout(WAIT, async {
        while let Some(m) = beats.next().await {
            let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
            seen.push(v.clone());
            if v["copied"] == N && v["lag"] == 0 {
                return v;
            }
        }
        panic!("heartbeat subscription ended");
    })
    .await
    .unwrap_or_else(|_| panic!("no heartbeat with copied={N} lag=0; log:\n{}", node.log()));
    assert_eq!(last["replicator"], "orders");
    humantime::parse_rfc3339(last["time"].as_str().unwrap()).unwrap();
    // The count only grows from beat to beat.
    let counts: Vec<u64> = seen.iter().map(|v| v["copied"].as_u64().unwrap()).collect();
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
    assert_eq!(count(&dst, "ORDERS").await, N as u64);
}

/// An interest stream deletes what every consumer acked, so the ordered worker acks (AckAll,
/// in batches) only what the target stored: the source never has fewer messages left than the
/// target is missing, a SIGKILL mid-copy loses nothing, and the source ends empty.
#[tokio::test]
async fn an_interest_source_is_emptied_only_of_what_the_target_stored() {
    const N: usize = 30_000;
    let source = NatsServer::start();
    let target = NatsServer::start();
    let src = connect(&source.url()).await;
    let sjs = jetstream::new(src.clone());
    sjs.create_stream(stream::Config {
        name: "ORDERS".into(),
        subjects: vec!["orders.>".into()],
        retention: stream::RetentionPolicy::Interest,
        ..Default::default()
    })
    .await
    .unwrap();
    // An interest stream keeps nothing nobody is interested in: let the replicator create its
    // durable consumer first, stop it, then preload (the durable consumer keeps the interest).
    let mut node = ChoirNode::start(&replicator_config(
        &source,
        &target,
        "mode = \"ordered\"\nack_wait = \"3s\"",
    ));
    assert!(
        eventually(WAIT, || async {
            let Ok(mut s) = sjs.get_stream("ORDERS").await else {
                return false;
            };
            s.info().await.is_ok_and(|i| i.state.consumer_count == 1)
        })
        .await,
        "the replicator's consumer never appeared; log:\n{}",
        node.log()
    );
    node.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(node.wait(WAIT).is_some_and(|s| s.success()));
    publish_range(&src, 0..N).await;
    assert_eq!(
        count(&src, "ORDERS").await,
        N as u64,
        "the interest kept them"
    );
    node.spawn();
    let dst = connect(&target.url()).await;
    assert!(
        wait_for_count(&dst, "ORDERS", 2_000, WAIT).await,
        "copy did not start: the target holds {}, the source {} of {N}; log:\n{}",
        count(&dst, "ORDERS").await,
        count(&src, "ORDERS").await,
        node.log()
    );
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
    assert!(
        count(&dst, "ORDERS").await < N as u64,
        "the copy finished before the kill"
    );
    node.spawn();
    let copied = settled(&dst, &node, N as u64, Duration::from_secs(180)).await;
    assert_exactly_once(&copied, N, true);
    assert!(
        eventually(WAIT, || async { count(&src, "ORDERS").await == 0 }).await,
        "the interest source still holds {} messages",
        count(&src, "ORDERS").await
    );
}
