//! Task execution: one try of one task, templates rendered fresh for that try.
//!
//! - [`shell`]: a command run without a shell; templated values stay single arguments.
//! - [`data`]: write or delete a store key.
//! - [`webhook`]: an HTTP request with a JSON body and an expected status.
//! - [`graphite`]: a `graphite_event`, posted to Graphite's events API.
//! - [`slack`]: a chat.postMessage to Slack's API (or another URL).
//! - [`rpc`]: Choria RPC through the playbook's client, in batches, with an assert.
//! - `sleep`: waits `duration`.

pub mod data;
pub mod graphite;
pub mod rpc;
pub mod shell;
pub mod slack;
pub mod webhook;

use std::collections::BTreeMap;

use serde_json::Value;

use super::client::PlaybookClient;
use super::store::SharedStore;
use super::template::Context;
use super::validate::{Task, TaskKind};

/// The result of one try.
#[derive(Clone, Debug)]
pub struct TaskOutcome {
    /// Whether it worked.
    pub success: bool,
    /// What happened, for people.
    pub message: String,
    /// What it produced (shell: stdout; webhook: response body).
    pub data: Value,
}

impl TaskOutcome {
    /// A success.
    pub fn ok(message: impl Into<String>, data: Value) -> Self {
        Self {
            success: true,
            message: message.into(),
            data,
        }
    }

    /// A failure.
    pub fn fail(message: impl Into<String>) -> Self {
        Self {
            success: false,
            message: message.into(),
            data: Value::Null,
        }
    }
}

/// Runs one try of `task` with templates rendered against `ctx`.
pub async fn execute(
    task: &Task,
    ctx: &Context,
    stores: &BTreeMap<String, SharedStore>,
    client: &PlaybookClient,
) -> TaskOutcome {
    match task.kind {
        TaskKind::Shell => shell::run(&task.spec, ctx).await,
        TaskKind::Data => data::run(&task.spec, ctx, stores).await,
        TaskKind::Sleep => {
            let duration = task.spec.duration.unwrap_or_default();
            tokio::time::sleep(duration).await;
            TaskOutcome::ok(
                format!("slept {}", humantime::format_duration(duration)),
                Value::Null,
            )
        }
        TaskKind::Webhook => webhook::run(&task.spec, ctx).await,
        TaskKind::Slack => slack::run(&task.spec, ctx).await,
        TaskKind::GraphiteEvent => graphite::run(&task.spec, ctx).await,
        TaskKind::Rpc => rpc::run(&task.spec, ctx, client).await,
    }
}
