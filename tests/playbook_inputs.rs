//! Inputs reach tasks safely: a `shellsafe` input with shell syntax is refused before anything
//! runs; without validation the same value reaches the shell task as one literal argument.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::node::choir_bin;
use serde_json::Value;

const HOSTILE: &str = "; rm -rf ~/x";

fn playbook(dir: &Path, validation: &str) -> std::path::PathBuf {
    let body = format!(
        r#"[metadata]
name = "inputs"
version = "1"
author = "test"
description = "passes a value to a program"

[inputs.target]
description = "what to act on"
type = "string"
required = true
{validation}

[[hooks.pre_book]]
type = "shell"
command = ["touch", "{marker}"]

[[tasks]]
type = "shell"
command = "sh -c 'printf \"%s|\" \"$@\"' argv {{{{ inputs.target }}}}"
"#,
        marker = dir.join("ran").display()
    );
    let path = dir.join("inputs.toml");
    std::fs::write(&path, body).unwrap();
    path
}

fn run(file: &Path, home: &Path, value: &str) -> (i32, String, Value) {
    let report = file.with_extension("report.json");
    let out = Command::new(choir_bin())
        .args(["playbook", "run"])
        .arg(file)
        .args(["--target", value, "--report"])
        .arg(&report)
        .env("HOME", home)
        .output()
        .unwrap();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    (out.status.code().unwrap_or(-1), output, report)
}

#[test]
fn a_shellsafe_input_with_shell_syntax_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join("x")).unwrap();
    let file = playbook(dir.path(), "validation = \"shellsafe\"");
    let (code, output, report) = run(&file, home.path(), HOSTILE);
    assert_eq!(code, 1, "{output}");
    let error = report["error"].as_str().unwrap();
    assert_eq!(
        error, "invalid inputs: input \"target\": not shellsafe: contains \";\"",
        "{output}"
    );
    assert_eq!(report["tasks"], serde_json::json!([]));
    assert!(
        !dir.path().join("ran").exists(),
        "the pre_book hook must not have run"
    );
    assert!(home.path().join("x").exists());
}

#[test]
fn without_validation_the_value_is_one_literal_argument() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join("x")).unwrap();
    let file = playbook(dir.path(), "");
    let (code, output, report) = run(&file, home.path(), HOSTILE);
    assert_eq!(code, 0, "{output}");
    let shell = report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["set"] == "tasks")
        .unwrap();
    // One argument, byte for byte, and nothing was removed.
    assert_eq!(shell["message"], format!("{HOSTILE}|"));
    assert!(home.path().join("x").exists());
}

#[test]
fn typed_inputs_from_flags_input_pairs_and_a_json_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typed.toml");
    std::fs::write(
        &file,
        r#"[metadata]
name = "typed"
version = "1"
author = "test"
description = "typed inputs"

[inputs.count]
description = "a number"
type = "integer"
required = true

[inputs.force]
description = "a flag"
type = "bool"
default = false

[inputs.hosts]
description = "a list"
type = "array"
required = true

[inputs.opts]
description = "a map"
type = "map"
required = true

[[tasks]]
type = "shell"
command = ["printf", "%s/%s/%s/%s", "{{ inputs.count }}", "{{ inputs.force }}", "{{ inputs.hosts }}", "{{ inputs.opts.level }}"]
"#,
    )
    .unwrap();
    let json = dir.path().join("inputs.json");
    std::fs::write(&json, r#"{"opts": {"level": 3}, "hosts": ["a", "b"]}"#).unwrap();
    let report = dir.path().join("r.json");
    let out = Command::new(choir_bin())
        .args(["playbook", "run"])
        .arg(&file)
        .args(["--count", "7", "--force", "--inputs"])
        .arg(&json)
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(report["tasks"][0]["message"], "7/true/a, b/3");
    assert_eq!(report["inputs"]["static"]["count"], 7);

    // A value of the wrong type is refused with the input's name.
    let out = Command::new(choir_bin())
        .args(["playbook", "run"])
        .arg(&file)
        .args([
            "--count", "seven", "--input", "hosts=a", "--input", "opts={}",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("input \"count\": \"seven\" is not an integer"),
        "{stdout}"
    );

    // An unknown option names the known inputs.
    let out = Command::new(choir_bin())
        .args(["playbook", "run"])
        .arg(&file)
        .arg("--nope")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown option \"--nope\" (inputs: count, force, hosts, opts)"),
        "{stderr}"
    );
}
