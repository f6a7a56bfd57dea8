//! `choir import stream-replicator sr.yaml`: a Choria Stream Replicator v2 config becomes
//! choir TOML that `choir check` accepts, with every key that has no equivalent named; bad
//! YAML is refused naming the file, the line and the key; `choir run` reads the YAML directly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::jetstream::{connect, count, create_stream};
use common::node::{check, choir_bin};
use common::{eventually, NatsServer};

fn import(path: &Path) -> (i32, String, String) {
    let out = Command::new(choir_bin())
        .args(["import", "stream-replicator"])
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The example SR config with its /etc/stream-replicator/ files made real in `dir`.
fn example_in(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/stream_replicator_v2.yaml"
    ))
    .unwrap();
    for file in ["ca.pem", "cert.pem", "key.pem", "region.creds"] {
        std::fs::write(dir.join(file), "placeholder\n").unwrap();
    }
    let text = text.replace("/etc/stream-replicator/", &format!("{}/", dir.display()));
    let path = dir.join("sr.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_stream_replicator_v2_config_imports_into_toml_that_choir_check_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let (code, toml, stderr) = import(&example_in(dir.path()));
    assert_eq!(code, 0, "{stderr}");
    let out = dir.path().join("imported.toml");
    std::fs::write(&out, &toml).unwrap();
    let (code, summary, problems) = check(&out);
    assert_eq!(code, 0, "choir check refused:\n{problems}\n{toml}");

    let value: toml::Table = toml::from_str(&toml).unwrap();
    let node = &value["node"];
    assert_eq!(node["name"].as_str(), Some("US-EAST-1"));
    assert_eq!(node["compat"].as_str(), Some("choria"));
    assert_eq!(node["monitor"].as_str(), Some("0.0.0.0:8080"));
    assert!(node["state_dir"].as_str().unwrap().ends_with("/state"));
    let networks = value["networks"].as_table().unwrap();
    let source = &networks["source"];
    assert_eq!(
        source["urls"].as_array().unwrap().len(),
        2,
        "one network for the comma list: {toml}"
    );
    assert!(source["credentials"]
        .as_str()
        .unwrap()
        .ends_with("region.creds"));
    assert!(source["tls"]["ca"].as_str().unwrap().ends_with("ca.pem"));
    let central3 = networks
        .values()
        .find(|n| n["urls"][0].as_str() == Some("nats://central3.example.net:4222"))
        .expect("central3 network");
    assert_eq!(central3["user"].as_str(), Some("user"));
    assert_eq!(central3["password"].as_str(), Some("secret"));
    assert_eq!(central3["connect_timeout"].as_str(), Some("5s"));

    let replicators = value["replicators"].as_table().unwrap();
    assert_eq!(replicators.len(), 4, "{toml}");
    let p1 = &replicators["PARTITION1"];
    assert_eq!(p1["stream"].as_str(), Some("CHORIA_REGISTRATION"));
    assert_eq!(p1["target_stream"].as_str(), Some("REGISTRATION_US_EAST_1"));
    assert_eq!(
        p1["filter_subject"].as_str(),
        Some("choria.node_metadata.>")
    );
    assert_eq!(p1["target_subject_prefix"].as_str(), Some("us-east-1"));
    assert_eq!(p1["target_subject_remove"].as_str(), Some("choria."));
    assert_eq!(p1["start"].as_str(), Some("1d"));
    assert_eq!(p1["max_age"].as_str(), Some("1h"));
    assert_eq!(p1["inspect"].as_str(), Some("sender"));
    assert_eq!(p1["force_field"].as_str(), Some("force_copy"));
    assert_eq!(p1["age"].as_str(), Some("1h"));
    assert_eq!(p1["sender_timeout"].as_str(), Some("90m"));
    assert_eq!(p1["size_trigger"].as_integer(), Some(1024));
    assert_eq!(
        p1["advisories"]["subject"].as_str(),
        Some("choria.registration.advisories.%s.%v")
    );
    assert_eq!(p1["advisories"]["reliable"].as_bool(), Some(true));
    assert_eq!(p1["heartbeat"].as_str(), Some("30s"));
    assert_eq!(
        p1["heartbeat_subject"].as_str(),
        Some("choria.stream-replicator.heartbeat.us-east-1")
    );
    let machine = &replicators["machine"];
    assert_eq!(machine["inspect"].as_str(), Some("header:Choria-Sender"));
    assert_eq!(machine["start"].as_str(), Some("new"));
    assert_eq!(machine["create_target"].as_bool(), Some(false));
    let events = &replicators["CHORIA_EVENTS"];
    assert_eq!(
        events["inspect"].as_str(),
        Some("subject:2"),
        "the SR counts tokens from 1, choir from 0"
    );
    assert_eq!(events["start"].as_integer(), Some(100));
    assert_eq!(
        replicators["kv"]["start"].as_str(),
        Some("2026-01-01T00:00:00Z")
    );

    // Every key without an equivalent is named, with why, in the TOML and on stderr.
    for key in [
        "profiling",
        "loglevel",
        "logfile",
        "heartbeats.headers",
        "heartbeats.subjects[1]",
        "streams[1].target_url?tls_handshake_first",
        "streams[2].source_url?jwt",
        "streams[2].target_initiated",
        "streams[2].ephemeral",
        "streams[3].choria",
    ] {
        assert!(
            toml.contains(&format!("# not imported: {key}")),
            "{key} not named in:\n{toml}"
        );
        assert!(
            stderr.contains(&format!("not imported: {key}")),
            "{key}: {stderr}"
        );
    }
    assert!(summary.contains("replicator PARTITION1"), "{summary}");
    assert!(
        toml.contains("[replicators.PARTITION1.ha]\nbucket = \"CHORIA_LEADER_ELECTION\""),
        "the HA table: {toml}"
    );
}

#[test]
fn bad_stream_replicator_yaml_is_refused_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sr.yaml");
    std::fs::write(
        &path,
        "name: x\nstreams:\n  - stream: S\n    source_url: nats://a:1\n    target_url: nats://b:1\n    inspect_duraton: 1h\n",
    )
    .unwrap();
    let (code, _, stderr) = import(&path);
    assert_ne!(code, 0);
    assert!(
        stderr.contains(&format!("{}:6: streams[0]", path.display())),
        "{stderr}"
    );
    assert!(stderr.contains("inspect_duraton"), "{stderr}");

    std::fs::write(
        &path,
        "name: x\nstreams:\n  - stream: S\n    source_url: nats://a:1\n    target_url: nats://b:1\n    max_age: soon\n",
    )
    .unwrap();
    let (code, _, stderr) = import(&path);
    assert_ne!(code, 0);
    assert!(
        stderr.contains(":6: streams[0].max_age: \"soon\" is not a duration"),
        "{stderr}"
    );
}

#[tokio::test]
async fn choir_run_reads_a_stream_replicator_yaml_directly() {
    let source = NatsServer::start();
    let target = NatsServer::start();
    let src = connect(&source.url()).await;
    create_stream(&src, "ORDERS", &["orders.>"]).await;
    let js = async_nats::jetstream::new(src.clone());
    js.publish("orders.1", "{}".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // No monitor_port: the SR's monitor listens on every interface, and tests stay on loopback.
    let yaml = format!(
        "name: site1\nstate_store: {}\nstreams:\n  - stream: ORDERS\n    source_url: {}\n    target_url: {}\n",
        dir.path().join("state").display(),
        source.url(),
        target.url()
    );
    let path = dir.path().join("sr.yaml");
    std::fs::write(&path, yaml).unwrap();
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let mut child = Command::new(choir_bin())
        .arg("run")
        .arg(&path)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let dst = connect(&target.url()).await;
    let copied = eventually(Duration::from_secs(30), || async {
        count(&dst, "ORDERS").await >= 1
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        copied,
        "nothing copied; log:\n{}",
        std::fs::read_to_string(dir.path().join("log")).unwrap_or_default()
    );
    let copies = common::jetstream::read_all(&dst, "ORDERS").await;
    assert_eq!(
        copies[0]
            .header("Choria-SR-Source")
            .unwrap()
            .split(' ')
            .nth(2),
        Some("site1"),
        "the SR's name is the node's, and compat is on"
    );
    assert_eq!(
        copies[0]
            .header("Choria-SR-Source")
            .unwrap()
            .split(' ')
            .nth(3),
        Some("ORDERS"),
        "a stream without a name is named after its stream"
    );
}
