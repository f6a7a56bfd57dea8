//! Property tests of the playbook loader over TOML-ish text: the example playbooks mutated,
//! and playbooks assembled from real section and key names with odd values. Whatever the
//! text, loading gives a playbook or an error naming the file, never a panic; the template
//! parser gets the same treatment. The YAML front-end (Choria's layout) is fed the seed's
//! playbook mutated, indented key/value lines and random text the same way.

use std::path::Path;

use super::template;
use super::validate::parse;
use crate::fuzzing::{cases, mutate_text, mutations};
use proptest::prelude::*;

const EXAMPLES: [&str; 5] = [
    include_str!("../../../config/playbooks/deploy_cluster.toml"),
    include_str!("../../../config/playbooks/deploy_cluster_etcd.toml"),
    include_str!("../../../config/playbooks/emulated_fleet.toml"),
    include_str!("../../../config/playbooks/maintenance.toml"),
    include_str!("../../../config/playbooks/restart_emulated.toml"),
];

const FILE: &str = "fuzz/playbook.toml";

/// The seed's YAML playbook, as Choria's layout writes it.
const YAML_EXAMPLE: &str = include_str!("../../../config/playbooks/data_sources.yaml");

const YAML_FILE: &str = "fuzz/playbook.yaml";

/// Loading YAML-ish `text` gives a playbook or an error naming the file.
fn check_yaml(text: &str) -> Result<(), proptest::test_runner::TestCaseError> {
    if let Err(e) = parse(Path::new(YAML_FILE), text) {
        prop_assert!(e.to_string().starts_with(YAML_FILE), "{}", e);
    }
    Ok(())
}

fn check(text: &str) -> Result<(), proptest::test_runner::TestCaseError> {
    if let Err(e) = parse(Path::new(FILE), text) {
        prop_assert!(e.to_string().starts_with(FILE), "{}", e);
    }
    for line in text.lines() {
        let _ = template::parse(line);
        let _ = template::expressions(line);
    }
    Ok(())
}

/// A table header of the playbook format.
fn header() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[metadata]".to_owned()),
        Just("[client]".to_owned()),
        Just("[[tasks]]".to_owned()),
        "\\[\\[hooks\\.(pre_book|pre_task|post_task|on_success|on_fail|post_book|x)\\]\\]"
            .prop_map(|s| s),
        "\\[(inputs|data_stores|nodes)\\.[a-z_\\-é. ]{0,6}\\]",
        "\\[[a-z\\[\\]. ]{0,10}\\]",
    ]
}

/// A key any table of the format uses, or not.
fn key() -> impl Strategy<Value = String> {
    proptest::sample::select(vec![
        "name",
        "version",
        "author",
        "description",
        "tags",
        "type",
        "required",
        "default",
        "validation",
        "data",
        "dynamic",
        "save",
        "timeout",
        "ttl",
        "servers",
        "bucket",
        "lock_bucket",
        "replicas",
        "url",
        "file",
        "create",
        "prefix",
        "nodes",
        "at_least",
        "limit",
        "when_empty",
        "empty_ok",
        "agents",
        "facts",
        "classes",
        "identities",
        "compound",
        "discovery_method",
        "source",
        "group",
        "script",
        "test",
        "what",
        "graphite",
        "command",
        "cwd",
        "environment",
        "tries",
        "try_sleep",
        "pre_sleep",
        "fail_ok",
        "action",
        "key",
        "value",
        "duration",
        "method",
        "headers",
        "body",
        "expect_status",
        "agent",
        "properties",
        "batch_size",
        "assert",
        "locks",
        "uses",
        "collective",
        "federation",
        "unknown",
    ])
    .prop_map(str::to_owned)
}

/// Values of every TOML type, and the strings validation looks into.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "\"[a-z0-9 ./_\\-]{0,10}\"",
        Just("\"{{ inputs.cluster }}\"".to_owned()),
        Just("\"{{{ nodes.x }}} {{ previous_task.data }} {{ date(%Y-%j) }}\"".to_owned()),
        Just("\"{{ \"".to_owned()),
        Just("\"/(/\"".to_owned()),
        Just("\"/^a{1000}{1000}$/\"".to_owned()),
        Just("\"pb_data/choria/kv/x\"".to_owned()),
        Just("\"string\"".to_owned()),
        Just("\"shellsafe\"".to_owned()),
        Just("\"nats_kv\"".to_owned()),
        Just("\"memory\"".to_owned()),
        Just("\"graphite_event\"".to_owned()),
        Just("\"yaml\"".to_owned()),
        Just("\"shell\"".to_owned()),
        Just("\"mcollective\"".to_owned()),
        Just("\">= 1.0.0 < 2\"".to_owned()),
        Just("\"~1 || 1.x - \"".to_owned()),
        Just("\"20s\"".to_owned()),
        Just("\"-1s\"".to_owned()),
        Just("\"99999999999999999999h\"".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        any::<bool>().prop_map(|b| b.to_string()),
        Just("[]".to_owned()),
        Just("[\"a\", 1, true]".to_owned()),
        Just("{ a = 1, b = \"x\" }".to_owned()),
        Just("1979-05-27T07:32:00Z".to_owned()),
        Just("'''\nmulti\n'''".to_owned()),
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
    #![proptest_config(cases(256))]

    #[test]
    fn mutated_examples_never_panic(example in 0usize..EXAMPLES.len(), muts in mutations(8)) {
        check(EXAMPLES[example])?;
        check(&mutate_text(EXAMPLES[example], &muts))?;
    }

    #[test]
    fn assembled_playbooks_never_panic(body in toml_ish(), example in 0usize..EXAMPLES.len()) {
        check(&body)?;
        // Appended to a valid playbook, the odd lines reach validation.
        check(&format!("{}\n{body}", EXAMPLES[example]))?;
    }

    #[test]
    fn random_text_never_panics(text in "\\PC{0,200}") {
        check(&text)?;
        check_yaml(&text)?;
    }

    #[test]
    fn mutated_yaml_playbooks_never_panic(muts in mutations(8)) {
        check_yaml(YAML_EXAMPLE)?;
        check_yaml(&mutate_text(YAML_EXAMPLE, &muts))?;
    }

    #[test]
    fn assembled_yaml_playbooks_never_panic(
        lines in proptest::collection::vec(
            (0usize..6, key(), value()).prop_map(|(indent, k, v)| {
                format!("{}{k}: {v}", "  ".repeat(indent % 3))
            }),
            0..24,
        ),
    ) {
        let body = lines.join("\n");
        check_yaml(&body)?;
        // Appended to a valid playbook, the odd lines reach validation.
        check_yaml(&format!("{YAML_EXAMPLE}\n{body}"))?;
    }
}
