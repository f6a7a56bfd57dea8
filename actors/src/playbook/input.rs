//! Input values: parsing by type (command line, JSON, stored text) and validation rules.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::Value;

use super::spec::{InputType, ValidationSpec};

/// A compiled validation rule.
#[derive(Clone, Debug)]
pub enum Rule {
    /// No `` ` `` `$` `;` `|` `&&` `>` `<` or newline in any string.
    ShellSafe,
    /// An IPv4 address.
    Ipv4,
    /// An IPv6 address.
    Ipv6,
    /// Matches the regular expression.
    Regex(regex::Regex),
    /// One of these values.
    OneOf(Vec<Value>),
}

impl Rule {
    /// Compiles a rule as written in a playbook.
    pub fn compile(spec: &ValidationSpec) -> Result<Self, String> {
        match spec {
            ValidationSpec::OneOf(values) => {
                Ok(Self::OneOf(values.iter().map(toml_to_json).collect()))
            }
            ValidationSpec::Named(name) => {
                if let Some(pattern) = name.strip_prefix('/').and_then(|p| p.strip_suffix('/')) {
                    return regex::Regex::new(pattern)
                        .map(Self::Regex)
                        .map_err(|e| format!("invalid regular expression: {e}"));
                }
                match name.trim_start_matches(':') {
                    "shellsafe" => Ok(Self::ShellSafe),
                    "ipv4" | "ipv4address" => Ok(Self::Ipv4),
                    "ipv6" | "ipv6address" => Ok(Self::Ipv6),
                    _ => Err(
                        "unknown validation (shellsafe, ipv4, ipv6, /regex/ or a list of values)"
                            .to_string(),
                    ),
                }
            }
        }
    }

    /// Checks a value; the error says why it was refused.
    pub fn check(&self, value: &Value) -> Result<(), String> {
        if let (Value::Array(items), false) = (value, matches!(self, Self::OneOf(_))) {
            return items.iter().try_for_each(|item| self.check(item));
        }
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match self {
            Self::ShellSafe => {
                for bad in ["`", "$", ";", "|", "&&", ">", "<", "\n", "\r"] {
                    if text.contains(bad) {
                        return Err(format!("not shellsafe: contains {bad:?}"));
                    }
                }
                Ok(())
            }
            Self::Ipv4 => text
                .parse::<Ipv4Addr>()
                .map(|_| ())
                .map_err(|_| "not an IPv4 address".into()),
            Self::Ipv6 => text
                .parse::<Ipv6Addr>()
                .map(|_| ())
                .map_err(|_| "not an IPv6 address".into()),
            Self::Regex(re) => {
                if re.is_match(&text) {
                    Ok(())
                } else {
                    Err(format!("does not match /{}/", re.as_str()))
                }
            }
            Self::OneOf(allowed) => {
                if allowed
                    .iter()
                    .any(|a| a == value || a.as_str() == Some(text.as_str()))
                {
                    Ok(())
                } else {
                    let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
                    Err(format!("not one of {}", list.join(", ")))
                }
            }
        }
    }
}

/// Converts a TOML value to JSON (datetimes become strings).
pub fn toml_to_json(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::from(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => Value::from(*f),
        toml::Value::Boolean(b) => Value::from(*b),
        toml::Value::Datetime(d) => Value::from(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.iter().map(toml_to_json).collect()),
        toml::Value::Table(table) => Value::Object(
            table
                .iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

/// Parses text (a command-line value or a stored value) as `kind`.
pub fn parse_text(kind: InputType, raw: &str) -> Result<Value, String> {
    let trimmed = raw.trim();
    match kind {
        InputType::String => Ok(Value::from(raw)),
        InputType::Integer => trimmed
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("{raw:?} is not an integer")),
        InputType::Float => trimmed
            .parse::<f64>()
            .map(Value::from)
            .map_err(|_| format!("{raw:?} is not a number")),
        InputType::Bool => match trimmed.to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "1" | "on" => Ok(Value::Bool(true)),
            "false" | "no" | "n" | "0" | "off" => Ok(Value::Bool(false)),
            _ => Err(format!("{raw:?} is not a boolean (true or false)")),
        },
        InputType::Array => {
            if trimmed.starts_with('[') {
                match serde_json::from_str::<Value>(trimmed) {
                    Ok(value @ Value::Array(_)) => Ok(value),
                    _ => Err(format!("{raw:?} is not a JSON array")),
                }
            } else if trimmed.is_empty() {
                Ok(Value::Array(Vec::new()))
            } else {
                Ok(Value::Array(
                    trimmed.split(',').map(|s| Value::from(s.trim())).collect(),
                ))
            }
        }
        InputType::Map => match serde_json::from_str::<Value>(trimmed) {
            Ok(value @ Value::Object(_)) => Ok(value),
            _ => Err(format!("{raw:?} is not a JSON object")),
        },
    }
}

/// Checks (and where lossless, converts) a JSON value to `kind`: strings are parsed as text.
pub fn coerce(kind: InputType, value: Value) -> Result<Value, String> {
    match (kind, value) {
        (InputType::String, Value::String(s)) => Ok(Value::String(s)),
        (_, Value::String(s)) => parse_text(kind, &s),
        (InputType::Integer, v @ Value::Number(_)) if v.is_i64() => Ok(v),
        (InputType::Float, v @ Value::Number(_)) => Ok(v),
        (InputType::Bool, v @ Value::Bool(_)) => Ok(v),
        (InputType::Array, v @ Value::Array(_)) => Ok(v),
        (InputType::Map, v @ Value::Object(_)) => Ok(v),
        (kind, v) => Err(format!("{v} is not of type {}", kind.as_str())),
    }
}

/// A value as stored text: strings bare, everything else JSON.
pub fn to_stored(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shellsafe_refuses_shell_syntax() {
        let rule = Rule::compile(&ValidationSpec::Named(":shellsafe".into())).unwrap();
        assert!(rule.check(&Value::from("; rm -rf ~/x")).is_err());
        assert!(rule.check(&Value::from("alpha")).is_ok());
        assert!(rule.check(&serde_json::json!(["a", "$(x)"])).is_err());
    }

    #[test]
    fn rules() {
        let re = Rule::compile(&ValidationSpec::Named("/^[a-z]+$/".into())).unwrap();
        assert!(re.check(&Value::from("abc")).is_ok());
        assert!(re.check(&Value::from("ab1")).is_err());
        let ip = Rule::compile(&ValidationSpec::Named("ipv4".into())).unwrap();
        assert!(ip.check(&Value::from("10.0.0.1")).is_ok());
        assert!(ip.check(&Value::from("::1")).is_err());
        let one = Rule::compile(&ValidationSpec::OneOf(vec!["a".into(), "b".into()])).unwrap();
        assert!(one.check(&Value::from("b")).is_ok());
        assert!(one.check(&Value::from("c")).is_err());
        assert!(Rule::compile(&ValidationSpec::Named("nope".into())).is_err());
    }

    #[test]
    fn typed_parsing() {
        assert_eq!(
            parse_text(InputType::Integer, "42").unwrap(),
            Value::from(42)
        );
        assert!(parse_text(InputType::Integer, "4x").is_err());
        assert_eq!(
            parse_text(InputType::Bool, "yes").unwrap(),
            Value::Bool(true)
        );
        assert_eq!(
            parse_text(InputType::Array, "a, b").unwrap(),
            serde_json::json!(["a", "b"])
        );
        assert_eq!(
            parse_text(InputType::Array, "[1,2]").unwrap(),
            serde_json::json!([1, 2])
        );
        assert_eq!(
            parse_text(InputType::Map, "{\"a\":1}").unwrap(),
            serde_json::json!({"a": 1})
        );
        assert!(coerce(InputType::Bool, Value::from(3)).is_err());
    }
}
