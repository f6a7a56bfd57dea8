//! A node keeps running while its NATS server is down, reports it on /healthz, and reconnects
//! by itself; the counters show what happened.

mod common;

use std::time::Duration;

use common::http::metric_value;
use common::nats::free_port;
use common::{poll_until, ChoirNode, NatsServer};

fn healthy(node: &ChoirNode) -> bool {
    node.get("/healthz").is_some_and(|(s, _)| s == 200)
}

fn unhealthy(node: &ChoirNode) -> bool {
    node.get("/healthz").is_some_and(|(s, _)| s == 503)
}

fn event(node: &ChoirNode, event: &str) -> f64 {
    let (_, metrics) = node.get("/metrics").unwrap_or_default();
    metric_value(
        &metrics,
        "choir_network_events_total",
        &[("network", "region"), ("event", event)],
    )
    .unwrap_or(0.0)
}

#[test]
fn killing_the_server_makes_the_node_unhealthy_and_it_reconnects_when_the_server_returns() {
    let mut server = NatsServer::start();
    let mut node = ChoirNode::start(&format!(
        "[networks.region]\nurls = [\"{}\"]\n",
        server.url()
    ));
    assert!(
        poll_until(Duration::from_secs(20), || healthy(&node)),
        "log:\n{}",
        node.log()
    );

    server.kill();
    assert!(
        poll_until(Duration::from_secs(20), || unhealthy(&node)),
        "log:\n{}",
        node.log()
    );
    let (_, body) = node.get("/healthz").unwrap();
    assert!(body.contains("\"region\":\"disconnected\""), "{body}");
    assert!(node.running(), "the node died with its server");

    server.restart();
    assert!(
        poll_until(Duration::from_secs(30), || healthy(&node)),
        "log:\n{}",
        node.log()
    );
    assert!(event(&node, "disconnected") >= 1.0);
    assert!(event(&node, "reconnected") >= 1.0);
}

#[test]
fn the_first_connect_is_retried_until_the_server_appears() {
    let port = free_port();
    let node = ChoirNode::start(&format!(
        "[networks.region]\nurls = [\"nats://127.0.0.1:{port}\"]\n"
    ));
    assert!(poll_until(Duration::from_secs(10), || {
        let (_, metrics) = node.get("/metrics").unwrap_or_default();
        metric_value(
            &metrics,
            "choir_network_connect_failures_total",
            &[("network", "region")],
        )
        .unwrap_or(0.0)
            >= 2.0
    }));
    assert!(unhealthy(&node));

    let _server = NatsServer::start_with(port, &[]);
    assert!(
        poll_until(Duration::from_secs(20), || healthy(&node)),
        "log:\n{}",
        node.log()
    );
}
