//! Every metric a dashboard in config/grafana/ queries exists in choir's `/metrics`: a node
//! runs each component the dashboards cover (a replicator, a protocol adapter, a federation
//! broker, an emulated fleet), the events behind metrics that appear only after an event are
//! made to happen, and the scrape is compared with the dashboards' queries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::jetstream::connect;
use common::{eventually, ChoirNode, NatsServer};

fn dashboards() -> Vec<(String, serde_json::Value)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config/grafana");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            out.push((name, serde_json::from_str(&text).unwrap()));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The metric names in a PromQL expression (quoted label values left out).
fn metric_names(expr: &str) -> Vec<String> {
    let unquoted = regex::Regex::new(r#""[^"]*""#)
        .unwrap()
        .replace_all(expr, "\"\"");
    regex::Regex::new(r"\b(?:choir|choria)_[a-zA-Z0-9_]+")
        .unwrap()
        .find_iter(&unquoted)
        .map(|m| m.as_str().to_owned())
        .collect()
}

/// Every metric name each dashboard queries (panels and template variables).
fn queried() -> BTreeSet<(String, String)> {
    let mut names = BTreeSet::new();
    for (file, d) in dashboards() {
        let panels = d["panels"].as_array().unwrap();
        assert!(!panels.is_empty(), "{file} has no panels");
        assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()), "{file}");
        for panel in panels {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().unwrap();
                let found = metric_names(expr);
                assert!(!found.is_empty(), "{file}: {expr} queries no metric");
                names.extend(found.into_iter().map(|n| (file.clone(), n)));
            }
        }
        for var in d["templating"]["list"].as_array().unwrap() {
            if let Some(query) = var["definition"].as_str() {
                names.extend(metric_names(query).into_iter().map(|n| (file.clone(), n)));
            }
        }
    }
    names
}

fn scraped(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn metric_names_are_found_in_expressions_but_not_in_label_values() {
    assert_eq!(
        metric_names(r#"sum by (r) (rate(choir_a_total{x="choir_not_a_metric"}[5m])) / choria_b"#),
        ["choir_a_total", "choria_b"]
    );
}

#[tokio::test]
async fn every_metric_a_dashboard_queries_is_served_by_a_node_running_each_component() {
    let region = NatsServer::start();
    let central = NatsServer::start();
    let federation = NatsServer::start();
    let node = ChoirNode::start(&format!(
        r#"
[networks.region]
urls = ["{}"]

[networks.central]
urls = ["{}"]

[networks.federation]
urls = ["{}"]

[adapters.registration]
network = "region"
subject = "mcollective.broadcast.agent.registration"
workers = 2
stream = "REGISTRATION"
stream_subject = "registration.%s"
protocol = "choria"

[emulator]
network = "region"
name = "dash"
instances = 5
registration_interval = "1s"
registration_subject = "mcollective.broadcast.agent.registration"

[replicators.registration]
source = "region"
target = "central"
stream = "REGISTRATION"
inspect = "sender"
age = "1m"
[replicators.registration.advisories]
subject = "choir.advisories.%s.%v"

[federation.region]
federation = "federation"
collective = "region"
identity = "dash-broker"
"#,
        region.url(),
        central.url(),
        federation.url()
    ));
    // An adapter drop (its counter has a reason label, so it appears with the first drop).
    let src = connect(&region.url()).await;
    let queried = queried();
    let missing = |text: &str| -> Vec<(String, String)> {
        let names = scraped(text);
        queried
            .iter()
            .filter(|(_, n)| !names.contains(n))
            .cloned()
            .collect()
    };
    let served = eventually(Duration::from_secs(60), || async {
        src.publish(
            "mcollective.broadcast.agent.registration",
            "not a choria message".into(),
        )
        .await
        .unwrap();
        let text = node.get("/metrics").map(|(_, t)| t).unwrap_or_default();
        missing(&text).is_empty()
    })
    .await;
    let missing = missing(&node.get("/metrics").map(|(_, t)| t).unwrap_or_default());
    assert!(
        served,
        "queried by a dashboard but not in /metrics: {missing:?}\nlog:\n{}",
        node.log()
    );
}
