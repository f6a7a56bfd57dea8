//! The node's TOML config: parsing, defaults and validation.
//!
//! A file is parsed in two steps so that one mistake does not hide the next: TOML syntax
//! first, then every table on its own (`[node]`, each `[networks.X]`, …) with
//! `deny_unknown_fields`, then the checks across tables (references between sections,
//! duplicates). Every problem found is reported with its key and value.
//!
//! Adding a section means: a struct in its own file with `deny_unknown_fields` and a
//! `validate`, a field here, a line in [`SECTIONS`] and a line in [`parse`].

pub mod adapter;
pub mod compat;
pub mod defaults;
pub mod emulator;
pub mod federation;
#[cfg(test)]
mod fuzz_tests;
mod names;
pub mod network;
pub mod node;
pub mod replicator;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

pub use adapter::AdapterConfig;
pub use choir_actors::problems::{Problem, Problems};
pub use emulator::EmulatorConfig;
pub use federation::FederationConfig;
use names::{valid_name, NAME_RULE};
pub use network::{NetworkConfig, TlsConfig};
pub use node::NodeConfig;
pub use replicator::ReplicatorConfig;

/// The top-level tables a config file may have.
pub const SECTIONS: &[&str] = &[
    "node",
    "networks",
    "replicators",
    "adapters",
    "emulator",
    "federation",
];

/// Errors loading a config file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{path}: invalid TOML: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// The file is TOML but describes no valid node.
    #[error("{}", InvalidDisplay(path, problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

struct InvalidDisplay<'a>(&'a Path, &'a [Problem]);

impl fmt::Display for InvalidDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.1.len();
        write!(
            f,
            "{}: {n} problem{}",
            self.0.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for problem in self.1 {
            write!(f, "\n  {}: {problem}", self.0.display())?;
        }
        Ok(())
    }
}

/// A whole, validated node config.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// `[node]`.
    pub node: NodeConfig,
    /// `[networks.<name>]`.
    pub networks: BTreeMap<String, NetworkConfig>,
    /// `[replicators.<name>]`.
    pub replicators: BTreeMap<String, ReplicatorConfig>,
    /// `[adapters.<name>]`.
    pub adapters: BTreeMap<String, AdapterConfig>,
    /// `[emulator]`.
    pub emulator: Option<EmulatorConfig>,
    /// `[federation.<cluster>]`.
    pub federation: BTreeMap<String, FederationConfig>,
    /// Networks that are declared but could not be parsed (already reported); references to
    /// them are not reported again.
    pub broken_networks: std::collections::BTreeSet<String>,
}

/// Reads and validates the config at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text)
}

fn table<T: DeserializeOwned>(
    value: &toml::Value,
    key: &str,
    problems: &mut Problems,
) -> Option<T> {
    match T::deserialize(value.clone()) {
        Ok(v) => Some(v),
        Err(e) => {
            problems.key(key, e.message().trim_end_matches('.').to_owned());
            None
        }
    }
}

fn named_tables<T: DeserializeOwned>(
    root: &toml::Table,
    section: &str,
    problems: &mut Problems,
) -> BTreeMap<String, T> {
    let mut out = BTreeMap::new();
    let Some(value) = root.get(section) else {
        return out;
    };
    let Some(entries) = value.as_table() else {
        problems.key(
            section,
            format!("expected a table of [{section}.<name>] sections"),
        );
        return out;
    };
    for (name, value) in entries {
        let key = format!("{section}.{name}");
        if !valid_name(name) {
            problems.value(&key, name, NAME_RULE);
        }
        if let Some(v) = table(value, &key, problems) {
            out.insert(name.clone(), v);
        }
    }
    out
}

/// Parses and validates config `text`; `path` names the file in messages.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let root: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        path: path.to_owned(),
        message: e.to_string().trim_end().replace('\n', " "),
    })?;
    let mut problems = Problems::default();
    for key in root.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            problems.key(
                key,
                format!("unknown section (expected one of: {})", SECTIONS.join(", ")),
            );
        }
    }
    let node = match root.get("node") {
        Some(v) => table(v, "node", &mut problems).unwrap_or_default(),
        None => NodeConfig::default(),
    };
    let networks = named_tables::<NetworkConfig>(&root, "networks", &mut problems);
    let broken_networks = root
        .get("networks")
        .and_then(toml::Value::as_table)
        .map(|t| {
            t.keys()
                .filter(|k| !networks.contains_key(*k))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let replicators = named_tables::<ReplicatorConfig>(&root, "replicators", &mut problems);
    let adapters = named_tables::<AdapterConfig>(&root, "adapters", &mut problems);
    let federation = named_tables::<FederationConfig>(&root, "federation", &mut problems);
    let emulator = root
        .get("emulator")
        .and_then(|v| table(v, "emulator", &mut problems));
    let config = Config {
        path: path.to_owned(),
        node,
        networks,
        replicators,
        adapters,
        emulator,
        federation,
        broken_networks,
    };
    config.validate(&mut problems);
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid {
            path: path.to_owned(),
            problems: problems.into_vec(),
        })
    }
}

impl Config {
    fn validate(&self, problems: &mut Problems) {
        self.node.validate(problems);
        let mut ports: BTreeMap<u16, &str> = BTreeMap::new();
        let mut connection_names: BTreeMap<String, &str> = BTreeMap::new();
        for (name, network) in &self.networks {
            network.validate(name, problems);
            if let Some(port) = network.port.filter(|_| network.embedded) {
                if let Some(other) = ports.insert(port, name) {
                    problems.value(
                        format!("networks.{name}.port"),
                        port,
                        format!("networks.{other} uses the same port"),
                    );
                }
            }
            if let Some(cn) = &network.connection_name {
                if let Some(other) = connection_names.insert(cn.clone(), name) {
                    problems.value(
                        format!("networks.{name}.connection_name"),
                        cn,
                        format!("duplicate: networks.{other} has the same connection name"),
                    );
                }
            }
        }
        for (name, replicator) in &self.replicators {
            replicator.validate(name, self, problems);
        }
        for (name, adapter) in &self.adapters {
            adapter.validate(name, self, problems);
        }
        if let Some(emulator) = &self.emulator {
            emulator.validate(self, problems);
        }
        for (cluster, broker) in &self.federation {
            broker.validate(cluster, self, problems);
        }
    }

    /// Checks that `network` names a `[networks.X]` section; for sections that refer to
    /// networks.
    pub fn check_network_ref(&self, key: String, network: &str, problems: &mut Problems) {
        if !self.networks.contains_key(network) && !self.broken_networks.contains(network) {
            let known: Vec<&str> = self.networks.keys().map(String::as_str).collect();
            problems.value(
                key,
                network,
                format!(
                    "no such network (defined: {})",
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                ),
            );
        }
    }

    /// A human summary of what `choir run` would start.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let node = &self.node;
        out.push_str(&format!(
            "node {}: state_dir {}, monitor {}\n",
            node.name,
            node.state_dir.display(),
            node.monitor
        ));
        out.push_str(&format!("networks ({}):\n", self.networks.len()));
        for (name, n) in &self.networks {
            if n.embedded {
                let port = n
                    .port
                    .map_or_else(|| "a free port".to_owned(), |p| p.to_string());
                out.push_str(&format!(
                    "  {name}: embedded nats-server on 127.0.0.1, {port}, JetStream under {}\n",
                    node.state_dir.join("nats").join(name).display()
                ));
            } else {
                out.push_str(&format!("  {name}: {}\n", n.urls.join(", ")));
            }
        }
        for (name, r) in &self.replicators {
            out.push_str(&format!(
                "replicator {name}: {}/{} -> {}/{} ({:?}{})\n",
                r.source,
                r.stream,
                r.target,
                r.target_stream.as_deref().unwrap_or(&r.stream),
                r.mode,
                r.inspect
                    .as_ref()
                    .map_or_else(String::new, |i| format!(", sampled by {i}")),
            ));
        }
        for (name, a) in &self.adapters {
            out.push_str(&format!(
                "adapter {name}: {} {} -> stream {}\n",
                a.network, a.subject, a.stream
            ));
        }
        for (cluster, f) in &self.federation {
            out.push_str(&format!(
                "federation broker {cluster}: {} <-> {}\n",
                f.federation, f.collective
            ));
        }
        if let Some(e) = &self.emulator {
            out.push_str(&format!(
                "emulator: {} daemons on {}\n",
                e.instances, e.network
            ));
        }
        out
    }

    /// A JSON summary for `/debug/vars`.
    pub fn summary_json(&self) -> serde_json::Value {
        serde_json::json!({
            "path": self.path.display().to_string(),
            "node": self.node.name,
            "state_dir": self.node.state_dir.display().to_string(),
            "networks": self.networks.iter().map(|(name, n)| {
                (name.clone(), serde_json::json!({"embedded": n.embedded, "urls": n.urls}))
            }).collect::<serde_json::Map<_, _>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match parse(Path::new("t.toml"), text) {
            Ok(_) => vec![],
            Err(ConfigError::Invalid { problems, .. }) => {
                problems.iter().map(ToString::to_string).collect()
            }
            Err(e) => vec![e.to_string()],
        }
    }

    #[test]
    fn an_empty_file_is_a_node_with_defaults() {
        let config = parse(Path::new("t.toml"), "").unwrap();
        assert_eq!(config.node.name, "choir");
        assert!(config.networks.is_empty());
    }

    #[test]
    fn every_problem_is_reported_not_just_the_first() {
        let found = problems(
            r#"
            [node]
            monitor = "nowhere"
            [networks.a]
            urls = ["htp://127.0.0.1:4222"]
            [networks.b]
            urlz = ["nats://127.0.0.1:4222"]
            "#,
        );
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(
            found
                .iter()
                .any(|p| p.contains("node.monitor = \"nowhere\"")),
            "{found:#?}"
        );
        assert!(found
            .iter()
            .any(|p| p.contains("networks.a.urls[0] = \"htp://127.0.0.1:4222\"")));
        assert!(found
            .iter()
            .any(|p| p.contains("networks.b") && p.contains("urlz")));
    }

    #[test]
    fn msg_id_defaults_by_mode_and_queued_mode_cannot_drop_it() {
        let base = "[networks.a]\nurls=[\"nats://127.0.0.1:1\"]\n[networks.b]\nurls=[\"nats://127.0.0.1:2\"]\n\
                    [replicators.r]\nsource=\"a\"\ntarget=\"b\"\nstream=\"S\"\n";
        let settings = |extra: &str| {
            let config = parse(Path::new("t.toml"), &format!("{base}{extra}")).unwrap();
            config.replicators["r"].settings("r", Path::new("/tmp"))
        };
        assert!(!settings("").msg_id);
        assert!(settings("msg_id = true\n").msg_id);
        assert!(settings("mode = \"queued\"\n").msg_id);
        let found = problems(&format!("{base}mode = \"queued\"\nmsg_id = false\n"));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("replicators.r.msg_id = \"false\""),
            "{found:?}"
        );
    }

    #[test]
    fn compat_comes_from_the_replicator_else_the_node() {
        let base = "[networks.a]\nurls=[\"nats://127.0.0.1:1\"]\n[networks.b]\nurls=[\"nats://127.0.0.1:2\"]\n\
                    [replicators.r]\nsource=\"a\"\ntarget=\"b\"\nstream=\"S\"\n";
        let compat = |node: &str, extra: &str| {
            let config = parse(
                Path::new("t.toml"),
                &format!("[node]\n{node}\n{base}{extra}"),
            )
            .unwrap();
            config.replicators["r"]
                .choria_compat(&config.node)
                .map(|c| c.site)
        };
        assert_eq!(compat("name = \"site1\"", ""), None);
        assert_eq!(
            compat("name = \"site1\"\ncompat = \"choria\"", "").as_deref(),
            Some("site1")
        );
        assert_eq!(compat("compat = \"choria\"", "compat = \"choir\"\n"), None);
        assert_eq!(
            compat("", "compat = \"choria\"\n").as_deref(),
            Some("choir")
        );
        let found = problems(&format!("{base}compat = \"sr\"\n"));
        assert_eq!(found.len(), 1, "{found:?}");
        let found = problems(&format!("{base}heartbeat_subject = \"a.*\"\n"));
        assert_eq!(found.len(), 2, "{found:?}");
    }

    #[test]
    fn unknown_sections_are_named() {
        let found = problems("[nodes]\nname = \"x\"\n");
        assert_eq!(found.len(), 1);
        assert!(found[0].starts_with("nodes: unknown section"), "{found:?}");
    }

    #[test]
    fn bad_durations_name_the_key() {
        let found =
            problems("[networks.a]\nurls=[\"nats://h:1\"]\nconnect_timeout = \"5 parsecs\"\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("networks.a:"), "{found:?}");
    }

    #[test]
    fn duplicate_embedded_ports_and_connection_names_are_refused() {
        let found = problems(
            r#"
            [networks.a]
            urls = ["nats://h:1"]
            connection_name = "x"
            [networks.b]
            urls = ["nats://h:2"]
            connection_name = "x"
            "#,
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("networks.b.connection_name = \"x\""),
            "{found:?}"
        );
    }

    #[test]
    fn syntax_errors_name_the_file_and_line() {
        let err = parse(Path::new("bad.toml"), "[node\nname = 1").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("bad.toml: invalid TOML"), "{text}");
        assert!(text.contains("line 1"), "{text}");
    }

    #[test]
    fn network_references_must_exist() {
        let config = parse(Path::new("t.toml"), "[networks.a]\nurls=[\"nats://h:1\"]\n").unwrap();
        let mut problems = Problems::default();
        config.check_network_ref("replicators.x.source".into(), "b", &mut problems);
        let found = problems.into_vec();
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].to_string(),
            "replicators.x.source = \"b\": no such network (defined: a)"
        );
    }
}
