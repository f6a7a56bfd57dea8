//! Malformed transports, unknown protocols, unfederated messages and bridging attempts
//! (target `foo.bar`, reply-to `secret.subject`) are dropped and counted by reason, nothing
//! reaches the subjects they aimed at, a payload over the max payload is counted, and the
//! broker keeps serving valid requests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "federation/support.rs"]
mod support;

use std::time::Duration;

use choir::actors::protocol::{subject, FederationHeader, Transport, TransportHeaders};
use common::{ChoirNode, NatsServer};
use futures::StreamExt as _;
use support::{broker_config, metric_sum, senders, wait_subscribed, FedClient};

const CLUSTER: &str = "c0";

fn fed_header(h: &mut TransportHeaders) -> &mut FederationHeader {
    h.federation.as_mut().unwrap()
}

fn dropped(node: &ChoirNode, path: &str, reason: &str) -> f64 {
    metric_sum(
        node,
        "choir_federation_dropped_total",
        &[("cluster", CLUSTER), ("path", path), ("reason", reason)],
    )
}

#[actix_rt::test]
async fn broken_and_bridging_messages_are_dropped_and_counted() {
    let fed = NatsServer::start();
    let collective = NatsServer::start();
    let node = ChoirNode::start(&broker_config(
        &fed,
        &[(CLUSTER, &collective)],
        "workers = 2\nqueue_size = 1000",
    ));
    let _fleet = support::start_fleet("emu", 5, &collective).await;
    wait_subscribed(&node, 1);
    // The deprecated key still loads, with a WARN naming it.
    assert!(
        node.log()
            .contains("queue_size is deprecated and has no effect"),
        "{}",
        node.log()
    );
    let client = FedClient::connect(&fed.url()).await;
    let spy_collective = async_nats::connect(collective.url()).await.unwrap();
    let mut on_collective = spy_collective.subscribe(">").await.unwrap();
    spy_collective.flush().await.unwrap();
    let mut on_fed_secret = client.nats.subscribe("secret.>").await.unwrap();
    let mut on_fed_foo = client.nats.subscribe("foo.>").await.unwrap();
    client.nats.flush().await.unwrap();

    let request = FedClient::request("discovery", "ping");
    let good = FedClient::federated(
        &request,
        vec![subject::broadcast_agent("mcollective", "discovery")],
        &fed.url(),
    );
    let with = |edit: &dyn Fn(&mut TransportHeaders)| {
        let mut t = Transport::from_slice(&good).unwrap();
        edit(&mut t.headers);
        t.to_vec().unwrap()
    };
    let requests: Vec<(Vec<u8>, &str)> = vec![
        (b"\x00\xffnot json at all".to_vec(), "malformed"),
        (b"{\"protocol\":".to_vec(), "malformed"),
        (
            br#"{"protocol":"choria:transport:9","data":"e30=","headers":{}}"#.to_vec(),
            "protocol",
        ),
        (with(&|h| h.federation = None), "unfederated"),
        (with(&|h| fed_header(h).req.clear()), "no_req"),
        (with(&|h| fed_header(h).target.clear()), "no_targets"),
        (
            with(&|h| fed_header(h).target = vec!["foo.bar".into()]),
            "bad_target",
        ),
        (
            with(&|h| {
                fed_header(h).target = vec![
                    subject::node("mcollective", "emu-1"),
                    "choria.federation.c0.federation".into(),
                ]
            }),
            "bad_target",
        ),
        (with(&|h| h.reply_to = None), "no_reply_to"),
        (
            with(&|h| h.reply_to = Some("secret.subject".into())),
            "bad_reply_to",
        ),
    ];
    for (payload, _) in &requests {
        client.publish_to_clusters(&[CLUSTER], payload).await;
    }
    // Replies arriving on the collective subject that try to bridge or are broken.
    let reply_subject = subject::federation_replies(CLUSTER);
    for payload in [
        br#"{"protocol":"choria:transport:1","data":"e30=","headers":{"federation":{"req":"r","reply-to":"secret.subject"}}}"#.as_slice(),
        br#"{"protocol":"choria:transport:1","data":"e30=","headers":{"federation":{"req":"r"}}}"#,
        br#"{"protocol":"choria:transport:1","data":"e30=","headers":{}}"#,
        b"[]",
    ] {
        spy_collective
            .publish(reply_subject.clone(), payload.to_vec().into())
            .await
            .unwrap();
    }
    // A request that fits the federation server but not after the broker added its hop.
    let max = client.nats.server_info().max_payload;
    let mut big = Transport::from_slice(&good).unwrap();
    big.data = String::new();
    let base = big.to_vec().unwrap().len();
    big.data = "A".repeat(max - base - 8);
    let big = big.to_vec().unwrap();
    assert!(big.len() <= max);
    client.publish_to_clusters(&[CLUSTER], &big).await;
    client.nats.flush().await.unwrap();
    spy_collective.flush().await.unwrap();

    let mut expected: std::collections::BTreeMap<&str, f64> = Default::default();
    for (_, reason) in &requests {
        *expected.entry(reason).or_default() += 1.0;
    }
    let counted = common::poll_until(Duration::from_secs(20), || {
        expected
            .iter()
            .all(|(reason, n)| dropped(&node, "request", reason) == *n)
            && dropped(&node, "request", "max_payload") == 1.0
            && dropped(&node, "reply", "bad_reply_to") == 1.0
            && dropped(&node, "reply", "no_reply_to") == 1.0
            && dropped(&node, "reply", "unfederated") == 1.0
            && dropped(&node, "reply", "malformed") == 1.0
    });
    let (_, text) = node.get("/metrics").unwrap();
    assert!(counted, "drops not counted as expected:\n{text}");
    let errors = metric_sum(&node, "choria_federation_errors", &[("cluster", CLUSTER)]);
    assert_eq!(errors, (requests.len() + 4 + 1) as f64, "{text}");

    // The broker still works, and nothing was bridged anywhere.
    let replies = client
        .broadcast(&[CLUSTER], &request, 5, Duration::from_secs(20))
        .await;
    assert_eq!(senders(&replies).len(), 5);
    assert_eq!(replies.len(), 5);
    let quiet = Duration::from_millis(300);
    assert!(tokio::time::timeout(quiet, on_fed_secret.next())
        .await
        .is_err());
    assert!(tokio::time::timeout(quiet, on_fed_foo.next())
        .await
        .is_err());
    let mut seen_on_collective = Vec::new();
    while let Ok(Some(msg)) = tokio::time::timeout(quiet, on_collective.next()).await {
        seen_on_collective.push(msg.subject.to_string());
    }
    for s in &seen_on_collective {
        assert!(
            s == "mcollective.broadcast.agent.discovery" || s == &reply_subject,
            "unexpected subject on the collective: {s}"
        );
    }
    assert!(
        node.log().matches("panicked").count() == 0,
        "{}",
        node.log()
    );
    assert!(
        !node.log().contains("subscriptions ended"),
        "{}",
        node.log()
    );
}
