//! Loading and validating a playbook file: every problem is collected with its key and value,
//! and the result is a [`Playbook`] the runner can trust.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::client::ClientSettings;
use super::input::{coerce, toml_to_json, Rule};
use super::spec::{
    ClientSpec, CommandSpec, HooksSpec, InputSpec, NodeSetSpec, PlaybookSpec, StoreSpec, TaskSpec,
};
use super::store::{StoreConfig, StoreKind, DEFAULT_TIMEOUT, DEFAULT_TTL};
use super::template::{self, Expr};
use super::PlaybookError;
use crate::names::valid_name;
pub use crate::problems::Problem;
use crate::problems::Problems;

/// A validated input.
#[derive(Clone, Debug)]
pub struct Input {
    /// Its name.
    pub name: String,
    /// As written.
    pub spec: InputSpec,
    /// Its compiled validation rule.
    pub rule: Option<Rule>,
    /// Its default, typed.
    pub default: Option<Value>,
    /// `(store, key)` it is bound to.
    pub binding: Option<(String, String)>,
}

impl Input {
    /// Checks a value's type and rule; the error names neither file nor key.
    pub fn accept(&self, value: Value) -> Result<Value, String> {
        let value = coerce(self.spec.kind, value)?;
        if let Some(rule) = &self.rule {
            rule.check(&value)?;
        }
        Ok(value)
    }
}

/// A validated node set.
#[derive(Clone, Debug)]
pub struct NodeSet {
    /// As written.
    pub spec: NodeSetSpec,
    /// The minimum size (0 with `empty_ok`).
    pub at_least: usize,
}

/// The task types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// Run a command without a shell.
    Shell,
    /// Write or delete a store key.
    Data,
    /// Wait.
    Sleep,
    /// HTTP request.
    Webhook,
    /// A Slack message (chat.postMessage).
    Slack,
    /// An event posted to Graphite's events API.
    GraphiteEvent,
    /// Choria RPC.
    Rpc,
}

impl TaskKind {
    /// The name as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shell => "shell",
            Self::Data => "data",
            Self::Sleep => "sleep",
            Self::Webhook => "webhook",
            Self::Slack => "slack",
            Self::GraphiteEvent => "graphite_event",
            Self::Rpc => "rpc",
        }
    }
}

/// A validated task.
#[derive(Clone, Debug)]
pub struct Task {
    /// Its type.
    pub kind: TaskKind,
    /// As written (templates rendered per try).
    pub spec: TaskSpec,
}

/// The hook lists, validated.
#[derive(Clone, Debug, Default)]
pub struct Hooks {
    /// Before the main tasks.
    pub pre_book: Vec<Task>,
    /// Before each main task.
    pub pre_task: Vec<Task>,
    /// After each main task.
    pub post_task: Vec<Task>,
    /// After success.
    pub on_success: Vec<Task>,
    /// After failure.
    pub on_fail: Vec<Task>,
    /// Always last.
    pub post_book: Vec<Task>,
}

/// A validated playbook.
#[derive(Clone, Debug)]
pub struct Playbook {
    /// The file it came from.
    pub path: PathBuf,
    /// As written.
    pub spec: PlaybookSpec,
    /// Inputs by name.
    pub inputs: BTreeMap<String, Input>,
    /// Store definitions by name.
    pub stores: BTreeMap<String, StoreConfig>,
    /// `(store, key)` locks, sorted and deduplicated.
    pub locks: Vec<(String, String)>,
    /// Node sets by name.
    pub nodes: BTreeMap<String, NodeSet>,
    /// The main task list.
    pub tasks: Vec<Task>,
    /// The hooks.
    pub hooks: Hooks,
    /// Where discovery node sets and `rpc` tasks connect (`[client]` with defaults; the
    /// command line may override it before the run).
    pub client: ClientSettings,
}

impl Playbook {
    /// The playbook's name.
    pub fn name(&self) -> &str {
        &self.spec.metadata.name
    }
}

/// Reads, parses and validates `path`.
pub fn load(path: &Path) -> Result<Playbook, PlaybookError> {
    let text = std::fs::read_to_string(path).map_err(|source| PlaybookError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Parses and validates `text` as if read from `path`: YAML (Choria's layout) for `.yaml` and
/// `.yml`, TOML otherwise.
pub fn parse(path: &Path, text: &str) -> Result<Playbook, PlaybookError> {
    if super::yaml::is_yaml(path) {
        let (spec, found) = super::yaml::parse(path, text)?;
        let lines = super::yaml::LineIndex::new(text);
        return validate(path, spec, found).map_err(|error| match error {
            PlaybookError::Invalid { path, problems } => PlaybookError::Invalid {
                path,
                problems: problems
                    .into_iter()
                    .map(|mut p| {
                        p.line = lines.line_of(&p.key);
                        p
                    })
                    .collect(),
            },
            other => other,
        });
    }
    let deserializer = toml::Deserializer::new(text);
    let spec: PlaybookSpec = serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let key = error.path().to_string();
        let inner = error.into_inner();
        let line = inner
            .span()
            .map(|span| text[..span.start].lines().count().max(1));
        PlaybookError::Parse {
            path: path.to_path_buf(),
            line: line.map(|l| format!(":{l}")).unwrap_or_default(),
            key: if key == "." {
                "(top level)".into()
            } else {
                key
            },
            message: inner.message().trim().to_string(),
        }
    })?;
    validate(path, spec, Vec::new())
}

/// Parses a `store/key` reference.
pub fn split_store_key(text: &str) -> Option<(&str, &str)> {
    let (store, key) = text.split_once('/')?;
    let valid = !store.is_empty()
        && store
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !key.is_empty();
    valid.then_some((store, key))
}

/// Takes Choria's top-level `name`, `version`, `author`, `description` and `tags` into
/// `metadata`; a key given both ways is a problem.
fn merge_metadata(spec: &mut PlaybookSpec, problems: &mut Problems) {
    let meta = &mut spec.metadata;
    for (key, top, field) in [
        ("name", spec.name.take(), &mut meta.name),
        ("version", spec.version.take(), &mut meta.version),
        ("author", spec.author.take(), &mut meta.author),
        (
            "description",
            spec.description.take(),
            &mut meta.description,
        ),
    ] {
        if let Some(top) = top {
            if !field.is_empty() {
                problems.key(key, format!("given both here and as metadata.{key}"));
            }
            *field = top;
        }
    }
    if let Some(tags) = spec.tags.take() {
        if !meta.tags.is_empty() {
            problems.key("tags", "given both here and as metadata.tags");
        }
        meta.tags = tags;
    }
}

fn validate(
    path: &Path,
    mut spec: PlaybookSpec,
    found: Vec<Problem>,
) -> Result<Playbook, PlaybookError> {
    let mut problems = Problems::default();
    problems.extend(found);
    merge_metadata(&mut spec, &mut problems);
    validate_metadata(&spec, &mut problems);
    validate_uses(&spec, &mut problems);
    let stores = validate_stores(&spec, &mut problems);
    let inputs = validate_inputs(&spec, &stores, &mut problems);
    let locks = validate_locks(&spec, &stores, &mut problems);
    let nodes = validate_node_sets(&spec, &mut problems);
    let names = Names {
        inputs: &inputs,
        nodes: &nodes,
        stores: &stores,
    };
    let tasks = validate_tasks("tasks", &spec.tasks, &names, &mut problems);
    let hooks = validate_hooks(&spec.hooks, &names, &mut problems);

    let client = validate_client(spec.client.as_ref(), &mut problems);

    if !problems.is_empty() {
        return Err(PlaybookError::Invalid {
            path: path.to_path_buf(),
            problems: problems.into_vec(),
        });
    }
    Ok(Playbook {
        path: path.to_path_buf(),
        locks: locks.into_iter().collect(),
        spec,
        inputs,
        stores,
        nodes,
        tasks,
        hooks,
        client,
    })
}

/// The metadata (after [`merge_metadata`]), `loglevel` and `run_as`.
fn validate_metadata(spec: &PlaybookSpec, problems: &mut Problems) {
    let meta = &spec.metadata;
    for (key, value) in [
        ("name", &meta.name),
        ("version", &meta.version),
        ("author", &meta.author),
        ("description", &meta.description),
    ] {
        if value.trim().is_empty() {
            problems.key(
                format!("metadata.{key}"),
                format!("required: set {key} (top level) or metadata.{key}"),
            );
        }
    }
    if let Some(level) = &spec.loglevel {
        if !matches!(
            level.to_ascii_lowercase().as_str(),
            "debug" | "info" | "warn" | "error" | "fatal"
        ) {
            problems.value(
                "loglevel",
                level,
                "expected debug, info, warn, error or fatal",
            );
        }
    }
    if let Some(run_as) = &spec.run_as {
        if run_as.trim().is_empty() || run_as.contains(char::is_whitespace) {
            problems.value(
                "run_as",
                run_as,
                "expected a caller id such as choria=ops.mcollective",
            );
        }
    }
}

/// Every top-level `uses` range parses.
fn validate_uses(spec: &PlaybookSpec, problems: &mut Problems) {
    for (agent, range) in &spec.uses {
        if let Err(message) = super::uses::VersionRange::parse(range) {
            problems.value(format!("uses.{agent}"), range, message);
        }
    }
}

fn validate_inputs(
    spec: &PlaybookSpec,
    stores: &BTreeMap<String, StoreConfig>,
    problems: &mut Problems,
) -> BTreeMap<String, Input> {
    let mut inputs = BTreeMap::new();
    for (name, input) in &spec.inputs {
        let key = format!("inputs.{name}");
        if !valid_name(name) || RESERVED_INPUTS.contains(&name.as_str()) {
            problems.value(
                &key,
                name,
                format!(
                    "input names are letters, digits, _ and - (not {}: they are options of run)",
                    RESERVED_INPUTS.join(", ")
                ),
            );
        }
        let rule = match input.validation.as_ref().map(Rule::compile) {
            Some(Ok(rule)) => Some(rule),
            Some(Err(message)) => {
                problems.key(format!("{key}.validation"), message);
                None
            }
            None => None,
        };
        let mut compiled = Input {
            name: name.clone(),
            spec: input.clone(),
            rule,
            default: None,
            binding: None,
        };
        if let Some(default) = &input.default {
            match compiled.accept(toml_to_json(default)) {
                Ok(value) => compiled.default = Some(value),
                Err(message) => problems.value(format!("{key}.default"), default, message),
            }
        }
        match &input.data {
            Some(data) => match split_store_key(data) {
                Some((store, store_key)) if stores.contains_key(store) => {
                    compiled.binding = Some((store.to_string(), store_key.to_string()));
                }
                Some((store, _)) => problems.value(
                    format!("{key}.data"),
                    data,
                    format!("unknown data store {store:?}"),
                ),
                None => problems.value(format!("{key}.data"), data, "expected store/key"),
            },
            None => {
                if input.dynamic {
                    problems.key(
                        format!("{key}.dynamic"),
                        "a dynamic input needs data = \"store/key\"",
                    );
                }
                if input.save {
                    problems.key(format!("{key}.save"), "save needs data = \"store/key\"");
                }
            }
        }
        inputs.insert(name.clone(), compiled);
    }
    inputs
}

/// `(store, key)` locks, sorted and deduplicated; a bare store name is the playbook's own lock.
fn validate_locks(
    spec: &PlaybookSpec,
    stores: &BTreeMap<String, StoreConfig>,
    problems: &mut Problems,
) -> BTreeSet<(String, String)> {
    let mut locks = BTreeSet::new();
    for (i, lock) in spec.locks.iter().enumerate() {
        let key = format!("locks[{i}]");
        let (store, lock_key) = match split_store_key(lock) {
            Some((store, k)) => (store.to_string(), k.to_string()),
            None if valid_name(lock) => (
                lock.clone(),
                format!("choria/locks/playbook/{}", spec.metadata.name),
            ),
            None => {
                problems.value(&key, lock, "expected a store name or store/key");
                continue;
            }
        };
        match stores.get(&store) {
            None => problems.value(&key, lock, format!("unknown data store {store:?}")),
            Some(config) => match &config.kind {
                StoreKind::File { .. } => {
                    problems.value(&key, lock, "locks are not supported by the file store")
                }
                StoreKind::Environment { .. } => problems.value(
                    &key,
                    lock,
                    "locks are not supported by the environment store",
                ),
                _ => {
                    locks.insert((store, lock_key));
                }
            },
        }
    }
    locks
}

fn validate_node_sets(spec: &PlaybookSpec, problems: &mut Problems) -> BTreeMap<String, NodeSet> {
    let mut nodes = BTreeMap::new();
    for (name, set) in &spec.nodes {
        let key = format!("nodes.{name}");
        if !valid_name(name) {
            problems.value(&key, name, "node set names are letters, digits, _ and -");
        }
        let Some(set) = validate_node_set(&key, set, problems) else {
            continue;
        };
        for (i, agent) in set.spec.uses.iter().enumerate() {
            if !spec.uses.contains_key(agent) {
                problems.value(
                    format!("{key}.uses[{i}]"),
                    agent,
                    "not in the top-level uses (which gives its version range)",
                );
            }
        }
        nodes.insert(name.clone(), set);
    }
    nodes
}

/// The keys a node set has set, beyond the common ones.
fn present_node_set_fields(set: &NodeSetSpec) -> Vec<&'static str> {
    [
        ("nodes", !set.nodes.is_empty()),
        ("file", set.file.is_some()),
        ("discovery_method", set.discovery_method.is_some()),
        ("agents", !set.agents.is_empty()),
        ("facts", !set.facts.is_empty()),
        ("classes", !set.classes.is_empty()),
        ("identities", !set.identities.is_empty()),
        ("compound", set.compound.is_some()),
        ("source", set.source.is_some()),
        ("group", set.group.is_some()),
        ("script", set.script.is_some()),
        ("timeout", set.timeout.is_some()),
    ]
    .into_iter()
    .filter_map(|(field, used)| used.then_some(field))
    .collect()
}

/// One node set: its type (`mcollective` is read as `discovery`), the keys of that type, the
/// required ones, and the common `limit`, `timeout` and `at_least`.
fn validate_node_set(key: &str, set: &NodeSetSpec, problems: &mut Problems) -> Option<NodeSet> {
    let mut set = set.clone();
    if set.kind == "mcollective" {
        set.kind = "discovery".into();
    }
    let (allowed, required): (&[&str], &[&str]) = match set.kind.as_str() {
        "list" => (&["nodes"], &[]),
        "file" => (&["file"], &["file"]),
        "discovery" => (
            &[
                "discovery_method",
                "agents",
                "facts",
                "classes",
                "identities",
                "compound",
                "timeout",
            ],
            &[],
        ),
        "yaml" => (&["source", "group"], &["source", "group"]),
        "shell" => (&["script", "timeout"], &["script"]),
        other => {
            problems.value(
                format!("{key}.type"),
                other,
                "unknown node set type (list, file, discovery or mcollective, yaml, shell)",
            );
            return None;
        }
    };
    let present = present_node_set_fields(&set);
    for field in present.iter().filter(|f| !allowed.contains(f)) {
        problems.key(
            format!("{key}.{field}"),
            format!("not valid for a {} node set", set.kind),
        );
    }
    for field in required.iter().filter(|f| !present.contains(f)) {
        problems.key(
            format!("{key}.{field}"),
            format!("a {} node set needs {field}", set.kind),
        );
    }
    if let Some(method) = &set.discovery_method {
        if !matches!(method.to_ascii_lowercase().as_str(), "mc" | "broadcast") {
            problems.value(
                format!("{key}.discovery_method"),
                method,
                "choir discovers by broadcast only: expected mc or broadcast",
            );
        }
    }
    for (i, fact) in set.facts.iter().enumerate() {
        if let Err(message) = super::nodes::discovery::parse_fact(fact) {
            problems.value(format!("{key}.facts[{i}]"), fact, message);
        }
    }
    if let Some(script) = &set.script {
        match super::task::shell::split_command(script) {
            Ok(words) if words.is_empty() => {
                problems.value(format!("{key}.script"), script, "must not be empty")
            }
            Ok(_) => {}
            Err(error) => problems.value(format!("{key}.script"), script, error),
        }
    }
    if set.limit == Some(0) {
        problems.value(format!("{key}.limit"), 0, "must be at least 1");
    }
    if set.timeout == Some(Duration::ZERO) {
        problems.value(format!("{key}.timeout"), "0s", "must be more than 0s");
    }
    let at_least = if set.empty_ok {
        0
    } else {
        set.at_least.unwrap_or(1)
    };
    Some(NodeSet {
        spec: set,
        at_least,
    })
}

fn validate_hooks(hooks: &HooksSpec, names: &Names<'_>, problems: &mut Problems) -> Hooks {
    Hooks {
        pre_book: validate_tasks("hooks.pre_book", &hooks.pre_book, names, problems),
        pre_task: validate_tasks("hooks.pre_task", &hooks.pre_task, names, problems),
        post_task: validate_tasks("hooks.post_task", &hooks.post_task, names, problems),
        on_success: validate_tasks("hooks.on_success", &hooks.on_success, names, problems),
        on_fail: validate_tasks("hooks.on_fail", &hooks.on_fail, names, problems),
        post_book: validate_tasks("hooks.post_book", &hooks.post_book, names, problems),
    }
}

/// Input names that are options of `choir playbook run`.
const RESERVED_INPUTS: [&str; 6] = [
    "input",
    "inputs",
    "report",
    "server",
    "collective",
    "federation",
];

fn validate_client(spec: Option<&ClientSpec>, problems: &mut Problems) -> ClientSettings {
    if let Some(spec) = spec {
        for (i, server) in spec.servers.iter().enumerate() {
            if server.trim().is_empty() || server.contains(char::is_whitespace) {
                problems.value(
                    format!("client.servers[{i}]"),
                    server,
                    "expected a NATS URL such as nats://127.0.0.1:4222",
                );
            }
        }
        if let Some(collective) = &spec.collective {
            if !valid_name(collective) {
                problems.value(
                    "client.collective",
                    collective,
                    "collective names are letters, digits, _ and -",
                );
            }
        }
        for (i, cluster) in spec.federation.iter().enumerate() {
            if !valid_name(cluster) {
                problems.value(
                    format!("client.federation[{i}]"),
                    cluster,
                    "cluster names are letters, digits, _ and -",
                );
            }
        }
        if spec.timeout == Some(Duration::ZERO) {
            problems.value("client.timeout", "0s", "must be more than 0s");
        }
    }
    let mut settings = ClientSettings::from_spec(spec);
    if let Some(spec) = spec {
        super::client_security::apply(spec, &mut settings, problems);
    }
    settings
}

fn validate_stores(spec: &PlaybookSpec, problems: &mut Problems) -> BTreeMap<String, StoreConfig> {
    let mut stores = BTreeMap::new();
    for (name, store) in &spec.data_stores {
        let key = format!("data_stores.{name}");
        if !valid_name(name) {
            problems.value(&key, name, "store names are letters, digits, _ and -");
        }
        let StoreSpec {
            kind,
            timeout,
            ttl,
            servers,
            bucket,
            lock_bucket,
            replicas,
            url,
            token,
            file,
            create,
            prefix,
        } = store;
        let mut present = Vec::new();
        for (field, used) in [
            ("servers", !servers.is_empty()),
            ("bucket", bucket.is_some()),
            ("lock_bucket", lock_bucket.is_some()),
            ("replicas", replicas.is_some()),
            ("url", url.is_some()),
            ("token", token.is_some()),
            ("file", file.is_some()),
            ("create", *create),
            ("prefix", prefix.is_some()),
        ] {
            if used {
                present.push(field);
            }
        }
        let (allowed, config_kind): (&[&str], Option<StoreKind>) = match kind.as_str() {
            "memory" => (&[], Some(StoreKind::Memory)),
            "nats_kv" => {
                let bucket = bucket.clone().unwrap_or_else(|| "CHOIR_PLAYBOOK".into());
                let lock_bucket = lock_bucket
                    .clone()
                    .unwrap_or_else(|| format!("{bucket}_LOCKS"));
                for (field, value) in [("bucket", &bucket), ("lock_bucket", &lock_bucket)] {
                    if !valid_name(value) {
                        problems.value(
                            format!("{key}.{field}"),
                            value,
                            "bucket names are letters, digits, _ and -",
                        );
                    }
                }
                if servers.is_empty() {
                    problems.key(
                        format!("{key}.servers"),
                        "a nats_kv store needs servers = [\"nats://host:port\"]",
                    );
                }
                if replicas == &Some(0) {
                    problems.value(format!("{key}.replicas"), 0, "must be at least 1");
                }
                (
                    &["servers", "bucket", "lock_bucket", "replicas"],
                    Some(StoreKind::NatsKv {
                        servers: servers.clone(),
                        bucket,
                        lock_bucket,
                        replicas: replicas.unwrap_or(1),
                    }),
                )
            }
            "etcd" => (
                &["url"],
                Some(StoreKind::Etcd {
                    url: url
                        .clone()
                        .unwrap_or_else(|| "http://127.0.0.1:2379".into()),
                }),
            ),
            "file" => match file {
                Some(file) => (
                    &["file", "create"],
                    Some(StoreKind::File {
                        path: file.into(),
                        create: *create,
                    }),
                ),
                None => {
                    problems.key(format!("{key}.file"), "a file store needs file");
                    (&["file", "create"], None)
                }
            },
            "environment" => (
                &["prefix"],
                Some(StoreKind::Environment {
                    prefix: prefix.clone().unwrap_or_else(|| "PB_".into()),
                }),
            ),
            "consul" => (
                &["url", "token"],
                Some(StoreKind::Consul {
                    url: url
                        .clone()
                        .unwrap_or_else(|| super::store::consul::DEFAULT_URL.into()),
                    token: token.clone().map(super::store::consul::AclToken),
                }),
            ),
            other => {
                problems.value(
                    format!("{key}.type"),
                    other,
                    "unknown store type (memory, nats_kv, etcd, consul, file or environment)",
                );
                continue;
            }
        };
        for field in present.iter().filter(|f| !allowed.contains(f)) {
            problems.key(
                format!("{key}.{field}"),
                format!("not valid for a {kind} store"),
            );
        }
        let timeout = timeout.unwrap_or(DEFAULT_TIMEOUT);
        let ttl = ttl.unwrap_or(DEFAULT_TTL);
        if ttl < Duration::from_secs(1) {
            problems.value(
                format!("{key}.ttl"),
                humantime::format_duration(ttl),
                "must be at least 1s",
            );
        }
        if let Some(kind) = config_kind {
            stores.insert(
                name.clone(),
                StoreConfig {
                    name: name.clone(),
                    timeout,
                    ttl,
                    kind,
                },
            );
        }
    }
    stores
}

struct Names<'a> {
    inputs: &'a BTreeMap<String, Input>,
    nodes: &'a BTreeMap<String, NodeSet>,
    stores: &'a BTreeMap<String, StoreConfig>,
}

fn check_template(key: &str, text: &str, names: &Names<'_>, problems: &mut Problems) {
    match template::expressions(text) {
        Err(error) => problems.value(key, text, error.to_string()),
        Ok(exprs) => {
            for expr in exprs {
                match expr {
                    Expr::Input(name, _) if !names.inputs.contains_key(&name) => problems.value(
                        key,
                        text,
                        format!("template refers to unknown input {name:?}"),
                    ),
                    Expr::Nodes(name) if !names.nodes.contains_key(&name) => problems.value(
                        key,
                        text,
                        format!("template refers to unknown node set {name:?}"),
                    ),
                    _ => {}
                }
            }
        }
    }
}

fn check_value_templates(
    key: &str,
    value: &toml::Value,
    names: &Names<'_>,
    problems: &mut Problems,
) {
    match value {
        toml::Value::String(text) => check_template(key, text, names, problems),
        toml::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_value_templates(&format!("{key}[{i}]"), item, names, problems);
            }
        }
        toml::Value::Table(table) => {
            for (k, v) in table {
                check_value_templates(&format!("{key}.{k}"), v, names, problems);
            }
        }
        _ => {}
    }
}

fn validate_tasks(
    list: &str,
    tasks: &[TaskSpec],
    names: &Names<'_>,
    problems: &mut Problems,
) -> Vec<Task> {
    let mut out = Vec::new();
    for (i, task) in tasks.iter().enumerate() {
        let key = format!("{list}[{i}]");
        if let Some(task) = validate_task(&key, task, names, problems) {
            out.push(task);
        }
    }
    out
}

/// Maps Choria's names onto choir's: webhook `uri`/`data` are `url`/`body`; an rpc
/// (`mcollective`) `action: agent.action` without `agent` is split.
fn normalise(key: &str, kind: TaskKind, task: &TaskSpec, problems: &mut Problems) -> TaskSpec {
    let mut task = task.clone();
    let webhook = kind == TaskKind::Webhook;
    if let Some(uri) = task.uri.take() {
        if !webhook {
            problems.key(
                format!("{key}.uri"),
                format!("not valid for a {} task", kind.as_str()),
            );
        } else if task.url.is_some() {
            problems.key(format!("{key}.uri"), "given together with url");
        } else {
            task.url = Some(uri);
        }
    }
    if kind == TaskKind::GraphiteEvent {
        // graphite_event keeps `data`: it is the event's data, not a request body.
    } else if let Some(data) = task.data.take() {
        if !webhook {
            problems.key(
                format!("{key}.data"),
                format!("not valid for a {} task", kind.as_str()),
            );
        } else if task.body.is_some() {
            problems.key(format!("{key}.data"), "given together with body");
        } else {
            task.body = Some(data);
        }
    }
    if kind == TaskKind::Rpc && task.agent.is_none() {
        if let Some((agent, action)) = task.action.as_deref().and_then(|a| a.split_once('.')) {
            let (agent, action) = (agent.to_string(), action.to_string());
            task.agent = Some(agent);
            task.action = Some(action);
        }
    }
    task
}

fn validate_task(
    key: &str,
    task: &TaskSpec,
    names: &Names<'_>,
    problems: &mut Problems,
) -> Option<Task> {
    let kind = task_kind(key, &task.kind, problems)?;
    let task = normalise(key, kind, task, problems);
    check_task_fields(key, kind, &task, problems);
    check_task_templates(key, &task, names, problems);
    match kind {
        TaskKind::Data => check_data_task(key, &task, names, problems),
        TaskKind::Webhook => check_webhook_task(key, &task, problems),
        TaskKind::Rpc => check_rpc_task(key, &task, names, problems),
        TaskKind::GraphiteEvent => check_graphite_task(key, &task, problems),
        TaskKind::Shell | TaskKind::Sleep | TaskKind::Slack => {}
    }
    Some(Task { kind, spec: task })
}

/// The task's type from its `type` (TOML) or its key (YAML).
fn task_kind(key: &str, kind: &str, problems: &mut Problems) -> Option<TaskKind> {
    Some(match kind {
        "shell" => TaskKind::Shell,
        "data" => TaskKind::Data,
        "sleep" => TaskKind::Sleep,
        "webhook" => TaskKind::Webhook,
        "slack" => TaskKind::Slack,
        "graphite_event" => TaskKind::GraphiteEvent,
        "rpc" | "mcollective" => TaskKind::Rpc,
        "" => {
            problems.key(
                format!("{key}.type"),
                "a task needs type (shell, data, sleep, webhook, slack, graphite_event or mcollective)",
            );
            return None;
        }
        other => {
            problems.value(
                format!("{key}.type"),
                other,
                "unknown task type (shell, data, sleep, webhook, slack, graphite_event, mcollective or rpc)",
            );
            return None;
        }
    })
}

/// The type-specific keys a task has set.
fn present_task_fields(task: &TaskSpec) -> Vec<&'static str> {
    [
        ("command", task.command.is_some()),
        ("cwd", task.cwd.is_some()),
        ("timeout", task.timeout.is_some()),
        ("environment", !task.environment.is_empty()),
        ("action", task.action.is_some()),
        ("key", task.key.is_some()),
        ("value", task.value.is_some()),
        ("duration", task.duration.is_some()),
        ("url", task.url.is_some()),
        ("method", task.method.is_some()),
        ("headers", !task.headers.is_empty()),
        ("body", task.body.is_some()),
        ("expect_status", !task.expect_status.is_empty()),
        ("agent", task.agent.is_some()),
        ("properties", task.properties.is_some()),
        ("nodes", task.nodes.is_some()),
        ("batch_size", task.batch_size.is_some()),
        ("assert", task.assert.is_some()),
        ("batch_sleep_time", task.batch_sleep_time.is_some()),
        ("silent", task.silent.is_some()),
        ("post", !task.post.is_empty()),
        ("verify_ssl", task.verify_ssl.is_some()),
        ("token", task.token.is_some()),
        ("channel", task.channel.is_some()),
        ("text", task.text.is_some()),
        ("color", task.color.is_some()),
        ("username", task.username.is_some()),
        ("data", task.data.is_some()),
        ("what", task.what.is_some()),
        ("graphite", task.graphite.is_some()),
        ("tags", task.tags.is_some()),
    ]
    .into_iter()
    .filter_map(|(field, used)| used.then_some(field))
    .collect()
}

/// The keys a task type takes and the ones it needs.
fn task_fields(kind: TaskKind) -> (&'static [&'static str], &'static [&'static str]) {
    match kind {
        TaskKind::Shell => (
            &["command", "cwd", "timeout", "environment", "nodes"],
            &["command"],
        ),
        TaskKind::Data => (&["action", "key", "value"], &["action", "key"]),
        TaskKind::Sleep => (&["duration"], &["duration"]),
        TaskKind::Webhook => (
            &[
                "url",
                "method",
                "headers",
                "body",
                "expect_status",
                "timeout",
                "verify_ssl",
            ],
            &["url"],
        ),
        TaskKind::Slack => (
            &[
                "token", "channel", "text", "color", "username", "url", "timeout",
            ],
            &["token", "channel", "text"],
        ),
        TaskKind::GraphiteEvent => (
            &["what", "data", "graphite", "tags", "headers", "timeout"],
            &["what", "data", "graphite"],
        ),
        TaskKind::Rpc => (
            &[
                "agent",
                "action",
                "properties",
                "nodes",
                "batch_size",
                "batch_sleep_time",
                "silent",
                "post",
                "assert",
                "timeout",
            ],
            &["agent", "action", "nodes"],
        ),
    }
}

/// Keys that do not belong to the task's type, missing required keys, and `tries`.
fn check_task_fields(key: &str, kind: TaskKind, task: &TaskSpec, problems: &mut Problems) {
    let present = present_task_fields(task);
    let (allowed, required) = task_fields(kind);
    for field in present.iter().filter(|f| !allowed.contains(f)) {
        problems.key(
            format!("{key}.{field}"),
            format!("not valid for a {} task", kind.as_str()),
        );
    }
    for field in required.iter().filter(|f| !present.contains(f)) {
        problems.key(
            format!("{key}.{field}"),
            format!("a {} task needs {field}", kind.as_str()),
        );
    }
    if task.tries == Some(0) {
        problems.value(format!("{key}.tries"), 0, "must be at least 1");
    }
}

/// Every templated key refers only to known inputs and node sets; a shell command splits.
fn check_task_templates(key: &str, task: &TaskSpec, names: &Names<'_>, problems: &mut Problems) {
    let field = |name: &str| format!("{key}.{name}");
    if let Some(description) = &task.description {
        check_template(&field("description"), description, names, problems);
    }
    match &task.command {
        Some(CommandSpec::Line(line)) => {
            check_template(&field("command"), line, names, problems);
            if let Err(error) = super::task::shell::split_command(line) {
                problems.value(field("command"), line, error);
            }
        }
        Some(CommandSpec::Args(args)) => {
            if args.is_empty() {
                problems.key(field("command"), "must not be empty");
            }
            for (i, arg) in args.iter().enumerate() {
                check_template(&format!("{key}.command[{i}]"), arg, names, problems);
            }
        }
        None => {}
    }
    for (name, text) in [
        ("cwd", &task.cwd),
        ("url", &task.url),
        ("agent", &task.agent),
        ("assert", &task.assert),
        ("token", &task.token),
        ("channel", &task.channel),
        ("text", &task.text),
        ("color", &task.color),
        ("username", &task.username),
        ("what", &task.what),
        ("graphite", &task.graphite),
    ] {
        if let Some(text) = text {
            check_template(&field(name), text, names, problems);
        }
    }
    for (i, tag) in task.tags.iter().flatten().enumerate() {
        check_template(&format!("{key}.tags[{i}]"), tag, names, problems);
    }
    for (k, v) in task.environment.iter().chain(task.headers.iter()) {
        check_template(&field(k), v, names, problems);
    }
    for (name, value) in [
        ("value", &task.value),
        ("body", &task.body),
        ("data", &task.data),
        ("properties", &task.properties),
        ("nodes", &task.nodes),
    ] {
        if let Some(value) = value {
            check_value_templates(&field(name), value, names, problems);
        }
    }
}

/// `action` is write or delete (a write has a value); `key` names a known store.
fn check_data_task(key: &str, task: &TaskSpec, names: &Names<'_>, problems: &mut Problems) {
    let field = |name: &str| format!("{key}.{name}");
    match task.action.as_deref() {
        Some("write") if task.value.is_none() => {
            problems.key(field("value"), "a data write needs value")
        }
        Some("write") | Some("delete") | None => {}
        Some(other) => problems.value(field("action"), other, "expected write or delete"),
    }
    if let Some(data_key) = &task.key {
        check_template(&field("key"), data_key, names, problems);
        if !data_key.contains("{{") {
            match split_store_key(data_key) {
                Some((store, _)) if !names.stores.contains_key(store) => problems.value(
                    field("key"),
                    data_key,
                    format!("unknown data store {store:?}"),
                ),
                Some(_) => {}
                None => problems.value(field("key"), data_key, "expected store/key"),
            }
        }
    }
}

fn check_webhook_task(key: &str, task: &TaskSpec, problems: &mut Problems) {
    if let Some(method) = &task.method {
        if !matches!(
            method.to_ascii_uppercase().as_str(),
            "GET" | "POST" | "PUT" | "DELETE"
        ) {
            problems.value(
                format!("{key}.method"),
                method,
                "expected GET, POST, PUT or DELETE",
            );
        }
    }
}

/// The events URL is http or https (unless templated), as in Choria.
fn check_graphite_task(key: &str, task: &TaskSpec, problems: &mut Problems) {
    if let Some(url) = task.graphite.as_ref().filter(|u| !u.contains("{{")) {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            problems.value(
                format!("{key}.graphite"),
                url,
                "the events URL must be http:// or https://",
            );
        }
    }
}

/// `post`, `batch_size`, `properties` (a table) and `assert` (parses unless templated).
fn check_rpc_task(key: &str, task: &TaskSpec, names: &Names<'_>, problems: &mut Problems) {
    let field = |name: &str| format!("{key}.{name}");
    if let Some(action) = &task.action {
        check_template(&field("action"), action, names, problems);
    }
    for (i, post) in task.post.iter().enumerate() {
        if post != "summarize" {
            problems.value(format!("{key}.post[{i}]"), post, "expected summarize");
        }
    }
    if task.batch_size == Some(0) {
        problems.value(field("batch_size"), 0, "must be at least 1");
    }
    if let Some(properties) = &task.properties {
        if !properties.is_table() {
            problems.value(
                field("properties"),
                properties,
                "must be a table, e.g. { size = 10 }",
            );
        }
    }
    if let Some(text) = task.assert.as_ref().filter(|t| !t.contains("{{")) {
        if let Err(message) = super::task::rpc::assert::Assertion::parse(text) {
            problems.value(field("assert"), text, message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const META: &str =
        "[metadata]\nname = \"t\"\nversion = \"1\"\nauthor = \"a\"\ndescription = \"d\"\n";

    #[test]
    fn toml_takes_choria_top_level_keys_types_validators_and_integer_seconds() {
        let text = r#"
name = "t"
version = "1"
author = "a"
description = "d"
loglevel = "info"
run_as = "choria=ops.mcollective"

[inputs.count]
type = "Integer"
validation = ":integer"
default = 3

[inputs.flag]
type = ":bool"
required = false

[data_stores.s]
type = "memory"
timeout = 360
ttl = 20

[[tasks]]
type = "mcollective"
action = "rpcutil.ping"
nodes = ["a"]
try_sleep = 5

[[tasks]]
type = "webhook"
uri = "http://127.0.0.1:1/x"
data = { a = 1 }
"#;
        let pb = parse(Path::new("t.toml"), text).unwrap();
        assert_eq!(pb.name(), "t");
        assert_eq!(pb.stores["s"].timeout, Duration::from_secs(360));
        assert_eq!(pb.stores["s"].ttl, Duration::from_secs(20));
        assert!(pb.inputs["count"].spec.is_required());
        assert!(!pb.inputs["flag"].spec.is_required());
        assert_eq!(pb.tasks[0].kind, TaskKind::Rpc);
        assert_eq!(pb.tasks[0].spec.agent.as_deref(), Some("rpcutil"));
        assert_eq!(pb.tasks[0].spec.try_sleep, Some(Duration::from_secs(5)));
        assert_eq!(
            pb.tasks[1].spec.url.as_deref(),
            Some("http://127.0.0.1:1/x")
        );

        let both = format!("{text}\n{META}");
        let error = parse(Path::new("t.toml"), &both).unwrap_err().to_string();
        assert!(
            error.contains("name: given both here and as metadata.name"),
            "{error}"
        );
        let bad = text.replace("\"info\"", "\"loud\"");
        let error = parse(Path::new("t.toml"), &bad).unwrap_err().to_string();
        assert!(error.contains("loglevel = \"loud\""), "{error}");
    }

    fn problems(body: &str) -> Vec<String> {
        match parse(Path::new("t.toml"), &format!("{META}{body}")) {
            Ok(_) => Vec::new(),
            Err(PlaybookError::Invalid { problems, .. }) => {
                problems.iter().map(ToString::to_string).collect()
            }
            Err(other) => vec![other.to_string()],
        }
    }

    #[test]
    fn client_discovery_and_rpc_keys_are_checked() {
        let ok = r#"
[client]
servers = ["nats://127.0.0.1:4222"]
collective = "c1"
federation = ["x"]
timeout = "3s"

[nodes.fleet]
type = "discovery"
facts = ["instance<20"]
timeout = "1s"

[[tasks]]
type = "rpc"
agent = "rpcutil"
action = "ping"
nodes = "{{ nodes.fleet }}"
batch_size = 5
assert = "pong > 0 and x"
"#;
        assert!(problems(ok).is_empty(), "{:?}", problems(ok));
        let pb = parse(Path::new("t.toml"), &format!("{META}{ok}")).unwrap();
        assert_eq!(pb.client.collective, "c1");
        assert_eq!(pb.client.discovery_timeout, Duration::from_secs(3));

        let bad = problems(
            r#"
[client]
collective = "a b"
timeout = "0s"

[inputs.server]
description = "clashes with --server"
type = "string"

[nodes.fleet]
type = "discovery"
facts = ["nothing"]

[nodes.listed]
type = "list"
nodes = ["a"]
timeout = "1s"

[[tasks]]
type = "rpc"
agent = "rpcutil"
action = "ping"
nodes = ["a"]
batch_size = 0
properties = "x"
assert = "a b"
"#,
        );
        for key in [
            "client.collective",
            "client.timeout",
            "inputs.server",
            "nodes.fleet.facts[0]",
            "nodes.listed.timeout",
            "tasks[0].batch_size",
            "tasks[0].properties",
            "tasks[0].assert",
        ] {
            assert!(
                bad.iter().any(|p| p.starts_with(key)),
                "{key} not in {bad:#?}"
            );
        }
        let unknown = problems("[client]\nserver = \"x\"\n");
        assert!(unknown[0].contains("client"), "{unknown:?}");
    }
}
