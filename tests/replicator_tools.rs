//! Operator tools: `choir replicator state` prints a saved sampling tracker (MessagePack)
//! readably or as JSON, filtered by sender; `choir replicator advisories` prints the
//! advisories a stream stored on a subject, and with `--follow` new ones as they come.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use choir_actors::replicator::sampling::{SamplingConfig, SamplingTracker};
use common::jetstream::{connect, create_stream};
use common::node::choir_bin;
use common::NatsServer;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(choir_bin()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn replicator_state_prints_the_saved_tracker_filtered_by_sender() {
    let dir = tempfile::tempdir().unwrap();
    let mut tracker = SamplingTracker::new(SamplingConfig::new(Duration::from_secs(60))).unwrap();
    let now = SystemTime::now();
    tracker.observe("node1.example.net", 7, now, 120, false);
    tracker.observe("node2.example.net", 8, now, 130, false);
    tracker.observe("node1.example.net", 9, now, 120, false);
    tracker
        .save(&dir.path().join("replicators").join("orders.tracker"))
        .unwrap();
    let state_dir = dir.path().to_str().unwrap();

    let (code, text, err) = run(&["replicator", "state", state_dir]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("replicator orders, 2 senders"), "{text}");
    assert!(text.contains("Sender: node1.example.net"), "{text}");
    assert!(text.contains("Sender: node2.example.net"), "{text}");
    assert!(text.contains("Seen / copied: 2 / 1"), "{text}");

    let (code, text, err) = run(&[
        "replicator",
        "state",
        state_dir,
        "--sender",
        "^node2",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let senders = json["orders"].as_array().unwrap();
    assert_eq!(senders.len(), 1, "{json}");
    assert_eq!(senders[0]["sender"], "node2.example.net");
    assert_eq!(senders[0]["last_copied_seq"], 8);
    assert_eq!(senders[0]["last_copied_size"], 130);

    let (code, _, err) = run(&["replicator", "state", state_dir, "--sender", "("]);
    assert_ne!(code, 0);
    assert!(err.contains("--sender \"(\""), "{err}");
    let (code, _, err) = run(&[
        "replicator",
        "state",
        dir.path().join("nowhere").to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("nowhere"), "{err}");
}

fn advisory(event: &str, value: &str, seen: u64) -> String {
    format!(
        "{{\"protocol\":\"io.choria.sr.v2.age_advisory\",\"event_id\":\"x\",\"inspect_field\":\"sender\",\"age\":60,\
         \"seen\":{seen},\"replicator\":\"US\",\"timestamp\":{},\"event\":\"{event}\",\"value\":\"{value}\"}}",
        seen + 60
    )
}

#[tokio::test]
async fn replicator_advisories_prints_stored_ones_then_follows_new_ones() {
    let server = NatsServer::start();
    let client = connect(&server.url()).await;
    create_stream(&client, "ADVISORIES", &["adv.>"]).await;
    let js = async_nats::jetstream::new(client.clone());
    for (event, value) in [("new", "n1"), ("timeout", "n1")] {
        js.publish(
            format!("adv.{event}.{value}"),
            advisory(event, value, 1_700_000_000).into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    let url = server.url();
    let (code, text, err) = run(&["replicator", "advisories", &url, "adv.>"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains("new n1 seen 1m earlier on US"), "{text}");
    assert!(lines[1].contains("timeout n1"), "{text}");

    let (code, _, err) = run(&["replicator", "advisories", &url, "nostream.>"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("no JetStream stream stores nostream.>"),
        "{err}"
    );

    let mut child = Command::new(choir_bin())
        .args([
            "replicator",
            "advisories",
            &url,
            "adv.>",
            "--follow",
            "--json",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines_tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    async fn next(lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
        tokio::time::timeout(Duration::from_secs(20), lines.recv())
            .await
            .expect("a line within 20 s")
            .expect("output open")
    }
    // The stored ones first, then a live one.
    assert!(next(&mut lines_rx).await.contains("\"event\":\"new\""));
    assert!(next(&mut lines_rx).await.contains("\"event\":\"timeout\""));
    // Published until the follower prints it (it may still be subscribing).
    let mut live = None;
    for _ in 0..40 {
        client
            .publish(
                "adv.expire.n1",
                advisory("expire", "n1", 1_700_000_100).into(),
            )
            .await
            .unwrap();
        client.flush().await.unwrap();
        if let Ok(Some(line)) =
            tokio::time::timeout(Duration::from_millis(500), lines_rx.recv()).await
        {
            live = Some(line);
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let live = live.expect("a live advisory");
    assert!(live.contains("\"event\":\"expire\""), "{live}");
}
