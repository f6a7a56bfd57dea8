//! The classic compound form of MCollective 2.12: a call stack of statements and operators.
//!
//! A `statement` is read as follows:
//!
//! - `/regex/`: a class or an agent matches the regex;
//! - `name<op>value` with `op` one of `==`, `=`, `!=`, `<`, `>`, `<=`, `>=`, `=~` (the
//!   earliest operator in the text, the longest one at that place): a fact comparison as the
//!   `fact` filter makes it ([`FactFilter`](crate::FactFilter)); `=` and `==` with a
//!   `/regex/` value are a regex match, `!=` with a `/regex/` value its negation. When the node
//!   has no fact `identity`, a statement on `identity` compares the node's identity;
//! - any other word: a class or an agent of that exact name.
//!
//! [`parse_select`] turns a `-S` string (`"country=mt and not (instance=3 or /^role::db/)"`)
//! into such a call stack, as the Ruby client's scanner does for the forms above.

use regex::Regex;
use serde_json::{json, Map, Value};

use super::super::fact_match::{compile_regex, strip_slashes, value_matches};
use super::super::filter::split_fact_expression;
use super::super::{FactOperator, NodeView};
use super::CompoundError;

/// A compiled classic call stack.
#[derive(Debug, Clone)]
pub enum Classic {
    /// One statement.
    Statement(Statement),
    /// `not` …
    Not(Box<Classic>),
    /// … `and` …
    And(Box<Classic>, Box<Classic>),
    /// … `or` …
    Or(Box<Classic>, Box<Classic>),
}

/// One compiled statement.
#[derive(Debug, Clone)]
pub enum Statement {
    /// A fact comparison; `negate` flips a regex match (`fact!=/re/`).
    Fact {
        /// The fact name.
        name: String,
        /// The operator.
        op: FactOperator,
        /// The value compared with.
        value: String,
        /// The value compiled, for regex matches (`None`: invalid, never matches).
        regex: Option<Regex>,
        /// Whether the regex match is negated.
        negate: bool,
    },
    /// A class or agent name, exact or `/regex/`.
    Named {
        /// The name as written.
        needle: String,
        /// The regex, for `/regex/` needles (`None` for an invalid one: never matches).
        regex: Option<Regex>,
        /// Whether `needle` is a `/regex/`.
        is_regex: bool,
    },
}

/// Most items in one call stack (a `-S` filter is a handful; this bounds the tree's depth).
const MAX_ITEMS: usize = 512;
/// Deepest nesting of `not` and parentheses.
const MAX_DEPTH: usize = 64;

impl Statement {
    /// Reads a statement (see the module docs).
    pub fn compile(text: &str) -> Statement {
        let text = text.trim();
        if strip_slashes(text).is_some() {
            return Self::named(text);
        }
        let Some((name, op, value)) = split_fact_expression(text) else {
            return Self::named(text);
        };
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() {
            return Self::named(text);
        }
        let slashed = strip_slashes(value).is_some();
        let (op, negate) = match op {
            "=" | "==" if slashed => (FactOperator::Regex, false),
            "!=" if slashed => (FactOperator::Regex, true),
            "=" | "==" => (FactOperator::Eq, false),
            other => (
                FactOperator::parse(other).unwrap_or(FactOperator::Eq),
                false,
            ),
        };
        let regex = if op == FactOperator::Regex {
            compile_regex(value)
        } else {
            None
        };
        Statement::Fact {
            name: name.to_owned(),
            op,
            value: value.to_owned(),
            regex,
            negate,
        }
    }

    fn named(text: &str) -> Statement {
        let is_regex = strip_slashes(text).is_some();
        Statement::Named {
            needle: text.to_owned(),
            regex: if is_regex { compile_regex(text) } else { None },
            is_regex,
        }
    }

    /// Whether `node` satisfies the statement.
    pub fn eval(&self, node: &NodeView<'_>) -> bool {
        match self {
            Statement::Fact {
                name,
                op,
                value,
                regex,
                negate,
            } => {
                let identity;
                let fact = match node.facts.get(name) {
                    Some(fact) => fact,
                    None if name == "identity" => {
                        identity = Value::String(node.identity.to_owned());
                        &identity
                    }
                    None => return false,
                };
                if *negate {
                    // `fact!=/re/`: a fact that exists and does not match.
                    return matches!(fact, Value::String(_) | Value::Number(_) | Value::Bool(_))
                        && !value_matches(fact, *op, value, regex.as_ref());
                }
                value_matches(fact, *op, value, regex.as_ref())
            }
            Statement::Named {
                needle,
                regex,
                is_regex,
            } => {
                let hit = |candidate: &String| {
                    if *is_regex {
                        regex.as_ref().is_some_and(|re| re.is_match(candidate))
                    } else {
                        candidate == needle
                    }
                };
                node.classes.iter().any(hit) || node.agents.iter().any(hit)
            }
        }
    }
}

/// A token of the call stack.
#[derive(Debug, Clone)]
enum Token {
    Statement(Statement),
    And,
    Or,
    Not,
    Open,
    Close,
}

impl Classic {
    /// Compiles one call stack (a list of one-key objects).
    pub fn compile(items: &[Value]) -> Result<Classic, CompoundError> {
        let unsupported = |what: String| CompoundError::Unsupported(what);
        if items.len() > MAX_ITEMS {
            return Err(unsupported(format!(
                "call stack of {} items (at most {MAX_ITEMS})",
                items.len()
            )));
        }
        let mut tokens = Vec::with_capacity(items.len());
        let mut plugin = None;
        for item in items {
            let Some((key, value)) = item
                .as_object()
                .filter(|o| o.len() == 1)
                .and_then(|o| o.iter().next())
            else {
                return Err(unsupported(format!("call stack item {item}")));
            };
            tokens.push(match key.as_str() {
                "statement" => match value.as_str() {
                    Some(text) => Token::Statement(Statement::compile(text)),
                    None => return Err(unsupported(format!("statement {value}"))),
                },
                "fstatement" => {
                    let name = value
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    plugin.get_or_insert_with(|| name.to_owned());
                    // A placeholder: the stack's shape is still checked.
                    Token::Statement(Statement::named(name))
                }
                "and" => Token::And,
                "or" => Token::Or,
                "not" => Token::Not,
                "(" => Token::Open,
                ")" => Token::Close,
                other => return Err(unsupported(format!("call stack key {other:?}"))),
            });
        }
        let mut parser = Parser {
            tokens,
            at: 0,
            depth: 0,
        };
        let tree = parser.or()?;
        if parser.at != parser.tokens.len() {
            return Err(unsupported(
                "call stack with unbalanced operators".to_owned(),
            ));
        }
        match plugin {
            Some(name) => Err(CompoundError::DataPlugin(name)),
            None => Ok(tree),
        }
    }

    /// Whether `node` satisfies the call stack.
    pub fn eval(&self, node: &NodeView<'_>) -> bool {
        match self {
            Classic::Statement(s) => s.eval(node),
            Classic::Not(inner) => !inner.eval(node),
            Classic::And(a, b) => a.eval(node) && b.eval(node),
            Classic::Or(a, b) => a.eval(node) || b.eval(node),
        }
    }
}

/// Recursive descent: `or := and ("or" and)*`, `and := unary ("and" unary)*`,
/// `unary := "not" unary | "(" or ")" | statement`.
struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
}

impl Parser {
    fn next_is(&self, want: fn(&Token) -> bool) -> bool {
        self.tokens.get(self.at).is_some_and(want)
    }

    fn or(&mut self) -> Result<Classic, CompoundError> {
        let mut left = self.and()?;
        while self.next_is(|t| matches!(t, Token::Or)) {
            self.at += 1;
            left = Classic::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Classic, CompoundError> {
        let mut left = self.unary()?;
        while self.next_is(|t| matches!(t, Token::And)) {
            self.at += 1;
            left = Classic::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Classic, CompoundError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(CompoundError::Unsupported(
                "call stack nested too deeply".to_owned(),
            ));
        }
        let parsed = self.unary_inner();
        self.depth -= 1;
        parsed
    }

    fn unary_inner(&mut self) -> Result<Classic, CompoundError> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        match token {
            Some(Token::Not) => Ok(Classic::Not(Box::new(self.unary()?))),
            Some(Token::Open) => {
                let inner = self.or()?;
                if self.next_is(|t| matches!(t, Token::Close)) {
                    self.at += 1;
                    Ok(inner)
                } else {
                    Err(CompoundError::Unsupported(
                        "call stack with a missing parenthesis".to_owned(),
                    ))
                }
            }
            Some(Token::Statement(s)) => Ok(Classic::Statement(s)),
            _ => Err(CompoundError::Unsupported(
                "call stack with a missing statement".to_owned(),
            )),
        }
    }
}

/// Parses a `-S` string into the classic call stack MCollective 2.12 sends, e.g.
/// `instance=7 or instance=9` → `[{"statement":"instance=7"},{"or":"or"},
/// {"statement":"instance=9"}]`. Words: `and`, `or`, `not` (or `!`), parentheses, and
/// statements; `fact = value` may have spaces around the operator; a `/regex/` and a
/// quoted value may hold spaces; `name(…)…` is a data plugin function (`fstatement`). The
/// error says what is wrong.
pub fn parse_select(text: &str) -> Result<Vec<Value>, String> {
    let words = split_words(text)?;
    let mut stack = Vec::with_capacity(words.len());
    for word in words {
        stack.push(match word.as_str() {
            "and" => json!({"and": "and"}),
            "or" => json!({"or": "or"}),
            "not" | "!" => json!({"not": "not"}),
            "(" => json!({"(": "("}),
            ")" => json!({")": ")"}),
            _ if is_function(&word) => json!({ "fstatement": function_hash(&word) }),
            _ => json!({ "statement": word }),
        });
    }
    if stack.is_empty() {
        return Err("empty filter".to_owned());
    }
    match Classic::compile(&stack) {
        Ok(_) | Err(CompoundError::DataPlugin(_)) => Ok(stack),
        Err(CompoundError::Unsupported(what)) => Err(what.replace("call stack", "filter")),
    }
}

/// Whether a statement word is a function call (`name(…)`, optionally `.field` and a
/// comparison after it).
fn is_function(word: &str) -> bool {
    let Some(open) = word.find('(') else {
        return false;
    };
    open > 0
        && word[..open]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The `fstatement` hash the Ruby client sends: `name`, `params`, `value`, `operator`,
/// `r_compare`.
fn function_hash(word: &str) -> Map<String, Value> {
    let open = word.find('(').unwrap_or(0);
    let close = word.rfind(')').unwrap_or(word.len());
    let name = word.get(..open).unwrap_or_default();
    let params = word
        .get(open + 1..close)
        .unwrap_or_default()
        .trim_matches(|c| c == '\'' || c == '"');
    let rest = word.get(close + 1..).unwrap_or_default();
    let (field, op, compare) = split_fact_expression(rest).unwrap_or((rest, "", ""));
    let mut hash = Map::new();
    hash.insert("name".into(), Value::from(name));
    hash.insert("params".into(), Value::from(params));
    let field = field.trim_start_matches('.');
    if !field.is_empty() {
        hash.insert("value".into(), Value::from(field));
    }
    let op = if op == "=" { "==" } else { op };
    hash.insert("operator".into(), Value::from(op));
    hash.insert("r_compare".into(), Value::from(compare));
    hash
}

/// Splits a `-S` string into words (see [`parse_select`]).
fn split_words(text: &str) -> Result<Vec<String>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut words: Vec<String> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '(' || c == ')' {
            words.push(c.to_string());
            i += 1;
            continue;
        }
        if c == '!' && chars.get(i + 1) != Some(&'=') {
            words.push("!".to_owned());
            i += 1;
            continue;
        }
        let mut word = String::new();
        let mut depth = 0usize;
        while i < chars.len() {
            let c = chars[i];
            if c == '/' && (word.is_empty() || word.ends_with(['=', '~', '<', '>'])) {
                // A regex: up to the closing slash, spaces included.
                word.push(c);
                i += 1;
                while i < chars.len() && chars[i] != '/' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        word.push(chars[i]);
                        i += 1;
                    }
                    word.push(chars[i]);
                    i += 1;
                }
                if i >= chars.len() {
                    return Err(format!("unterminated regex in {word:?}"));
                }
                word.push('/');
                i += 1;
                continue;
            }
            if (c == '\'' || c == '"') && word.ends_with(['=', '~', '<', '>', '(', ',', ' ']) {
                // A quoted value: kept without its quotes (inside a function call with them).
                let keep = depth > 0;
                if keep {
                    word.push(c);
                }
                i += 1;
                while i < chars.len() && chars[i] != c {
                    word.push(chars[i]);
                    i += 1;
                }
                if i >= chars.len() {
                    return Err(format!("unterminated quote in {word:?}"));
                }
                if keep {
                    word.push(c);
                }
                i += 1;
                continue;
            }
            if c == '(' {
                if word.is_empty() {
                    break;
                }
                depth += 1;
            } else if c == ')' {
                if depth == 0 {
                    break;
                }
                depth -= 1;
            } else if c.is_whitespace() && depth == 0 {
                break;
            }
            word.push(c);
            i += 1;
        }
        if depth > 0 {
            return Err(format!("unterminated function call {word:?}"));
        }
        // `fact = value`, `fact =value`, `fact= value`: one statement.
        let joins_previous = word.starts_with(['=', '<', '>', '~'])
            || (word.starts_with("!=") && !word.starts_with("!=="));
        let previous_open = words
            .last()
            .is_some_and(|w| w.ends_with(['=', '<', '>', '~']) && !is_keyword(w));
        if (joins_previous || previous_open) && words.last().is_some_and(|w| !is_keyword(w)) {
            if let Some(last) = words.last_mut() {
                last.push_str(&word);
                continue;
            }
        }
        words.push(word);
    }
    Ok(words)
}

fn is_keyword(word: &str) -> bool {
    matches!(word, "and" | "or" | "not" | "!" | "(" | ")")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Facts;

    fn stack(text: &str) -> Vec<Value> {
        parse_select(text).unwrap()
    }

    #[test]
    fn select_strings_become_the_ruby_call_stack() {
        assert_eq!(
            stack("instance=7 or instance=9"),
            [
                json!({"statement": "instance=7"}),
                json!({"or": "or"}),
                json!({"statement": "instance=9"})
            ]
        );
        assert_eq!(
            stack("not (country = mt and /^role::/) or !apache"),
            [
                json!({"not": "not"}),
                json!({"(": "("}),
                json!({"statement": "country=mt"}),
                json!({"and": "and"}),
                json!({"statement": "/^role::/"}),
                json!({")": ")"}),
                json!({"or": "or"}),
                json!({"not": "not"}),
                json!({"statement": "apache"})
            ]
        );
        assert_eq!(
            stack("os=~/red hat/ and cores>=4 and a!=b"),
            [
                json!({"statement": "os=~/red hat/"}),
                json!({"and": "and"}),
                json!({"statement": "cores>=4"}),
                json!({"and": "and"}),
                json!({"statement": "a!=b"})
            ]
        );
        assert_eq!(stack("name='a b'"), [json!({"statement": "name=a b"})]);
        let f = stack("sysctl('kernel.x').value=1 and apache");
        assert_eq!(f[0]["fstatement"]["name"], "sysctl");
        assert_eq!(f[0]["fstatement"]["params"], "kernel.x");
        assert_eq!(f[0]["fstatement"]["value"], "value");
        assert_eq!(f[0]["fstatement"]["operator"], "==");
        assert_eq!(f[0]["fstatement"]["r_compare"], "1");
        for bad in ["", "a and", "(a", "a)", "a b", "and a", "x=/y", "f('x"] {
            assert!(parse_select(bad).is_err(), "{bad:?}");
        }
        // Bounded: deep nesting and long stacks are refused, not a stack overflow.
        assert!(parse_select(&("not ".repeat(100) + "a")).is_err());
        assert!(parse_select(&("(".repeat(100) + "a" + &")".repeat(100))).is_err());
        let long: Vec<Value> =
            std::iter::repeat_n([json!({"statement": "a"}), json!({"and": "and"})], 10_000)
                .flatten()
                .chain([json!({"statement": "a"})])
                .collect();
        assert!(Classic::compile(&long).is_err());
    }

    fn eval(text: &str, identity: &str) -> bool {
        let facts = Facts::from_value(json!({
            "country": "mt", "instance": 7, "os": "red hat", "virtual": true
        }));
        let agents = vec!["rpcutil".to_owned(), "emulated0".to_owned()];
        let classes = vec!["apache".to_owned(), "role::web".to_owned()];
        let view = NodeView {
            identity,
            agents: &agents,
            classes: &classes,
            facts: &facts,
        };
        Classic::compile(&stack(text)).unwrap().eval(&view)
    }

    #[test]
    fn statements_evaluate_over_facts_classes_agents_and_identity() {
        assert!(eval("country=mt", "n"));
        assert!(eval("country==mt", "n"));
        assert!(!eval("country!=mt", "n"));
        assert!(eval(
            "instance>6 and instance<8 and instance>=7 and instance<=7",
            "n"
        ));
        assert!(eval("os=~/^red/", "n"));
        assert!(eval("os=/^red/", "n"));
        assert!(eval("os!=/^blue/", "n"));
        assert!(!eval("os!=/^red/", "n"));
        assert!(!eval("missing!=/x/", "n"));
        assert!(eval("virtual=true", "n"));
        assert!(eval("apache", "n"));
        assert!(eval("/^role::/", "n"));
        assert!(eval("emulated0", "n"));
        assert!(eval("/^rpc/", "n"));
        assert!(!eval("nginx", "n"));
        assert!(eval("identity=web1", "web1"));
        assert!(eval("identity=/^web\\d$/", "web1"));
        assert!(!eval("identity=web1", "web2"));
    }

    #[test]
    fn precedence_is_not_then_and_then_or() {
        assert!(eval("nginx and apache or country=mt", "n"));
        assert!(!eval("nginx and (apache or country=mt)", "n"));
        assert!(eval("not nginx and apache", "n"));
        assert!(!eval("not (nginx or apache)", "n"));
        assert!(eval("!nginx", "n"));
        assert!(eval("not not apache", "n"));
    }
}
