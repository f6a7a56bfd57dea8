//! Node sets: from a list, a file or a discovery through the playbook's client
//! ([`discovery`]), then deduplicated, checked for emptiness, limited and checked against
//! `at_least`.

pub mod discovery;

use serde_json::Value;

use super::client::PlaybookClient;
use super::validate::NodeSet;

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
