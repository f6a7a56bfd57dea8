//! The webhook task against a real (tiny) HTTP server: JSON body, request id header, expected
//! status; an unexpected status fails the task and, with tries, is retried.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use common::http::recording_server;
use common::node::choir_bin;
use serde_json::Value;

/// Answers each request with the next status; sends (head, body) of each request.
fn server(statuses: Vec<u16>) -> (String, mpsc::Receiver<(String, String)>) {
    recording_server(
        "/hook",
        statuses.into_iter().map(|s| (s, "{\"ok\":true}")).collect(),
    )
}

fn playbook(url: &str) -> String {
    format!(
        r#"[metadata]
name = "hook"
version = "1"
author = "test"
description = "calls a webhook"

[inputs.ticket]
description = "ticket"
type = "string"
default = "CHG-1"

[[tasks]]
type = "webhook"
url = "{url}"
body = {{ ticket = "{{{{ inputs.ticket }}}}", playbook = "{{{{ metadata.name }}}}", try = "{{{{ uuid }}}}" }}
headers = {{ X-Test = "yes" }}
expect_status = [202]
tries = 2
try_sleep = "10ms"
"#
    )
}

#[test]
fn a_webhook_posts_json_and_retries_an_unexpected_status() {
    let (url, requests) = server(vec![500, 202]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hook.toml");
    std::fs::write(&file, playbook(&url)).unwrap();
    let report = dir.path().join("r.json");
    let out = Command::new(choir_bin())
        .args(["playbook", "run"])
        .arg(&file)
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let (head, body) = requests.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(head.starts_with("POST /hook"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains("x-choria-request-id:") && lower.contains("x-test: yes"),
        "{head}"
    );
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["ticket"], "CHG-1");
    assert_eq!(body["playbook"], "hook");
    let (_, second) = requests.recv_timeout(Duration::from_secs(10)).unwrap();
    let second: Value = serde_json::from_str(&second).unwrap();
    assert_ne!(
        body["try"], second["try"],
        "templates are rendered again on every try"
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let tries = report["tasks"].as_array().unwrap();
    assert_eq!(tries.len(), 2);
    assert_eq!(tries[0]["success"], false);
    assert!(
        tries[0]["message"]
            .as_str()
            .unwrap()
            .ends_with("HTTP 500, expected one of [202]"),
        "{tries:?}"
    );
    assert_eq!(tries[1]["success"], true);
    assert_eq!(tries[1]["data"]["ok"], true);
}

#[test]
fn a_choria_yaml_webhook_sends_uri_data_headers_and_a_request_id() {
    let (url, requests) = server(vec![201]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hook.yaml");
    std::fs::write(
        &file,
        format!(
            r#"name: hook
version: 1.0.0
author: test
description: Choria's webhook keys
inputs:
  ticket:
    description: ticket
    type: String
    default: CHG-2
tasks:
  - webhook:
      description: notify
      uri: {url}
      method: POST
      headers:
        X-Test: "yes"
      data:
        ticket: "{{{{{{ inputs.ticket }}}}}}"
      verify_ssl: false
      timeout: 10
"#
        ),
    )
    .unwrap();
    let out = Command::new(choir_bin())
        .args(["playbook", "run"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (head, body) = requests.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(head.starts_with("POST /hook"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("x-choria-request-id:"), "{head}");
    assert!(lower.contains("x-test: yes"), "{head}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["ticket"], "CHG-2");
}

#[test]
fn a_get_webhook_sends_data_as_the_query_string() {
    let (url, requests) = server(vec![200]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hook.yaml");
    std::fs::write(
        &file,
        format!(
            "name: hook\nversion: 1.0.0\nauthor: test\ndescription: a GET webhook\ntasks:\n  - webhook:\n      uri: {url}\n      method: GET\n      data:\n        ticket: CHG-3\n        count: 2\n"
        ),
    )
    .unwrap();
    let out = Command::new(choir_bin())
        .args(["playbook", "run"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (head, body) = requests.recv_timeout(Duration::from_secs(10)).unwrap();
    let request_line = head.lines().next().unwrap();
    assert!(request_line.starts_with("GET /hook?"), "{head}");
    assert!(
        request_line.contains("ticket=CHG-3") && request_line.contains("count=2"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase().contains("x-choria-request-id:"),
        "{head}"
    );
    assert!(body.is_empty(), "{body}");
}
