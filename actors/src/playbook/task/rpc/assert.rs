//! The `assert` of an `rpc` task: a simple expression every reply's data must satisfy, in the
//! spirit of Choria's JGrep asserts: clauses joined by `and`, each one of
//!
//! - `key`: the key is present and neither null, false nor "";
//! - `key<op>value` with `==` (or `=`), `!=`, `<`, `<=`, `>`, `>=` and `=~` (`/regex/`).
//!
//! Keys are dotted paths into the reply data (`status.enabled`). The value is compared by the
//! reply's type: numbers numerically, booleans as `true`/`false`, anything else as text
//! (surrounding quotes are removed). Example: `enabled=true and idle_for>=10`.

use std::fmt;

use regex::Regex;
use serde_json::Value;

/// Operators in the order they are searched for (two-character ones first).
const OPERATORS: [&str; 8] = ["==", "!=", "<=", ">=", "=~", "<", ">", "="];

#[derive(Clone, Debug)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Matches(Regex),
}

#[derive(Clone, Debug)]
struct Clause {
    path: Vec<String>,
    test: Option<(Op, String)>,
    text: String,
}

/// A compiled assert expression.
#[derive(Clone, Debug)]
pub struct Assertion {
    clauses: Vec<Clause>,
}

impl fmt::Display for Assertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let texts: Vec<&str> = self.clauses.iter().map(|c| c.text.as_str()).collect();
        f.write_str(&texts.join(" and "))
    }
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

fn parse_clause(text: &str) -> Result<Clause, String> {
    let text = text.trim();
    let found = OPERATORS
        .iter()
        .filter_map(|op| text.find(op).map(|p| (p, *op)))
        .min_by_key(|(p, op)| (*p, std::cmp::Reverse(op.len())));
    let (key, test) = match found {
        None => (text, None),
        Some((pos, op)) => {
            let key = text[..pos].trim();
            let value = text[pos + op.len()..].trim();
            if value.is_empty() {
                return Err(format!("{text:?}: no value after {op}"));
            }
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value)
                .to_string();
            let op = match op {
                "==" | "=" => Op::Eq,
                "!=" => Op::Ne,
                "<" => Op::Lt,
                "<=" => Op::Le,
                ">" => Op::Gt,
                ">=" => Op::Ge,
                _ => {
                    let pattern = value
                        .strip_prefix('/')
                        .and_then(|v| v.strip_suffix('/'))
                        .unwrap_or(&value);
                    Op::Matches(
                        Regex::new(pattern).map_err(|e| format!("{text:?}: bad regex: {e}"))?,
                    )
                }
            };
            (key, Some((op, value)))
        }
    };
    if !valid_key(key) {
        return Err(format!(
            "{text:?}: expected key, or key<op>value with ==, !=, <, <=, >, >= or =~"
        ));
    }
    Ok(Clause {
        path: key.split('.').map(str::to_string).collect(),
        test,
        text: text.to_string(),
    })
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn equal(value: &Value, literal: &str) -> bool {
    match value {
        Value::Bool(b) => literal.parse::<bool>().is_ok_and(|l| l == *b),
        Value::Number(_) => number(value)
            .zip(literal.parse::<f64>().ok())
            .is_some_and(|(a, b)| a == b),
        Value::String(s) => s == literal,
        Value::Null => literal == "null",
        other => serde_json::from_str::<Value>(literal).is_ok_and(|l| l == *other),
    }
}

impl Clause {
    fn check(&self, data: &Value) -> Result<(), String> {
        let mut value = data;
        for key in &self.path {
            value = match value.get(key) {
                Some(v) => v,
                None => return Err(format!("{}: {} is missing", self.text, self.path.join("."))),
            };
        }
        let ok = match &self.test {
            None => {
                !matches!(value, Value::Null | Value::Bool(false)) && value.as_str() != Some("")
            }
            Some((Op::Eq, literal)) => equal(value, literal),
            Some((Op::Ne, literal)) => !equal(value, literal),
            Some((Op::Matches(re), _)) => re.is_match(&match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
            Some((op, literal)) => match (number(value), literal.parse::<f64>().ok()) {
                (Some(a), Some(b)) => match op {
                    Op::Lt => a < b,
                    Op::Le => a <= b,
                    Op::Gt => a > b,
                    _ => a >= b,
                },
                _ => false,
            },
        };
        if ok {
            Ok(())
        } else {
            let shown = value.to_string();
            let shown: String = shown.chars().take(80).collect();
            Err(format!("{}: got {shown}", self.text))
        }
    }
}

impl Assertion {
    /// Compiles `text`; the error says which clause is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let clauses = split_and(text)
            .into_iter()
            .map(parse_clause)
            .collect::<Result<Vec<_>, _>>()?;
        if clauses.is_empty() {
            return Err("an empty assert".into());
        }
        Ok(Self { clauses })
    }

    /// Checks one reply's data: every clause must hold; the error names the first that fails.
    pub fn check(&self, data: &Value) -> Result<(), String> {
        self.clauses.iter().try_for_each(|c| c.check(data))
    }
}

/// Splits on the word `and` (any case) between clauses.
fn split_and(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let lower = text.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut i = 0;
    while let Some(found) = lower[i..].find("and") {
        let at = i + found;
        let before = at == 0 || bytes[at - 1].is_ascii_whitespace();
        let after = at + 3 >= bytes.len() || bytes[at + 3].is_ascii_whitespace();
        if before && after && at > 0 {
            parts.push(&text[start..at]);
            start = at + 3;
        }
        i = at + 3;
    }
    parts.push(&text[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn presence_and_comparisons() {
        let data =
            json!({"message": "abc", "size": 10, "on": true, "nested": {"x": "web1"}, "empty": ""});
        for ok in [
            "message",
            "size=10",
            "size == 10",
            "size>=10 and size<11",
            "on=true",
            "message != xyz",
            "message=\"abc\"",
            "nested.x =~ /^web[0-9]$/",
            "message AND on",
        ] {
            let a = Assertion::parse(ok).unwrap();
            assert!(a.check(&data).is_ok(), "{ok}: {:?}", a.check(&data));
        }
        for bad in ["missing", "empty", "size>10", "on=false", "message=~/^x/"] {
            let a = Assertion::parse(bad).unwrap();
            assert!(a.check(&data).is_err(), "{bad}");
        }
        assert_eq!(
            Assertion::parse("size > 20").unwrap().check(&data),
            Err("size > 20: got 10".to_string())
        );
    }

    #[test]
    fn syntax_errors() {
        for bad in ["", "a b", "size>", "x=~/(/", "=3"] {
            assert!(Assertion::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Assertion::parse("a and brand=x").unwrap().to_string(),
            "a and brand=x"
        );
    }
}
