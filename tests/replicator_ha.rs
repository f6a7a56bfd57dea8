//! Replicator HA: three `choir` processes with the same `[replicators.orders.ha]` elect one
//! leader (a KV election on the source server); when the leader is killed, paused past its TTL
//! or restarted, another takes over and copying ends exactly once (in order in ordered mode)
//! with no stale consumer on the source; a paused leader that resumes steps down; a new
//! leader does not copy again a sampled sender the old leader copied just before it died.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::future::IntoFuture;
use std::time::Duration;

use async_nats::jetstream;
use common::jetstream::{connect, count, create_stream, read_all};
use common::replication::{assert_exactly_once, indices, replicator_config};
use common::{eventually, ChoirNode, NatsServer};
use futures::StreamExt;
use nix::sys::signal::Signal;

/// The election TTL of these tests.
const TTL: &str = "2s";

/// Messages each copy test publishes.
const TOTAL: usize = 3000;

/// A metric of replicator `orders` on `node`; `None` when the node does not answer.
fn metric(node: &ChoirNode, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let (_, text) = node.get("/metrics")?;
    let mut all = vec![("replicator", "orders")];
    all.extend_from_slice(labels);
    Some(common::http::metric_value(&text, name, &all).unwrap_or(0.0))
}

fn leads(node: &ChoirNode) -> bool {
    metric(node, "choir_replicator_leader", &[]) == Some(1.0)
}

fn standing_by(node: &ChoirNode) -> bool {
    node.log()
        .matches("Standing by in the replicator's election.")
        .count()
        > 0
}

/// Three nodes running replicator `orders` (`extra` keys) with HA, identities `node-0..2`.
fn three_nodes(source: &NatsServer, target: &NatsServer, extra: &str) -> Vec<ChoirNode> {
    (0..3)
        .map(|i| {
            let body = replicator_config(
                source,
                target,
                &format!(
                    "{extra}\n[replicators.orders.ha]\nttl = \"{TTL}\"\nidentity = \"node-{i}\"\n"
                ),
            );
            ChoirNode::start(&body)
        })
        .collect()
}

/// The index of the only leader among the `alive` nodes, once every one of them takes part
/// in the election (and gets the sampling gossip) and exactly one leads.
async fn sole_leader(nodes: &[ChoirNode], alive: &[usize]) -> usize {
    let mut leader = None;
    let found = eventually(Duration::from_secs(30), || {
        let ready = alive.iter().all(|&i| standing_by(&nodes[i]));
        let leaders: Vec<usize> = alive
            .iter()
            .copied()
            .filter(|&i| leads(&nodes[i]))
            .collect();
        leader = (ready && leaders.len() == 1).then(|| leaders[0]);
        async move { leader.is_some() }
    })
    .await;
    assert!(
        found,
        "no single leader among {alive:?}; logs:\n{}",
        alive
            .iter()
            .map(|&i| nodes[i].log())
            .collect::<Vec<_>>()
            .join("\n-----\n")
    );
    leader.unwrap()
}

/// Publishes `{"n":i}` for `range` to `orders.x`, in batches of 50 with a short pause, so
/// that copying is still going on while a test kills or pauses a node.
async fn publish_paced(url: String, range: std::ops::Range<usize>) {
    let client = connect(&url).await;
    let js = jetstream::new(client);
    let mut acks = Vec::new();
    for i in range {
        acks.push(
            js.publish("orders.x", format!("{{\"n\":{i}}}").into())
                .await
                .unwrap()
                .into_future(),
        );
        if acks.len() == 50 {
            for ack in acks.drain(..) {
                ack.await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    for ack in acks {
        ack.await.unwrap();
    }
}

/// Names of the consumers on the source stream `ORDERS`.
async fn source_consumers(client: &async_nats::Client) -> Vec<String> {
    let js = jetstream::new(client.clone());
    let stream = js.get_stream("ORDERS").await.unwrap();
    let mut names: Vec<String> = stream
        .consumer_names()
        .map(|n| n.unwrap())
        .collect::<Vec<_>>()
        .await;
    names.sort();
    names
}

/// Waits until the target holds `n` messages and `leader` reports no lag, then checks every
/// message (exactly once; in order when `ordered`) and that the source holds no consumer
/// but the replicator's one durable.
async fn assert_copied(
    source: &async_nats::Client,
    target: &async_nats::Client,
    nodes: &[ChoirNode],
    leader: usize,
    n: usize,
    ordered: bool,
) {
    let logs = || {
        nodes
            .iter()
            .enumerate()
            .map(|(i, node)| format!("--- node-{i}:\n{}", node.log()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let leader_index = leader;
    let leader = &nodes[leader];
    let done = eventually(Duration::from_secs(60), || async {
        count(target, "ORDERS").await >= n as u64
            && metric(leader, "choir_replicator_lag_messages", &[]) == Some(0.0)
    })
    .await;
    assert!(
        done,
        "target has {} of {n}; logs:\n{}",
        count(target, "ORDERS").await,
        logs()
    );
    let messages = read_all(target, "ORDERS").await;
    assert_exactly_once(&messages, n, ordered);
    // Ordered: each node has its own consumer, deleted when it stands by, and a dead node's
    // expires on the server (inactive threshold, 2 x TTL but at least 5 s). Queued: one
    // consumer shared by all.
    let expected = if ordered {
        vec![format!("choir_orders_ha_node-{leader_index}")]
    } else {
        vec!["choir_orders".to_owned()]
    };
    let clean = eventually(Duration::from_secs(30), || async {
        source_consumers(source).await == expected
    })
    .await;
    assert!(
        clean,
        "stale consumers on the source: {:?}, expected {expected:?}",
        source_consumers(source).await
    );
}

/// Kills the leader mid-copy: another node takes over and the target ends exactly once.
async fn leader_killed_mid_copy(extra: &str, ordered: bool) {
    let source = NatsServer::start();
    let target = NatsServer::start();
    let sc = connect(&source.url()).await;
    let tc = connect(&target.url()).await;
    create_stream(&sc, "ORDERS", &["orders.>"]).await;
    let mut nodes = three_nodes(&source, &target, extra);
    let first = sole_leader(&nodes, &[0, 1, 2]).await;

    let publisher = tokio::spawn(publish_paced(source.url(), 0..TOTAL));
    assert!(
        eventually(Duration::from_secs(30), || async {
            count(&tc, "ORDERS").await >= 300
        })
        .await,
        "nothing copied before the kill; log:\n{}",
        nodes[first].log()
    );
    nodes[first].kill();
    let alive: Vec<usize> = (0..3).filter(|&i| i != first).collect();
    let second = sole_leader(&nodes, &alive).await;
    publisher.await.unwrap();
    assert_copied(&sc, &tc, &nodes, second, TOTAL, ordered).await;
    assert_eq!(
        metric(&nodes[second], "choir_replicator_elections_total", &[]),
        Some(1.0)
    );
}

#[tokio::test]
async fn killing_the_ordered_leader_mid_copy_hands_over_exactly_once_in_order() {
    leader_killed_mid_copy("", true).await;
}

#[tokio::test]
async fn killing_the_queued_leader_mid_copy_hands_over_exactly_once() {
    leader_killed_mid_copy("mode = \"queued\"\nworkers = 2\n", false).await;
}

/// Pauses the leader (SIGSTOP, its election connection silent) past its TTL: another node
/// takes over. Resumed (SIGCONT) the old leader still believes it leads until its next
/// election step, so for a moment two nodes copy; then it steps down. The target ends
/// exactly once.
async fn paused_leader_overlaps_then_steps_down(extra: &str, ordered: bool) {
    let source = NatsServer::start();
    let target = NatsServer::start();
    let sc = connect(&source.url()).await;
    let tc = connect(&target.url()).await;
    create_stream(&sc, "ORDERS", &["orders.>"]).await;
    let nodes = three_nodes(&source, &target, extra);
    let first = sole_leader(&nodes, &[0, 1, 2]).await;

    let publisher = tokio::spawn(publish_paced(source.url(), 0..TOTAL));
    assert!(
        eventually(Duration::from_secs(30), || async {
            count(&tc, "ORDERS").await >= 300
        })
        .await
    );
    nodes[first].signal(Signal::SIGSTOP);
    let others: Vec<usize> = (0..3).filter(|&i| i != first).collect();
    let second = sole_leader(&nodes, &others).await;
    // The new leader copies while the old one is frozen with its workers mid-session.
    let copied = count(&tc, "ORDERS").await;
    assert!(
        eventually(Duration::from_secs(30), || async {
            count(&tc, "ORDERS").await > copied
        })
        .await,
        "the new leader does not copy; log:\n{}",
        nodes[second].log()
    );
    nodes[first].signal(Signal::SIGCONT);
    assert!(
        eventually(Duration::from_secs(30), || async {
            metric(&nodes[first], "choir_replicator_leader", &[]) == Some(0.0)
        })
        .await,
        "the resumed old leader did not step down; log:\n{}",
        nodes[first].log()
    );
    assert!(nodes[first]
        .log()
        .contains("Lost the replicator's election; stopped copying."));
    assert!(leads(&nodes[second]), "the new leader lost its place");
    publisher.await.unwrap();
    assert_copied(&sc, &tc, &nodes, second, TOTAL, ordered).await;
}

#[tokio::test]
async fn a_paused_ordered_leader_is_replaced_and_the_overlap_copies_exactly_once_in_order() {
    paused_leader_overlaps_then_steps_down("", true).await;
}

#[tokio::test]
async fn a_paused_queued_leader_is_replaced_and_the_overlap_copies_exactly_once() {
    paused_leader_overlaps_then_steps_down("mode = \"queued\"\nworkers = 2\n", false).await;
}

#[tokio::test]
async fn a_restarted_old_leader_stands_by_and_takes_over_again_later() {
    let source = NatsServer::start();
    let target = NatsServer::start();
    let sc = connect(&source.url()).await;
    let tc = connect(&target.url()).await;
    create_stream(&sc, "ORDERS", &["orders.>"]).await;
    let mut nodes = three_nodes(&source, &target, "");
    let first = sole_leader(&nodes, &[0, 1, 2]).await;

    let publisher = tokio::spawn(publish_paced(source.url(), 0..TOTAL / 2));
    assert!(
        eventually(Duration::from_secs(30), || async {
            count(&tc, "ORDERS").await >= 300
        })
        .await
    );
    nodes[first].kill();
    let others: Vec<usize> = (0..3).filter(|&i| i != first).collect();
    let second = sole_leader(&nodes, &others).await;
    nodes[first].spawn();
    assert!(
        eventually(Duration::from_secs(30), || async {
            nodes[first]
                .log()
                .matches("Standing by in the replicator's election.")
                .count()
                >= 2
        })
        .await
    );
    publisher.await.unwrap();
    assert_eq!(sole_leader(&nodes, &[0, 1, 2]).await, second);
    assert!(!leads(&nodes[first]));

    // The second leader goes too: the restarted node or the third takes over.
    let publisher = tokio::spawn(publish_paced(source.url(), TOTAL / 2..TOTAL));
    nodes[second].kill();
    let rest: Vec<usize> = (0..3).filter(|&i| i != second).collect();
    let third = sole_leader(&nodes, &rest).await;
    publisher.await.unwrap();
    assert_copied(&sc, &tc, &nodes, third, TOTAL, true).await;
}

#[tokio::test]
async fn a_new_leader_does_not_copy_again_a_sender_sampled_just_before_the_failover() {
    let source = NatsServer::start();
    let target = NatsServer::start();
    let sc = connect(&source.url()).await;
    let tc = connect(&target.url()).await;
    create_stream(&sc, "ORDERS", &["orders.>"]).await;
    let mut nodes = three_nodes(&source, &target, "inspect = \"sender\"\nage = \"1m\"\n");
    let first = sole_leader(&nodes, &[0, 1, 2]).await;
    let js = jetstream::new(sc.clone());
    let publish = |n: usize, sender: &'static str| {
        let js = js.clone();
        async move {
            js.publish(
                format!("orders.{sender}"),
                format!("{{\"n\":{n},\"sender\":\"{sender}\"}}").into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        }
    };
    publish(0, "a").await;
    assert!(
        eventually(Duration::from_secs(30), || async {
            count(&tc, "ORDERS").await == 1
        })
        .await
    );
    let others: Vec<usize> = (0..3).filter(|&i| i != first).collect();
    assert!(
        eventually(Duration::from_secs(20), || {
            let merged = others.iter().all(|&i| {
                metric(
                    &nodes[i],
                    "choir_replicator_gossip_total",
                    &[("reason", "merged")],
                ) >= Some(1.0)
            });
            async move { merged }
        })
        .await,
        "the standbys did not merge the leader's gossip"
    );
    nodes[first].kill();
    // Well within `age` of the first copy, on the stream's clock.
    publish(1, "a").await;
    publish(2, "b").await;
    let second = sole_leader(&nodes, &others).await;
    assert!(
        eventually(Duration::from_secs(30), || async {
            count(&tc, "ORDERS").await >= 2
                && metric(&nodes[second], "choir_replicator_lag_messages", &[]) == Some(0.0)
        })
        .await,
        "the new leader did not copy sender b; log:\n{}",
        nodes[second].log()
    );
    let copied = indices(&read_all(&tc, "ORDERS").await);
    assert_eq!(copied, vec![0, 2], "sender a copied again within its age");
}
