//! A read-only view of a node's facts.

use serde_json::{Map, Value};

/// A node's facts: a JSON object, possibly nested.
///
/// [`Facts::get`] resolves `os.family` either as a literal top-level key `"os.family"` or as the
/// nested path `os` → `family` (arrays are indexed by number, `ips.0`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    root: Map<String, Value>,
}

impl Facts {
    /// Wraps a JSON object of facts.
    pub fn new(root: Map<String, Value>) -> Self {
        Self { root }
    }

    /// Wraps a JSON value; anything but an object gives empty facts.
    pub fn from_value(value: Value) -> Self {
        match value {
            Value::Object(root) => Self { root },
            _ => Self::default(),
        }
    }

    /// The underlying object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.root
    }

    /// Looks a fact up by name; dots address nested objects and array indices, and a literal
    /// key containing dots wins over the nested interpretation.
    pub fn get(&self, name: &str) -> Option<&Value> {
        lookup_in_map(&self.root, name)
    }
}

impl From<Map<String, Value>> for Facts {
    fn from(root: Map<String, Value>) -> Self {
        Self::new(root)
    }
}

fn lookup_in_map<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = map.get(name) {
        return Some(v);
    }
    name.match_indices('.').find_map(|(i, _)| {
        let (head, rest) = (&name[..i], &name[i + 1..]);
        map.get(head).and_then(|child| lookup(child, rest))
    })
}

fn lookup<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    match value {
        Value::Object(map) => lookup_in_map(map, name),
        Value::Array(items) => {
            let (head, rest) = match name.split_once('.') {
                Some((h, r)) => (h, Some(r)),
                None => (name, None),
            };
            let item = items.get(head.parse::<usize>().ok()?)?;
            match rest {
                Some(rest) => lookup(item, rest),
                None => Some(item),
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_lookup() {
        let facts = Facts::from_value(json!({
            "country": "mt",
            "os": {"family": "RedHat", "release": {"major": "9"}},
            "a.b": 1,
            "ips": ["10.0.0.1", "10.0.0.2"]
        }));
        assert_eq!(facts.get("country"), Some(&json!("mt")));
        assert_eq!(facts.get("os.family"), Some(&json!("RedHat")));
        assert_eq!(facts.get("os.release.major"), Some(&json!("9")));
        assert_eq!(facts.get("a.b"), Some(&json!(1)));
        assert_eq!(facts.get("ips.1"), Some(&json!("10.0.0.2")));
        assert_eq!(facts.get("os.missing"), None);
        assert_eq!(facts.get("ips.9"), None);
        assert_eq!(facts.get(""), None);
        assert!(Facts::from_value(json!([1])).as_map().is_empty());
    }
}
