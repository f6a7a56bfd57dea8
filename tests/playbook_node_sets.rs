//! Node set types beyond lists: `yaml` (a group of a YAML file), `shell` (a script's output,
//! every line checked as a host name), and `mcollective` discovery with Choria's options, its
//! `test: true` ping and its `uses` agent version check against emulated daemons on a real
//! nats-server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "client/cli.rs"]
mod cli;
mod common;
#[path = "federation/support.rs"]
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::NatsServer;
use serde_json::Value;

const HEADER: &str =
    "name: node_sets\nversion: 1.0.0\nauthor: tests@example.net\ndescription: node set types\n";

/// Writes `body` (after the metadata) as a YAML playbook in `dir`.
fn playbook(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("nodes.yaml");
    std::fs::write(&path, format!("{HEADER}{body}")).unwrap();
    path
}

/// Runs `choir playbook run FILE [--server URL] --report R` off the actix thread: (exit code,
/// output, report).
async fn run(file: &Path, server: Option<&NatsServer>) -> (i32, String, Value) {
    let report = file.with_extension("report.json");
    let mut args: Vec<String> = vec![
        "playbook".into(),
        "run".into(),
        file.display().to_string(),
        "--report".into(),
        report.display().to_string(),
    ];
    if let Some(server) = server {
        args.extend(["--server".into(), server.url()]);
    }
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

/// An executable script in `dir` printing `stdout`.
fn script(dir: &Path, stdout: &str) -> PathBuf {
    let path = dir.join("nodes.sh");
    std::fs::write(&path, format!("#!/bin/sh\nprintf '{stdout}'\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[actix_rt::test]
async fn a_yaml_node_set_takes_its_group_from_the_source_file() {
    let dir = tempfile::tempdir().unwrap();
    let groups = dir.path().join("groups.yaml");
    std::fs::write(
        &groups,
        "web:\n  - web1.example.net\n  - web2\n  - web1.example.net\ndb:\n  - db1\n",
    )
    .unwrap();
    let file = playbook(
        dir.path(),
        &format!(
            "nodes:\n  web:\n    type: yaml\n    source: {}\n    group: web\ntasks:\n  - shell:\n      command: echo {{{{ nodes.web }}}}\n",
            groups.display()
        ),
    );
    let (code, output, report) = run(&file, None).await;
    assert_eq!(code, 0, "{output}");
    assert_eq!(
        report["nodes"]["web"],
        serde_json::json!(["web1.example.net", "web2"])
    );
    assert_eq!(
        report["tasks"][0]["message"].as_str().unwrap().trim(),
        "web1.example.net, web2"
    );

    let missing = playbook(
        dir.path(),
        &format!(
            "nodes:\n  web:\n    type: yaml\n    source: {}\n    group: cache\n",
            groups.display()
        ),
    );
    let (code, _, report) = run(&missing, None).await;
    assert_eq!(code, 1);
    let error = report["error"].as_str().unwrap();
    assert!(
        error.contains("node set web") && error.contains("no group \"cache\""),
        "{error}"
    );
}

#[actix_rt::test]
async fn a_shell_node_set_takes_one_host_per_line_and_names_every_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = script(dir.path(), "web1\\nweb2.example.net\\n\\nweb1\\n");
    let file = playbook(
        dir.path(),
        &format!(
            "nodes:\n  web:\n    type: shell\n    script: {}\n    timeout: 5\n",
            good.display()
        ),
    );
    let (code, output, report) = run(&file, None).await;
    assert_eq!(code, 0, "{output}");
    assert_eq!(
        report["nodes"]["web"],
        serde_json::json!(["web1", "web2.example.net"])
    );

    script(dir.path(), "web1\\nnot a host\\nweb2\\n-bad\\n");
    let (code, _, report) = run(&file, None).await;
    assert_eq!(code, 1);
    let error = report["error"].as_str().unwrap();
    assert!(error.contains("node set web"), "{error}");
    assert!(
        error.contains("line 2: \"not a host\"") && error.contains("line 4: \"-bad\""),
        "{error}"
    );
    assert!(!error.contains("web2"), "{error}");

    std::fs::write(&good, "#!/bin/sh\necho broken >&2\nexit 3\n").unwrap();
    let (code, _, report) = run(&file, None).await;
    assert_eq!(code, 1);
    let error = report["error"].as_str().unwrap();
    assert!(
        error.contains("exit status: 3") && error.contains("broken"),
        "{error}"
    );

    std::fs::write(&good, "#!/bin/sh\nsleep 60\n").unwrap();
    let slow = playbook(
        dir.path(),
        &format!(
            "nodes:\n  web:\n    type: shell\n    script: {}\n    timeout: 1\n",
            good.display()
        ),
    );
    let (code, _, report) = run(&slow, None).await;
    assert_eq!(code, 1);
    let error = report["error"].as_str().unwrap();
    assert!(error.contains("killed after 1s"), "{error}");
}

#[actix_rt::test]
async fn an_mcollective_node_set_discovers_with_choria_options_tests_and_checks_uses() {
    let server = NatsServer::start();
    let _fleet = support::start_fleet("emu", 6, &server).await;
    let dir = tempfile::tempdir().unwrap();
    let body = |emulated_range: &str| {
        format!(
            r#"uses:
  rpcutil: "~0.1.0"
  emulated0: "{emulated_range}"
nodes:
  fleet:
    type: mcollective
    discovery_method: mc
    agents: [emulated0]
    facts: ["instance<4"]
    identities: ["/^emu-/"]
    test: true
    uses: [rpcutil, emulated0]
    at_least: 4
tasks:
  - mcollective:
      action: rpcutil.ping
      nodes: "{{{{ nodes.fleet }}}}"
"#
        )
    };
    let file = playbook(dir.path(), &body(">= 0.0.1 < 0.1.0"));
    let (code, output, report) = run(&file, Some(&server)).await;
    assert_eq!(code, 0, "{output}");
    let expected: Vec<String> = (0..4).map(|i| format!("emu-{i}")).collect();
    assert_eq!(report["nodes"]["fleet"], serde_json::json!(expected));

    // The emulator's agent is 0.0.1: a playbook wanting 0.1 or later stops before any task.
    let file = playbook(dir.path(), &body("~0.1"));
    let (code, _, report) = run(&file, Some(&server)).await;
    assert_eq!(code, 1);
    let error = report["error"].as_str().unwrap();
    for i in 0..4 {
        assert!(
            error.contains(&format!(
                "node emu-{i}: agent emulated0 version 0.0.1 does not match ~0.1"
            )),
            "{error}"
        );
    }
    assert!(report["tasks"].as_array().unwrap().is_empty(), "{report}");
}

#[actix_rt::test]
async fn uses_fails_a_node_set_whose_nodes_lack_the_agent() {
    let server = NatsServer::start();
    let _fleet = support::start_fleet("emu", 2, &server).await;
    let dir = tempfile::tempdir().unwrap();
    let file = playbook(
        dir.path(),
        "uses:\n  puppet: \">= 1.0.0\"\nnodes:\n  pair:\n    type: list\n    nodes: [emu-0, emu-1]\n    uses: [puppet]\n",
    );
    let (code, _, report) = run(&file, Some(&server)).await;
    assert_eq!(code, 1);
    let error = report["error"].as_str().unwrap();
    assert!(
        error.contains("node emu-0: agent puppet is not installed")
            && error.contains("node emu-1: agent puppet is not installed"),
        "{error}"
    );
}

#[actix_rt::test]
async fn test_true_fails_a_node_set_with_a_node_that_does_not_answer_ping() {
    let server = NatsServer::start();
    let _fleet = support::start_fleet("emu", 2, &server).await;
    let dir = tempfile::tempdir().unwrap();
    let body = |nodes: &str| {
        format!("nodes:\n  pair:\n    type: list\n    nodes: [{nodes}]\n    test: true\ntasks:\n  - shell:\n      command: \"true\"\n")
    };
    let file = playbook(dir.path(), &body("emu-0, emu-1"));
    let (code, output, _) = run(&file, Some(&server)).await;
    assert_eq!(code, 0, "{output}");

    let file = playbook(dir.path(), &body("emu-0, ghost"));
    let (code, _, report) = run(&file, Some(&server)).await;
    assert_eq!(code, 1);
    let error = report["error"].as_str().unwrap();
    assert!(
        error.contains("connectivity test failed") && error.contains("ghost"),
        "{error}"
    );
    assert!(report["tasks"].as_array().unwrap().is_empty(), "{report}");
}

#[test]
fn check_names_node_set_keys_of_another_type_missing_keys_and_undeclared_uses() {
    let dir = tempfile::tempdir().unwrap();
    let file = playbook(
        dir.path(),
        "uses:\n  rpcutil: \"not a range\"\nnodes:\n  a:\n    type: yaml\n    source: g.yaml\n    script: x\n  b:\n    type: shell\n  c:\n    type: mcollective\n    discovery_method: choria\n    uses: [puppet]\n",
    );
    let out = std::process::Command::new(common::node::choir_bin())
        .args(["playbook", "check"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    for expected in [
        "uses.rpcutil",
        "nodes.a.script: not valid for a yaml node set",
        "nodes.a.group: a yaml node set needs group",
        "nodes.b.script: a shell node set needs script",
        "nodes.c.discovery_method",
        "nodes.c.uses[0]",
    ] {
        assert!(text.contains(expected), "{expected} not in {text}");
    }
}

#[actix_rt::test]
async fn a_file_node_set_reads_one_node_per_line_or_a_json_list() {
    let dir = tempfile::tempdir().unwrap();
    let lines = dir.path().join("nodes.txt");
    std::fs::write(&lines, "# web nodes\nweb1\n\n  web2  \nweb1\n").unwrap();
    let json = dir.path().join("nodes.json");
    std::fs::write(&json, "[\"db1\", \"db2\"]").unwrap();
    let file = playbook(
        dir.path(),
        &format!(
            "nodes:\n  web:\n    type: file\n    file: {}\n  db:\n    type: file\n    file: {}\n",
            lines.display(),
            json.display()
        ),
    );
    let (code, output, report) = run(&file, None).await;
    assert_eq!(code, 0, "{output}");
    assert_eq!(report["nodes"]["web"], serde_json::json!(["web1", "web2"]));
    assert_eq!(report["nodes"]["db"], serde_json::json!(["db1", "db2"]));
}

#[actix_rt::test]
async fn limit_keeps_the_first_nodes_and_at_least_when_empty_and_empty_ok_judge_the_size() {
    let dir = tempfile::tempdir().unwrap();
    let set = |extra: &str, nodes: &str| {
        format!("nodes:\n  web:\n    type: list\n    nodes: [{nodes}]\n{extra}")
    };
    let file = playbook(dir.path(), &set("    limit: 2\n", "a, b, c"));
    let (code, output, report) = run(&file, None).await;
    assert_eq!(code, 0, "{output}");
    assert_eq!(report["nodes"]["web"], serde_json::json!(["a", "b"]));

    let file = playbook(dir.path(), &set("    at_least: 3\n", "a, b"));
    let (code, _, report) = run(&file, None).await;
    assert_eq!(code, 1);
    assert_eq!(
        report["error"],
        "node set web has 2 nodes, at least 3 needed"
    );

    let file = playbook(dir.path(), &set("    when_empty: no web nodes today\n", ""));
    let (code, _, report) = run(&file, None).await;
    assert_eq!(code, 1);
    assert_eq!(report["error"], "no web nodes today");

    let file = playbook(
        dir.path(),
        &set("    empty_ok: true\n    at_least: 5\n", ""),
    );
    let (code, output, report) = run(&file, None).await;
    assert_eq!(code, 0, "empty_ok forces at_least to 0: {output}");
    assert_eq!(report["nodes"]["web"], serde_json::json!([]));
}

#[actix_rt::test]
async fn an_mcollective_node_set_filters_by_classes_and_a_compound_expression() {
    use choir::actors::emulator::{EmulatorMetrics, Fleet, FleetSpec};

    let server = NatsServer::start();
    let mut spec = FleetSpec::new("web", 4, vec![server.url()]);
    spec.arbiters = std::num::NonZeroUsize::new(1);
    spec.classes = vec!["webserver".into()];
    let fleet = Fleet::start(spec, EmulatorMetrics::unregistered()).unwrap();
    assert!(
        fleet.wait_started(Duration::from_secs(60), |_| {}).await,
        "daemons did not start"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = playbook(
        dir.path(),
        r#"nodes:
  first_two:
    type: mcollective
    classes: [webserver]
    compound: "fact('instance') < 2"
    timeout: 2
  databases:
    type: mcollective
    classes: [database]
    timeout: 1
    empty_ok: true
"#,
    );
    let (code, output, report) = run(&file, Some(&server)).await;
    assert_eq!(code, 0, "{output}");
    assert_eq!(
        report["nodes"]["first_two"],
        serde_json::json!(["web-0", "web-1"])
    );
    assert_eq!(report["nodes"]["databases"], serde_json::json!([]));
}
