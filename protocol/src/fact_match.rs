//! Evaluating one fact filter against a node's facts.

use super::{FactFilter, Facts};
use regex::{Regex, RegexBuilder};
use serde_json::Value;
use std::cmp::Ordering;

/// The operators of a fact filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactOperator {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `>`
    Gt,
    /// `<=`
    Le,
    /// `>=`
    Ge,
    /// `=~` (regular expression, `/re/` or bare)
    Regex,
}

impl FactOperator {
    /// Parses a wire operator; `None` for anything unknown.
    pub fn parse(op: &str) -> Option<Self> {
        Some(match op {
            "==" => Self::Eq,
            "!=" => Self::Ne,
            "<" => Self::Lt,
            ">" => Self::Gt,
            "<=" => Self::Le,
            ">=" => Self::Ge,
            "=~" => Self::Regex,
            _ => return None,
        })
    }

    /// The wire form of the operator.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "==",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Gt => ">",
            Self::Le => "<=",
            Self::Ge => ">=",
            Self::Regex => "=~",
        }
    }
}

/// Compiles a filter regex with bounded size (patterns come from the network). Strips one
/// surrounding pair of slashes (`/re/`). `None` if invalid.
pub(crate) fn compile_regex(pattern: &str) -> Option<Regex> {
    let pattern = strip_slashes(pattern).unwrap_or(pattern);
    RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .dfa_size_limit(1 << 20)
        .build()
        .ok()
}

/// `Some(inner)` if `needle` has the `/regex/` form.
pub(crate) fn strip_slashes(needle: &str) -> Option<&str> {
    if needle.len() >= 2 {
        needle.strip_prefix('/')?.strip_suffix('/')
    } else {
        None
    }
}

/// Go's `strconv.ParseBool`.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn parse_number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

/// Whether `filter` matches `facts`.
///
/// A missing fact, a fact that is null/array/object, an unknown operator or an invalid regex
/// never match. Scalars compare as their text (`true`, `42`); when both sides parse as finite
/// numbers the comparison is numeric, otherwise it is a byte-wise string comparison. Boolean
/// facts only support `==`, `!=` (value parsed like Go's `ParseBool`) and `=~`.
pub(crate) fn fact_matches(facts: &Facts, filter: &FactFilter) -> bool {
    let Some(op) = FactOperator::parse(&filter.operator) else {
        return false;
    };
    let Some(value) = facts.get(&filter.fact) else {
        return false;
    };
    let regex = if op == FactOperator::Regex {
        match compile_regex(&filter.value) {
            Some(re) => Some(re),
            None => return false,
        }
    } else {
        None
    };
    value_matches(value, op, &filter.value, regex.as_ref())
}

/// Whether the fact `value` compares to `wanted` with `op` (see [`fact_matches`]); `regex`
/// is `wanted` compiled, required for [`FactOperator::Regex`] (no match without it).
pub(crate) fn value_matches(
    value: &Value,
    op: FactOperator,
    wanted: &str,
    regex: Option<&Regex>,
) -> bool {
    let text = match value {
        Value::String(s) => std::borrow::Cow::Borrowed(s.as_str()),
        Value::Number(n) => std::borrow::Cow::Owned(n.to_string()),
        Value::Bool(b) => {
            if op == FactOperator::Regex {
                std::borrow::Cow::Owned(b.to_string())
            } else {
                let wanted = parse_bool(wanted);
                return match op {
                    FactOperator::Eq => wanted == Some(*b),
                    FactOperator::Ne => wanted.is_some_and(|w| w != *b),
                    _ => false,
                };
            }
        }
        Value::Null | Value::Array(_) | Value::Object(_) => return false,
    };
    if op == FactOperator::Regex {
        return regex.is_some_and(|re| re.is_match(&text));
    }
    let ordering = match (parse_number(&text), parse_number(wanted)) {
        (Some(a), Some(b)) => match a.partial_cmp(&b) {
            Some(o) => o,
            None => return false,
        },
        _ => (*text).cmp(wanted),
    };
    match op {
        FactOperator::Eq => ordering == Ordering::Equal,
        FactOperator::Ne => ordering != Ordering::Equal,
        FactOperator::Lt => ordering == Ordering::Less,
        FactOperator::Gt => ordering == Ordering::Greater,
        FactOperator::Le => ordering != Ordering::Greater,
        FactOperator::Ge => ordering != Ordering::Less,
        FactOperator::Regex => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts() -> Facts {
        Facts::from_value(json!({
            "country": "mt",
            "cores": 8,
            "load": "1.5",
            "version": "10",
            "virtual": true,
            "os": {"family": "RedHat"},
            "nothing": null,
            "list": [1]
        }))
    }

    fn m(fact: &str, op: &str, value: &str) -> bool {
        fact_matches(&facts(), &FactFilter::new(fact, op, value))
    }

    #[test]
    fn operators_parse() {
        for op in ["==", "!=", "<", ">", "<=", ">=", "=~"] {
            assert_eq!(FactOperator::parse(op).unwrap().as_str(), op);
        }
        assert_eq!(FactOperator::parse("==="), None);
        assert!(!m("country", "===", "mt"));
    }

    #[test]
    fn eq() {
        assert!(m("country", "==", "mt"));
        assert!(!m("country", "==", "uk"));
        assert!(m("cores", "==", "8"));
        assert!(m("cores", "==", "8.0"));
        assert!(m("os.family", "==", "RedHat"));
        assert!(!m("missing", "==", "x"));
        assert!(!m("nothing", "==", "null"));
        assert!(!m("list", "==", "[1]"));
    }

    #[test]
    fn ne() {
        assert!(m("country", "!=", "uk"));
        assert!(!m("country", "!=", "mt"));
        assert!(m("cores", "!=", "4"));
        assert!(!m("missing", "!=", "x"));
    }

    #[test]
    fn lt() {
        assert!(m("cores", "<", "16"));
        assert!(!m("cores", "<", "8"));
        // Numeric, not lexical: "10" > "9".
        assert!(!m("version", "<", "9"));
        assert!(m("country", "<", "uk"));
    }

    #[test]
    fn gt() {
        assert!(m("cores", ">", "4"));
        assert!(!m("cores", ">", "8"));
        assert!(m("version", ">", "9"));
        assert!(m("load", ">", "1.25"));
        assert!(m("country", ">", "de"));
    }

    #[test]
    fn le() {
        assert!(m("cores", "<=", "8"));
        assert!(m("cores", "<=", "9"));
        assert!(!m("cores", "<=", "7"));
        assert!(m("country", "<=", "mt"));
    }

    #[test]
    fn ge() {
        assert!(m("cores", ">=", "8"));
        assert!(!m("cores", ">=", "9"));
        assert!(m("load", ">=", "1.5"));
        assert!(!m("country", ">=", "uk"));
    }

    #[test]
    fn regex() {
        assert!(m("country", "=~", "^m"));
        assert!(m("country", "=~", "/^m/"));
        assert!(!m("country", "=~", "/^M/"));
        assert!(!m("os.family", "=~", "/hat$/"));
        assert!(m("os.family", "=~", "/(?i)hat$/"));
        assert!(m("cores", "=~", "^8$"));
        assert!(!m("country", "=~", "/(/"));
    }

    #[test]
    fn booleans() {
        assert!(m("virtual", "==", "true"));
        assert!(m("virtual", "==", "1"));
        assert!(!m("virtual", "==", "false"));
        assert!(m("virtual", "!=", "false"));
        assert!(!m("virtual", "!=", "maybe"));
        assert!(m("virtual", "=~", "^t"));
        assert!(!m("virtual", ">", "a"));
    }
}
