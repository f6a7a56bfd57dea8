//! A node with demo.toml's topology (registration adapter → stream → sampled replicator into
//! the centre, an emulated fleet, a federation broker) starts without a WARN: the replicator
//! waiting for the adapter's stream is the expected start-up order. `/debug/vars` lists each
//! running part with its kind, state and counters. On SIGINT every part gets `Shutdown` and
//! stops for good: nothing restarts and nothing warns while the node shuts down.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{poll_until, ChoirNode};
use nix::sys::signal::Signal;

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
fn a_demo_like_node_starts_without_warnings_lists_its_parts_and_stops_every_part_for_good() {
    let mut node = ChoirNode::start(DEMO_LIKE);
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

    node.signal_group(Signal::SIGINT);
    let status = node
        .wait(Duration::from_secs(20))
        .expect("choir did not exit after SIGINT");
    let log = node.log();
    assert!(status.success(), "exit status {status:?}; log:\n{log}");
    let shutdown = &log[log.find("Shutting down").unwrap_or(0)..];
    for stopped in [
        "Watchdog stopped",
        "Emulated daemons stopped",
        "Adapter worker stopped",
        "Replica worker stopped",
        "Replicator stopped",
        "Federation broker stopped",
        "Node stopped",
    ] {
        assert!(shutdown.contains(stopped), "no {stopped:?}:\n{shutdown}");
    }
    assert_eq!(
        shutdown.matches("Adapter worker stopped").count(),
        2,
        "{shutdown}"
    );
    assert!(
        !shutdown.contains("restarting") && !shutdown.contains("Restarting"),
        "a part restarted during shutdown:\n{shutdown}"
    );
    assert!(
        !shutdown.contains(" WARN ") && !shutdown.contains(" ERROR "),
        "warnings during shutdown:\n{shutdown}"
    );
}
