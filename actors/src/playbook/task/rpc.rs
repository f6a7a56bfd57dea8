//! The `rpc` task: `agent#action` with templated `properties` (a JSON object) sent through the
//! playbook's client ([`crate::playbook::client`]) to the task's `nodes`, directly (one request
//! per node, federation-aware), `batch_size` nodes at a time.
//!
//! A try succeeds when every node answered with statuscode 0 and its data satisfies `assert`
//! ([`assert`](mod@assert)). A batch with a failure or a missing reply stops the try: later
//! batches are not called, so a rolling change never spreads past the first bad batch. The
//! outcome's data is the list of replies, sorted by node: `{sender, statuscode, statusmsg,
//! data}` each, so `{{ previous_task.data }}` shows them.

pub mod assert;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Map, Value};

use self::assert::Assertion;
use super::TaskOutcome;
use crate::client::{Addressing, Collected, Expectation, RpcCall};
use crate::error_chain::Chain;
use crate::playbook::client::PlaybookClient;
use crate::playbook::input::toml_to_json;
use crate::playbook::spec::TaskSpec;
use crate::playbook::template::Context;
use crate::protocol::Filter;

/// How long each batch waits for replies by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Problems listed in a failure message before "and N more".
const SHOWN_PROBLEMS: usize = 5;

/// One try, rendered.
struct Call {
    agent: String,
    action: String,
    data: Value,
    nodes: Vec<String>,
    assertion: Option<Assertion>,
}

fn render(spec: &TaskSpec, ctx: &Context) -> Result<Call, String> {
    let agent = ctx
        .render_text(spec.agent.as_deref().unwrap_or_default())
        .map_err(|e| format!("agent: {e}"))?;
    let action = ctx
        .render_text(spec.action.as_deref().unwrap_or_default())
        .map_err(|e| format!("action: {e}"))?;
    let data = match &spec.properties {
        Some(properties) => ctx
            .render_value(&toml_to_json(properties))
            .map_err(|e| format!("properties: {e}"))?,
        None => Value::Object(Map::new()),
    };
    if !data.is_object() {
        return Err(format!("properties must be a table, got {data}"));
    }
    let nodes = match &spec.nodes {
        Some(nodes) => node_list(
            &ctx.render_value(&toml_to_json(nodes))
                .map_err(|e| format!("nodes: {e}"))?,
        )?,
        None => Vec::new(),
    };
    let assertion = match &spec.assert {
        Some(text) => {
            let text = ctx.render_text(text).map_err(|e| format!("assert: {e}"))?;
            Some(Assertion::parse(&text).map_err(|e| format!("assert: {e}"))?)
        }
        None => None,
    };
    Ok(Call {
        agent,
        action,
        data,
        nodes,
        assertion,
    })
}

/// The node names in a rendered `nodes` value: a list (nested lists flattened) or a string of
/// names separated by commas or spaces; duplicates dropped, order kept.
pub fn node_list(value: &Value) -> Result<Vec<String>, String> {
    fn collect(value: &Value, out: &mut Vec<String>) -> Result<(), String> {
        match value {
            Value::String(text) => out.extend(
                text.split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            ),
            Value::Array(items) => {
                for item in items {
                    collect(item, out)?;
                }
            }
            Value::Null => {}
            other => return Err(format!("nodes: expected node names, got {other}")),
        }
        Ok(())
    }
    let mut all = Vec::new();
    collect(value, &mut all)?;
    let mut seen = BTreeSet::new();
    all.retain(|n| seen.insert(n.clone()));
    Ok(all)
}

/// What the batches of one try added up to.
#[derive(Default)]
struct Tally {
    replies: Vec<Value>,
    ok: usize,
    problems: Vec<String>,
    no_response: Vec<String>,
    batches: usize,
}

impl Tally {
    fn add(&mut self, collected: Collected, assertion: Option<&Assertion>) {
        self.batches += 1;
        for reply in collected.replies {
            let data = reply.data.clone().unwrap_or(Value::Null);
            let verdict = match reply.statuscode {
                Some(0) => match assertion.map(|a| a.check(&data)) {
                    Some(Err(why)) => Err(format!("assert failed: {why}")),
                    _ => Ok(()),
                },
                Some(code) => Err(format!(
                    "statuscode {code}: {}",
                    reply.statusmsg.as_deref().unwrap_or_default()
                )),
                None => Err("not an RPC reply".to_string()),
            };
            match verdict {
                Ok(()) => self.ok += 1,
                Err(why) => self.problems.push(format!("{}: {why}", reply.sender)),
            }
            self.replies.push(json!({
                "sender": reply.sender,
                "statuscode": reply.statuscode,
                "statusmsg": reply.statusmsg,
                "data": data,
            }));
        }
        self.no_response.extend(collected.no_responses);
    }

    fn failed(&self) -> bool {
        !self.problems.is_empty() || !self.no_response.is_empty()
    }

    fn into_outcome(mut self, call: &Call, skipped: usize) -> TaskOutcome {
        self.replies
            .sort_by(|a, b| a["sender"].as_str().cmp(&b["sender"].as_str()));
        let mut message = format!(
            "{}#{} on {} nodes in {} batch{}: {} ok, {} failed, {} no response",
            call.agent,
            call.action,
            call.nodes.len(),
            self.batches,
            if self.batches == 1 { "" } else { "es" },
            self.ok,
            self.problems.len(),
            self.no_response.len()
        );
        if skipped > 0 {
            let _ = write!(message, ", {skipped} not called after the failed batch");
        }
        for problem in self.problems.iter().take(SHOWN_PROBLEMS) {
            let _ = write!(message, "\n  {problem}");
        }
        if self.problems.len() > SHOWN_PROBLEMS {
            let _ = write!(
                message,
                "\n  and {} more",
                self.problems.len() - SHOWN_PROBLEMS
            );
        }
        if !self.no_response.is_empty() {
            let _ = write!(
                message,
                "\n  no response from: {}",
                self.no_response.join(", ")
            );
        }
        let failed = self.failed();
        let data = Value::Array(self.replies);
        if failed {
            let mut outcome = TaskOutcome::fail(message);
            outcome.data = data;
            outcome
        } else {
            TaskOutcome::ok(message, data)
        }
    }
}

/// Runs one try.
pub async fn run(spec: &TaskSpec, ctx: &Context, client: &PlaybookClient) -> TaskOutcome {
    let call = match render(spec, ctx) {
        Ok(call) => call,
        Err(error) => return TaskOutcome::fail(error),
    };
    let name = format!("{}#{}", call.agent, call.action);
    if call.nodes.is_empty() {
        return TaskOutcome::ok(
            format!("{name}: no nodes to call"),
            Value::Array(Vec::new()),
        );
    }
    let connected = match client.get().await {
        Ok(connected) => connected,
        Err(error) => return TaskOutcome::fail(format!("{name}: {error}")),
    };
    let timeout = spec.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let batch_size = spec.batch_size.unwrap_or(call.nodes.len()).max(1);
    let mut tally = Tally::default();
    let mut called = 0;
    for (i, batch) in call.nodes.chunks(batch_size).enumerate() {
        if i > 0 {
            if let Some(pause) = spec.batch_sleep_time.filter(|d| !d.is_zero()) {
                tokio::time::sleep(pause).await;
            }
        }
        let rpc = RpcCall {
            agent: call.agent.clone(),
            action: call.action.clone(),
            data: call.data.clone(),
            filter: Filter::default(),
            addressing: Addressing::Direct(batch.to_vec()),
            expectation: Expectation::Nodes(batch.iter().cloned().collect()),
            timeout,
            keep_bodies: true,
        };
        let collected = match connected.rpc(&rpc).await {
            Ok(collected) => collected,
            Err(error) => return TaskOutcome::fail(format!("{name}: {}", Chain(&error))),
        };
        called += batch.len();
        tally.add(collected, call.assertion.as_ref());
        tracing::debug!(rpc = %name, batch = tally.batches, nodes = batch.len(), "RPC batch done.");
        if tally.failed() {
            break;
        }
    }
    let skipped = call.nodes.len() - called;
    tally.into_outcome(&call, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_lists() {
        assert_eq!(
            node_list(&json!(["a", ["b", "a"], "c, d e"])).unwrap(),
            ["a", "b", "c", "d", "e"]
        );
        assert_eq!(node_list(&Value::Null).unwrap(), Vec::<String>::new());
        assert!(node_list(&json!([1])).is_err());
    }
}
