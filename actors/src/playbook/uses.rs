//! `uses`: the agent versions a playbook needs (`rpcutil: "~1.0.0"`), checked on the nodes of
//! every node set that lists the agent in its own `uses`, through `rpcutil#agent_inventory`.
//!
//! Ranges are written as Choria wrote them (Puppet's SemVer ranges): comparators separated by
//! spaces (`>= 1.0.0 < 2.0.0`) or commas, `~1.2.0`, `^1.2.0`, `1.x`, `1.0.0 - 1.4.0`,
//! alternatives joined by `||`; a bare version (`1.0.0`) means exactly that version. A
//! version of two parts (`1.1`), as old MCollective agents have, is read as `1.1.0`.

use std::collections::BTreeMap;

use semver::{Version, VersionReq};
use serde_json::Value;

/// A parsed version range.
#[derive(Clone, Debug)]
pub struct VersionRange {
    alternatives: Vec<VersionReq>,
}

impl VersionRange {
    /// Parses a range; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let alternatives = text
            .split("||")
            .map(|alternative| {
                let translated = translate(alternative.trim())?;
                VersionReq::parse(&translated).map_err(|e| format!("{alternative:?}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { alternatives })
    }

    /// Whether `version` is in the range.
    pub fn matches(&self, version: &Version) -> bool {
        self.alternatives.iter().any(|r| r.matches(version))
    }
}

/// One alternative in `semver`'s syntax: a hyphen range becomes `>=a, <=b`; comparators are
/// joined with commas; a bare full version gets `=`.
fn translate(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("empty version range".into());
    }
    if let Some((low, high)) = text.split_once(" - ") {
        return Ok(format!(">={}, <={}", pad(low.trim()), pad(high.trim())));
    }
    let mut comparators: Vec<String> = Vec::new();
    let mut pending_op = String::new();
    for token in text.split(|c: char| c == ',' || c.is_whitespace()) {
        if token.is_empty() {
            continue;
        }
        if token.chars().all(|c| "<>=~^".contains(c)) {
            pending_op.push_str(token);
            continue;
        }
        let token = format!("{pending_op}{token}");
        pending_op.clear();
        let bare = !token.starts_with(|c: char| "<>=~^".contains(c));
        let wildcard = token.contains(['x', 'X', '*']);
        comparators.push(if bare && !wildcard {
            format!("={token}")
        } else {
            token
        });
    }
    if !pending_op.is_empty() {
        return Err(format!("{text:?}: {pending_op} without a version"));
    }
    Ok(comparators.join(", "))
}

/// `1.1` → `1.1.0`, `1` → `1.0.0`.
fn pad(version: &str) -> String {
    match version.split('.').count() {
        1 => format!("{version}.0.0"),
        2 => format!("{version}.0"),
        _ => version.to_string(),
    }
}

/// Parses an agent's version as reported, padding `1.1` to `1.1.0`.
pub fn parse_version(text: &str) -> Result<Version, String> {
    Version::parse(&pad(text.trim())).map_err(|e| format!("{text:?}: {e}"))
}

/// What the inventory replies (`{sender, data: {agents: [{agent, version}]}}` each) say
/// against the wanted `(agent, range text, nodes)`: one line per node that did not answer,
/// lacks the agent, or runs a version outside the range.
pub fn inventory_problems(
    wanted: &BTreeMap<String, (String, Vec<String>)>,
    replies: &[Value],
) -> Vec<String> {
    let mut problems = Vec::new();
    let by_node: BTreeMap<&str, &Value> = replies
        .iter()
        .filter_map(|r| Some((r["sender"].as_str()?, &r["data"])))
        .collect();
    for (agent, (range_text, nodes)) in wanted {
        let range = match VersionRange::parse(range_text) {
            Ok(range) => range,
            Err(error) => {
                problems.push(format!("agent {agent}: version range {error}"));
                continue;
            }
        };
        for node in nodes {
            let Some(data) = by_node.get(node.as_str()) else {
                problems.push(format!("node {node}: no agent inventory (did not answer)"));
                continue;
            };
            let found = data["agents"].as_array().and_then(|agents| {
                agents
                    .iter()
                    .find(|a| a["agent"] == agent.as_str() || a["name"] == agent.as_str())
            });
            let Some(metadata) = found else {
                problems.push(format!("node {node}: agent {agent} is not installed"));
                continue;
            };
            let version = metadata["version"].as_str().unwrap_or_default();
            match parse_version(version) {
                Ok(v) if range.matches(&v) => {}
                Ok(_) => problems.push(format!(
                    "node {node}: agent {agent} version {version} does not match {range_text}"
                )),
                Err(error) => problems.push(format!(
                    "node {node}: agent {agent} has an unreadable version {error}"
                )),
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn matches(range: &str, version: &str) -> bool {
        VersionRange::parse(range)
            .unwrap()
            .matches(&parse_version(version).unwrap())
    }

    #[test]
    fn choria_ranges_read_as_puppet_wrote_them() {
        assert!(matches("~1.0.0", "1.0.9"));
        assert!(!matches("~1.0.0", "1.1.0"));
        assert!(matches(">= 1.0.0 < 2.0.0", "1.5.0"));
        assert!(!matches(">= 1.0.0 < 2.0.0", "2.0.0"));
        assert!(matches(">=1.0.0, <2.0.0", "1.0.0"));
        assert!(matches("1.0.0", "1.0.0"));
        assert!(!matches("1.0.0", "1.0.1"), "a bare version is exact");
        assert!(matches("1.x", "1.7.2"));
        assert!(matches("1.0.0 - 1.4.0", "1.4.0"));
        assert!(!matches("1.0.0 - 1.4.0", "1.4.1"));
        assert!(matches("~0.1 || >= 3", "3.2.0"));
        assert!(matches(">= 1.1", "1.1"), "two-part versions are padded");
        assert!(VersionRange::parse("not a range").is_err());
        assert!(VersionRange::parse(">=").is_err());
        assert!(VersionRange::parse("").is_err());
    }

    #[test]
    fn inventory_problems_name_node_agent_and_version() {
        let wanted = BTreeMap::from([
            (
                "rpcutil".to_string(),
                (
                    "~0.1.0".to_string(),
                    vec!["a".into(), "b".into(), "c".into()],
                ),
            ),
            ("puppet".to_string(), (">= 2".to_string(), vec!["a".into()])),
        ]);
        let replies = vec![
            json!({"sender": "a", "data": {"agents": [{"agent": "rpcutil", "version": "0.1.3"}]}}),
            json!({"sender": "b", "data": {"agents": [{"agent": "rpcutil", "version": "0.0.1"}]}}),
        ];
        let problems = inventory_problems(&wanted, &replies);
        assert_eq!(
            problems,
            [
                "node a: agent puppet is not installed",
                "node b: agent rpcutil version 0.0.1 does not match ~0.1.0",
                "node c: no agent inventory (did not answer)",
            ]
        );
    }
}
