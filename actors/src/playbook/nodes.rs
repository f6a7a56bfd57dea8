//! Node sets: from a list or a file (discovery needs the choir client), then deduplicated,
//! checked for emptiness, limited and checked against `at_least`.

use serde_json::Value;

use super::validate::NodeSet;

/// The error for discovery-based sets until the client exists.
pub const DISCOVERY_NOT_BUILT: &str = "discovery node sets need the choir client (not built yet)";

/// Resolves one set; the error names the set.
pub fn resolve(name: &str, set: &NodeSet) -> Result<Vec<String>, String> {
    let spec = &set.spec;
    let found: Vec<String> = match spec.kind.as_str() {
        "list" => spec.nodes.clone(),
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
        _ => return Err(format!("node set {name}: {DISCOVERY_NOT_BUILT}")),
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
        return Err(format!(
            "node set {name} has {} nodes, at least {} needed",
            nodes.len(),
            set.at_least
        ));
    }
    Ok(nodes)
}
