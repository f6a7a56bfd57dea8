//! YAML playbooks in Choria's layout: the seed's "Data Sources" playbook
//! (config/playbooks/data_sources.yaml, copied from the blog post) runs over NATS KV, and
//! `choir playbook check` lists every problem of a YAML file with its line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::consul::ConsulApi;
use common::node::choir_bin;
use common::NatsServer;
use serde_json::Value;

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Copies a config/playbooks file into `dir` with `replacements` applied.
fn adapted(dir: &Path, rel: &str, replacements: &[(&str, &str)]) -> PathBuf {
    let mut text = std::fs::read_to_string(repo_file(rel)).unwrap();
    for (from, to) in replacements {
        assert!(text.contains(from), "{rel} has no {from:?}");
        text = text.replace(from, to);
    }
    let path = dir.join(Path::new(rel).file_name().unwrap());
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `choir playbook ARGS`: (exit code, stdout + stderr).
fn choir(args: &[&std::ffi::OsStr]) -> (i32, String) {
    let out = Command::new(choir_bin())
        .arg("playbook")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn run(file: &Path) -> (i32, String, Value) {
    let report = file.with_extension("report.json");
    let (code, output) = choir(&[
        "run".as_ref(),
        file.as_os_str(),
        "--report".as_ref(),
        report.as_os_str(),
    ]);
    let report = std::fs::read_to_string(&report)
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or(Value::Null);
    (code, output, report)
}

#[test]
fn the_seed_data_sources_yaml_playbook_deploys_alpha_then_bravo_over_nats_kv() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let servers = format!("type: nats_kv\n    servers: [\"{}\"]", server.url());
    let file = adapted(
        dir.path(),
        "config/playbooks/data_sources.yaml",
        &[
            ("type: consul", &servers),
            // The post's /path/to/script: a command that says what it was asked to deploy.
            ("/path/to/script", "/bin/echo deploying"),
            // A short lock timeout: the second round only starts if the first released its lock.
            ("timeout: 360", "timeout: 3"),
        ],
    );
    for round in 0..2 {
        let (code, output, report) = run(&file);
        assert_eq!(code, 0, "round {round}: {output}");
        let deploys: Vec<&str> = report["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["set"] == "tasks" && t["type"] == "shell")
            .map(|t| t["message"].as_str().unwrap())
            .collect();
        assert_eq!(
            deploys,
            ["deploying --cluster alpha", "deploying --cluster bravo"],
            "round {round}: {output}"
        );
        assert_eq!(
            report["locks"][0]["key"],
            "choria/locks/playbook/data_sources"
        );
    }
}

#[test]
fn the_seed_data_sources_yaml_playbook_deploys_alpha_then_bravo_over_consul() {
    let consul = ConsulApi::start();
    let dir = tempfile::tempdir().unwrap();
    let store = format!(
        "type: consul\n    url: \"{}\"\n    token: \"secret-acl\"",
        consul.url()
    );
    let file = adapted(
        dir.path(),
        "config/playbooks/data_sources.yaml",
        &[
            ("type: consul", &store),
            ("/path/to/script", "/bin/echo deploying"),
            // A short lock timeout: the second round only starts if the first released its lock.
            ("timeout: 360", "timeout: 3"),
        ],
    );
    for round in 0..2 {
        let (code, output, report) = run(&file);
        assert_eq!(code, 0, "round {round}: {output}");
        let deploys: Vec<&str> = report["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["set"] == "tasks" && t["type"] == "shell")
            .map(|t| t["message"].as_str().unwrap())
            .collect();
        assert_eq!(
            deploys,
            ["deploying --cluster alpha", "deploying --cluster bravo"],
            "round {round}: {output}"
        );
        assert_eq!(
            report["locks"][0]["key"],
            "choria/locks/playbook/data_sources"
        );
        assert_eq!(consul.live_sessions(), 0, "round {round}: session left");
    }
    let tokens = consul.tokens();
    assert!(!tokens.is_empty() && tokens.iter().all(|t| t == "secret-acl"));
}

#[test]
fn check_lists_five_different_yaml_mistakes_with_their_lines() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.yml");
    std::fs::write(
        &file,
        "\
name: broken
version: 1.0.0
author: ops
description: five mistakes
loglevel: chatty
inputs:
  cluster:
    type: String
    validation: \":nonsense\"
locks:
  - missing_store
tasks:
  - shell:
      description: no command
  - teleport:
      description: beam me up
",
    )
    .unwrap();
    let (code, output) = choir(&["check".as_ref(), file.as_os_str()]);
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("broken.yml: invalid playbook"), "{output}");
    for expected in [
        "line 5: loglevel = \"chatty\"",
        "line 9: inputs.cluster.validation: unknown validation",
        "line 11: locks[0] = \"missing_store\": unknown data store",
        "line 13: tasks[0].command: a shell task needs command",
        "line 15: tasks[1].type = \"teleport\": unknown task type",
    ] {
        assert!(output.contains(expected), "no {expected:?} in:\n{output}");
    }
}

#[test]
fn a_yaml_syntax_error_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, "name: x\ninputs:\n  a:\n    type: [String\n").unwrap();
    let (code, output) = choir(&["check".as_ref(), file.as_os_str()]);
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("bad.yaml:"), "{output}");
    assert!(output.contains(":4") || output.contains(":5"), "{output}");
}

const TYPED: &str = r#"name: typed
version: 1.0.0
author: ops
description: Choria's input types and values
inputs:
  count:
    description: a number
    type: Integer
  ratio:
    description: any number
    type: Numeric
    validation: ":number"
  force:
    description: a flag
    type: ":bool"
    default: false
  hosts:
    description: a list
    type: ARRAY
  label:
    description: optional text
    type: string
    required: false
    default: none
tasks:
  - shell:
      description: print the inputs
      command: printf %s/%s/%s/%s/%s {{ inputs.count }} {{ inputs.ratio }} {{ inputs.force }} {{ inputs.hosts }} {{ inputs.label }}
      timeout: 30
      try_sleep: 1
      pre_sleep: 0
"#;

#[test]
fn choria_input_types_take_input_json_and_input_at_yaml_file_values() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typed.yaml");
    std::fs::write(&file, TYPED).unwrap();
    let values = dir.path().join("values.yaml");
    std::fs::write(&values, "hosts:\n  - a\n  - b\nratio: 2.5\n").unwrap();
    let report = dir.path().join("r.json");
    let at_file = format!("@{}", values.display());
    let (code, output) = choir(&[
        "run".as_ref(),
        file.as_os_str(),
        "--input".as_ref(),
        r#"{"count": 7, "force": true}"#.as_ref(),
        "--input".as_ref(),
        at_file.as_ref(),
        "--report".as_ref(),
        report.as_os_str(),
    ]);
    assert_eq!(code, 0, "{output}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(report["tasks"][0]["message"], "7/2.5/true/a, b/none");
}

#[test]
fn an_input_without_required_is_required_as_in_choria() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typed.yaml");
    std::fs::write(&file, TYPED).unwrap();
    let (code, output) = choir(&[
        "run".as_ref(),
        file.as_os_str(),
        "--input".as_ref(),
        r#"{"count": 7, "ratio": 1}"#.as_ref(),
    ]);
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("input \"hosts\" is required"), "{output}");
    // `required: false` with a default and `force` with a default are not reported.
    assert!(!output.contains("\"label\""), "{output}");
    assert!(!output.contains("\"force\""), "{output}");
}

#[test]
fn a_yaml_shell_task_gets_cwd_environment_and_nodes_appended() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shell.yaml");
    std::fs::write(
        &file,
        format!(
            r#"name: shell
version: 1.0.0
author: ops
description: Choria's shell keys
nodes:
  web:
    type: list
    nodes: [web1, web2]
tasks:
  - shell:
      command: sh -c 'printf "%s|%s|%s" "$(pwd)" "$GREETING" "$*"' argv
      cwd: {cwd}
      environment:
        GREETING: hello
      nodes: "{{{{ nodes.web }}}}"
      tries: 2
      try_sleep: 1
      fail_ok: false
"#,
            cwd = dir.path().display()
        ),
    )
    .unwrap();
    let report = dir.path().join("r.json");
    let (code, output) = choir(&[
        "run".as_ref(),
        file.as_os_str(),
        "--report".as_ref(),
        report.as_os_str(),
    ]);
    assert_eq!(code, 0, "{output}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let cwd = dir.path().canonicalize().unwrap();
    assert_eq!(
        report["tasks"][0]["message"],
        format!("{}|hello|--nodes web1,web2", cwd.display())
    );
}

/// A playbook whose every hook and task appends its name to `log`; `pre_book_ok` and
/// `task_ok` decide whether pre_book and the second task succeed.
fn hooks_playbook(dir: &Path, pre_book_ok: bool, task_ok: bool) -> (PathBuf, PathBuf) {
    let log = dir.join("log");
    let step = |name: &str, ok: bool| {
        format!(
            "    - shell:\n        command: sh -c 'echo {name} >> {log}; {exit}'\n",
            log = log.display(),
            exit = if ok { "true" } else { "false" }
        )
    };
    let text = format!(
        "name: hooks\nversion: 1.0.0\nauthor: ops\ndescription: hook order\nhooks:\n  pre_book:\n{}  pre_task:\n{}  post_task:\n{}  on_success:\n{}  on_fail:\n{}  post_book:\n{}tasks:\n{}{}",
        step("pre_book", pre_book_ok),
        step("pre_task", true),
        step("post_task", true),
        step("on_success", true),
        step("on_fail", true),
        step("post_book", true),
        step("task1", true).replacen("    ", "  ", 1).replace("\n        ", "\n      "),
        step("task2", task_ok).replacen("    ", "  ", 1).replace("\n        ", "\n      "),
    );
    let file = dir.join("hooks.yaml");
    std::fs::write(&file, text).unwrap();
    (file, log)
}

fn ran(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn pre_task_and_post_task_wrap_only_the_main_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let (file, log) = hooks_playbook(dir.path(), true, true);
    let (code, output) = choir(&["run".as_ref(), file.as_os_str()]);
    assert_eq!(code, 0, "{output}");
    assert_eq!(
        ran(&log),
        [
            "pre_book",
            "pre_task",
            "task1",
            "post_task",
            "pre_task",
            "task2",
            "post_task",
            "on_success",
            "post_book"
        ]
    );
}

#[test]
fn a_failed_task_runs_on_fail_then_post_book() {
    let dir = tempfile::tempdir().unwrap();
    let (file, log) = hooks_playbook(dir.path(), true, false);
    let (code, output) = choir(&["run".as_ref(), file.as_os_str()]);
    assert_eq!(code, 1, "{output}");
    assert_eq!(
        ran(&log),
        [
            "pre_book",
            "pre_task",
            "task1",
            "post_task",
            "pre_task",
            "task2",
            "on_fail",
            "post_book"
        ]
    );
}

#[test]
fn a_failed_pre_book_ends_the_run_without_on_fail_or_post_book() {
    let dir = tempfile::tempdir().unwrap();
    let (file, log) = hooks_playbook(dir.path(), false, true);
    let (code, output) = choir(&["run".as_ref(), file.as_os_str()]);
    assert_eq!(code, 1, "{output}");
    assert_eq!(ran(&log), ["pre_book"]);
}
