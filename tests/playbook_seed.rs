//! The seed's playbook (config/playbooks/deploy_cluster*.toml): a `cluster` input bound to
//! `pb_data/choria/kv/cluster` (default "alpha"), a pre_book hook deleting the key, a deploy
//! shell task, a data write of "bravo" and the same deploy again: the first deploy sees alpha,
//! the second bravo; with pb_data in NATS JetStream KV and in etcd.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::etcd::Etcd;
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

/// Runs `choir playbook run`: (exit code, stdout + stderr, report).
fn run(file: &Path, args: &[&str]) -> (i32, String, Value) {
    let report = file.with_extension("report.json");
    let out = Command::new(choir_bin())
        .args(["playbook", "run"])
        .arg(file)
        .args(args)
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report = std::fs::read_to_string(&report)
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), output, report)
}

/// The messages of the main shell tasks, in order.
fn deploys(report: &Value) -> Vec<String> {
    report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["set"] == "tasks" && t["type"] == "shell")
        .map(|t| t["message"].as_str().unwrap().to_string())
        .collect()
}

fn assert_alpha_then_bravo(file: &Path) {
    for round in 0..2 {
        let (code, output, report) = run(file, &[]);
        assert_eq!(code, 0, "round {round}: {output}");
        assert_eq!(report["success"], true);
        assert_eq!(
            deploys(&report),
            ["deploying --cluster alpha", "deploying --cluster bravo"],
            "round {round}: {output}"
        );
        assert_eq!(report["inputs"]["dynamic"], serde_json::json!(["cluster"]));
        assert_eq!(
            report["locks"][0]["key"],
            "choria/locks/playbook/".to_string() + report["playbook"]["name"].as_str().unwrap()
        );
        // pre_book, 3 tasks.
        assert_eq!(report["tasks"].as_array().unwrap().len(), 4, "{report:#}");
    }
}

#[test]
fn seed_playbook_over_nats_kv_deploys_alpha_then_bravo() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = adapted(
        dir.path(),
        "config/playbooks/deploy_cluster.toml",
        // A short lock timeout: the second round only starts if the first released its lock.
        &[
            ("nats://127.0.0.1:4222", &server.url()),
            ("timeout = \"360s\"", "timeout = \"3s\""),
        ],
    );
    assert_alpha_then_bravo(&file);
}

#[test]
fn seed_playbook_over_etcd_deploys_alpha_then_bravo() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let file = adapted(
        dir.path(),
        "config/playbooks/deploy_cluster_etcd.toml",
        &[
            ("http://127.0.0.1:2379", &etcd.url()),
            ("timeout = \"360s\"", "timeout = \"3s\""),
        ],
    );
    assert_alpha_then_bravo(&file);
}

#[test]
fn a_command_line_value_is_static_for_the_whole_run() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = adapted(
        dir.path(),
        "config/playbooks/deploy_cluster.toml",
        &[("nats://127.0.0.1:4222", &server.url())],
    );
    let (code, output, report) = run(&file, &["--cluster", "charlie"]);
    assert_eq!(code, 0, "{output}");
    assert_eq!(
        deploys(&report),
        ["deploying --cluster charlie", "deploying --cluster charlie"]
    );
    assert_eq!(report["inputs"]["static"]["cluster"], "charlie");
}

#[test]
fn the_maintenance_example_runs_with_a_memory_store() {
    let dir = tempfile::tempdir().unwrap();
    let file = adapted(
        dir.path(),
        "config/playbooks/maintenance.toml",
        &[("duration = \"1s\"", "duration = \"10ms\"")],
    );
    let (code, output, report) = run(
        &file,
        &[
            "--batch",
            "3",
            "--dry_run=false",
            "--input",
            "ticket=CHG-42",
        ],
    );
    assert_eq!(code, 0, "{output}");
    let messages: Vec<&str> = report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["message"].as_str().unwrap())
        .collect();
    assert!(
        messages
            .contains(&"patch --dry-run=false --batch 3 --nodes web1.example.net,web2.example.net"),
        "{messages:?}"
    );
    assert!(messages.contains(&"restart nginx, php-fpm"), "{messages:?}");
    assert_eq!(
        report["nodes"]["web"],
        serde_json::json!(["web1.example.net", "web2.example.net"])
    );
    // The failing smoke test is fail_ok; on_success saw its message.
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("done CHG-42: \"/bin/false\" exited")),
        "{messages:?}"
    );
}
