//! `--report out.yaml` writes the run report as YAML in the structure of Choria's Ruby report
//! (`report`, `playbook`, `inputs`, `nodes`, `tasks`, `metrics`, `logs`); `--report out.json`
//! stays choir's JSON report.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::node::choir_bin;
use serde_json::Value;

const PLAYBOOK: &str = r#"name: reported
version: 1.2.0
author: test
description: a run to report
inputs:
  cluster:
    description: cluster
    type: String
    default: alpha
nodes:
  web:
    type: list
    nodes: [web1, web2]
tasks:
  - shell:
      description: "deploy {{ inputs.cluster }}"
      command: echo deployed
  - shell:
      description: fails
      command: "false"
      tries: 2
      try_sleep: 0
hooks:
  on_fail:
    - shell:
        command: echo cleanup
"#;

fn run(report: &str) -> (std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("reported.yaml");
    std::fs::write(&file, PLAYBOOK).unwrap();
    let path = dir.path().join(report);
    let out = Command::new(choir_bin())
        .args(["playbook", "run"])
        .arg(&file)
        .arg("--report")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "the second task fails");
    (path, dir)
}

#[test]
fn a_yaml_report_has_the_structure_of_choria_s_report() {
    let (path, _dir) = run("out.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let report: Value = serde_saphyr::from_str(&text).unwrap();
    let head = &report["report"];
    assert_eq!(head["version"], 1);
    assert_eq!(head["success"], false);
    assert!(
        head["playbook_error"].as_str().unwrap().contains("fails"),
        "{head}"
    );
    assert!(head["timestamp"].as_str().unwrap().ends_with('Z'), "{head}");
    assert_eq!(report["playbook"]["name"], "reported");
    assert_eq!(report["playbook"]["version"], "1.2.0");
    assert_eq!(report["inputs"]["static"]["cluster"], "alpha");
    assert_eq!(report["inputs"]["dynamic"], serde_json::json!([]));
    assert_eq!(report["nodes"]["web"], serde_json::json!(["web1", "web2"]));

    let tasks = report["tasks"].as_array().unwrap();
    // deploy, two tries of the failing task, then on_fail.
    assert_eq!(tasks.len(), 4, "{tasks:#?}");
    for task in tasks {
        for key in [
            "type",
            "set",
            "description",
            "start_time",
            "end_time",
            "run_time",
            "ran",
            "msg",
            "success",
        ] {
            assert!(!task[key].is_null(), "{key} missing in {task}");
        }
    }
    assert_eq!(tasks[0]["type"], "shell");
    assert_eq!(tasks[0]["set"], "tasks");
    assert_eq!(tasks[0]["description"], "deploy alpha");
    assert_eq!(tasks[0]["msg"].as_str().unwrap().trim(), "deployed");
    assert_eq!(tasks[0]["success"], true);
    assert_eq!(tasks[2]["success"], false);
    assert_eq!(tasks[3]["set"], "on_fail");

    let metrics = &report["metrics"];
    assert_eq!(metrics["task_count"], 4);
    let shell = &metrics["task_types"]["shell"];
    assert_eq!(
        (
            shell["count"].clone(),
            shell["pass"].clone(),
            shell["fail"].clone()
        ),
        (4.into(), 2.into(), 2.into())
    );
    assert!(metrics["run_time"].as_f64().unwrap() >= 0.0);

    let logs = report["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 5, "one per try and the outcome: {logs:#?}");
    assert_eq!(logs[2]["level"], "error");
    assert_eq!(logs[2]["from"], "tasks[1]");
    assert!(logs[4]["msg"]
        .as_str()
        .unwrap()
        .starts_with("playbook reported failed"));
}

#[test]
fn a_json_report_stays_choir_s_json() {
    let (path, _dir) = run("out.json");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(report["success"], false);
    assert_eq!(
        report["tasks"][0]["message"].as_str().unwrap().trim(),
        "deployed"
    );
    assert!(report.get("report").is_none() && report.get("logs").is_none());
}
