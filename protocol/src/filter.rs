//! The request filter wire type (`envelope.filter`).

use serde::{Deserialize, Serialize};

/// `envelope.filter`: which nodes should act on a request.
///
/// All five keys are always serialised (as arrays, possibly empty) because the go-choria schema
/// requires them; missing keys are tolerated on decode. An empty filter matches every node.
/// Matching is done by [`Filter::matches`](super::Filter::matches).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Filter {
    /// Fact filters, all of which must match.
    #[serde(default)]
    pub fact: Vec<FactFilter>,
    /// Configuration management classes (exact or `/regex/`), all of which must match.
    #[serde(default)]
    pub cf_class: Vec<String>,
    /// Agents the node must have (exact or `/regex/`), all of which must match.
    #[serde(default)]
    pub agent: Vec<String>,
    /// Identities (exact or `/regex/`), any of which may match.
    #[serde(default)]
    pub identity: Vec<String>,
    /// Compound filters: `[[{"expr": "…"}]]` in go-choria, call stacks of
    /// `{"statement": …}`, `{"and": "and"}`, … in MCollective 2.12 (see
    /// [`compound`](super::compound)).
    #[serde(default)]
    pub compound: Vec<Vec<serde_json::Value>>,
}

/// One fact filter: `{"fact": "country", "operator": "==", "value": "mt"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactFilter {
    /// The fact name; dots address nested facts (`os.family`).
    pub fact: String,
    /// One of `==`, `!=`, `<`, `>`, `<=`, `>=`, `=~` (unknown operators never match).
    pub operator: String,
    /// The value to compare with (a string on the wire).
    pub value: String,
}

/// Fact operators in the order a `fact<op>value` expression is searched for (two-character
/// ones first, so `>=` is not read as `>`).
const FACT_OPERATORS: [&str; 8] = ["==", "!=", "<=", ">=", "=~", "<", ">", "="];

/// Splits `fact<op>value` at its earliest fact operator, the longest one at that place
/// (`cores>=4` is `cores`, `>=`, `4`; `=` is returned as written). The one rule for the
/// `--fact` flag, playbook discovery facts and classic compound statements; the parts are not
/// trimmed. `None` when the text holds no operator.
pub(super) fn split_fact_expression(text: &str) -> Option<(&str, &'static str, &str)> {
    let (pos, op) = FACT_OPERATORS
        .iter()
        .filter_map(|op| text.find(op).map(|p| (p, *op)))
        .min_by_key(|(p, op)| (*p, std::cmp::Reverse(op.len())))?;
    Some((
        text.get(..pos).unwrap_or_default(),
        op,
        text.get(pos + op.len()..).unwrap_or_default(),
    ))
}

impl FactFilter {
    /// Parses `fact<op>value` (`=` means `==`), e.g. `country=mt`, `cores>=4`, `os=~/linux/`,
    /// as the CLI's `--fact` and a playbook's discovery `facts` write it. The error says what
    /// is wrong, without the input (callers name the flag or key and value).
    pub fn parse_expression(text: &str) -> Result<Self, &'static str> {
        let (fact, op, value) =
            split_fact_expression(text).ok_or("expected fact<operator>value, e.g. country=mt")?;
        let (fact, value) = (fact.trim(), value.trim());
        if fact.is_empty() || value.is_empty() {
            return Err("fact and value must not be empty");
        }
        let op = if op == "=" { "==" } else { op };
        Ok(Self::new(fact, op, value))
    }

    /// Builds a fact filter.
    pub fn new(
        fact: impl Into<String>,
        operator: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        Self {
            fact: fact.into(),
            operator: operator.into(),
            value: value.into(),
        }
    }
}

impl Filter {
    /// Whether the filter has no constraints at all (matches everything).
    pub fn is_empty(&self) -> bool {
        self.fact.is_empty()
            && self.cf_class.is_empty()
            && self.agent.is_empty()
            && self.identity.is_empty()
            && self.compound.iter().all(Vec::is_empty)
    }

    /// A filter selecting nodes that have `agent` (what Go adds for direct requests).
    pub fn with_agent(agent: impl Into<String>) -> Self {
        Self {
            agent: vec![agent.into()],
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fact_expression_splits_at_its_earliest_and_longest_operator() {
        assert_eq!(
            split_fact_expression("cores>=4"),
            Some(("cores", ">=", "4"))
        );
        assert_eq!(split_fact_expression("a=b==c"), Some(("a", "=", "b==c")));
        assert_eq!(
            split_fact_expression("os=~/lin/"),
            Some(("os", "=~", "/lin/"))
        );
        assert_eq!(
            split_fact_expression(" x != y "),
            Some((" x ", "!=", " y "))
        );
        assert_eq!(split_fact_expression("=x"), Some(("", "=", "x")));
        assert_eq!(split_fact_expression("nothing"), None);
    }

    #[test]
    fn all_five_keys_serialised() {
        let json = serde_json::to_string(&Filter::default()).unwrap();
        assert_eq!(
            json,
            r#"{"fact":[],"cf_class":[],"agent":[],"identity":[],"compound":[]}"#
        );
    }

    #[test]
    fn research_example_parses() {
        let json = r#"{"fact":[{"fact":"country","operator":"==","value":"mt"}],
           "cf_class":["apache"], "agent":["emulated0"], "identity":["web1","/^db\\d+/"],
           "compound":[[{"expr":"with('apache') and country=='mt'"}]]}"#;
        let f: Filter = serde_json::from_str(json).unwrap();
        assert_eq!(f.fact[0], FactFilter::new("country", "==", "mt"));
        assert_eq!(f.identity[1], "/^db\\d+/");
        assert_eq!(f.compound.len(), 1);
        assert!(!f.is_empty());
        let missing: Filter = serde_json::from_str("{}").unwrap();
        assert!(missing.is_empty());
    }
}
