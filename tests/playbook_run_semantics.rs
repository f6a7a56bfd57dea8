//! Hook ordering beyond the main paths (a failing `on_success`, `post_book`, `pre_task`,
//! `post_task` or `on_fail`) and the common task keys `fail_ok` (after several tries) and
//! `pre_sleep`, each shown on a real `choir playbook run` of a YAML playbook whose shell steps
//! append their names to a log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::node::choir_bin;
use serde_json::Value;

/// A playbook with one step per hook and two main tasks; the steps named in `failing` exit 1.
fn hooks_playbook(dir: &Path, failing: &[&str]) -> (PathBuf, PathBuf) {
    let log = dir.join("log");
    let step = |name: &str, indent: &str| {
        let exit = if failing.contains(&name) {
            "false"
        } else {
            "true"
        };
        format!(
            "{indent}- shell:\n{indent}    command: sh -c 'echo {name} >> {log}; {exit}'\n",
            log = log.display()
        )
    };
    let mut text =
        String::from("name: hooks\nversion: 1.0.0\nauthor: ops\ndescription: hook order\nhooks:\n");
    for hook in [
        "pre_book",
        "pre_task",
        "post_task",
        "on_success",
        "on_fail",
        "post_book",
    ] {
        text.push_str(&format!("  {hook}:\n{}", step(hook, "    ")));
    }
    text.push_str(&format!(
        "tasks:\n{}{}",
        step("task1", "  "),
        step("task2", "  ")
    ));
    let file = dir.join("hooks.yaml");
    std::fs::write(&file, text).unwrap();
    (file, log)
}

/// Runs the playbook: (exit code, output, report).
fn run(file: &Path) -> (i32, String, Value) {
    let report = file.with_extension("report.json");
    let out = Command::new(choir_bin())
        .args(["playbook", "run"])
        .arg(file)
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    (out.status.code().unwrap_or(-1), output, report)
}

fn ran(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_failed_on_success_fails_the_playbook_and_runs_on_fail_then_post_book() {
    let dir = tempfile::tempdir().unwrap();
    let (file, log) = hooks_playbook(dir.path(), &["on_success"]);
    let (code, output, report) = run(&file);
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
            "post_task",
            "on_success",
            "on_fail",
            "post_book"
        ]
    );
    assert!(
        report["error"].as_str().unwrap().starts_with("on_success:"),
        "{report}"
    );
}

#[test]
fn a_failed_post_book_fails_an_otherwise_successful_playbook() {
    let dir = tempfile::tempdir().unwrap();
    let (file, log) = hooks_playbook(dir.path(), &["post_book"]);
    let (code, output, report) = run(&file);
    assert_eq!(code, 1, "{output}");
    assert_eq!(ran(&log).last().unwrap(), "post_book");
    assert!(
        !ran(&log).contains(&"on_fail".to_string()),
        "on_fail runs only after a failure before post_book"
    );
    assert!(
        report["error"].as_str().unwrap().starts_with("post_book:"),
        "{report}"
    );
}

#[test]
fn a_failed_pre_task_fails_its_task_before_the_task_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (file, log) = hooks_playbook(dir.path(), &["pre_task"]);
    let (code, output, report) = run(&file);
    assert_eq!(code, 1, "{output}");
    assert_eq!(ran(&log), ["pre_book", "pre_task", "on_fail", "post_book"]);
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .starts_with("tasks[0]: pre_task:"),
        "{report}"
    );
}

#[test]
fn a_failed_post_task_fails_its_task_and_stops_the_list() {
    let dir = tempfile::tempdir().unwrap();
    let (file, log) = hooks_playbook(dir.path(), &["post_task"]);
    let (code, output, _) = run(&file);
    assert_eq!(code, 1, "{output}");
    assert_eq!(
        ran(&log),
        [
            "pre_book",
            "pre_task",
            "task1",
            "post_task",
            "on_fail",
            "post_book"
        ]
    );
}

#[test]
fn a_failed_on_fail_is_reported_but_does_not_change_the_outcome_or_stop_post_book() {
    let dir = tempfile::tempdir().unwrap();
    let (file, log) = hooks_playbook(dir.path(), &["task2", "on_fail"]);
    let (code, output, report) = run(&file);
    assert_eq!(code, 1, "{output}");
    assert_eq!(ran(&log).last().unwrap(), "post_book");
    let error = report["error"].as_str().unwrap();
    assert!(error.starts_with("tasks[1]"), "{error}");
    let on_fail = report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["set"] == "on_fail")
        .unwrap();
    assert_eq!(on_fail["success"], false);
}

#[test]
fn fail_ok_turns_a_failure_after_several_tries_into_success() {
    // Choria ignored fail_ok when tries > 1, a known bug choir does not copy.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fail_ok.yaml");
    std::fs::write(
        &file,
        "name: f\nversion: 1.0.0\nauthor: a\ndescription: d\ntasks:\n  - shell:\n      command: \"false\"\n      tries: 3\n      try_sleep: 0\n      fail_ok: true\n  - shell:\n      command: echo \"{{ previous_task.success }}\"\n",
    )
    .unwrap();
    let (code, output, report) = run(&file);
    assert_eq!(code, 0, "{output}");
    let tries = report["tasks"].as_array().unwrap();
    assert_eq!(tries.len(), 4, "three failed tries, then the next task");
    assert!(tries[..3].iter().all(|t| t["success"] == false));
    assert_eq!(tries[3]["message"].as_str().unwrap().trim(), "true");
}

#[test]
fn pre_sleep_waits_before_the_first_try() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pre_sleep.yaml");
    let task = "  - shell:\n      command: \"true\"\n      pre_sleep: 1\n";
    std::fs::write(
        &file,
        format!("name: p\nversion: 1.0.0\nauthor: a\ndescription: d\ntasks:\n{task}{task}"),
    )
    .unwrap();
    let (code, output, report) = run(&file);
    assert_eq!(code, 0, "{output}");
    // A lower bound the sleeps guarantee (never an upper bound): two pre_sleeps of 1s.
    let run_time = report["metrics"]["run_time"].as_f64().unwrap();
    assert!(run_time >= 2.0, "run took {run_time}s");
    let tries: f64 = report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["run_time"].as_f64().unwrap())
        .sum();
    assert!(
        run_time - tries >= 2.0,
        "the sleeps are before the tries, not in them"
    );
}
