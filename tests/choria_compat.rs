//! `compat = "choria"`: a replicator also speaks the Choria Stream Replicator's conventions:
//! `Choria-SR-Source` on every copy, `io.choria.sr.v2.age_advisory` advisories on the source
//! network (checked against tests/schemas/choria_sr_age_advisory.json, written from the SR's
//! documentation), heartbeats with a unix-timestamp body and `Choria-SR-Originator`, and the
//! SR's `choria_stream_replicator_*` metric names and labels beside choir's own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::http::metric_value;
use common::jetstream::{connect, count, create_stream, read_all};
use common::replication::replicator_config;
use common::{eventually, ChoirNode, NatsServer};
use futures::StreamExt;

fn schema() -> jsonschema::Validator {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/schemas/choria_sr_age_advisory.json"
    );
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::draft7::new(&schema).unwrap()
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn publish(client: &async_nats::Client, sender: &str) {
    let js = async_nats::jetstream::new(client.clone());
    let body = format!("{{\"sender\":\"{sender}\"}}");
    js.publish(format!("orders.{sender}"), body.into())
        .await
        .unwrap()
        .await
        .unwrap();
}

/// Advisories until one of `wanted` arrives (20 s at most), each checked against the schema.
async fn next_advisory(
    advisories: &mut async_nats::Subscriber,
    validator: &jsonschema::Validator,
    wanted: &str,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let m = tokio::time::timeout(left, advisories.next())
            .await
            .unwrap_or_else(|_| panic!("no {wanted} advisory"))
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
        assert!(
            errors.is_empty(),
            "{v} does not match the SR schema: {errors:?}"
        );
        if v["event"] == wanted {
            return v;
        }
    }
}

#[tokio::test]
async fn choria_compat_mode_speaks_the_stream_replicators_headers_advisories_heartbeats_and_metrics(
) {
    let validator = schema();
    let source = NatsServer::start();
    let target = NatsServer::start();
    let src = connect(&source.url()).await;
    let dst = connect(&target.url()).await;
    create_stream(&src, "ORDERS", &["orders.>"]).await;
    // The SR publishes heartbeats through JetStream: a stream must hold them.
    create_stream(&dst, "HEARTBEATS", &["hb.>"]).await;
    // The SR publishes advisories to the source network.
    let mut advisories = src.subscribe("sr.advisories.>").await.unwrap();
    let started = unix_secs();
    let node = ChoirNode::start(&replicator_config(
        &source,
        &target,
        "compat = \"choria\"\ninspect = \"sender\"\nage = \"1s\"\nsender_timeout = \"1500ms\"\n\
         sender_expire = \"4s\"\nheartbeat = \"200ms\"\nheartbeat_subject = \"hb.orders\"\n\
         [replicators.orders.advisories]\nsubject = \"sr.advisories.%s.%v\"",
    ));

    publish(&src, "node1").await;
    publish(&src, "node2").await;
    let new = next_advisory(&mut advisories, &validator, "new").await;
    assert_eq!(new["protocol"], "io.choria.sr.v2.age_advisory");
    assert_eq!(
        new["replicator"], "test",
        "the SR's top-level name: the node's"
    );
    assert_eq!(new["inspect_field"], "sender");
    let timeout = next_advisory(&mut advisories, &validator, "timeout").await;
    assert!(timeout["age"].as_u64().unwrap() >= 1, "{timeout}");
    assert!(timeout["timestamp"].as_u64().unwrap() >= started);

    assert!(
        eventually(Duration::from_secs(20), || async {
            count(&dst, "ORDERS").await >= 2
        })
        .await,
        "nothing copied; log:\n{}",
        node.log()
    );
    let copied = read_all(&dst, "ORDERS").await;
    for m in &copied {
        let header = m.header("Choria-SR-Source").expect("Choria-SR-Source");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 5, "{header}");
        assert_eq!(parts[0], "ORDERS");
        let provenance = m.header("Choir-Provenance").unwrap();
        assert!(
            provenance.contains(&format!(" seq={} ", parts[1])),
            "{header} vs {provenance}"
        );
        assert_eq!(parts[2], "test");
        assert_eq!(parts[3], "orders");
        let millis: u64 = parts[4].parse().unwrap();
        assert!(
            millis / 1000 >= started && millis / 1000 <= unix_secs(),
            "{header}"
        );
    }

    assert!(
        eventually(Duration::from_secs(20), || async {
            count(&dst, "HEARTBEATS").await >= 2
        })
        .await,
        "no heartbeats; log:\n{}",
        node.log()
    );
    for beat in read_all(&dst, "HEARTBEATS").await {
        let secs: u64 = std::str::from_utf8(&beat.payload).unwrap().parse().unwrap();
        assert!(secs >= started && secs <= unix_secs(), "{secs}");
        assert!(!beat.header("Choria-SR-Originator").unwrap().is_empty());
        assert_eq!(beat.header("Choria-SR-Subject").unwrap(), "hb.orders");
    }

    let (_, text) = node.get("/metrics").unwrap();
    let labels = [
        ("stream", "ORDERS"),
        ("replicator", "test"),
        ("worker", "orders"),
    ];
    // The SR's series (research notes, "Metrics"); of the election's, campaigns and leader
    // (choir has no campaign interval series: its renewal period is a quarter of the ttl).
    for name in [
        "replicator_total_messages",
        "replicator_total_bytes",
        "replicator_handler_error_count",
        "replicator_processing_time_seconds_count",
        "replicator_stream_sequence",
        "replicator_too_old_messages",
        "replicator_copied_messages",
        "replicator_copied_bytes",
        "replicator_skipped_messages",
        "replicator_skipped_bytes",
        "replicator_meta_parse_failed_count",
        "replicator_ack_failed_count",
        "replicator_consumer_recreated",
        "tracker_total_items",
        "tracker_seen_by_gossip",
        "advisor_publish_errors",
        "advisor_publish_total_messages",
        "limiter_messages_without_limit_field_count",
        "limiter_messages_copy_forced_count",
        "election_campaigns",
        "election_leader",
        "heartbeat_subjects_count",
        "heartbeat_published_count",
        "heartbeat_published_error_count",
        "heartbeat_publish_time",
        "heartbeat_paused",
    ] {
        let full = format!("choria_stream_replicator_{name}");
        assert!(
            metric_value(&text, &full, &labels).is_some(),
            "{full} with the SR's labels missing from:\n{text}"
        );
    }
    let value = |name: &str| {
        metric_value(&text, &format!("choria_stream_replicator_{name}"), &labels).unwrap()
    };
    assert!(value("replicator_total_messages") >= 2.0);
    assert!(value("replicator_copied_messages") >= 2.0);
    assert!(value("advisor_publish_total_messages") >= 3.0);
    assert!(value("heartbeat_published_count") >= 2.0);
    // Without [replicators.X.ha] the one node copies, so it is the leader.
    assert_eq!(value("election_leader"), 1.0);
    assert!(
        metric_value(
            &text,
            "choir_replicator_copied_total",
            &[("replicator", "orders")]
        )
        .is_some(),
        "choir's own metrics are still served"
    );
}

#[tokio::test]
async fn without_compat_copies_carry_no_choria_header_and_no_sr_metrics() {
    let source = NatsServer::start();
    let target = NatsServer::start();
    let src = connect(&source.url()).await;
    let dst = connect(&target.url()).await;
    create_stream(&src, "ORDERS", &["orders.>"]).await;
    let node = ChoirNode::start(&replicator_config(&source, &target, ""));
    publish(&src, "node1").await;
    assert!(
        eventually(Duration::from_secs(20), || async {
            count(&dst, "ORDERS").await >= 1
        })
        .await
    );
    let copied = read_all(&dst, "ORDERS").await;
    assert!(copied[0].header("Choria-SR-Source").is_none());
    let (_, text) = node.get("/metrics").unwrap();
    assert!(!text.contains("choria_stream_replicator_"), "{text}");
}

/// Moving from the Choria Stream Replicator: the target's last message is the SR's copy of
/// source message 5 (its `Choria-SR-Source` names stream and per-stream name), so an ordered
/// replicator in compat mode with the same name goes on from 6 instead of copying all again.
#[tokio::test]
async fn an_ordered_replicator_in_choria_compat_resumes_after_the_stream_replicators_last_copy() {
    let source = NatsServer::start();
    let target = NatsServer::start();
    let src = connect(&source.url()).await;
    let dst = connect(&target.url()).await;
    create_stream(&src, "ORDERS", &["orders.>"]).await;
    create_stream(&dst, "ORDERS", &["orders.>"]).await;
    let sjs = async_nats::jetstream::new(src.clone());
    for i in 1..=10 {
        sjs.publish(format!("orders.{i}"), format!("{{\"n\":{i}}}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let tjs = async_nats::jetstream::new(dst.clone());
    for i in 1..=5u64 {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            "Choria-SR-Source",
            format!("ORDERS {i} OLD-SITE orders 1700000000000").as_str(),
        );
        tjs.publish_with_headers(
            format!("orders.{i}"),
            headers,
            format!("{{\"n\":{i}}}").into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    let node = ChoirNode::start(&replicator_config(&source, &target, "compat = \"choria\""));
    assert!(
        eventually(Duration::from_secs(20), || async {
            count(&dst, "ORDERS").await >= 10
        })
        .await,
        "log:\n{}",
        node.log()
    );
    // Settled: the replicator has nothing left to copy.
    assert!(
        eventually(Duration::from_secs(20), || async {
            node.get("/metrics").is_some_and(|(_, t)| {
                metric_value(
                    &t,
                    "choir_replicator_lag_messages",
                    &[("replicator", "orders")],
                ) == Some(0.0)
            })
        })
        .await
    );
    let all = read_all(&dst, "ORDERS").await;
    let ns: Vec<u64> = all
        .iter()
        .map(|m| {
            serde_json::from_slice::<serde_json::Value>(&m.payload).unwrap()["n"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(ns, (1..=10).collect::<Vec<_>>(), "each once, in order");
    assert_eq!(
        all[5].header("Choria-SR-Source").unwrap().split(' ').nth(1),
        Some("6")
    );
}
