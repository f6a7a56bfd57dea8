//! Two choir processes brokering the same cluster share the work through the queue groups:
//! both brokers' counters move, and the client sees every reply exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "federation/support.rs"]
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{ChoirNode, NatsServer};
use support::{broker_config, identities, metric_sum, senders, wait_subscribed, FedClient};

const CLUSTER: &str = "c0";
const DAEMONS: usize = 20;
const REQUESTS: usize = 40;

fn ingested(node: &ChoirNode) -> f64 {
    metric_sum(
        node,
        "choria_federation_received_msgs",
        &[
            ("name", "nats_ingest"),
            ("connected_to", "federation"),
            ("cluster", CLUSTER),
        ],
    )
}

#[actix_rt::test]
async fn two_broker_processes_share_one_cluster_and_replies_arrive_once() {
    let fed = NatsServer::start();
    let collective = NatsServer::start();
    let a = ChoirNode::start(&broker_config(
        &fed,
        &[(CLUSTER, &collective)],
        "identity = \"fb-a\"\nworkers = 3",
    ));
    let b = ChoirNode::start(&broker_config(
        &fed,
        &[(CLUSTER, &collective)],
        "identity = \"fb-b\"\nworkers = 3",
    ));
    let _fleet = support::start_fleet("emu", DAEMONS, &collective).await;
    wait_subscribed(&a, 1);
    wait_subscribed(&b, 1);
    let client = FedClient::connect(&fed.url()).await;
    let all = identities("emu", DAEMONS);
    let mut brokers_seen = BTreeSet::new();
    for i in 0..REQUESTS {
        let ping = FedClient::request("discovery", "ping");
        let replies = client
            .call(
                &[CLUSTER],
                &ping,
                &[choir::actors::protocol::subject::broadcast_agent(
                    "mcollective",
                    "discovery",
                )],
                DAEMONS,
                Duration::from_secs(20),
                Duration::from_millis(if i + 1 == REQUESTS { 500 } else { 0 }),
            )
            .await;
        let seen = senders(&replies);
        assert_eq!(replies.len(), DAEMONS, "request {i}: {seen:?}");
        assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), all);
        for r in &replies {
            for hop in &r.transport.headers.seen_by {
                if let Some(broker) = hop
                    .processor()
                    .split(' ')
                    .next()
                    .filter(|b| b.starts_with("fb-"))
                {
                    brokers_seen.insert(broker.to_owned());
                }
            }
        }
    }
    let (ia, ib) = (ingested(&a), ingested(&b));
    assert_eq!(
        ia + ib,
        REQUESTS as f64,
        "each request ingested once: {ia} + {ib}"
    );
    assert!(
        ia > 0.0 && ib > 0.0,
        "both brokers took requests: {ia} / {ib}"
    );
    let replies_a = metric_sum(
        &a,
        "choria_federation_received_msgs",
        &[("name", "nats_ingest"), ("connected_to", "collective")],
    );
    let replies_b = metric_sum(
        &b,
        "choria_federation_received_msgs",
        &[("name", "nats_ingest"), ("connected_to", "collective")],
    );
    assert_eq!(replies_a + replies_b, (REQUESTS * DAEMONS) as f64);
    assert!(
        replies_a > 0.0 && replies_b > 0.0,
        "{replies_a} / {replies_b}"
    );
    assert_eq!(
        brokers_seen,
        ["fb-a".to_owned(), "fb-b".to_owned()].into_iter().collect(),
        "both brokers appear in the seen-by traces"
    );
}
