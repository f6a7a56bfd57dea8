//! The slack task against a loopback HTTP server that records what it received: a
//! chat.postMessage with the token as a bearer header, the channel, the templated text, the
//! colour and the user name; Choria's defaults for colour and name; a reply without
//! `"ok": true` fails the task.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use common::http::recording_server;
use common::node::choir_bin;
use serde_json::Value;

/// Answers one request with `reply`; sends (request line + headers, body).
fn server(reply: &'static str) -> (String, mpsc::Receiver<(String, String)>) {
    recording_server("/api/chat.postMessage", vec![(200, reply)])
}

fn run(dir: &std::path::Path, task: &str) -> (i32, String) {
    let file = dir.join("slack.yaml");
    std::fs::write(
        &file,
        format!(
            "name: notify\nversion: '1'\nauthor: test\ndescription: posts to slack\n\
             inputs:\n  ticket:\n    description: ticket\n    type: String\n    default: CHG-7\n\
             tasks:\n  - slack:\n{task}"
        ),
    )
    .unwrap();
    let out = Command::new(choir_bin())
        .args(["playbook", "run"])
        .arg(&file)
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

#[test]
fn a_slack_task_posts_chat_post_message_with_token_channel_text_color_and_username() {
    let (url, received) = server(r#"{"ok":true,"channel":"C1","ts":"1.2"}"#);
    let dir = tempfile::tempdir().unwrap();
    let task = format!(
        "      url: \"{url}\"\n      token: xoxb-test-token\n      channel: \"#ops\"\n      \
         text: \"Deployed {{{{ inputs.ticket }}}}\"\n      color: \"#00ff00\"\n      \
         username: deploybot\n"
    );
    let (code, output) = run(dir.path(), &task);
    assert_eq!(code, 0, "{output}");
    let (head, body) = received.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        head.starts_with("POST /api/chat.postMessage HTTP/1.1"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("authorization: bearer xoxb-test-token"),
        "{head}"
    );
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["channel"], "#ops");
    assert_eq!(body["username"], "deploybot");
    assert_eq!(body["attachments"][0]["text"], "Deployed CHG-7");
    assert_eq!(body["attachments"][0]["color"], "#00ff00");
}

#[test]
fn a_slack_task_uses_choria_defaults_and_fails_when_slack_says_not_ok() {
    let (url, received) = server(r#"{"ok":false,"error":"channel_not_found"}"#);
    let dir = tempfile::tempdir().unwrap();
    let task = format!(
        "      url: \"{url}\"\n      token: t\n      channel: nowhere\n      text: hello\n"
    );
    let (code, output) = run(dir.path(), &task);
    assert_ne!(code, 0, "{output}");
    assert!(output.contains("channel_not_found"), "{output}");
    let (_, body) = received.recv_timeout(Duration::from_secs(10)).unwrap();
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["username"], "Choria");
    assert_eq!(body["attachments"][0]["color"], "#ffa449");
}

#[test]
fn a_slack_task_without_token_channel_or_text_is_refused_by_check() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "name: n\nversion: '1'\nauthor: a\ndescription: d\ntasks:\n  - slack:\n      color: red\n",
    )
    .unwrap();
    let out = Command::new(choir_bin())
        .args(["playbook", "check"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    for field in ["token", "channel", "text"] {
        assert!(
            stderr.contains(&format!("a slack task needs {field}")),
            "{stderr}"
        );
    }
}
