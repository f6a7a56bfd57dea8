//! `choir playbook check`: every example in config/playbooks/ passes; every invalid playbook
//! gets an error naming the file and the key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::node::choir_bin;

fn check(path: &Path) -> (i32, String, String) {
    let out = Command::new(choir_bin())
        .args(["playbook", "check"])
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_example_playbook_passes_check() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/playbooks");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    assert!(
        files.iter().any(|f| f.ends_with("deploy_cluster.toml")),
        "the seed's playbook is there"
    );
    for file in files {
        let (code, stdout, stderr) = check(&file);
        assert_eq!(code, 0, "{}: {stderr}", file.display());
        assert!(
            stdout.starts_with(&format!("{}: ok", file.display())),
            "{stdout}"
        );
    }
}

#[test]
fn every_example_playbook_exists_in_yaml_and_passes_check() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/playbooks");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.iter().any(|f| f.ends_with("data_sources.yaml")),
        "the seed's playbook is there: {files:?}"
    );
    for file in files {
        let (code, stdout, stderr) = check(&file);
        assert_eq!(code, 0, "{}: {stderr}", file.display());
        assert!(
            stdout.starts_with(&format!("{}: ok", file.display())),
            "{stdout}"
        );
    }
}

/// Everything validation makes of a playbook except the file it came from and the spec as
/// written (where the YAML layout puts `name` at the top level and TOML in `[metadata]`).
fn model(path: &Path) -> String {
    let book = choir_actors::playbook::load(path).unwrap();
    format!(
        "{} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
        book.name(),
        book.inputs,
        book.stores,
        book.locks,
        book.nodes,
        book.tasks,
        book.hooks,
        book.client
    )
}

#[test]
fn every_toml_example_has_a_yaml_twin_that_reads_into_the_same_playbook() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/playbooks");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    for toml in files {
        let yaml = toml.with_extension("yaml");
        assert!(yaml.exists(), "{} has no YAML form", toml.display());
        assert_eq!(model(&toml), model(&yaml), "{}", yaml.display());
    }
}

#[test]
fn show_prints_inputs_as_help() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/playbooks/deploy_cluster.toml");
    let out = Command::new(choir_bin())
        .args(["playbook", "show"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(stdout.contains("--cluster <string>"), "{stdout}");
    assert!(
        stdout.contains(
            "Cluster to deploy [required, default \"alpha\", else from pb_data/choria/kv/cluster"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("lock pb_data/choria/locks/playbook/deploy_cluster"),
        "{stdout}"
    );
}

const VALID: &str = r#"
[metadata]
name = "p"
version = "1"
author = "a"
description = "d"

[data_stores.pb]
type = "memory"

[inputs.cluster]
description = "c"
type = "string"
default = "alpha"

[[tasks]]
type = "shell"
command = "echo {{ inputs.cluster }}"
"#;

/// (what is wrong, the playbook text, text the error must contain).
fn cases() -> Vec<(&'static str, String, &'static str)> {
    vec![
        ("unknown top-level key", format!("colour = \"blue\"\n{VALID}"), ":1: colour: unknown field `colour`, expected one of"),
        ("unknown input key", VALID.replace("default = \"alpha\"", "defualt = \"alpha\""), "inputs.cluster.defualt: unknown field `defualt`"),
        ("missing metadata", VALID.replace("[metadata]\nname = \"p\"\nversion = \"1\"\nauthor = \"a\"\ndescription = \"d\"\n", ""), "metadata.name: required"),
        ("missing metadata key", VALID.replace("author = \"a\"\n", ""), "metadata: missing field `author`"),
        ("bad input type", VALID.replace("type = \"string\"", "type = \"strnig\""), "inputs.cluster.type: unknown input type \"strnig\""),
        ("default of the wrong type", VALID.replace("type = \"string\"\ndefault = \"alpha\"", "type = \"integer\"\ndefault = \"alpha\""), "inputs.cluster.default = \"\\\"alpha\\\"\": \"alpha\" is not an integer"),
        ("bad task type", VALID.replace("type = \"shell\"", "type = \"shel\""), "tasks[0].type = \"shel\": unknown task type"),
        ("key of another task type", VALID.replace("command = ", "url = \"http://x\"\ncommand = "), "tasks[0].url: not valid for a shell task"),
        ("unknown store type", VALID.replace("type = \"memory\"", "type = \"redis\""), "data_stores.pb.type = \"redis\": unknown store type"),
        ("unknown store in a lock", format!("locks = [\"nope\"]\n{VALID}"), "locks[0] = \"nope\": unknown data store \"nope\""),
        ("unknown store in an input", VALID.replace("default = \"alpha\"", "data = \"nope/k\""), "inputs.cluster.data = \"nope/k\": unknown data store \"nope\""),
        ("unknown store in a data task", format!("{VALID}\n[[tasks]]\ntype = \"data\"\naction = \"delete\"\nkey = \"other/k\"\n"), "tasks[1].key = \"other/k\": unknown data store \"other\""),
        ("template with an unknown input", VALID.replace("{{ inputs.cluster }}", "{{ inputs.clutser }}"), "tasks[0].command = \"echo {{ inputs.clutser }}\": template refers to unknown input \"clutser\""),
        ("template with an unknown node set", VALID.replace("{{ inputs.cluster }}", "{{{ nodes.web }}}"), "template refers to unknown node set \"web\""),
        ("unclosed template", VALID.replace("{{ inputs.cluster }}", "{{ inputs.cluster"), "tasks[0].command = \"echo {{ inputs.cluster\": unclosed template expression"),
        ("bad validation", VALID.replace("default = \"alpha\"", "validation = \"shellsafer\""), "inputs.cluster.validation: unknown validation"),
        ("bad hook name", format!("{VALID}\n[[hooks.before]]\ntype = \"sleep\"\nduration = \"1s\"\n"), "hooks.before: unknown field `before`"),
        ("bad duration", format!("{VALID}\n[[hooks.pre_book]]\ntype = \"sleep\"\nduration = \"soon\"\n"), "hooks.pre_book[0].duration"),
        ("missing required task key", format!("{VALID}\n[[tasks]]\ntype = \"sleep\"\n"), "tasks[1].duration: a sleep task needs duration"),
    ]
}

#[test]
fn invalid_playbooks_name_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let valid = dir.path().join("valid.toml");
    std::fs::write(&valid, VALID).unwrap();
    let (code, _, stderr) = check(&valid);
    assert_eq!(code, 0, "the base case is valid: {stderr}");
    let mut wrong = Vec::new();
    for (i, (what, text, expected)) in cases().into_iter().enumerate() {
        let file = dir.path().join(format!("case{i}.toml"));
        std::fs::write(&file, &text).unwrap();
        let (code, _, stderr) = check(&file);
        if code != 1 || !stderr.contains(&file.display().to_string()) || !stderr.contains(expected)
        {
            wrong.push(format!(
                "{what} (exit {code}): expected {expected:?} in:\n{stderr}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
