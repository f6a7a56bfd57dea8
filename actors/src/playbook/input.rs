//! Input values: parsing by type (command line, JSON, stored text) and validation rules.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::Value;

use super::spec::{InputType, ValidationSpec};

/// The type a `:string`-style validator checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeCheck {
    /// A string.
    String,
    /// An integer, or text that is one.
    Integer,
    /// A float (an integer is not one), or text with a decimal point.
    Float,
    /// Any number, or text that is one.
    Number,
    /// true or false, or text that is one of them.
    Boolean,
}

impl TypeCheck {
    fn check(self, value: &Value) -> Result<(), String> {
        let ok = match (self, value) {
            (Self::String, Value::String(_)) => true,
            (Self::Integer, Value::Number(n)) => n.is_i64() || n.is_u64(),
            (Self::Integer, Value::String(s)) => s.trim().parse::<i64>().is_ok(),
            (Self::Float, Value::Number(n)) => n.is_f64(),
            (Self::Float, Value::String(s)) => s.contains('.') && s.trim().parse::<f64>().is_ok(),
            (Self::Number, Value::Number(_)) => true,
            (Self::Number, Value::String(s)) => s.trim().parse::<f64>().is_ok(),
            (Self::Boolean, Value::Bool(_)) => true,
            (Self::Boolean, Value::String(s)) => matches!(s.trim(), "true" | "false"),
            _ => false,
        };
        let name = match self {
            Self::String => "a string",
            Self::Integer => "an integer",
            Self::Float => "a float",
            Self::Number => "a number",
            Self::Boolean => "a boolean",
        };
        if ok {
            Ok(())
        } else {
            Err(format!("not {name}"))
        }
    }
}

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
    /// MCollective's type checks `:string`, `:integer`, `:float`, `:number`, `:boolean`.
    Type(TypeCheck),
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
                    "string" => Ok(Self::Type(TypeCheck::String)),
                    "integer" => Ok(Self::Type(TypeCheck::Integer)),
                    "float" => Ok(Self::Type(TypeCheck::Float)),
                    "number" => Ok(Self::Type(TypeCheck::Number)),
                    "boolean" | "bool" => Ok(Self::Type(TypeCheck::Boolean)),
                    _ => Err(
                        "unknown validation (:shellsafe, :ipv4address, :ipv6address, :string, :integer, :float, :number, :boolean, /regex/ or a list of values)"
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
        if let Self::Type(check) = self {
            return check.check(value);
        }
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match self {
            Self::Type(_) => Ok(()),
            Self::ShellSafe => {
                if !value.is_string() {
                    return Err("not shellsafe: not a string".into());
                }
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
        InputType::Numeric => trimmed
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| trimmed.parse::<f64>().map(Value::from))
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
        (InputType::Float | InputType::Numeric, v @ Value::Number(_)) => Ok(v),
        (InputType::Bool, v @ Value::Bool(_)) => Ok(v),
        (InputType::Array, v @ Value::Array(_)) => Ok(v),
        (InputType::Map, v @ Value::Object(_)) => Ok(v),
        (kind, v) => Err(format!("{v} is not of type {}", kind.as_str())),
    }
}

/// Reads input values from a JSON or YAML (`.yaml`/`.yml`) file holding one map, as
/// `--input @FILE` and `--inputs FILE` take them.
pub fn read_inputs_file(path: &std::path::Path) -> Result<serde_json::Map<String, Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let value: Value = if super::yaml::is_yaml(path) {
        serde_saphyr::from_str(&text).map_err(|e| e.without_snippet().to_string())?
    } else {
        serde_json::from_str(&text).map_err(|e| e.to_string())?
    };
    match value {
        Value::Object(map) => Ok(map),
        _ => Err("not a map of input names to values".into()),
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
    fn regex_ipv4_and_list_validators_accept_and_refuse() {
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
    fn mcollective_type_validators_check_the_value_type() {
        let rule = |name: &str| Rule::compile(&ValidationSpec::Named(name.into())).unwrap();
        assert!(rule(":string").check(&Value::from("x")).is_ok());
        assert!(rule(":string").check(&Value::from(1)).is_err());
        assert!(rule(":integer").check(&Value::from(3)).is_ok());
        assert!(rule(":integer").check(&Value::from("3")).is_ok());
        assert!(rule(":integer").check(&Value::from(3.5)).is_err());
        assert!(rule(":float").check(&Value::from(3.5)).is_ok());
        assert!(rule(":float").check(&Value::from(3)).is_err());
        assert!(rule(":number").check(&Value::from(3)).is_ok());
        assert!(rule(":number").check(&Value::from("x")).is_err());
        assert!(rule(":boolean").check(&Value::from(true)).is_ok());
        assert!(rule(":boolean").check(&Value::from("maybe")).is_err());
        assert!(rule(":ipv6address").check(&Value::from("::1")).is_ok());
        assert!(rule(":ipv4address").check(&Value::from("::1")).is_err());
        assert!(rule(":shellsafe").check(&Value::from(3)).is_err());
        assert!(Rule::compile(&ValidationSpec::Named(":nope".into())).is_err());
    }

    #[test]
    fn numeric_inputs_keep_integers_and_take_floats() {
        assert_eq!(parse_text(InputType::Numeric, "4").unwrap(), Value::from(4));
        assert_eq!(
            parse_text(InputType::Numeric, "4.5").unwrap(),
            Value::from(4.5)
        );
        assert!(parse_text(InputType::Numeric, "four").is_err());
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
