//! A small YAML writer for JSON values (block style), for the YAML report: maps and lists in
//! block form, strings plain when they read back as the same string and double-quoted (JSON
//! escapes, which YAML shares) otherwise.

use serde_json::{Map, Value};

/// `value` as a YAML document.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::from("---\n");
    match value {
        Value::Object(map) if !map.is_empty() => write_map(map, 0, false, &mut out),
        Value::Array(items) if !items.is_empty() => write_list(items, 0, &mut out),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

/// A YAML document of a map whose top-level keys keep the given order.
pub fn to_yaml_in_order(sections: &[(&str, Value)]) -> String {
    let mut out = String::from("---\n");
    for (key, value) in sections {
        out.push_str(&string(key));
        out.push(':');
        write_child(value, 0, &mut out);
    }
    out
}

fn indent(level: usize, out: &mut String) {
    out.extend(std::iter::repeat_n(' ', level));
}

/// With `inline`, the first key goes on the current line (after `- `).
fn write_map(map: &Map<String, Value>, level: usize, inline: bool, out: &mut String) {
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 || !inline {
            indent(level, out);
        }
        out.push_str(&string(key));
        out.push(':');
        write_child(value, level, out);
    }
}

fn write_list(items: &[Value], level: usize, out: &mut String) {
    for item in items {
        indent(level, out);
        match item {
            Value::Object(map) if !map.is_empty() => {
                out.push_str("- ");
                write_map(map, level + 2, true, out);
            }
            _ => {
                out.push('-');
                write_child(item, level, out);
            }
        }
    }
}

/// A value after `key:` or `-`: a scalar on the same line, a collection indented below.
fn write_child(value: &Value, level: usize, out: &mut String) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            write_map(map, level + 2, false, out);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            write_list(items, level + 2, out);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// Plain when it starts with a letter, `_` or `/`, holds only letters, digits, `_`, `-`, `.` and
/// `/`, and is not a word YAML would read as something else (`yes`, `null`, ...); quoted
/// otherwise.
fn string(text: &str) -> String {
    let plain = text
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '/')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        && !matches!(
            text.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null" | "nan" | "inf"
        );
    if plain {
        text.to_string()
    } else {
        serde_json::Value::String(text.to_string()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_written_document_reads_back_as_the_same_value() {
        let value = json!({
            "report": {"version": 1, "success": false, "playbook_error": null},
            "plain": "web1.example.net",
            "words": ["yes", "No", "null", "1.5", "12", "", " lead", "a: b", "#x", "- y",
                      "line\nbreak \"quoted\" \\ tab\t", "ünïcode", "{x}", "[y]", "*z", "&a", "!t", "%p", "@q", "`r"],
            "numbers": [0, -3, 2.5, 1e-7],
            "empty": {"list": [], "map": {}},
            "nested": [{"a": [1, [2, 3]], "b": {"c": true}}, [], {}],
            "odd key: 1": "v",
        });
        let text = to_yaml(&value);
        let back: Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(back, value, "{text}");
        assert!(text.contains("plain: web1.example.net\n"), "{text}");
        assert!(text.contains("  - a:\n"), "{text}");

        let ordered = to_yaml_in_order(&[("z", json!(1)), ("a", json!({"k": [{"p": 1, "q": 2}]}))]);
        assert_eq!(ordered, "---\nz: 1\na:\n  k:\n    - p: 1\n      q: 2\n");
    }
}
