//! A checked playbook: what [`validate`](super::validate) makes of a spec, and what the runner,
//! the node sets and the tasks execute.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use super::client::ClientSettings;
use super::input::{coerce, Rule};
use super::spec::{InputSpec, NodeSetSpec, PlaybookSpec, TaskSpec};
use super::store::StoreConfig;

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
