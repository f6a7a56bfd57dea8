//! `{{ x }}` / `{{{ x }}}` templates (the two forms are the same; nothing is escaped).
//!
//! Expressions: `inputs.X` (or `input.X`, with an optional `.path` into a map), `metadata.X`,
//! `nodes.X`, `previous_task.{success,description,message,msg,data,runtime}`, `uuid`,
//! `elapsed_time` (seconds), `date(FMT)` and `utc_date(FMT)` (strftime, UTC: [`DATE_SPECIFIERS`]). A string
//! that is exactly one expression keeps the value's type (a node set stays a list); inside a
//! larger string lists join with ", ", maps become JSON.
//!
//! The run report's and lock records' times are written here too ([`timestamp`],
//! [`precise_timestamp`]), with the same strftime code.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Instant, SystemTime};

use serde_json::Value;
use time::{Month, OffsetDateTime, Weekday};

/// A template that could not be parsed or rendered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    /// `{{` without its `}}`.
    #[error("unclosed template expression in {0:?}")]
    Unclosed(String),
    /// Not one of the known expressions.
    #[error("unknown template expression {0:?}")]
    Unknown(String),
    /// `metadata.X` with an X that is not a metadata key.
    #[error("unknown metadata key {0:?} (one of name, version, author, description, tags)")]
    UnknownMetadata(String),
    /// An input that has no value at render time.
    #[error("input {0:?} has no value")]
    NoValue(String),
    /// A node set not resolved at render time.
    #[error("node set {0:?} is not known")]
    NoNodes(String),
    /// A path into an input value that does not exist.
    #[error("input {0:?} has no key {1:?}")]
    NoKey(String, String),
    /// `previous_task.X` with no previous task or an unknown X.
    #[error("{0}")]
    Previous(String),
}

/// One parsed expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// `inputs.NAME[.path...]`.
    Input(String, Vec<String>),
    /// `metadata.KEY`.
    Metadata(String),
    /// `nodes.SET`.
    Nodes(String),
    /// `previous_task.FIELD`.
    Previous(String),
    /// A fresh v4 UUID.
    Uuid,
    /// Seconds since the run started.
    ElapsedTime,
    /// `date(FMT)` / `utc_date(FMT)`.
    Date(String),
}

/// A piece of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// Literal text.
    Text(String),
    /// An expression.
    Expr(Expr),
}

const METADATA_KEYS: [&str; 5] = ["name", "version", "author", "description", "tags"];
const PREVIOUS_KEYS: [&str; 6] = [
    "success",
    "description",
    "message",
    "msg",
    "data",
    "runtime",
];

/// Splits `text` into literal text and expressions.
pub fn parse(text: &str) -> Result<Vec<Segment>, TemplateError> {
    let mut segments = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            segments.push(Segment::Text(rest[..start].to_string()));
        }
        let triple = rest[start..].starts_with("{{{");
        let (open, close) = if triple { (3, "}}}") } else { (2, "}}") };
        let body_start = start + open;
        let Some(len) = rest[body_start..].find(close) else {
            return Err(TemplateError::Unclosed(text.to_string()));
        };
        segments.push(Segment::Expr(parse_expr(
            rest[body_start..body_start + len].trim(),
        )?));
        rest = &rest[body_start + len + close.len()..];
    }
    if !rest.is_empty() {
        segments.push(Segment::Text(rest.to_string()));
    }
    Ok(segments)
}

fn parse_expr(expr: &str) -> Result<Expr, TemplateError> {
    let unknown = || TemplateError::Unknown(expr.to_string());
    match expr {
        "uuid" => return Ok(Expr::Uuid),
        "elapsed_time" => return Ok(Expr::ElapsedTime),
        _ => {}
    }
    for prefix in ["date(", "utc_date("] {
        if let Some(format) = expr.strip_prefix(prefix).and_then(|r| r.strip_suffix(')')) {
            let format = format.trim().trim_matches(|c| c == '"' || c == '\'');
            if format.is_empty() {
                return Err(unknown());
            }
            return Ok(Expr::Date(format.to_string()));
        }
    }
    let mut parts = expr.split('.').map(str::trim);
    let scope = parts.next().ok_or_else(unknown)?;
    let name = parts.next().filter(|n| !n.is_empty()).ok_or_else(unknown)?;
    let path: Vec<String> = parts.map(str::to_string).collect();
    if path.iter().any(String::is_empty) {
        return Err(unknown());
    }
    match scope {
        "inputs" | "input" => Ok(Expr::Input(name.to_string(), path)),
        "metadata" if path.is_empty() => {
            if METADATA_KEYS.contains(&name) {
                Ok(Expr::Metadata(name.to_string()))
            } else {
                Err(TemplateError::UnknownMetadata(name.to_string()))
            }
        }
        "nodes" if path.is_empty() => Ok(Expr::Nodes(name.to_string())),
        "previous_task" if path.is_empty() && PREVIOUS_KEYS.contains(&name) => {
            Ok(Expr::Previous(name.to_string()))
        }
        _ => Err(unknown()),
    }
}

/// The outcome of the task before, as templates see it.
#[derive(Clone, Debug, Default)]
pub struct PreviousTask {
    /// Whether it succeeded.
    pub success: bool,
    /// Its rendered description.
    pub description: String,
    /// Its message.
    pub message: String,
    /// Its data.
    pub data: Value,
    /// Its run time in seconds.
    pub runtime: f64,
}

/// Everything a template can refer to, resolved for one rendering.
#[derive(Clone, Debug)]
pub struct Context {
    /// Input values (dynamic ones freshly read).
    pub inputs: BTreeMap<String, Value>,
    /// Metadata values.
    pub metadata: BTreeMap<String, Value>,
    /// Resolved node sets.
    pub nodes: BTreeMap<String, Vec<String>>,
    /// The task before, if any.
    pub previous: Option<PreviousTask>,
    /// When the run started.
    pub started: Instant,
}

impl Context {
    /// An empty context started now.
    pub fn new() -> Self {
        Self {
            inputs: BTreeMap::new(),
            metadata: BTreeMap::new(),
            nodes: BTreeMap::new(),
            previous: None,
            started: Instant::now(),
        }
    }

    fn eval(&self, expr: &Expr) -> Result<Value, TemplateError> {
        match expr {
            Expr::Input(name, path) => {
                let mut value = self
                    .inputs
                    .get(name)
                    .filter(|v| !v.is_null())
                    .ok_or_else(|| TemplateError::NoValue(name.clone()))?;
                for key in path {
                    value = value
                        .get(key)
                        .or_else(|| key.parse::<usize>().ok().and_then(|i| value.get(i)))
                        .ok_or_else(|| TemplateError::NoKey(name.clone(), key.clone()))?;
                }
                Ok(value.clone())
            }
            Expr::Metadata(key) => Ok(self.metadata.get(key).cloned().unwrap_or(Value::Null)),
            Expr::Nodes(set) => self
                .nodes
                .get(set)
                .map(|nodes| Value::from(nodes.clone()))
                .ok_or_else(|| TemplateError::NoNodes(set.clone())),
            Expr::Previous(field) => {
                let previous = self.previous.as_ref().ok_or_else(|| {
                    TemplateError::Previous("previous_task used before any task ran".into())
                })?;
                Ok(match field.as_str() {
                    "success" => Value::Bool(previous.success),
                    "description" => Value::from(previous.description.clone()),
                    "message" | "msg" => Value::from(previous.message.clone()),
                    "data" => previous.data.clone(),
                    _ => Value::from(previous.runtime),
                })
            }
            Expr::Uuid => Ok(Value::from(uuid_v4())),
            Expr::ElapsedTime => Ok(Value::from(self.started.elapsed().as_secs())),
            Expr::Date(format) => Ok(Value::from(strftime_utc(format, SystemTime::now()))),
        }
    }

    /// Renders one string: a lone expression keeps its type, anything else is a string.
    pub fn render_str(&self, text: &str) -> Result<Value, TemplateError> {
        let segments = parse(text)?;
        if let [Segment::Expr(expr)] = segments.as_slice() {
            return self.eval(expr);
        }
        let mut out = String::new();
        for segment in &segments {
            match segment {
                Segment::Text(text) => out.push_str(text),
                Segment::Expr(expr) => out.push_str(&to_text(&self.eval(expr)?)),
            }
        }
        Ok(Value::String(out))
    }

    /// Renders one string to text.
    pub fn render_text(&self, text: &str) -> Result<String, TemplateError> {
        Ok(to_text(&self.render_str(text)?))
    }

    /// Renders every string inside `value`, recursively.
    pub fn render_value(&self, value: &Value) -> Result<Value, TemplateError> {
        Ok(match value {
            Value::String(text) => self.render_str(text)?,
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.render_value(v))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.render_value(v)?)))
                    .collect::<Result<_, TemplateError>>()?,
            ),
            other => other.clone(),
        })
    }
}

impl Default for Context {
    fn default() -> Self {
        Self::new()
    }
}

/// A value as text inside a larger string: strings bare, lists joined with ", ", maps as JSON.
pub fn to_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        Value::Array(items) => items.iter().map(to_text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// Every expression in `text` (for validation).
pub fn expressions(text: &str) -> Result<Vec<Expr>, TemplateError> {
    Ok(parse(text)?
        .into_iter()
        .filter_map(|s| match s {
            Segment::Expr(e) => Some(e),
            Segment::Text(_) => None,
        })
        .collect())
}

/// A random (v4) UUID, lowercase hyphenated.
pub fn uuid_v4() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

/// The strftime specifiers [`strftime_utc`] knows.
pub const DATE_SPECIFIERS: &str =
    "%Y %C %y %m %d %e %H %I %M %S %p %s %j %a %A %b %h %B %u %w %F %T %D %R %z %Z %n %t %%";

/// Formats `at` in UTC with strftime specifiers (see [`DATE_SPECIFIERS`]; names in English,
/// `%z` is always `+0000`). An unknown specifier is kept as written.
pub fn strftime_utc(format: &str, at: SystemTime) -> String {
    let at = OffsetDateTime::from(at);
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(spec) = chars.next() else {
            out.push('%');
            break;
        };
        // Writing to a String cannot fail.
        let _ = write_specifier(&mut out, spec, at);
    }
    out
}

/// `at` as RFC 3339 UTC (seconds).
pub fn timestamp(at: SystemTime) -> String {
    strftime_utc("%Y-%m-%dT%H:%M:%SZ", at)
}

/// `at` as RFC 3339 UTC with microseconds (fixed width, so these sort as text).
pub fn precise_timestamp(at: SystemTime) -> String {
    let at = OffsetDateTime::from(at);
    format!(
        "{}.{:06}Z",
        strftime_utc("%Y-%m-%dT%H:%M:%S", at.into()),
        at.microsecond()
    )
}

fn write_specifier(out: &mut String, spec: char, at: OffsetDateTime) -> std::fmt::Result {
    let (year, month, day) = (at.year(), u8::from(at.month()), at.day());
    let (h, m, s) = (at.hour(), at.minute(), at.second());
    let hour12 = match h % 12 {
        0 => 12,
        other => other,
    };
    match spec {
        'Y' => write!(out, "{year:04}"),
        'C' => write!(out, "{:02}", year.div_euclid(100)),
        'y' => write!(out, "{:02}", year.rem_euclid(100)),
        'm' => write!(out, "{month:02}"),
        'd' => write!(out, "{day:02}"),
        'e' => write!(out, "{day:2}"),
        'H' => write!(out, "{h:02}"),
        'I' => write!(out, "{hour12:02}"),
        'M' => write!(out, "{m:02}"),
        'S' => write!(out, "{s:02}"),
        'p' => out.write_str(if h < 12 { "AM" } else { "PM" }),
        's' => write!(out, "{}", at.unix_timestamp()),
        'j' => write!(out, "{:03}", at.ordinal()),
        'a' => out.write_str(&weekday_name(at.weekday())[..3]),
        'A' => out.write_str(weekday_name(at.weekday())),
        'b' | 'h' => out.write_str(&month_name(at.month())[..3]),
        'B' => out.write_str(month_name(at.month())),
        'u' => write!(out, "{}", at.weekday().number_from_monday()),
        'w' => write!(out, "{}", at.weekday().number_days_from_sunday()),
        'F' => write!(out, "{year:04}-{month:02}-{day:02}"),
        'T' => write!(out, "{h:02}:{m:02}:{s:02}"),
        'D' => write!(out, "{month:02}/{day:02}/{:02}", year.rem_euclid(100)),
        'R' => write!(out, "{h:02}:{m:02}"),
        'z' => out.write_str("+0000"),
        'Z' => out.write_str("UTC"),
        'n' => out.write_str("\n"),
        't' => out.write_str("\t"),
        '%' => out.write_str("%"),
        other => write!(out, "%{other}"),
    }
}

fn weekday_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Monday => "Monday",
        Weekday::Tuesday => "Tuesday",
        Weekday::Wednesday => "Wednesday",
        Weekday::Thursday => "Thursday",
        Weekday::Friday => "Friday",
        Weekday::Saturday => "Saturday",
        Weekday::Sunday => "Sunday",
    }
}

fn month_name(month: Month) -> &'static str {
    match month {
        Month::January => "January",
        Month::February => "February",
        Month::March => "March",
        Month::April => "April",
        Month::May => "May",
        Month::June => "June",
        Month::July => "July",
        Month::August => "August",
        Month::September => "September",
        Month::October => "October",
        Month::November => "November",
        Month::December => "December",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn ctx() -> Context {
        let mut ctx = Context::new();
        ctx.inputs.insert("cluster".into(), Value::from("alpha"));
        ctx.inputs
            .insert("cfg".into(), serde_json::json!({"a": {"b": 3}}));
        ctx.nodes
            .insert("web".into(), vec!["n1".into(), "n2".into()]);
        ctx.metadata.insert("name".into(), Value::from("pb"));
        ctx
    }

    #[test]
    fn both_forms_render_the_same() {
        let ctx = ctx();
        assert_eq!(
            ctx.render_text("x {{inputs.cluster}} y").unwrap(),
            "x alpha y"
        );
        assert_eq!(
            ctx.render_text("x {{{ input.cluster }}} y").unwrap(),
            "x alpha y"
        );
        assert_eq!(ctx.render_text("{{ metadata.name }}").unwrap(), "pb");
    }

    #[test]
    fn a_lone_expression_keeps_its_type() {
        let ctx = ctx();
        assert_eq!(
            ctx.render_str("{{{ nodes.web }}}").unwrap(),
            serde_json::json!(["n1", "n2"])
        );
        assert_eq!(
            ctx.render_str("on {{ nodes.web }}").unwrap(),
            Value::from("on n1, n2")
        );
        assert_eq!(
            ctx.render_str("{{ inputs.cfg.a.b }}").unwrap(),
            Value::from(3)
        );
    }

    #[test]
    fn errors_name_the_expression() {
        let ctx = ctx();
        assert!(matches!(
            parse("{{ inputs.x"),
            Err(TemplateError::Unclosed(_))
        ));
        assert!(matches!(
            parse("{{ bogus }}"),
            Err(TemplateError::Unknown(_))
        ));
        assert!(matches!(
            parse("{{ metadata.nope }}"),
            Err(TemplateError::UnknownMetadata(_))
        ));
        assert_eq!(
            ctx.render_str("{{ inputs.none }}"),
            Err(TemplateError::NoValue("none".into()))
        );
    }

    #[test]
    fn dates_and_uuids() {
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(strftime_utc("%F %T %%", at), "2023-11-14 22:13:20 %");
        let id = uuid_v4();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
    }

    #[test]
    fn date_names_day_of_year_and_offset() {
        // 2023-11-14 was a Tuesday, day 318 of the year.
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(strftime_utc("%a %b %j %z", at), "Tue Nov 318 +0000");
        assert_eq!(
            strftime_utc("%A %B %e %I%p %y %C %u %w %Z %D %R", at),
            "Tuesday November 14 10PM 23 20 2 2 UTC 11/14/23 22:13"
        );
        // 1 January: day 001, a Sunday, midnight is 12AM.
        let new_year = UNIX_EPOCH + Duration::from_secs(1_672_531_200);
        assert_eq!(
            strftime_utc("%F %a %j %I%p %h", new_year),
            "2023-01-01 Sun 001 12AM Jan"
        );
        assert_eq!(strftime_utc("%q 100%", at), "%q 100%");
    }
}
