//! Shared pieces of the replication tests.

use std::time::Duration;

use super::http::metric_value;
use super::jetstream::{count, read_all, Stored};
use super::nats::NatsServer;
use super::node::ChoirNode;
use super::poll::eventually;

/// A node config with networks `region` (source) and `central` (target) and replicator
/// `orders` copying stream `ORDERS`, plus `extra` keys for the replicator.
pub fn replicator_config(source: &NatsServer, target: &NatsServer, extra: &str) -> String {
    format!(
        "[networks.region]\nurls = [\"{}\"]\n\n[networks.central]\nurls = [\"{}\"]\n\n\
         [replicators.orders]\nsource = \"region\"\ntarget = \"central\"\nstream = \"ORDERS\"\n{extra}\n",
        source.url(),
        target.url()
    )
}

/// A metric of replicator `orders` on `node`, 0 when absent.
pub fn replicator_metric(node: &ChoirNode, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let (_, text) = node.get("/metrics").unwrap_or_default();
    let mut all = vec![("replicator", "orders")];
    all.extend_from_slice(labels);
    metric_value(&text, metric, &all).unwrap_or(0.0)
}

/// Waits until the target holds `n` messages and the replicator's source lag is 0, then
/// returns the target's messages.
pub async fn settled(
    client: &async_nats::Client,
    node: &ChoirNode,
    n: u64,
    timeout: Duration,
) -> Vec<Stored> {
    let done = eventually(timeout, || async {
        count(client, "ORDERS").await >= n
            && node.get("/metrics").is_some()
            && replicator_metric(node, "choir_replicator_lag_messages", &[]) == 0.0
    })
    .await;
    assert!(
        done,
        "target has {} of {n}, lag {}; log:\n{}",
        count(client, "ORDERS").await,
        replicator_metric(node, "choir_replicator_lag_messages", &[]),
        node.log()
    );
    read_all(client, "ORDERS").await
}

/// The `"n"` field of each payload (`{"n":<i>}`).
pub fn indices(messages: &[Stored]) -> Vec<usize> {
    messages
        .iter()
        .map(|m| {
            let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
            v["n"].as_u64().unwrap() as usize
        })
        .collect()
}

/// Asserts the target holds 0..n exactly once each, in order when `ordered`.
pub fn assert_exactly_once(messages: &[Stored], n: usize, ordered: bool) {
    let mut got = indices(messages);
    assert_eq!(got.len(), n, "message count; {}", duplicates(messages));
    if !ordered {
        got.sort_unstable();
    }
    for (i, g) in got.iter().enumerate() {
        assert_eq!(*g, i, "position {i} (ordered: {ordered})");
    }
}

/// Whether the server behind `client` offers fast-ingest batches (JetStream API level 4 and
/// up: nats-server 2.14+), asked as choir asks it.
pub async fn offers_fast_batches(client: &async_nats::Client) -> bool {
    let js = async_nats::jetstream::new(client.clone());
    let info: serde_json::Value = js.request("INFO", &serde_json::json!({})).await.unwrap();
    info["api"]["level"].as_u64().unwrap_or(0) >= 4
}

/// Asserts which path replicator `orders` publishes by: a queued pool of `workers` on a
/// target with fast-ingest batches (and a stream choir created, so `allow_batched`) uses them
/// in every worker, anything else publishes message by message.
pub async fn assert_publish_path(
    target: &async_nats::Client,
    node: &ChoirNode,
    mode: &str,
    workers: usize,
) {
    let fast = mode == "queued" && offers_fast_batches(target).await;
    assert_path(node, fast, workers).await;
}

/// Asserts that `workers` workers of replicator `orders` publish in fast-ingest batches
/// (`fast`) or that none does, as `/metrics` and `/debug/vars` show it.
pub async fn assert_path(node: &ChoirNode, fast: bool, workers: usize) {
    let expected = if fast { workers as f64 } else { 0.0 };
    let path = if fast { "fast_batch" } else { "per_message" };
    let seen = eventually(Duration::from_secs(30), || async {
        let (_, vars) = node.get("/debug/vars").unwrap_or_default();
        replicator_metric(node, "choir_replicator_fast_batch_workers", &[]) == expected
            && vars.contains(&format!("\"publish_path\":\"{path}\""))
    })
    .await;
    assert!(
        seen,
        "expected {expected} workers on the {path} path, metric says {}; log:\n{}",
        replicator_metric(node, "choir_replicator_fast_batch_workers", &[]),
        node.log()
    );
}

/// The first indices stored more than once, each with its target sequences and
/// `Nats-Msg-Id`s, for a failure message.
fn duplicates(messages: &[Stored]) -> String {
    let mut by_index: std::collections::BTreeMap<usize, Vec<(u64, Option<String>)>> =
        std::collections::BTreeMap::new();
    for (m, i) in messages.iter().zip(indices(messages)) {
        by_index
            .entry(i)
            .or_default()
            .push((m.seq, m.header("Nats-Msg-Id")));
    }
    let dups: Vec<_> = by_index.iter().filter(|(_, v)| v.len() > 1).collect();
    let first: Vec<String> = dups
        .iter()
        .take(5)
        .map(|(i, v)| format!("{i} at {v:?}"))
        .collect();
    format!(
        "{} indices stored more than once, first: {first:?}",
        dups.len()
    )
}
