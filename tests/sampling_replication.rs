//! Per-sender sampling: each sender is copied at most once per `age` and again while it keeps
//! sending; the tracker survives a restart; quiet senders produce timeout and expire
//! advisories and returning ones recover; messages without the field are always copied.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::future::IntoFuture;
use std::time::{Duration, SystemTime};

use common::jetstream::{connect, count, create_stream, read_all};
use common::replication::{replicator_config, replicator_metric};
use common::{eventually, ChoirNode, NatsServer};
use futures::StreamExt;
use nix::sys::signal::Signal;

async fn publish(client: &async_nats::Client, sender: &str, extra: &str) {
    let js = async_nats::jetstream::new(client.clone());
    let body = format!("{{\"sender\":\"{sender}\"{extra}}}");
    js.publish(format!("orders.{sender}"), body.into())
        .await
        .unwrap()
        .await
        .unwrap();
}

fn provenance_time(m: &common::jetstream::Stored) -> SystemTime {
    let p = m.header("Choir-Provenance").unwrap();
    let t = p
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("time="))
        .unwrap();
    humantime::parse_rfc3339(t).unwrap()
}

/// Every message of the source stream `ORDERS`: (sequence, sender, stored at in Unix ms).
async fn source_messages(client: &async_nats::Client) -> Vec<(u64, String, u64)> {
    use async_nats::jetstream::consumer;
    let js = async_nats::jetstream::new(client.clone());
    let stream = js.get_stream("ORDERS").await.unwrap();
    let total = count(client, "ORDERS").await;
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            ack_policy: consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let mut out = Vec::new();
    while (out.len() as u64) < total {
        let m = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .expect("reading the source timed out")
            .unwrap()
            .unwrap();
        let info = m.info().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        let ms = u64::try_from(info.published.unix_timestamp_nanos() / 1_000_000).unwrap();
        out.push((
            info.stream_sequence,
            v["sender"].as_str().unwrap().to_owned(),
            ms,
        ));
    }
    out
}

/// The source sequence in a copy's provenance header.
fn provenance_seq(m: &common::jetstream::Stored) -> u64 {
    let p = m.header("Choir-Provenance").unwrap();
    p.split_whitespace()
        .find_map(|kv| kv.strip_prefix("seq="))
        .unwrap()
        .parse()
        .unwrap()
}

/// The sampling rule, worked out from the source itself (on the stream's clock, in whole
/// milliseconds as the tracker keeps them): a sender's first message is copied, and after
/// that its first message at least `age` after its last copy.
fn due_copies(source: &[(u64, String, u64)], age_ms: u64) -> Vec<u64> {
    let mut last: BTreeMap<&str, u64> = BTreeMap::new();
    let mut due = Vec::new();
    for (seq, sender, ms) in source {
        let copy = last
            .get(sender.as_str())
            .is_none_or(|l| ms.saturating_sub(*l) >= age_ms);
        if copy {
            last.insert(sender, *ms);
            due.push(*seq);
        }
    }
    due
}

#[tokio::test]
async fn fifty_senders_every_100ms_with_age_1s_are_copied_exactly_when_a_second_has_passed() {
    const TICKS: usize = 30;
    let source = NatsServer::start();
    let target = NatsServer::start();
    let src = connect(&source.url()).await;
    create_stream(&src, "ORDERS", &["orders.>"]).await;
    let node = ChoirNode::start(&replicator_config(
        &source,
        &target,
        "inspect = \"sender\"\nage = \"1s\"",
    ));

    let js = async_nats::jetstream::new(src.clone());
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    // At least 100 ms between rounds even on a busy machine: never a burst of late ticks.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for sent in 0..TICKS {
        tick.tick().await;
        let mut acks = futures::stream::FuturesUnordered::new();
        for s in 0..50 {
            let body = format!("{{\"sender\":\"s{s}\",\"tick\":{sent}}}");
            acks.push(
                js.publish(format!("orders.s{s}"), body.into())
                    .await
                    .unwrap()
                    .into_future(),
            );
        }
        while let Some(a) = acks.next().await {
            a.unwrap();
        }
    }
    let dst = connect(&target.url()).await;
    assert!(
        eventually(Duration::from_secs(60), || async {
            replicator_metric(&node, "choir_replicator_received_total", &[]) >= (TICKS * 50) as f64
                && replicator_metric(&node, "choir_replicator_lag_messages", &[]) == 0.0
        })
        .await
    );
    let copied = read_all(&dst, "ORDERS").await;
    let source_messages = source_messages(&src).await;
    // Exactly the copies the rule asks for, computed from the source's own timestamps.
    let mut copied_seqs: Vec<u64> = copied.iter().map(provenance_seq).collect();
    copied_seqs.sort_unstable();
    assert_eq!(copied_seqs, due_copies(&source_messages, 1000));
    let mut by_sender: BTreeMap<String, Vec<SystemTime>> = BTreeMap::new();
    for m in &copied {
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        by_sender
            .entry(v["sender"].as_str().unwrap().to_owned())
            .or_default()
            .push(provenance_time(m));
    }
    assert_eq!(by_sender.len(), 50, "every sender copied");
    for (sender, times) in &by_sender {
        // 30 rounds at least 100 ms apart span at least 2.9 s: a second copy is always due.
        assert!(
            times.len() >= 2,
            "{sender} copied {} times over 30 rounds",
            times.len()
        );
        for pair in times.windows(2) {
            // The tracker keeps whole milliseconds: compare at that resolution.
            let ms = |t: SystemTime| {
                t.duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_millis()
            };
            let gap = ms(pair[1]) - ms(pair[0]);
            assert!(gap >= 1000, "{sender} copied twice within {gap} ms");
        }
    }
    let skipped = replicator_metric(
        &node,
        "choir_replicator_skipped_total",
        &[("reason", "sampling")],
    );
    assert_eq!(
        skipped as usize + copied.len(),
        TICKS * 50,
        "every message copied or skipped"
    );
}

#[tokio::test]
async fn the_tracker_survives_a_restart() {
    let source = NatsServer::start();
    let target = NatsServer::start();
    let src = connect(&source.url()).await;
    create_stream(&src, "ORDERS", &["orders.>"]).await;
    let config = replicator_config(&source, &target, "inspect = \"sender\"\nage = \"1h\"");
    let mut node = ChoirNode::start(&config);
    for s in 0..10 {
        publish(&src, &format!("s{s}"), "").await;
    }
    let dst = connect(&target.url()).await;
    assert!(common::jetstream::wait_for_count(&dst, "ORDERS", 10, Duration::from_secs(30)).await);

    node.signal(Signal::SIGTERM);
    assert!(node
        .wait(Duration::from_secs(15))
        .is_some_and(|s| s.success()));
    assert!(
        node.state_dir()
            .join("replicators/orders.tracker")
            .is_file(),
        "tracker persisted"
    );
    node.spawn();
    assert!(
        node.log().contains("Loaded the sampling tracker"),
        "{}",
        node.log()
    );

    for s in 0..10 {
        publish(&src, &format!("s{s}"), "").await;
    }
    assert!(
        eventually(Duration::from_secs(30), || async {
            replicator_metric(
                &node,
                "choir_replicator_skipped_total",
                &[("reason", "sampling")],
            ) >= 10.0
        })
        .await,
        "the second round was not sampled out after the restart; log:\n{}",
        node.log()
    );
    assert_eq!(
        count(&dst, "ORDERS").await,
        10,
        "nothing copied twice within age"
    );
}

async fn next_event(
    advisories: &mut async_nats::Subscriber,
    seen: &mut Vec<(String, serde_json::Value)>,
    wanted: &str,
) -> (String, serde_json::Value) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let m = tokio::time::timeout(left, advisories.next())
            .await
            .unwrap_or_else(|_| panic!("no {wanted} advisory; seen {seen:?}"))
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        seen.push((m.subject.to_string(), v.clone()));
        if v["event"] == wanted {
            return (m.subject.to_string(), v);
        }
    }
}

#[tokio::test]
async fn quiet_senders_time_out_and_expire_and_returning_ones_recover() {
    let source = NatsServer::start();
    let target = NatsServer::start();
    let src = connect(&source.url()).await;
    create_stream(&src, "ORDERS", &["orders.>"]).await;
    let dst = connect(&target.url()).await;
    let mut advisories = dst.subscribe("choir.advisories.>").await.unwrap();
    let node = ChoirNode::start(&replicator_config(
        &source,
        &target,
        "inspect = \"sender\"\nage = \"1s\"\nsender_timeout = \"1500ms\"\nsender_expire = \"4s\"\n\
         [replicators.orders.advisories]\nsubject = \"choir.advisories.%s.%v\"",
    ));
    let mut seen: Vec<(String, serde_json::Value)> = Vec::new();
    publish(&src, "quiet.one", "").await;
    let (subject, new) = next_event(&mut advisories, &mut seen, "new").await;
    assert_eq!(
        subject, "choir.advisories.new.quiet_one",
        "value sanitised into one token"
    );
    assert_eq!(new["value"], "quiet.one");
    assert_eq!(new["replicator"], "orders");
    assert_eq!(new["inspect_field"], "sender");
    assert_eq!(new["age"], 1);
    let (_, timeout) = next_event(&mut advisories, &mut seen, "timeout").await;
    assert_eq!(timeout["value"], "quiet.one");

    publish(&src, "quiet.one", "").await;
    let (_, recover) = next_event(&mut advisories, &mut seen, "recover").await;
    assert_eq!(recover["value"], "quiet.one");
    next_event(&mut advisories, &mut seen, "timeout").await;
    let (_, expire) = next_event(&mut advisories, &mut seen, "expire").await;
    assert_eq!(expire["value"], "quiet.one");
    assert!(
        replicator_metric(
            &node,
            "choir_replicator_advisories_total",
            &[("reason", "expire")]
        ) >= 1.0
    );
}

#[tokio::test]
async fn messages_without_the_inspected_field_are_copied_and_counted() {
    let source = NatsServer::start();
    let target = NatsServer::start();
    let src = connect(&source.url()).await;
    create_stream(&src, "ORDERS", &["orders.>"]).await;
    let node = ChoirNode::start(&replicator_config(
        &source,
        &target,
        "inspect = \"sender\"\nage = \"1h\"",
    ));
    let js = async_nats::jetstream::new(src.clone());
    for body in [
        "not json at all",
        "{\"other\":1}",
        "{\"sender\":\"a\"}",
        "{\"sender\":\"a\"}",
    ] {
        js.publish("orders.x", body.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let dst = connect(&target.url()).await;
    assert!(
        eventually(Duration::from_secs(30), || async {
            replicator_metric(&node, "choir_replicator_received_total", &[]) >= 4.0
                && count(&dst, "ORDERS").await >= 3
        })
        .await
    );
    let copied: Vec<String> = read_all(&dst, "ORDERS")
        .await
        .iter()
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect();
    assert_eq!(
        copied,
        ["not json at all", "{\"other\":1}", "{\"sender\":\"a\"}"]
    );
    assert_eq!(
        replicator_metric(&node, "choir_replicator_no_sender_total", &[]),
        2.0
    );
    assert_eq!(
        replicator_metric(
            &node,
            "choir_replicator_skipped_total",
            &[("reason", "sampling")]
        ),
        1.0
    );
}
