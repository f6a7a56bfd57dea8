//! Playbook `rpc` tasks and discovery node sets through the choir client, against emulated
//! daemons on a real nats-server, run with `choir playbook run --server`: discovery with a fact
//! and agent filter, `rpcutil#ping` and `emulated0#generate` in batches with asserts and
//! `previous_task.data`; a node set whose `at_least` exceeds the fleet; an unknown action
//! (statuscode 2) failing the task unless `fail_ok`; a node that never answers; a YAML
//! `mcollective` task (`action: agent.action`, `batch_sleep_time`, `post`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "client/cli.rs"]
mod cli;
mod common;
#[path = "federation/support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::NatsServer;
use serde_json::Value;

const HEADER: &str = r#"
[metadata]
name = "rpc_test"
version = "0.1.0"
author = "tests@example.net"
description = "rpc tasks against emulated daemons"
"#;

/// Writes `body` (after the metadata) as a playbook file in `dir`.
fn playbook(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, format!("{HEADER}\n{body}")).unwrap();
    path
}

/// Runs `choir playbook run FILE --server URL --report R` off the actix thread (the emulated
/// daemons run on this test's System): (exit code, output, report).
async fn run(file: &Path, server: &NatsServer) -> (i32, String, Value) {
    let report = file.with_extension("report.json");
    let args: Vec<String> = vec![
        "playbook".into(),
        "run".into(),
        file.display().to_string(),
        "--server".into(),
        server.url(),
        "--report".into(),
        report.display().to_string(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli::choir(&args, Duration::from_secs(120))
    })
    .await
    .unwrap();
    let output = format!("{}{}", out.stdout, out.stderr);
    let report = std::fs::read_to_string(&report)
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), output, report)
}

/// The tries of the main task `index`.
fn tries(report: &Value, index: usize) -> Vec<&Value> {
    report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["set"] == "tasks" && t["index"] == index)
        .collect()
}

#[actix_rt::test]
async fn discovered_fleet_gets_pinged_and_generates_in_batches() {
    let server = NatsServer::start();
    let _fleet = support::start_fleet("emu", 25, &server).await;
    let dir = tempfile::tempdir().unwrap();
    let file = playbook(
        dir.path(),
        "fleet",
        r#"
[client]
collective = "mcollective"
timeout = "3s"

[inputs.size]
description = "Bytes each node generates"
type = "integer"
default = 10

[nodes.fleet]
type = "discovery"
agents = ["emulated0"]
facts = ["instance<20"]
at_least = 20

[[tasks]]
type = "rpc"
description = "Ping {{ nodes.fleet }}"
agent = "rpcutil"
action = "ping"
nodes = "{{ nodes.fleet }}"
batch_size = 5
assert = "pong > 0"

[[tasks]]
type = "rpc"
description = "Generate {{ inputs.size }} bytes"
agent = "emulated0"
action = "generate"
properties = { size = "{{ inputs.size }}" }
nodes = "{{ nodes.fleet }}"
batch_size = 5
timeout = "20s"
assert = "message"

[[tasks]]
type = "shell"
description = "Show the replies"
command = ["/bin/echo", "{{ previous_task.data }}"]
"#,
    );
    let (code, output, report) = run(&file, &server).await;
    assert_eq!(code, 0, "{output}");
    assert_eq!(report["success"], true, "{report:#}");
    let expected: Vec<String> = (0..20).map(|i| format!("emu-{i}")).collect();
    let mut nodes: Vec<String> = report["nodes"]["fleet"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    nodes.sort();
    let mut sorted = expected.clone();
    sorted.sort();
    assert_eq!(nodes, sorted);

    for (index, agent) in [(0, "rpcutil#ping"), (1, "emulated0#generate")] {
        let tries = tries(&report, index);
        assert_eq!(tries.len(), 1, "{report:#}");
        let task = tries[0];
        assert_eq!(task["success"], true, "{task:#}");
        let message = task["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!(
                "{agent} on 20 nodes in 4 batches: 20 ok, 0 failed, 0 no response"
            )),
            "{message}"
        );
        let replies = task["data"].as_array().unwrap();
        assert_eq!(replies.len(), 20);
        for reply in replies {
            assert_eq!(reply["statuscode"], 0, "{reply}");
        }
    }
    let generated = tries(&report, 1)[0]["data"].as_array().unwrap();
    for reply in generated {
        assert_eq!(reply["data"]["message"].as_str().unwrap().len(), 10);
    }

    // previous_task.data reached the shell task: one JSON object per reply.
    let shown = tries(&report, 2)[0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(shown.matches("\"sender\"").count(), 20, "{shown}");
    for node in &expected {
        assert!(shown.contains(&format!("\"{node}\"")), "{node}: {shown}");
    }

    // The example playbook does the same; --server overrides its [client] servers.
    let example =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/playbooks/emulated_fleet.toml");
    let copy = dir.path().join("emulated_fleet.toml");
    std::fs::copy(&example, &copy).unwrap();
    let (code, output, report) = run(&copy, &server).await;
    assert_eq!(code, 0, "{output}");
    assert_eq!(report["nodes"]["fleet"].as_array().unwrap().len(), 20);
    assert_eq!(tries(&report, 1)[0]["data"].as_array().unwrap().len(), 20);
}

#[actix_rt::test]
async fn too_few_nodes_unknown_actions_and_silent_nodes_fail() {
    let server = NatsServer::start();
    let _fleet = support::start_fleet("emu", 6, &server).await;
    let dir = tempfile::tempdir().unwrap();

    // at_least larger than the fleet: the run fails in prepare, before any task.
    let file = playbook(
        dir.path(),
        "too_few",
        r#"
[nodes.fleet]
type = "discovery"
identities = ["/^emu-/"]
timeout = "1s"
at_least = 30

[[tasks]]
type = "rpc"
agent = "rpcutil"
action = "ping"
nodes = "{{ nodes.fleet }}"
"#,
    );
    let (code, output, report) = run(&file, &server).await;
    assert_eq!(code, 1, "{output}");
    assert_eq!(report["success"], false);
    let error = report["error"].as_str().unwrap();
    assert!(
        error.contains("node set fleet has 6 nodes (discovered in 1s), at least 30 needed"),
        "{error}"
    );
    assert!(report["tasks"].as_array().unwrap().is_empty(), "{report:#}");

    // An unknown action: statuscode 2 from every node fails the task and the run…
    let unknown = |fail_ok: bool| {
        format!(
            r#"
[nodes.some]
type = "list"
nodes = ["emu-1", "emu-2", "emu-3"]

[[tasks]]
type = "rpc"
agent = "emulated0"
action = "nope"
nodes = "{{{{ nodes.some }}}}"
fail_ok = {fail_ok}

[[tasks]]
type = "shell"
command = ["/bin/echo", "after: {{{{ previous_task.success }}}}"]
"#
        )
    };
    let file = playbook(dir.path(), "unknown", &unknown(false));
    let (code, output, report) = run(&file, &server).await;
    assert_eq!(code, 1, "{output}");
    let task = tries(&report, 0)[0];
    assert_eq!(task["success"], false);
    let message = task["message"].as_str().unwrap();
    assert!(
        message.contains("3 nodes in 1 batch: 0 ok, 3 failed, 0 no response"),
        "{message}"
    );
    assert!(message.contains("emu-1: statuscode 2"), "{message}");
    assert_eq!(task["data"].as_array().unwrap().len(), 3);
    assert!(
        tries(&report, 1).is_empty(),
        "the list stops at the failure"
    );
    assert!(report["error"].as_str().unwrap().contains("statuscode 2"));

    // …unless fail_ok.
    let file = playbook(dir.path(), "unknown_ok", &unknown(true));
    let (code, output, report) = run(&file, &server).await;
    assert_eq!(code, 0, "{output}");
    assert_eq!(report["success"], true);
    assert_eq!(tries(&report, 0)[0]["success"], false);
    assert_eq!(tries(&report, 1)[0]["message"], "after: true");

    // A node that never answers fails the task at its timeout, naming it; later batches are
    // not called; an assert that does not hold fails too.
    let file = playbook(
        dir.path(),
        "silent",
        r#"
[[tasks]]
type = "rpc"
agent = "rpcutil"
action = "ping"
nodes = ["emu-0", "ghost", "emu-4", "emu-5"]
batch_size = 2
timeout = "1s"

[[hooks.on_fail]]
type = "rpc"
agent = "emulated0"
action = "generate"
properties = { size = 3 }
nodes = ["emu-0"]
assert = "message =~ /^[0-9]+$/ and size > 2"
"#,
    );
    let (code, output, report) = run(&file, &server).await;
    assert_eq!(code, 1, "{output}");
    let task = tries(&report, 0)[0];
    let message = task["message"].as_str().unwrap();
    assert!(
        message.contains("on 4 nodes in 1 batch: 1 ok, 0 failed, 1 no response, 2 not called"),
        "{message}"
    );
    assert!(message.contains("no response from: ghost"), "{message}");
    let on_fail: Vec<&Value> = report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["set"] == "on_fail")
        .collect();
    assert_eq!(on_fail.len(), 1);
    let message = on_fail[0]["message"].as_str().unwrap();
    assert!(message.contains("emu-0: assert failed:"), "{message}");
}

#[actix_rt::test]
async fn a_yaml_mcollective_task_calls_agent_dot_action_in_batches() {
    let server = NatsServer::start();
    let _fleet = support::start_fleet("emu", 4, &server).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mco.yaml");
    std::fs::write(
        &file,
        r#"name: mco
version: 1.0.0
author: tests@example.net
description: Choria's mcollective task
nodes:
  some:
    type: list
    nodes: [emu-0, emu-1, emu-2, emu-3]
tasks:
  - mcollective:
      description: ping {{{ nodes.some }}}
      action: rpcutil.ping
      nodes: "{{{ nodes.some }}}"
      batch_size: 2
      batch_sleep_time: 1
      silent: true
      post:
        - summarize
      timeout: 10
"#,
    )
    .unwrap();
    let (code, output, report) = run(&file, &server).await;
    assert_eq!(code, 0, "{output}");
    let task = tries(&report, 0)[0];
    assert_eq!(task["type"], "rpc");
    let message = task["message"].as_str().unwrap();
    assert!(
        message.contains("rpcutil#ping on 4 nodes in 2 batches: 4 ok, 0 failed, 0 no response"),
        "{message}"
    );
    assert_eq!(task["data"].as_array().unwrap().len(), 4);
}
