//! Node sets: from a list, a file, a discovery through the playbook's client
//! ([`discovery`]), a YAML group ([`yaml`]) or a script ([`shell`]), then deduplicated,
//! checked for emptiness, limited and checked against `at_least`. Once every set is resolved,
//! the nodes of sets with `test` are pinged ([`test_connectivity`]) and the agents of sets with
//! `uses` are version-checked ([`check_uses`]), as in Choria.

pub mod discovery;
pub mod shell;
pub mod yaml;

use std::collections::BTreeMap;

use serde_json::Value;

use super::client::PlaybookClient;
use super::spec::TaskSpec;
use super::task::{rpc, TaskOutcome};
use super::template::Context;
use super::validate::{NodeSet, Playbook};

/// Resolves one set; the error names the set.
pub async fn resolve(
    name: &str,
    set: &NodeSet,
    client: &PlaybookClient,
) -> Result<Vec<String>, String> {
    let spec = &set.spec;
    let mut discovered = None;
    let found: Vec<String> = match spec.kind.as_str() {
        "list" => spec.nodes.clone(),
        "discovery" => {
            let (nodes, timeout) = discovery::discover(spec, client)
                .await
                .map_err(|e| format!("node set {name}: discovery failed: {e}"))?;
            tracing::info!(set = %name, nodes = nodes.len(), "Node set discovered.");
            discovered = Some(timeout);
            nodes
        }
        "file" => {
            let path = spec.file.as_deref().unwrap_or_default();
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("node set {name}: {path}: {e}"))?;
            if text.trim_start().starts_with('[') {
                match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Array(items)) => items
                        .iter()
                        .map(|v| {
                            v.as_str().map(str::to_string).ok_or_else(|| {
                                format!("node set {name}: {path}: not a list of strings")
                            })
                        })
                        .collect::<Result<_, _>>()?,
                    _ => return Err(format!("node set {name}: {path}: not a JSON list")),
                }
            } else {
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_string)
                    .collect()
            }
        }
        "yaml" => {
            let source = spec.source.as_deref().unwrap_or_default();
            let text = std::fs::read_to_string(source)
                .map_err(|e| format!("node set {name}: {source}: {e}"))?;
            yaml::group(source, &text, spec.group.as_deref().unwrap_or_default())
                .map_err(|e| format!("node set {name}: {e}"))?
        }
        "shell" => {
            let script = spec.script.as_deref().unwrap_or_default();
            let timeout = spec.timeout.unwrap_or(shell::DEFAULT_TIMEOUT);
            shell::run(script, timeout)
                .await
                .map_err(|e| format!("node set {name}: script {script:?}: {e}"))?
        }
        other => return Err(format!("node set {name}: unknown type {other:?}")),
    };
    let mut nodes: Vec<String> = Vec::new();
    for node in found {
        if !nodes.contains(&node) {
            nodes.push(node);
        }
    }
    if nodes.is_empty() && set.at_least > 0 {
        return Err(spec
            .when_empty
            .clone()
            .unwrap_or_else(|| format!("node set {name} is empty")));
    }
    if let Some(limit) = spec.limit {
        nodes.truncate(limit);
    }
    if nodes.len() < set.at_least {
        let how = discovered
            .map(|t| format!(" (discovered in {})", humantime::format_duration(t)))
            .unwrap_or_default();
        return Err(format!(
            "node set {name} has {} nodes{how}, at least {} needed",
            nodes.len(),
            set.at_least
        ));
    }
    Ok(nodes)
}

/// Calls `rpcutil#<action>` on `nodes` as an rpc task would (default timeout, one batch).
async fn rpcutil(action: &str, nodes: &[String], client: &PlaybookClient) -> TaskOutcome {
    let spec = TaskSpec {
        kind: "rpc".into(),
        agent: Some("rpcutil".into()),
        action: Some(action.into()),
        nodes: Some(toml::Value::Array(
            nodes.iter().cloned().map(toml::Value::String).collect(),
        )),
        ..TaskSpec::default()
    };
    rpc::run(&spec, &Context::new(), client).await
}

/// The nodes of the sets `wanted` picks, each once, in set order.
fn nodes_of<'a>(
    pb: &'a Playbook,
    resolved: &'a BTreeMap<String, Vec<String>>,
    wanted: impl Fn(&NodeSet) -> bool,
) -> Vec<String> {
    let mut nodes: Vec<String> = Vec::new();
    for (name, set) in &pb.nodes {
        if wanted(set) {
            for node in resolved.get(name).into_iter().flatten() {
                if !nodes.contains(node) {
                    nodes.push(node.clone());
                }
            }
        }
    }
    nodes
}

/// Pings (`rpcutil#ping`) every node of the sets with `test: true`; a node that does not
/// answer fails the run.
pub async fn test_connectivity(
    pb: &Playbook,
    resolved: &BTreeMap<String, Vec<String>>,
    client: &PlaybookClient,
) -> Result<(), String> {
    let nodes = nodes_of(pb, resolved, |set| set.spec.test);
    if nodes.is_empty() {
        return Ok(());
    }
    let outcome = rpcutil("ping", &nodes, client).await;
    if !outcome.success {
        return Err(format!("connectivity test failed: {}", outcome.message));
    }
    tracing::info!(nodes = nodes.len(), "Node sets tested.");
    Ok(())
}

/// Checks the agents of every set with `uses` on its nodes against the top-level `uses`
/// ranges (`rpcutil#agent_inventory`); every mismatch is listed.
pub async fn check_uses(
    pb: &Playbook,
    resolved: &BTreeMap<String, Vec<String>>,
    client: &PlaybookClient,
) -> Result<(), String> {
    let mut wanted: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    for (name, set) in &pb.nodes {
        for agent in &set.spec.uses {
            let range = pb.spec.uses.get(agent).cloned().unwrap_or_default();
            let entry = wanted
                .entry(agent.clone())
                .or_insert_with(|| (range, Vec::new()));
            for node in resolved.get(name).into_iter().flatten() {
                if !entry.1.contains(node) {
                    entry.1.push(node.clone());
                }
            }
        }
    }
    let nodes = nodes_of(pb, resolved, |set| !set.spec.uses.is_empty());
    if nodes.is_empty() {
        return Ok(());
    }
    let outcome = rpcutil("agent_inventory", &nodes, client).await;
    let replies = match &outcome.data {
        Value::Array(replies) => replies.clone(),
        _ => Vec::new(),
    };
    let problems = super::uses::inventory_problems(&wanted, &replies);
    if !problems.is_empty() {
        return Err(format!(
            "agent versions do not match uses: {}",
            problems.join("; ")
        ));
    }
    tracing::info!(
        nodes = nodes.len(),
        agents = wanted.len(),
        "Agent versions checked."
    );
    Ok(())
}
