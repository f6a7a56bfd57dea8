//! A node with demo.toml's topology (registration adapter → stream → sampled replicator into
//! the centre, an emulated fleet, a federation broker) starts without a WARN: the replicator
//! waiting for the adapter's stream is the expected start-up order. `/debug/vars` lists each
//! running part with its kind, state and counters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{poll_until, ChoirNode};

const DEMO_LIKE: &str = r#"
[networks.region]
embedded = true

[networks.central]
embedded = true

[networks.federation]
embedded = true

[adapters.registration]
network = "region"
subject = "mcollective.broadcast.agent.registration"
queue_group = "choir_adapter_registration"
workers = 2
stream = "REGISTRATION"
stream_subject = "registration.%s"
protocol = "choria"

[emulator]
network = "region"
name = "demo"
instances = 20
registration_interval = "1s"
registration_subject = "mcollective.broadcast.agent.registration"

[replicators.registration]
source = "region"
target = "central"
stream = "REGISTRATION"
mode = "ordered"
inspect = "sender"
age = "1m"

[federation.region]
federation = "federation"
collective = "region"
identity = "demo-broker"
workers = 2
"#;

fn components(node: &ChoirNode) -> Vec<serde_json::Value> {
    node.get("/debug/vars")
        .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
        .and_then(|vars| vars["components"].as_array().cloned())
        .unwrap_or_default()
}

fn find<'a>(
    parts: &'a [serde_json::Value],
    kind: &str,
    name: &str,
) -> Option<&'a serde_json::Value> {
    parts
        .iter()
        .find(|c| c["kind"] == kind && c["name"] == name)
}

#[test]
fn a_demo_like_node_starts_without_warnings_and_lists_its_parts() {
    let node = ChoirNode::start(DEMO_LIKE);
    let expected = [
        ("replicator", "registration"),
        ("adapter", "registration"),
        ("federation broker", "region"),
        ("emulator", "demo"),
    ];
    let all_running = poll_until(Duration::from_secs(60), || {
        let parts = components(&node);
        let copied = find(&parts, "replicator", "registration")
            .and_then(|r| r["counters"]["copied"].as_u64())
            .unwrap_or(0);
        expected
            .iter()
            .all(|(kind, name)| find(&parts, kind, name).is_some_and(|c| c["state"] == "running"))
            && copied > 0
    });
    let parts = components(&node);
    assert!(all_running, "{parts:#?}\nlog:\n{}", node.log());
    let adapter = find(&parts, "adapter", "registration").unwrap();
    assert!(
        adapter["counters"]["published"].as_u64().unwrap() > 0,
        "{adapter}"
    );
    assert_eq!(adapter["counters"]["workers"], 2);
    let emulator = find(&parts, "emulator", "demo").unwrap();
    assert_eq!(emulator["counters"]["connected"], 20);
    assert!(find(&parts, "federation broker", "region").unwrap()["counters"].is_object());

    let log = node.log();
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains(" WARN ")).collect();
    assert!(
        warnings.is_empty(),
        "warnings at start:\n{}",
        warnings.join("\n")
    );
    assert!(
        log.contains("Waiting for the replicator's streams") || !log.contains("stream not found"),
        "{log}"
    );
}
