//! Compound filters (`envelope.filter.compound`): parsed once per request, evaluated per node.
//!
//! The wire value is a list of lists. Two forms exist:
//!
//! - **classic** (MCollective 2.12, the Ruby `mco` client): each inner list is a call stack of
//!   one-key objects, `{"statement": "country=mt"}`, `{"and": "and"}`, `{"or": "or"}`,
//!   `{"not": "not"}`, `{"(": "("}`, `{")": ")"}`, and `{"fstatement": {…}}` for a data plugin
//!   function. The stack is read with `not` binding tighter than `and`, and `and` tighter than
//!   `or` (Ruby evaluates it as `!`, `&&`, `||`). A filter is selected when every inner list
//!   is true. See [`classic`] for what a statement means.
//! - **expr** (go-choria): each inner list is `[{"expr": "<expression>"}]`, evaluated by the
//!   subset of expr-lang in [`expr`]. As go-choria counts them, the lists select a node when
//!   none failed and more were true than false.
//!
//! A filter mixing both forms selects a node when every list, of either form, is true.
//!
//! A filter with an `fstatement` anywhere never matches (no data plugins are emulated): it
//! compiles to [`CompoundError::DataPlugin`]. Anything else this module does not understand
//! (another key, a broken stack, an expression outside the subset) compiles to
//! [`CompoundError::Unsupported`]; a node never acts on such a request.

pub mod classic;
pub mod expr;

use serde_json::Value;

use super::NodeView;

/// Why a compound filter cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompoundError {
    /// The filter calls a data plugin (`fstatement`), which no emulated node has.
    #[error("compound filter calls data plugin {0:?}, none is available")]
    DataPlugin(String),
    /// The filter is outside what is evaluated.
    #[error("unsupported compound filter: {0}")]
    Unsupported(String),
}

/// One inner list, compiled.
#[derive(Debug, Clone)]
enum Query {
    /// A classic call stack.
    Classic(classic::Classic),
    /// A go-choria expression.
    Expr(expr::Expr),
}

/// A compound filter compiled once (regexes included) for any number of nodes.
#[derive(Debug, Clone, Default)]
pub struct CompiledCompound {
    queries: Vec<Query>,
}

impl CompiledCompound {
    /// Compiles the wire `compound` value; empty inner lists are ignored.
    pub fn compile(compound: &[Vec<Value>]) -> Result<Self, CompoundError> {
        let mut queries = Vec::new();
        for list in compound.iter().filter(|l| !l.is_empty()) {
            let expression = match list.as_slice() {
                [Value::Object(item)] if item.len() == 1 => item.get("expr"),
                _ => None,
            };
            queries.push(match expression {
                Some(Value::String(text)) => Query::Expr(expr::Expr::compile(text)?),
                Some(_) => {
                    return Err(CompoundError::Unsupported(
                        "expr is not a string".to_owned(),
                    ))
                }
                None => Query::Classic(classic::Classic::compile(list)?),
            });
        }
        Ok(Self { queries })
    }

    /// Whether there is nothing to evaluate.
    pub fn is_empty(&self) -> bool {
        self.queries.is_empty()
    }

    /// Whether `node` is selected (an empty compound selects every node).
    pub fn matches(&self, node: &NodeView<'_>) -> bool {
        let all_expr = self.queries.iter().all(|q| matches!(q, Query::Expr(_)));
        if all_expr && !self.queries.is_empty() {
            // go-choria's rule: no query failed, and more were true than false.
            let mut score = 0i64;
            for query in &self.queries {
                if let Query::Expr(e) = query {
                    match e.eval(node) {
                        Some(true) => score += 1,
                        Some(false) => score -= 1,
                        None => return false,
                    }
                }
            }
            return score > 0;
        }
        self.queries.iter().all(|q| match q {
            Query::Classic(c) => c.eval(node),
            Query::Expr(e) => e.eval(node) == Some(true),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Facts;
    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;
    use serde_json::json;

    fn node_matches(compound: Value, identity: &str) -> Result<bool, CompoundError> {
        let lists: Vec<Vec<Value>> = serde_json::from_value(compound).unwrap();
        let compiled = CompiledCompound::compile(&lists)?;
        let facts = Facts::from_value(json!({"country": "mt", "instance": 7}));
        let agents = vec!["rpcutil".to_owned()];
        let classes = vec!["apache".to_owned()];
        Ok(compiled.matches(&NodeView {
            identity,
            agents: &agents,
            classes: &classes,
            facts: &facts,
        }))
    }

    #[test]
    fn classic_lists_are_anded() {
        let both = json!([[{"statement": "country=mt"}], [{"statement": "instance=7"}]]);
        assert_eq!(node_matches(both, "n"), Ok(true));
        let one = json!([[{"statement": "country=mt"}], [{"statement": "instance=8"}]]);
        assert_eq!(node_matches(one, "n"), Ok(false));
        assert_eq!(node_matches(json!([[]]), "n"), Ok(true));
    }

    #[test]
    fn expr_lists_count_as_go_choria_does() {
        let yes = json!([[{"expr": "fact('country') == 'mt'"}]]);
        assert_eq!(node_matches(yes, "n"), Ok(true));
        let tie = json!([[{"expr": "true"}], [{"expr": "false"}]]);
        assert_eq!(node_matches(tie, "n"), Ok(false));
        let more = json!([[{"expr": "true"}], [{"expr": "false"}], [{"expr": "true"}]]);
        assert_eq!(node_matches(more, "n"), Ok(true));
        let failed = json!([[{"expr": "true"}], [{"expr": "true"}], [{"expr": "1 < 'a'"}]]);
        assert_eq!(node_matches(failed, "n"), Ok(false));
    }

    /// A random `-S` filter and what it means, written out plainly.
    #[derive(Debug, Clone)]
    enum Tree {
        InstanceIs(u8),
        InstanceBelow(u8),
        InstanceAtLeast(u8),
        RackStarts(u8),
        IdentityIs(u8),
        Class(bool),
        Not(Box<Tree>, bool),
        And(Box<Tree>, Box<Tree>),
        Or(Box<Tree>, Box<Tree>),
    }

    impl Tree {
        fn render(&self) -> String {
            match self {
                Tree::InstanceIs(n) => format!("instance={n}"),
                Tree::InstanceBelow(n) => format!("instance < {n}"),
                Tree::InstanceAtLeast(n) => format!("instance>={n}"),
                Tree::RackStarts(n) => format!("rack=~/^r{n}/"),
                Tree::IdentityIs(n) => format!("identity=emu-{n}"),
                Tree::Class(true) => "web".to_owned(),
                Tree::Class(false) => "/^nginx/".to_owned(),
                Tree::Not(t, bang) => {
                    format!("{} ({})", if *bang { "!" } else { "not" }, t.render())
                }
                Tree::And(a, b) => format!("({}) and ({})", a.render(), b.render()),
                Tree::Or(a, b) => format!("({}) or ({})", a.render(), b.render()),
            }
        }

        fn holds(&self, i: u8) -> bool {
            match self {
                Tree::InstanceIs(n) => i == *n,
                Tree::InstanceBelow(n) => i < *n,
                Tree::InstanceAtLeast(n) => i >= *n,
                Tree::RackStarts(n) => format!("r{i}").starts_with(&format!("r{n}")),
                Tree::IdentityIs(n) => i == *n,
                Tree::Class(web) => *web,
                Tree::Not(t, _) => !t.holds(i),
                Tree::And(a, b) => a.holds(i) && b.holds(i),
                Tree::Or(a, b) => a.holds(i) || b.holds(i),
            }
        }
    }

    fn tree() -> impl Strategy<Value = Tree> {
        let leaf = prop_oneof![
            (0u8..20).prop_map(Tree::InstanceIs),
            (0u8..20).prop_map(Tree::InstanceBelow),
            (0u8..20).prop_map(Tree::InstanceAtLeast),
            (0u8..20).prop_map(Tree::RackStarts),
            (0u8..20).prop_map(Tree::IdentityIs),
            any::<bool>().prop_map(Tree::Class),
        ];
        leaf.prop_recursive(4, 24, 2, |inner| {
            prop_oneof![
                (inner.clone(), any::<bool>()).prop_map(|(t, b)| Tree::Not(Box::new(t), b)),
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Tree::And(Box::new(a), Box::new(b))),
                (inner.clone(), inner).prop_map(|(a, b)| Tree::Or(Box::new(a), Box::new(b))),
            ]
        })
    }

    proptest! {
        #[test]
        fn a_select_string_selects_what_it_says(t in tree(), i in 0u8..20) {
            let text = t.render();
            let stack = classic::parse_select(&text).map_err(TestCaseError::fail)?;
            let compiled = CompiledCompound::compile(&[stack]).unwrap();
            let facts = Facts::from_value(json!({"instance": i, "rack": format!("r{i}")}));
            let identity = format!("emu-{i}");
            let agents = vec!["rpcutil".to_owned()];
            let classes = vec!["web".to_owned()];
            let view = NodeView { identity: &identity, agents: &agents, classes: &classes, facts: &facts };
            prop_assert_eq!(compiled.matches(&view), t.holds(i), "{}", text);
        }

        #[test]
        fn arbitrary_filters_never_panic(text in "\\PC{0,40}", json in "[\\[\\]{}\"a-z:,() ]{0,40}") {
            let _ = classic::parse_select(&text);
            let _ = expr::Expr::compile(&text);
            if let Ok(lists) = serde_json::from_str::<Vec<Vec<Value>>>(&json) {
                let _ = CompiledCompound::compile(&lists);
            }
            let lists = vec![vec![json!({"statement": text.clone()})], vec![json!({"expr": text})]];
            if let Ok(c) = CompiledCompound::compile(&lists) {
                let facts = Facts::default();
                let view = NodeView { identity: "n", agents: &[], classes: &[], facts: &facts };
                let _ = c.matches(&view);
            }
        }
    }

    #[test]
    fn data_plugins_and_unknown_shapes_are_refused() {
        let f = json!([[{"fstatement": {"name": "sysctl", "params": "x", "operator": "==", "r_compare": "1"}}]]);
        assert!(matches!(
            node_matches(f, "n"),
            Err(CompoundError::DataPlugin(name)) if name == "sysctl"
        ));
        assert!(matches!(
            node_matches(json!([[{"what": "x"}]]), "n"),
            Err(CompoundError::Unsupported(_))
        ));
        assert!(matches!(
            node_matches(json!([["country=mt"]]), "n"),
            Err(CompoundError::Unsupported(_))
        ));
        assert!(matches!(
            node_matches(json!([[{"expr": 1}]]), "n"),
            Err(CompoundError::Unsupported(_))
        ));
    }
}
