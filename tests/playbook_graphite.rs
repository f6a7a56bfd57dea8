//! The graphite_event task against a loopback HTTP server that records what it received: the
//! event is POSTed as Graphite's events API takes it, and a refused event fails the task.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::http::recording_server;
use common::node::choir_bin;
use serde_json::Value;

fn playbook(url: &str, tags: &str) -> String {
    format!(
        r#"name: graphite
version: 1.0.0
author: test
description: Marks a deploy in Graphite
inputs:
  release:
    description: release
    type: String
    default: v2
tasks:
  - graphite_event:
      description: mark the deploy
      graphite: {url}
      what: "deployed {{{{{{ inputs.release }}}}}}"
      data: "{{{{ metadata.name }}}} released {{{{ inputs.release }}}}"
      headers:
        X-Test: "yes"
{tags}"#
    )
}

fn run(file: &std::path::Path, report: &std::path::Path) -> std::process::Output {
    Command::new(choir_bin())
        .args(["playbook", "run"])
        .arg(file)
        .arg("--report")
        .arg(report)
        .output()
        .unwrap()
}

#[test]
fn a_graphite_event_posts_what_tags_when_and_data_to_the_events_api() {
    let (url, requests) = recording_server("/events/", vec![(200, "{}")]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("graphite.yaml");
    std::fs::write(
        &file,
        playbook(&url, "      tags: [choria, \"{{ inputs.release }}\"]\n"),
    )
    .unwrap();
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let out = run(&file, &dir.path().join("r.json"));
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (head, body) = requests.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(head.starts_with("POST /events/"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("x-choria-request-id:"), "{head}");
    assert!(lower.contains("x-test: yes"), "{head}");
    assert!(lower.contains("content-type: application/json"), "{head}");
    let event: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["what"], "deployed v2");
    assert_eq!(event["tags"], "choria,v2");
    assert_eq!(event["data"], "graphite released v2");
    let when = event["when"].as_u64().unwrap();
    assert!(when >= before, "when {when} is the time of the try");
}

#[test]
fn a_graphite_event_tags_choria_by_default_and_a_refused_event_fails_the_task() {
    let (url, requests) = recording_server("/events/", vec![(500, "{}")]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("graphite.yaml");
    std::fs::write(&file, playbook(&url, "")).unwrap();
    let report = dir.path().join("r.json");
    let out = run(&file, &report);
    assert!(!out.status.success());
    let (_, body) = requests.recv_timeout(Duration::from_secs(10)).unwrap();
    let event: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["tags"], "choria");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(report["tasks"][0]["type"], "graphite_event");
    assert_eq!(report["tasks"][0]["success"], false);
    assert!(
        report["tasks"][0]["message"]
            .as_str()
            .unwrap()
            .contains("HTTP 500"),
        "{report}"
    );
}

#[test]
fn check_names_a_graphite_event_without_what_data_or_an_http_url() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("graphite.yaml");
    std::fs::write(
        &file,
        "name: g\nversion: 1.0.0\nauthor: t\ndescription: d\ntasks:\n  - graphite_event:\n      graphite: ftp://graphite/events/\n      tags: [a]\n",
    )
    .unwrap();
    let out = Command::new(choir_bin())
        .args(["playbook", "check"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for key in ["tasks[0].what", "tasks[0].data", "tasks[0].graphite"] {
        assert!(text.contains(key), "{key} not in {text}");
    }
    assert!(text.contains("line 7"), "{text}");
}
