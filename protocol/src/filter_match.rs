//! Evaluating a [`Filter`] against a node.

use super::compound::{CompiledCompound, CompoundError};
use super::fact_match::{compile_regex, fact_matches, strip_slashes};
use super::{Facts, Filter};

/// What a node knows about itself for filter matching.
#[derive(Debug, Clone, Copy)]
pub struct NodeView<'a> {
    /// The node identity (certname).
    pub identity: &'a str,
    /// The agents the node runs.
    pub agents: &'a [String],
    /// The configuration management classes applied to the node.
    pub classes: &'a [String],
    /// The node's facts.
    pub facts: &'a Facts,
}

/// The result of matching a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOutcome {
    /// The node is selected and should act and reply.
    Match,
    /// The node is not selected: do not act, do not reply (counted as `filtered`).
    NoMatch,
    /// Every other constraint matched, but the `compound` filter is outside what is
    /// evaluated ([`CompoundError::Unsupported`]). The node must not act or reply (it cannot
    /// know it was selected); callers may count this separately from
    /// [`FilterOutcome::NoMatch`].
    Unsupported,
    /// Every other constraint matched, but the `compound` filter calls a data plugin
    /// (`fstatement`), which no node here has: not selected, counted apart.
    DataPlugin,
}

impl FilterOutcome {
    /// Whether the node should act on the request.
    pub fn is_match(self) -> bool {
        self == Self::Match
    }
}

impl Filter {
    /// Matches the filter against `node` with Choria semantics (go-choria `filter/*`):
    ///
    /// - each non-empty kind must match (AND across kinds); an empty filter matches all;
    /// - `identity`: **any** entry may match (OR, a node has one identity), exact or `/regex/`;
    /// - `agent`: **all** entries must match a known agent, exact or `/regex/`;
    /// - `cf_class`: **all** entries must match a class, exact or `/regex/`;
    /// - `fact`: **all** fact filters must match (see [`FactFilter`](super::FactFilter));
    /// - `compound`: evaluated as [`CompiledCompound`] says; a compound filter that cannot be
    ///   evaluated gives [`FilterOutcome::Unsupported`] or [`FilterOutcome::DataPlugin`] when
    ///   everything else matched.
    ///
    /// Invalid regular expressions never match. The compound filter is compiled on every
    /// call: to match many nodes, compile it once ([`Filter::compile_compound`]) and use
    /// [`Filter::matches_compiled`].
    pub fn matches(&self, node: &NodeView<'_>) -> FilterOutcome {
        self.matches_compiled(&self.compile_compound(), node)
    }

    /// The `compound` filter compiled (regexes included) for [`Filter::matches_compiled`].
    pub fn compile_compound(&self) -> Result<CompiledCompound, CompoundError> {
        CompiledCompound::compile(&self.compound)
    }

    /// [`Filter::matches`] with the compound filter already compiled from this filter.
    pub fn matches_compiled(
        &self,
        compound: &Result<CompiledCompound, CompoundError>,
        node: &NodeView<'_>,
    ) -> FilterOutcome {
        let identity_ok = self.identity.is_empty()
            || self
                .identity
                .iter()
                .any(|needle| needle_matches(needle, node.identity));
        let agents_ok = self
            .agent
            .iter()
            .all(|needle| node.agents.iter().any(|a| needle_matches(needle, a)));
        let classes_ok = self
            .cf_class
            .iter()
            .all(|needle| node.classes.iter().any(|c| needle_matches(needle, c)));
        let facts_ok = self.fact.iter().all(|f| fact_matches(node.facts, f));

        if !(identity_ok && agents_ok && classes_ok && facts_ok) {
            return FilterOutcome::NoMatch;
        }
        match compound {
            Ok(c) if c.is_empty() || c.matches(node) => FilterOutcome::Match,
            Ok(_) => FilterOutcome::NoMatch,
            Err(CompoundError::DataPlugin(_)) => FilterOutcome::DataPlugin,
            Err(CompoundError::Unsupported(_)) => FilterOutcome::Unsupported,
        }
    }
}

/// Exact match, or regex match for `/regex/` needles.
fn needle_matches(needle: &str, candidate: &str) -> bool {
    match strip_slashes(needle) {
        Some(_) => compile_regex(needle).is_some_and(|re| re.is_match(candidate)),
        None => needle == candidate,
    }
}

#[cfg(test)]
mod tests {
    use super::super::FactFilter;
    use super::*;
    use serde_json::json;

    struct Node {
        agents: Vec<String>,
        classes: Vec<String>,
        facts: Facts,
    }

    fn node() -> Node {
        Node {
            agents: vec!["rpcutil".into(), "discovery".into(), "emulated0".into()],
            classes: vec!["apache".into(), "role::web".into()],
            facts: Facts::from_value(json!({"country": "mt", "cores": 4})),
        }
    }

    fn check(filter: &Filter, identity: &str) -> FilterOutcome {
        let n = node();
        filter.matches(&NodeView {
            identity,
            agents: &n.agents,
            classes: &n.classes,
            facts: &n.facts,
        })
    }

    #[test]
    fn empty_matches_everything() {
        assert_eq!(check(&Filter::default(), "web1"), FilterOutcome::Match);
    }

    #[test]
    fn identity_is_or_exact_or_regex() {
        let f = Filter {
            identity: vec!["web1".into(), "/^db\\d+$/".into()],
            ..Filter::default()
        };
        assert_eq!(check(&f, "web1"), FilterOutcome::Match);
        assert_eq!(check(&f, "db12"), FilterOutcome::Match);
        assert_eq!(check(&f, "web2"), FilterOutcome::NoMatch);
        assert_eq!(check(&f, "db1x"), FilterOutcome::NoMatch);
    }

    #[test]
    fn agent_is_and() {
        let mut f = Filter::with_agent("emulated0");
        assert_eq!(check(&f, "n"), FilterOutcome::Match);
        f.agent.push("/^rpc/".into());
        assert_eq!(check(&f, "n"), FilterOutcome::Match);
        f.agent.push("puppet".into());
        assert_eq!(check(&f, "n"), FilterOutcome::NoMatch);
    }

    #[test]
    fn class_is_and_exact_or_regex() {
        let mut f = Filter {
            cf_class: vec!["apache".into(), "/^role::/".into()],
            ..Filter::default()
        };
        assert_eq!(check(&f, "n"), FilterOutcome::Match);
        f.cf_class.push("nginx".into());
        assert_eq!(check(&f, "n"), FilterOutcome::NoMatch);
        let f = Filter {
            cf_class: vec!["Apache".into()],
            ..Filter::default()
        };
        assert_eq!(check(&f, "n"), FilterOutcome::NoMatch);
    }

    #[test]
    fn facts_are_and() {
        let mut f = Filter {
            fact: vec![
                FactFilter::new("country", "==", "mt"),
                FactFilter::new("cores", ">=", "4"),
            ],
            ..Filter::default()
        };
        assert_eq!(check(&f, "n"), FilterOutcome::Match);
        f.fact.push(FactFilter::new("cores", ">", "4"));
        assert_eq!(check(&f, "n"), FilterOutcome::NoMatch);
    }

    #[test]
    fn kinds_are_anded() {
        let f = Filter {
            identity: vec!["web1".into()],
            fact: vec![FactFilter::new("country", "==", "uk")],
            ..Filter::default()
        };
        assert_eq!(check(&f, "web1"), FilterOutcome::NoMatch);
    }

    #[test]
    fn compound_is_evaluated_after_the_other_kinds() {
        let mut f = Filter {
            compound: vec![vec![json!({"expr": "with('apache')"})]],
            ..Filter::default()
        };
        assert_eq!(check(&f, "web1"), FilterOutcome::Match);
        f.compound = vec![vec![json!({"statement": "country=uk"})]];
        assert_eq!(check(&f, "web1"), FilterOutcome::NoMatch);
        f.compound = vec![vec![json!({"expr": "semver('1', '1')"})]];
        assert_eq!(check(&f, "web1"), FilterOutcome::Unsupported);
        assert!(!FilterOutcome::Unsupported.is_match());
        f.compound = vec![vec![json!({"fstatement": {"name": "x"}})]];
        assert_eq!(check(&f, "web1"), FilterOutcome::DataPlugin);
        f.identity = vec!["other".into()];
        assert_eq!(check(&f, "web1"), FilterOutcome::NoMatch);
        let empty_inner = Filter {
            compound: vec![vec![]],
            ..Filter::default()
        };
        assert_eq!(check(&empty_inner, "web1"), FilterOutcome::Match);
    }

    #[test]
    fn invalid_regex_never_matches() {
        let f = Filter {
            identity: vec!["/(/".into()],
            ..Filter::default()
        };
        assert_eq!(check(&f, "("), FilterOutcome::NoMatch);
        // A lone slash is an exact needle, not an empty regex.
        let f = Filter {
            identity: vec!["/".into()],
            ..Filter::default()
        };
        assert_eq!(check(&f, "web1"), FilterOutcome::NoMatch);
    }
}
