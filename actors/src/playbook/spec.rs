//! The playbook file as written: serde types for TOML, every struct `deny_unknown_fields`.
//!
//! Task and store tables are "bags": one struct with every key any type may use, so an unknown
//! key is rejected by serde and a key that does not belong to the chosen `type` is rejected by
//! validation ([`super::validate`]), both naming the key.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

pub mod duration;

/// A whole playbook file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaybookSpec {
    /// Editors' schema hint; ignored.
    #[serde(rename = "$schema", default)]
    pub schema: Option<String>,
    /// Name, version, author, description (all required): here or as top-level keys.
    #[serde(default)]
    pub metadata: Metadata,
    /// The playbook's name (Choria's top-level form of `metadata.name`).
    #[serde(default)]
    pub name: Option<String>,
    /// Its version.
    #[serde(default)]
    pub version: Option<String>,
    /// Its author.
    #[serde(default)]
    pub author: Option<String>,
    /// What it does.
    #[serde(default)]
    pub description: Option<String>,
    /// Free-form tags.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Log level of the run: debug, info, warn, error or fatal (recorded; `RUST_LOG` decides).
    #[serde(default)]
    pub loglevel: Option<String>,
    /// The caller id the playbook runs as (recorded and checked, not yet used for signing).
    #[serde(default)]
    pub run_as: Option<String>,
    /// Choria's `on_fail` top-level key: accepted, never used (as in Choria).
    #[serde(default)]
    pub on_fail: Option<String>,
    /// Inputs by name.
    #[serde(default)]
    pub inputs: BTreeMap<String, InputSpec>,
    /// Data stores by name.
    #[serde(default)]
    pub data_stores: BTreeMap<String, StoreSpec>,
    /// Locks: `store` (the playbook's own lock) or `store/key`.
    #[serde(default)]
    pub locks: Vec<String>,
    /// Node sets by name.
    #[serde(default)]
    pub nodes: BTreeMap<String, NodeSetSpec>,
    /// Agents the playbook uses with a version range (`rpcutil: "~1.0.0"`); node sets that
    /// list an agent in their `uses` check it on every node.
    #[serde(default)]
    pub uses: BTreeMap<String, String>,
    /// The main task list.
    #[serde(default)]
    pub tasks: Vec<TaskSpec>,
    /// Hook task lists.
    #[serde(default)]
    pub hooks: HooksSpec,
    /// How discovery node sets and `rpc` tasks reach the Choria network.
    #[serde(default)]
    pub client: Option<ClientSpec>,
}

/// `[client]`: the NATS connection of discovery node sets and `rpc` tasks. Flags of
/// `choir playbook run` (`--server`, `--collective`, `--federation`) override it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    /// NATS server URLs (default `nats://127.0.0.1:4222`).
    #[serde(default)]
    pub servers: Vec<String>,
    /// The collective (default `mcollective`).
    #[serde(default)]
    pub collective: Option<String>,
    /// Publish through the federation brokers of these clusters.
    #[serde(default)]
    pub federation: Vec<String>,
    /// How long discovery waits for nodes (default 2s).
    #[serde(default, deserialize_with = "duration::deserialize")]
    pub timeout: Option<Duration>,
    /// A Choria client config (`client.cfg`) to take servers, identity, collective,
    /// certificates and NATS credentials from; the keys here override it.
    #[serde(default)]
    pub config: Option<std::path::PathBuf>,
    /// A NATS `.creds` file.
    #[serde(default)]
    pub credentials: Option<std::path::PathBuf>,
    /// NATS user name, with `password`.
    #[serde(default)]
    pub user: Option<String>,
    /// NATS password, with `user`.
    #[serde(default)]
    pub password: Option<String>,
    /// NATS bearer token.
    #[serde(default)]
    pub token: Option<String>,
    /// NATS user nkey seed (`SU…`).
    #[serde(default)]
    pub nkey_seed: Option<String>,
    /// TLS; `cert` and `key` also sign every request (secure mode).
    #[serde(default)]
    pub tls: Option<ClientTlsSpec>,
    /// Send unsigned (insecure) requests even with a certificate and key.
    #[serde(default)]
    pub insecure: bool,
}

/// `[client.tls]`, as `[networks.<name>.tls]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTlsSpec {
    /// CA bundle (PEM) that verifies the servers.
    pub ca: Option<std::path::PathBuf>,
    /// Client certificate (PEM), with `key`; also signs requests.
    pub cert: Option<std::path::PathBuf>,
    /// Private key (PEM, PKCS#8 or PKCS#1) of `cert`.
    pub key: Option<std::path::PathBuf>,
}

/// `[metadata]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// The playbook's name; also names its default lock.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its author.
    pub author: String,
    /// What it does.
    pub description: String,
    /// Free-form tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// The type of an input value. Written in any case, with or without a leading `:`, in
/// choir's names or Choria's (`String`, `Integer`/`Fixnum`, `Float`, `Numeric`, `Array`,
/// `Boolean`/`:bool`, `Hash`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    /// Any string.
    String,
    /// A signed 64-bit integer.
    Integer,
    /// A float.
    Float,
    /// An integer or a float (Choria's `Numeric`).
    Numeric,
    /// true / false (a bare `--NAME` flag on the command line).
    Bool,
    /// A list (JSON, or comma-separated on the command line).
    Array,
    /// A map (JSON on the command line).
    Map,
}

impl InputType {
    /// The name as written in playbooks.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Integer => "integer",
            Self::Float => "float",
            Self::Numeric => "numeric",
            Self::Bool => "bool",
            Self::Array => "array",
            Self::Map => "map",
        }
    }

    /// Parses a type name in any of its spellings.
    pub fn from_name(name: &str) -> Option<Self> {
        let lower = name.trim().trim_start_matches(':').to_ascii_lowercase();
        Some(match lower.as_str() {
            "string" | "str" => Self::String,
            "integer" | "int" | "fixnum" => Self::Integer,
            "float" => Self::Float,
            "numeric" | "number" => Self::Numeric,
            "bool" | "boolean" => Self::Bool,
            "array" | "list" => Self::Array,
            "map" | "hash" => Self::Map,
            _ => return None,
        })
    }
}

impl<'de> Deserialize<'de> for InputType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Self::from_name(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown input type {name:?} (String, Integer, Float, Numeric, Boolean, Array or Hash, any case)"
            ))
        })
    }
}

/// A validation rule: a name (`shellsafe`, `ipv4`, `ipv6`, `/regex/`) or a list of allowed
/// values.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum ValidationSpec {
    /// `shellsafe`, `ipv4`, `ipv6` (a leading `:` is accepted) or `/regex/`.
    Named(String),
    /// The value must be one of these.
    OneOf(Vec<toml::Value>),
}

/// `[inputs.X]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Help text.
    #[serde(default)]
    pub description: String,
    /// The value's type.
    #[serde(rename = "type")]
    pub kind: InputType,
    /// Whether the run fails without a value: default true, as in Choria, except for an input
    /// bound to `data` (see [`InputSpec::is_required`]).
    #[serde(default)]
    pub required: Option<bool>,
    /// The value used when none is given or stored.
    #[serde(default)]
    pub default: Option<toml::Value>,
    /// A rule every value (given or read from a store) must pass.
    #[serde(default)]
    pub validation: Option<ValidationSpec>,
    /// `store/key` this input is bound to.
    #[serde(default)]
    pub data: Option<String>,
    /// Hidden from the command line: always read from `data` (or the default).
    #[serde(default)]
    pub dynamic: bool,
    /// Write a command-line value to `data` during prepare.
    #[serde(default)]
    pub save: bool,
}

impl InputSpec {
    /// `required` as written, else true unless the input is bound to `data`.
    pub fn is_required(&self) -> bool {
        self.required.unwrap_or(self.data.is_none())
    }
}

/// `[data_stores.X]`: every key any store type takes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSpec {
    /// `memory`, `nats_kv`, `etcd`, `consul`, `file` or `environment`.
    #[serde(rename = "type")]
    pub kind: String,
    /// How long to wait for a lock (default 120s).
    #[serde(default, deserialize_with = "duration::deserialize")]
    pub timeout: Option<Duration>,
    /// How long a lock outlives a crashed holder (default 20s).
    #[serde(default, deserialize_with = "duration::deserialize")]
    pub ttl: Option<Duration>,
    /// nats_kv: server URLs.
    #[serde(default)]
    pub servers: Vec<String>,
    /// nats_kv: data bucket (default `CHOIR_PLAYBOOK`).
    #[serde(default)]
    pub bucket: Option<String>,
    /// nats_kv: lock bucket (default `<bucket>_LOCKS`).
    #[serde(default)]
    pub lock_bucket: Option<String>,
    /// nats_kv: bucket replicas (default 1).
    #[serde(default)]
    pub replicas: Option<usize>,
    /// etcd: the client URL (default `http://127.0.0.1:2379`); consul: the agent URL
    /// (default `http://127.0.0.1:8500`).
    #[serde(default)]
    pub url: Option<String>,
    /// consul: the ACL token, sent as `X-Consul-Token`.
    #[serde(default)]
    pub token: Option<String>,
    /// file: path of the JSON file.
    #[serde(default)]
    pub file: Option<String>,
    /// file: create the file when missing.
    #[serde(default)]
    pub create: bool,
    /// environment: variable prefix (default `PB_`).
    #[serde(default)]
    pub prefix: Option<String>,
}

/// `[nodes.X]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSetSpec {
    /// `list`, `file`, `discovery` (`mcollective`), `yaml` or `shell`.
    #[serde(rename = "type")]
    pub kind: String,
    /// list: the nodes.
    #[serde(default)]
    pub nodes: Vec<String>,
    /// file: one node per line (`#` comments) or a JSON list.
    #[serde(default)]
    pub file: Option<String>,
    /// discovery: how to discover; `mc` (Choria's default) or `broadcast`, both a broadcast
    /// discovery through the choir client.
    #[serde(default)]
    pub discovery_method: Option<String>,
    /// discovery: agents every node must have.
    #[serde(default)]
    pub agents: Vec<String>,
    /// discovery: fact filters.
    #[serde(default)]
    pub facts: Vec<String>,
    /// discovery: class filters.
    #[serde(default)]
    pub classes: Vec<String>,
    /// discovery: identity filters.
    #[serde(default)]
    pub identities: Vec<String>,
    /// discovery: compound filter.
    #[serde(default)]
    pub compound: Option<String>,
    /// yaml: the YAML file of groups (a map of group name to a list of nodes).
    #[serde(default)]
    pub source: Option<String>,
    /// yaml: the group to take.
    #[serde(default)]
    pub group: Option<String>,
    /// shell: the command that prints one node per line (run without a shell).
    #[serde(default)]
    pub script: Option<String>,
    /// discovery: how long to wait for nodes (default: `[client] timeout`, 2s); shell: the
    /// script's time limit (default 10s).
    #[serde(default, deserialize_with = "duration::deserialize")]
    pub timeout: Option<Duration>,
    /// Fail with fewer nodes than this (default 1).
    #[serde(default)]
    pub at_least: Option<usize>,
    /// Keep only the first N.
    #[serde(default)]
    pub limit: Option<usize>,
    /// An empty set is fine (forces `at_least = 0`).
    #[serde(default)]
    pub empty_ok: bool,
    /// Error message when the set is empty.
    #[serde(default)]
    pub when_empty: Option<String>,
    /// Ping every node (`rpcutil#ping`) after discovery; one that does not answer fails the
    /// run.
    #[serde(default)]
    pub test: bool,
    /// Agents whose version on every node is checked (`rpcutil#agent_inventory`) against the
    /// range the top-level `uses` gives them.
    #[serde(default)]
    pub uses: Vec<String>,
}

/// A shell command: a string split like a shell would (without running one), or an argument
/// list.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum CommandSpec {
    /// Split into words; each templated value stays inside its word.
    Line(String),
    /// Used as given; each element is templated on its own.
    Args(Vec<String>),
}

/// One `[[tasks]]` (or hook) entry: every key any task type takes.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// `shell`, `data`, `sleep`, `webhook`, `slack`, `graphite_event` or `rpc`
    /// (`mcollective`); in YAML the
    /// entry's key.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// What the task does (templated).
    #[serde(default)]
    pub description: Option<String>,
    /// Attempts (default 1).
    #[serde(default)]
    pub tries: Option<u32>,
    /// Sleep between tries (default 10s).
    #[serde(default, deserialize_with = "duration::deserialize")]
    pub try_sleep: Option<Duration>,
    /// Sleep before the first try.
    #[serde(default, deserialize_with = "duration::deserialize")]
    pub pre_sleep: Option<Duration>,
    /// A failure after the last try counts as success.
    #[serde(default)]
    pub fail_ok: bool,
    /// shell: the command.
    #[serde(default)]
    pub command: Option<CommandSpec>,
    /// shell: working directory.
    #[serde(default)]
    pub cwd: Option<String>,
    /// shell, webhook, slack, rpc: time limit.
    #[serde(default, deserialize_with = "duration::deserialize")]
    pub timeout: Option<Duration>,
    /// shell: extra environment.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// data: `write` or `delete`; rpc: the action.
    #[serde(default)]
    pub action: Option<String>,
    /// data: `store/key`.
    #[serde(default)]
    pub key: Option<String>,
    /// data: the value to write (templated).
    #[serde(default)]
    pub value: Option<toml::Value>,
    /// sleep: how long.
    #[serde(default, deserialize_with = "duration::deserialize")]
    pub duration: Option<Duration>,
    /// webhook: the URL; slack: the chat.postMessage API URL (default Slack's).
    #[serde(default)]
    pub url: Option<String>,
    /// webhook: GET or POST (default POST).
    #[serde(default)]
    pub method: Option<String>,
    /// webhook: extra headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// webhook: JSON body (POST) or query parameters (GET).
    #[serde(default)]
    pub body: Option<toml::Value>,
    /// webhook: accepted status codes (default 200 and 201).
    #[serde(default)]
    pub expect_status: Vec<u16>,
    /// rpc: the agent.
    #[serde(default)]
    pub agent: Option<String>,
    /// rpc: request properties.
    #[serde(default)]
    pub properties: Option<toml::Value>,
    /// rpc, shell: node list (usually `{{ nodes.X }}`).
    #[serde(default)]
    pub nodes: Option<toml::Value>,
    /// rpc: nodes per batch.
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// rpc: expression every reply's data must satisfy.
    #[serde(default)]
    pub assert: Option<String>,
    /// rpc: pause between batches.
    #[serde(default, deserialize_with = "duration::deserialize")]
    pub batch_sleep_time: Option<Duration>,
    /// rpc: Choria's "do not print replies"; choir never prints them, so accepted only.
    #[serde(default)]
    pub silent: Option<bool>,
    /// rpc: post-processing; `summarize` (choir's message is always a summary).
    #[serde(default)]
    pub post: Vec<String>,
    /// webhook: Choria's name of `url`.
    #[serde(default)]
    pub uri: Option<String>,
    /// webhook: Choria's name of `body`; graphite_event: the event's data.
    #[serde(default)]
    pub data: Option<toml::Value>,
    /// webhook: verify the server's TLS certificate (default true).
    #[serde(default)]
    pub verify_ssl: Option<bool>,
    /// slack: the bot token, sent as `Authorization: Bearer`.
    #[serde(default)]
    pub token: Option<String>,
    /// slack: the channel.
    #[serde(default)]
    pub channel: Option<String>,
    /// slack: the message (templated).
    #[serde(default)]
    pub text: Option<String>,
    /// slack: the attachment colour (default `#ffa449`).
    #[serde(default)]
    pub color: Option<String>,
    /// slack: the name posted as (default `Choria`).
    #[serde(default)]
    pub username: Option<String>,
    /// graphite_event: what happened (the event's title).
    #[serde(default)]
    pub what: Option<String>,
    /// graphite_event: the events API URL, e.g. `http://graphite/events/`.
    #[serde(default)]
    pub graphite: Option<String>,
    /// graphite_event: the event's tags (default `[choria]`).
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

/// `[hooks]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HooksSpec {
    /// Before the main tasks; a failure skips them.
    #[serde(default)]
    pub pre_book: Vec<TaskSpec>,
    /// Before each main task; a failure fails that task.
    #[serde(default)]
    pub pre_task: Vec<TaskSpec>,
    /// After each main task; a failure fails that task.
    #[serde(default)]
    pub post_task: Vec<TaskSpec>,
    /// After the main tasks succeeded; decides success.
    #[serde(default)]
    pub on_success: Vec<TaskSpec>,
    /// After a failure; its outcome is reported but ignored.
    #[serde(default)]
    pub on_fail: Vec<TaskSpec>,
    /// Always last; a failure fails the playbook.
    #[serde(default)]
    pub post_book: Vec<TaskSpec>,
}

impl HooksSpec {
    /// Every hook list with its name, in run order.
    pub fn lists(&self) -> [(&'static str, &Vec<TaskSpec>); 6] {
        [
            ("pre_book", &self.pre_book),
            ("pre_task", &self.pre_task),
            ("post_task", &self.post_task),
            ("on_success", &self.on_success),
            ("on_fail", &self.on_fail),
            ("post_book", &self.post_book),
        ]
    }
}
