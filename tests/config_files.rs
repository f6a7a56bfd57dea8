//! `choir check`: every shipped config is valid; broken ones get every problem reported with
//! file, key and value.

mod common;

use std::path::Path;

use common::node::check;

#[test]
fn every_file_in_config_passes_check() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let (code, stdout, stderr) = check(&path);
            assert_eq!(code, 0, "{}:\n{stdout}\n{stderr}", path.display());
            assert!(stdout.contains(": ok"), "{stdout}");
            checked += 1;
        }
    }
    assert!(
        checked >= 2,
        "expected the shipped configs in {}",
        dir.display()
    );
}

#[test]
fn three_different_mistakes_are_all_reported_with_key_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(
        &path,
        r#"
[node]
name = "broken"
monitor = "localhost-ish"

[networks.region]
urls = ["htp://127.0.0.1:4222"]

[networks.central]
urls = ["nats://127.0.0.1:4222"]
reconnect_forever = true

[replicators.copy]
source = "region"
target = "centre"
stream = "ORDERS"
"#,
    )
    .unwrap();
    let (code, stdout, stderr) = check(&path);
    assert_ne!(code, 0, "{stdout}");
    let file = path.display().to_string();
    for expected in [
        "node.monitor = \"localhost-ish\"",
        "networks.region.urls[0] = \"htp://127.0.0.1:4222\"",
        "networks.central: unknown field `reconnect_forever`",
        "replicators.copy.target = \"centre\": no such network",
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(&file) && l.contains(expected)),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    assert!(stderr.contains("4 problems"), "{stderr}");
}

#[test]
fn a_syntax_error_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("syntax.toml");
    std::fs::write(&path, "[node]\nname = \"x\"\n[networks.a\n").unwrap();
    let (code, _, stderr) = check(&path);
    assert_ne!(code, 0);
    assert!(stderr.contains("syntax.toml: invalid TOML"), "{stderr}");
    assert!(stderr.contains("line 3"), "{stderr}");
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let (code, _, stderr) = check(Path::new("/nonexistent/choir.toml"));
    assert_ne!(code, 0);
    assert!(
        stderr.contains("/nonexistent/choir.toml: cannot read"),
        "{stderr}"
    );
}
