//! The subset of go-choria's `expr` compound language that covers fact, class, agent and
//! identity comparisons.
//!
//! Evaluated:
//!
//! - literals: `'text'`, `"text"`, numbers, `true`, `false`, `nil`, lists `[a, b]`;
//! - names: `agents` and `classes` (lists of strings), `identity` (the node's identity: a
//!   choir addition, go-choria has no such name); any other name is `nil`, as go-choria
//!   allows undefined names;
//! - functions: `with('fact=value' | 'class' | 'agent')` (a fact filter if the text is one,
//!   else a class, else an agent, exact or `/regex/`), `fact('path.to.fact')` (the value or
//!   `nil`), `include(list, value)`;
//! - operators, loosest first: `or` / `||`; `and` / `&&`; `==`, `!=`, `<`, `>`, `<=`, `>=`,
//!   `in`, `not in`, `matches`; then unary `not` / `!`; parentheses.
//!
//! Refused when compiled ([`CompoundError::Unsupported`]): any other function (`semver`, data
//! plugin functions), member access (`facts.x`), arithmetic, string operators and anything
//! else outside this list. A type error while evaluating (`1 < 'a'`, `not 'x'`) makes the
//! expression fail, as in go-choria: the node is not selected.

use regex::Regex;
use serde_json::Value;

use super::super::fact_match::{compile_regex, fact_matches, strip_slashes};
use super::super::{FactFilter, NodeView};
use super::CompoundError;

/// Longest expression accepted (a request filter is small).
const MAX_LEN: usize = 1024;
/// Deepest nesting accepted.
const MAX_DEPTH: usize = 64;

/// A compiled expression.
#[derive(Debug, Clone)]
pub enum Expr {
    /// A constant.
    Literal(Value),
    /// A list literal.
    List(Vec<Expr>),
    /// `agents`.
    Agents,
    /// `classes`.
    Classes,
    /// `identity`.
    Identity,
    /// `with(text)`.
    With(Box<Expr>),
    /// `fact(path)`.
    Fact(Box<Expr>),
    /// `include(list, value)`.
    Include(Box<Expr>, Box<Expr>),
    /// `not x`.
    Not(Box<Expr>),
    /// `a and b`.
    And(Box<Expr>, Box<Expr>),
    /// `a or b`.
    Or(Box<Expr>, Box<Expr>),
    /// A comparison.
    Compare(Comparison, Box<Expr>, Box<Expr>),
    /// `a matches 're'` with the regex compiled when it is a literal.
    Matches(Box<Expr>, Box<Expr>, Option<Regex>),
    /// `a in b`, negated for `not in`.
    In(Box<Expr>, Box<Expr>, bool),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
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
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Str(String),
    Num(f64),
    Name(String),
    Op(&'static str),
}

fn unsupported(what: impl Into<String>) -> CompoundError {
    CompoundError::Unsupported(what.into())
}

fn tokenize(text: &str) -> Result<Vec<Token>, CompoundError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' || c == '"' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(unsupported("unterminated string")),
                    Some('\\') => {
                        let escaped = chars
                            .get(i + 1)
                            .ok_or_else(|| unsupported("unterminated string"))?;
                        s.push(match escaped {
                            'n' => '\n',
                            't' => '\t',
                            other => *other,
                        });
                        i += 2;
                    }
                    Some(q) if *q == c => {
                        i += 1;
                        break;
                    }
                    Some(other) => {
                        s.push(*other);
                        i += 1;
                    }
                }
            }
            out.push(Token::Str(s));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_digit() || chars[i] == '.' || chars[i] == '_')
            {
                i += 1;
            }
            let text: String = chars[start..i].iter().filter(|c| **c != '_').collect();
            let n = text
                .parse::<f64>()
                .map_err(|_| unsupported(format!("number {text}")))?;
            out.push(Token::Num(n));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Name(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let op = ["==", "!=", "<=", ">=", "&&", "||"]
                .into_iter()
                .find(|op| *op == two);
            if let Some(op) = op {
                out.push(Token::Op(op));
                i += 2;
                continue;
            }
            let op = ["<", ">", "!", "(", ")", ",", "[", "]"]
                .into_iter()
                .find(|op| op.starts_with(c))
                .ok_or_else(|| unsupported(format!("operator {c:?}")))?;
            out.push(Token::Op(op));
            i += 1;
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn peek_is(&self, op: &str) -> bool {
        match self.peek() {
            Some(Token::Op(o)) => *o == op,
            Some(Token::Name(n)) => n == op,
            _ => false,
        }
    }

    fn eat(&mut self, op: &str) -> bool {
        let hit = self.peek_is(op);
        if hit {
            self.at += 1;
        }
        hit
    }

    fn expect(&mut self, op: &str) -> Result<(), CompoundError> {
        if self.eat(op) {
            Ok(())
        } else {
            Err(unsupported(format!("expected {op:?}")))
        }
    }

    fn deeper(&mut self) -> Result<(), CompoundError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(unsupported("expression nested too deeply"));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, CompoundError> {
        self.deeper()?;
        let mut left = self.and()?;
        while self.eat("or") || self.eat("||") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, CompoundError> {
        let mut left = self.comparison()?;
        while self.eat("and") || self.eat("&&") {
            left = Expr::And(Box::new(left), Box::new(self.comparison()?));
        }
        Ok(left)
    }

    fn comparison(&mut self) -> Result<Expr, CompoundError> {
        let mut left = self.unary()?;
        loop {
            let cmp = [
                ("==", Comparison::Eq),
                ("!=", Comparison::Ne),
                ("<=", Comparison::Le),
                (">=", Comparison::Ge),
                ("<", Comparison::Lt),
                (">", Comparison::Gt),
            ]
            .into_iter()
            .find(|(op, _)| self.peek_is(op));
            if let Some((_, cmp)) = cmp {
                self.at += 1;
                left = Expr::Compare(cmp, Box::new(left), Box::new(self.unary()?));
            } else if self.eat("in") {
                left = Expr::In(Box::new(left), Box::new(self.unary()?), false);
            } else if self.peek_is("not")
                && matches!(self.tokens.get(self.at + 1), Some(Token::Name(n)) if n == "in")
            {
                self.at += 2;
                left = Expr::In(Box::new(left), Box::new(self.unary()?), true);
            } else if self.eat("matches") {
                let right = self.unary()?;
                let regex = match &right {
                    Expr::Literal(Value::String(re)) => Some(
                        compile_regex(re).ok_or_else(|| unsupported(format!("regex {re:?}")))?,
                    ),
                    _ => None,
                };
                left = Expr::Matches(Box::new(left), Box::new(right), regex);
            } else {
                return Ok(left);
            }
        }
    }

    fn unary(&mut self) -> Result<Expr, CompoundError> {
        if self.eat("not") || self.eat("!") {
            self.deeper()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn arguments(&mut self) -> Result<Vec<Expr>, CompoundError> {
        self.expect("(")?;
        let mut args = Vec::new();
        if !self.eat(")") {
            loop {
                args.push(self.or()?);
                if self.eat(")") {
                    break;
                }
                self.expect(",")?;
            }
        }
        Ok(args)
    }

    fn primary(&mut self) -> Result<Expr, CompoundError> {
        let token = self
            .peek()
            .cloned()
            .ok_or_else(|| unsupported("expression ends early"))?;
        self.at += 1;
        let expr = match token {
            Token::Str(s) => Expr::Literal(Value::String(s)),
            Token::Num(n) => Expr::Literal(Value::from(n)),
            Token::Op("(") => {
                let inner = self.or()?;
                self.expect(")")?;
                inner
            }
            Token::Op("[") => {
                let mut items = Vec::new();
                if !self.eat("]") {
                    loop {
                        items.push(self.or()?);
                        if self.eat("]") {
                            break;
                        }
                        self.expect(",")?;
                    }
                }
                Expr::List(items)
            }
            Token::Name(name) if self.peek_is("(") => {
                let mut args = self.arguments()?.into_iter();
                let (a, b, extra) = (args.next(), args.next(), args.next());
                match (name.as_str(), a, b, extra) {
                    ("with", Some(a), None, None) => Expr::With(Box::new(a)),
                    ("fact", Some(a), None, None) => Expr::Fact(Box::new(a)),
                    ("include", Some(a), Some(b), None) => Expr::Include(Box::new(a), Box::new(b)),
                    _ => return Err(unsupported(format!("function {name}()"))),
                }
            }
            Token::Name(name) => match name.as_str() {
                "true" => Expr::Literal(Value::Bool(true)),
                "false" => Expr::Literal(Value::Bool(false)),
                "nil" => Expr::Literal(Value::Null),
                "agents" => Expr::Agents,
                "classes" => Expr::Classes,
                "identity" => Expr::Identity,
                "facts" => return Err(unsupported("facts (use fact('name'))")),
                "and" | "or" | "not" | "in" | "matches" => {
                    return Err(unsupported(format!("misplaced {name}")))
                }
                _ => Expr::Literal(Value::Null),
            },
            Token::Op(op) => return Err(unsupported(format!("misplaced {op:?}"))),
        };
        Ok(expr)
    }
}

impl Expr {
    /// Compiles `text` (see the module docs).
    pub fn compile(text: &str) -> Result<Expr, CompoundError> {
        if text.len() > MAX_LEN {
            return Err(unsupported("expression too long"));
        }
        if text.contains('.') && has_member_access(text) {
            return Err(unsupported("member access"));
        }
        let mut parser = Parser {
            tokens: tokenize(text)?,
            at: 0,
            depth: 0,
        };
        let expr = parser.or()?;
        if parser.at != parser.tokens.len() {
            return Err(unsupported("trailing input"));
        }
        Ok(expr)
    }

    /// The expression's truth for `node`; `None` if it failed (a type error, or a value
    /// that is not a boolean).
    pub fn eval(&self, node: &NodeView<'_>) -> Option<bool> {
        match self.value(node)? {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    fn value(&self, node: &NodeView<'_>) -> Option<Value> {
        Some(match self {
            Expr::Literal(v) => v.clone(),
            Expr::List(items) => Value::Array(
                items
                    .iter()
                    .map(|e| e.value(node))
                    .collect::<Option<Vec<_>>>()?,
            ),
            Expr::Agents => Value::from(node.agents.to_vec()),
            Expr::Classes => Value::from(node.classes.to_vec()),
            Expr::Identity => Value::from(node.identity),
            Expr::With(arg) => Value::Bool(with(arg.value(node)?.as_str()?, node)),
            Expr::Fact(arg) => node
                .facts
                .get(arg.value(node)?.as_str()?)
                .cloned()
                .unwrap_or(Value::Null),
            Expr::Include(list, needle) => {
                let needle = needle.value(node)?;
                Value::Bool(match list.value(node)? {
                    Value::Array(items) => items.iter().any(|i| equal(i, &needle)),
                    _ => false,
                })
            }
            Expr::Not(inner) => Value::Bool(!inner.value(node)?.as_bool()?),
            Expr::And(a, b) => Value::Bool(a.value(node)?.as_bool()? && b.value(node)?.as_bool()?),
            Expr::Or(a, b) => Value::Bool(a.value(node)?.as_bool()? || b.value(node)?.as_bool()?),
            Expr::Compare(cmp, a, b) => {
                Value::Bool(compare(*cmp, &a.value(node)?, &b.value(node)?)?)
            }
            Expr::Matches(a, b, compiled) => {
                let text = a.value(node)?;
                let text = text.as_str()?;
                match compiled {
                    Some(re) => Value::Bool(re.is_match(text)),
                    None => {
                        let re = b.value(node)?;
                        Value::Bool(compile_regex(re.as_str()?)?.is_match(text))
                    }
                }
            }
            Expr::In(a, b, negate) => {
                let needle = a.value(node)?;
                let found = match b.value(node)? {
                    Value::Array(items) => items.iter().any(|i| equal(i, &needle)),
                    Value::Object(map) => map.contains_key(needle.as_str()?),
                    _ => return None,
                };
                Value::Bool(found != *negate)
            }
        })
    }
}

/// Whether `text` has a `name.field` member access outside string literals (numbers with a
/// decimal point are fine).
fn has_member_access(text: &str) -> bool {
    let mut quote = None;
    let mut previous = ' ';
    for c in text.chars() {
        match quote {
            Some(q) if c == q && previous != '\\' => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '.' && !previous.is_ascii_digit() => return true,
            None => {}
        }
        previous = c;
    }
    false
}

/// go-choria's `with()`: a fact filter if the text parses as one, else a class, else an agent.
fn with(query: &str, node: &NodeView<'_>) -> bool {
    if let Ok(filter) = FactFilter::parse_expression(query) {
        return fact_matches(node.facts, &filter);
    }
    let hit = |candidate: &String| match strip_slashes(query) {
        Some(_) => compile_regex(query).is_some_and(|re| re.is_match(candidate)),
        None => candidate == query,
    };
    node.classes.iter().any(hit) || node.agents.iter().any(hit)
}

/// Equality as expr-lang has it: numbers by value, everything else structurally.
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// A comparison; `None` (a failed expression) for an ordering of mismatched types.
fn compare(cmp: Comparison, a: &Value, b: &Value) -> Option<bool> {
    let ordering = match cmp {
        Comparison::Eq => return Some(equal(a, b)),
        Comparison::Ne => return Some(!equal(a, b)),
        _ => match (a, b) {
            (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?)?,
            (Value::String(x), Value::String(y)) => x.cmp(y),
            _ => return None,
        },
    };
    Some(match cmp {
        Comparison::Lt => ordering.is_lt(),
        Comparison::Gt => ordering.is_gt(),
        Comparison::Le => ordering.is_le(),
        Comparison::Ge => ordering.is_ge(),
        Comparison::Eq | Comparison::Ne => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Facts;
    use serde_json::json;

    fn eval(text: &str) -> Option<bool> {
        let facts = Facts::from_value(json!({
            "country": "mt", "instance": 7, "os": {"family": "RedHat"}, "ips": ["10.0.0.1"]
        }));
        let agents = vec!["rpcutil".to_owned(), "emulated0".to_owned()];
        let classes = vec!["apache".to_owned()];
        let view = NodeView {
            identity: "web1",
            agents: &agents,
            classes: &classes,
            facts: &facts,
        };
        Expr::compile(text).unwrap().eval(&view)
    }

    #[test]
    fn the_subset_evaluates() {
        assert_eq!(
            eval("with('apache') and fact('country') == 'mt'"),
            Some(true)
        );
        assert_eq!(eval("with('country=mt') && with('rpcutil')"), Some(true));
        assert_eq!(eval("with('/^emu/')"), Some(true));
        assert_eq!(eval("with('nginx') || with('instance>=8')"), Some(false));
        assert_eq!(
            eval("fact('instance') >= 7 and fact('instance') < 7.5"),
            Some(true)
        );
        assert_eq!(eval("fact('os.family') matches '^Red'"), Some(true));
        assert_eq!(
            eval("'apache' in classes and 'nginx' not in classes"),
            Some(true)
        );
        assert_eq!(eval("'emulated0' in agents"), Some(true));
        assert_eq!(eval("include(fact('ips'), '10.0.0.1')"), Some(true));
        assert_eq!(
            eval("identity == 'web1' and identity in ['web1', 'web2']"),
            Some(true)
        );
        assert_eq!(eval("identity matches '^db'"), Some(false));
        assert_eq!(eval("not (with('apache') and false)"), Some(true));
        assert_eq!(eval("!with('nginx')"), Some(true));
        assert_eq!(eval("fact('missing') == nil"), Some(true));
        assert_eq!(eval("undefined_name == nil"), Some(true));
    }

    #[test]
    fn type_errors_fail() {
        assert_eq!(eval("fact('instance') < 'a'"), None);
        assert_eq!(eval("not 'x'"), None);
        assert_eq!(eval("fact('country')"), None);
        assert_eq!(eval("fact('missing') matches 'x'"), None);
    }

    #[test]
    fn outside_the_subset_is_refused() {
        for text in [
            "semver(fact('v'), '>= 1.0')",
            "facts.country == 'mt'",
            "fact('instance') + 1 > 2",
            "with('a'",
            "with('a') and",
            "fact('x') matches '('",
            "",
            "1 2",
        ] {
            assert!(Expr::compile(text).is_err(), "{text}");
        }
        let deep = "(".repeat(100) + "true" + &")".repeat(100);
        assert!(Expr::compile(&deep).is_err());
    }
}
