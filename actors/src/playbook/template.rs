//! `{{ x }}` / `{{{ x }}}` templates (the two forms are the same; nothing is escaped).
//!
//! Expressions: `inputs.X` (or `input.X`, with an optional `.path` into a map), `metadata.X`,
//! `nodes.X`, `previous_task.{success,description,message,msg,data,runtime}`, `uuid`,
//! `elapsed_time` (seconds), `date(FMT)` and `utc_date(FMT)` (strftime subset, UTC). A string
//! that is exactly one expression keeps the value's type (a node set stays a list); inside a
//! larger string lists join with ", ", maps become JSON.

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rand::RngCore as _;
use serde_json::Value;

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
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Formats `at` in UTC with a strftime subset: `%Y %m %d %H %M %S %s %F %T %%`.
pub fn strftime_utc(format: &str, at: SystemTime) -> String {
    let secs = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&format!("{year:04}")),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('H') => out.push_str(&format!("{h:02}")),
            Some('M') => out.push_str(&format!("{m:02}")),
            Some('S') => out.push_str(&format!("{s:02}")),
            Some('s') => out.push_str(&secs.to_string()),
            Some('F') => out.push_str(&format!("{year:04}-{month:02}-{day:02}")),
            Some('T') => out.push_str(&format!("{h:02}:{m:02}:{s:02}")),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
    }
}
