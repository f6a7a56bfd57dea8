//! Property tests of the node config loader over TOML-ish text: the example configs mutated
//! (bytes flipped, inserted, deleted, cut, TOML tokens spliced in) and configs assembled from
//! real section and key names with odd values. Whatever the text, loading gives a config or
//! an error naming the file, never a panic.
//!
//! 256 cases per property unless `PROPTEST_CASES` says otherwise.

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};

use super::parse;

const EXAMPLES: [&str; 2] = [
    include_str!("../../config/demo.toml"),
    include_str!("../../config/external.toml"),
];

const FILE: &str = "fuzz/node.toml";

fn cases() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

const TOKENS: &[&str] = &[
    "\"", "'", "[", "]", "[[", "]]", "{", "}", "=", ",", ".", "#", "\n", "\"\"\"", "'''", "\\u",
    "\\", "0x", "1e999", "-", "inf", "nan", "é", "\u{0}", "%s", "%v", "*", ">",
];

#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Delete(usize),
    Truncate(usize),
    Token(usize, &'static str),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
        any::<usize>().prop_map(Edit::Delete),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), proptest::sample::select(TOKENS)).prop_map(|(i, t)| Edit::Token(i, t)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for e in edits {
        let len = bytes.len();
        match e {
            Edit::Flip(i, b) if len > 0 => bytes[i % len] ^= (*b).max(1),
            Edit::Delete(i) if len > 0 => {
                bytes.remove(i % len);
            }
            Edit::Truncate(i) => bytes.truncate(i % (len + 1)),
            Edit::Token(i, t) => {
                let at = i % (len + 1);
                bytes.splice(at..at, t.bytes());
            }
            _ => {}
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn check(text: &str) -> Result<(), TestCaseError> {
    if let Err(e) = parse(Path::new(FILE), text) {
        prop_assert!(e.to_string().contains(FILE), "{}", e);
    }
    Ok(())
}

fn header() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[node]".to_owned()),
        Just("[emulator]".to_owned()),
        Just("[emulator.facts]".to_owned()),
        "\\[(networks|replicators|adapters|federation)\\.[a-z_\\-é. ]{0,6}\\]",
        "\\[replicators\\.[a-z]{1,3}\\.advisories\\]",
        "\\[[a-z\\[\\]. ]{0,10}\\]",
    ]
}

fn key() -> impl Strategy<Value = String> {
    proptest::sample::select(vec![
        "name",
        "state_dir",
        "monitor",
        "shutdown_timeout",
        "embedded",
        "port",
        "urls",
        "user",
        "password",
        "token",
        "creds",
        "tls",
        "source",
        "target",
        "stream",
        "target_stream",
        "mode",
        "workers",
        "window",
        "window_bytes",
        "msg_id",
        "start",
        "max_age",
        "inspect",
        "age",
        "size_trigger",
        "force_field",
        "max_senders",
        "subject",
        "reliable",
        "dead_letter",
        "max_rejections",
        "ack_wait",
        "heartbeat",
        "network",
        "queue_group",
        "stream_subject",
        "protocol",
        "create_stream",
        "max_pending",
        "publish_retries",
        "instances",
        "agents",
        "collectives",
        "registration_interval",
        "registration_subject",
        "classes",
        "federation",
        "collective",
        "identity",
        "queue_size",
        "unknown",
    ])
    .prop_map(str::to_owned)
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "\"[a-z0-9 ./_%\\-]{0,10}\"",
        Just("\"region\"".to_owned()),
        Just("\"REGISTRATION\"".to_owned()),
        Just("\"registration.%s\"".to_owned()),
        Just("\"choir.%s.%v.%s\"".to_owned()),
        Just("\"ordered\"".to_owned()),
        Just("\"queued\"".to_owned()),
        Just("\"choria\"".to_owned()),
        Just("\"header:\"".to_owned()),
        Just("\"subject:-99999999999999999999\"".to_owned()),
        Just("\"$.\"".to_owned()),
        Just("\"1m\"".to_owned()),
        Just("\"0s\"".to_owned()),
        Just("\"99999999999999999999h\"".to_owned()),
        Just("\"127.0.0.1:99999\"".to_owned()),
        Just("[\"nats://127.0.0.1:4222\", \"\"]".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        any::<bool>().prop_map(|b| b.to_string()),
        Just("[]".to_owned()),
        Just("{ a = 1 }".to_owned()),
        "\\PC{0,8}",
    ]
}

fn toml_ish() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        1 => header(),
        4 => (key(), value()).prop_map(|(k, v)| format!("{k} = {v}")),
    ];
    proptest::collection::vec(line, 0..24).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn mutated_examples_never_panic(
        example in 0usize..EXAMPLES.len(),
        edits in proptest::collection::vec(edit(), 1..8),
    ) {
        check(EXAMPLES[example])?;
        check(&apply(EXAMPLES[example], &edits))?;
    }

    #[test]
    fn assembled_configs_never_panic(body in toml_ish(), example in 0usize..EXAMPLES.len()) {
        check(&body)?;
        check(&format!("{}\n{body}", EXAMPLES[example]))?;
    }

    #[test]
    fn random_text_never_panics(text in "\\PC{0,200}") {
        check(&text)?;
    }
}
