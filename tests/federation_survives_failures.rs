//! A broker process killed with SIGKILL and restarted serves the next requests; a collective
//! server that goes down does not stop the other collectives' replies, and its daemons answer
//! again once it is back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "federation/support.rs"]
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{ChoirNode, NatsServer};
use support::{broker_config, identities, senders, wait_subscribed, FedClient};

const PER_COLLECTIVE: usize = 30;
const CLUSTERS: [&str; 3] = ["c0", "c1", "c2"];

#[actix_rt::test]
async fn sigkill_restart_and_a_lost_collective() {
    let fed = NatsServer::start();
    let mut collectives: Vec<NatsServer> = (0..3).map(|_| NatsServer::start()).collect();
    let body = {
        let clusters: Vec<(&str, &NatsServer)> =
            CLUSTERS.iter().copied().zip(&collectives).collect();
        broker_config(&fed, &clusters, "workers = 4")
    };
    let mut node = ChoirNode::start(&body);
    let mut _fleets = Vec::new();
    let mut per_cluster = Vec::new();
    for (name, server) in CLUSTERS.iter().zip(&collectives) {
        let prefix = format!("{name}-emu");
        _fleets.push(support::start_fleet(&prefix, PER_COLLECTIVE, server).await);
        per_cluster.push(identities(&prefix, PER_COLLECTIVE));
    }
    let all: BTreeSet<String> = per_cluster.iter().flatten().cloned().collect();
    wait_subscribed(&node, 3);
    let client = FedClient::connect(&fed.url()).await;
    let discover = |expected: usize| {
        let client = &client;
        async move {
            let ping = FedClient::request("discovery", "ping");
            let replies = client
                .broadcast(&CLUSTERS, &ping, expected, Duration::from_secs(20))
                .await;
            let seen = senders(&replies);
            assert!(seen.values().all(|n| *n == 1), "duplicates: {seen:?}");
            seen.into_keys().collect::<BTreeSet<_>>()
        }
    };
    assert_eq!(discover(all.len()).await, all);

    // SIGKILL, restart: the next requests succeed.
    node.kill();
    node.spawn();
    wait_subscribed(&node, 6);
    // The servers may still count the killed process's connections as queue members for a
    // moment (a request handed to one of them is lost, as in core NATS): poll, bounded.
    let recovered = common::eventually(Duration::from_secs(30), || async {
        discover(all.len()).await == all
    })
    .await;
    assert!(recovered, "no complete discovery after SIGKILL and restart");
    assert_eq!(discover(all.len()).await, all, "and the next one too");

    // One collective down: the other two keep answering.
    collectives[1].kill();
    let others: BTreeSet<String> = per_cluster[0].union(&per_cluster[2]).cloned().collect();
    assert_eq!(
        discover(others.len()).await,
        others,
        "with c1's server down"
    );
    assert_eq!(discover(others.len()).await, others, "still, a second time");

    // Back: its daemons and its broker reconnect and answer again.
    collectives[1].restart();
    let back = common::eventually(Duration::from_secs(30), || async {
        discover(all.len()).await == all
    })
    .await;
    assert!(back, "c1's daemons answer again after their server is back");
}
