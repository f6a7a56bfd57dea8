//! `yaml` node sets: `group` of the YAML file `source`, a map of group names to lists of
//! nodes (Choria's format).

use std::collections::BTreeMap;

use serde_json::Value;

/// The nodes of `group` in the YAML text of `source`; the error names the file and group.
pub fn group(source: &str, text: &str, group: &str) -> Result<Vec<String>, String> {
    let groups: BTreeMap<String, Value> = serde_saphyr::from_str(text)
        .map_err(|e| format!("{source}: not a YAML map of groups: {e}"))?;
    let Some(members) = groups.get(group) else {
        let known: Vec<&str> = groups.keys().map(String::as_str).collect();
        return Err(format!(
            "{source}: no group {group:?} (groups: {})",
            known.join(", ")
        ));
    };
    let Value::Array(items) = members else {
        return Err(format!("{source}: group {group:?} is not a list"));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(node) => Ok(node.clone()),
            other => Err(format!(
                "{source}: group {group:?} item {i} is not a node name: {other}"
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GROUPS: &str = "web:\n  - web1.example.net\n  - web2\ndb: []\nodd: 3\nmixed: [a, 1]\n";

    #[test]
    fn a_group_is_its_list_of_nodes() {
        assert_eq!(
            group("g.yaml", GROUPS, "web").unwrap(),
            ["web1.example.net", "web2"]
        );
        assert!(group("g.yaml", GROUPS, "db").unwrap().is_empty());
    }

    #[test]
    fn a_missing_group_a_non_list_or_a_non_name_is_an_error_naming_file_and_group() {
        let missing = group("g.yaml", GROUPS, "cache").unwrap_err();
        assert!(missing.contains("g.yaml: no group \"cache\""), "{missing}");
        assert!(missing.contains("db, mixed, odd, web"), "{missing}");
        let odd = group("g.yaml", GROUPS, "odd").unwrap_err();
        assert!(odd.contains("group \"odd\" is not a list"), "{odd}");
        let mixed = group("g.yaml", GROUPS, "mixed").unwrap_err();
        assert!(mixed.contains("item 1"), "{mixed}");
        assert!(group("g.yaml", "- a\n- b\n", "a").is_err());
        assert!(group("g.yaml", "web: [\n", "web").is_err());
    }
}
