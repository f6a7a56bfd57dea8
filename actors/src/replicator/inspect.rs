//! Where a message's sender comes from, for sampling.
//!
//! A topic's `inspect` setting names the part of a message that identifies its sender (the
//! value the [`SamplingTracker`](super::sampling::SamplingTracker) keys on):
//!
//! | spec | sender |
//! |---|---|
//! | `header:<Name>` | the value of the NATS header `<Name>` |
//! | `subject:<N>` | subject token `N`, 0-based; a negative `N` counts from the end (`-1` is the last) |
//! | `<path>` | the field at the dotted JSON path in the payload, e.g. `sender`, `data.identity`, `$.data.identity`, `hosts.0` |
//!
//! SRv2 counts subject tokens from 1 and uses `-1` for the whole subject; choir counts from 0
//! like the rest of Rust, and `-1` is the last token.
//!
//! JSON paths are read with a streaming visitor that skips everything off the path, so a
//! registration payload is not materialised as a `serde_json::Value` for every message.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Why an inspect or force-field spec was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InspectError {
    /// The spec is empty.
    #[error("inspect spec is empty")]
    Empty,
    /// `header:` without a header name, or a name that cannot be a NATS header.
    #[error("invalid header name {0:?}")]
    InvalidHeader(String),
    /// `subject:` without an integer token index.
    #[error("invalid subject token index {0:?}")]
    InvalidToken(String),
    /// A JSON path with an empty segment (`a..b`, `.a`, `a.`) or no segment at all (`$`).
    #[error("invalid json path {0:?}")]
    InvalidPath(String),
}

/// A dotted path into a JSON payload (`data.identity`, `$.data.identity`, `hosts.0`).
///
/// Segments are object keys; a segment made of digits also indexes an array. Keys that
/// contain a `.` cannot be addressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    /// The spec as given, for messages and advisories.
    spec: String,
    /// The keys, outermost first; never empty. A key made of digits also indexes an array.
    segments: Vec<String>,
}

/// A scalar found at the end of a [`JsonPath`].
#[derive(Debug, Clone, PartialEq)]
enum Leaf {
    /// A JSON string.
    Str(String),
    /// A JSON number, rendered as text.
    Number(String),
    /// A JSON bool.
    Bool(bool),
}

// === impl JsonPath ===

impl JsonPath {
    /// Parses a dotted path; a leading `$.` is accepted and ignored.
    pub fn parse(spec: &str) -> Result<Self, InspectError> {
        let trimmed = spec.trim();
        if trimmed.is_empty() {
            return Err(InspectError::Empty);
        }
        let body = trimmed.strip_prefix("$.").unwrap_or(trimmed);
        if body == "$" || body.is_empty() {
            return Err(InspectError::InvalidPath(spec.to_owned()));
        }
        let segments = body
            .split('.')
            .map(|key| {
                if key.is_empty() {
                    Err(InspectError::InvalidPath(spec.to_owned()))
                } else {
                    Ok(key.to_owned())
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            spec: trimmed.to_owned(),
            segments,
        })
    }

    /// The path as configured.
    pub fn as_str(&self) -> &str {
        &self.spec
    }

    /// The scalar at this path as a string: strings as they are, numbers and bools rendered
    /// as text. `None` when the payload is not JSON, the path is missing, or the value is an
    /// empty string, `null`, an object or an array.
    pub fn extract(&self, payload: &[u8]) -> Option<String> {
        match self.leaf(payload)? {
            Leaf::Str(s) if s.is_empty() => None,
            Leaf::Str(s) | Leaf::Number(s) => Some(s),
            Leaf::Bool(b) => Some(b.to_string()),
        }
    }

    /// Whether the value at this path is the JSON bool `true` (a string `"true"`, a number,
    /// a missing field or a non-JSON payload are all `false`).
    pub fn is_true(&self, payload: &[u8]) -> bool {
        matches!(self.leaf(payload), Some(Leaf::Bool(true)))
    }

    /// Walks the payload along the path, skipping everything else.
    fn leaf(&self, payload: &[u8]) -> Option<Leaf> {
        let mut de = serde_json::Deserializer::from_slice(payload);
        let leaf = PathSeed {
            segments: &self.segments,
        }
        .deserialize(&mut de)
        .ok()?;
        // Trailing garbage makes the payload invalid JSON.
        de.end().ok()?;
        leaf
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.spec)
    }
}

impl FromStr for JsonPath {
    type Err = InspectError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        Self::parse(spec)
    }
}

/// Deserializes the value at `segments` below the current position.
struct PathSeed<'p> {
    /// The keys still to follow; empty means "this value is the leaf".
    segments: &'p [String],
}

impl<'de> DeserializeSeed<'de> for PathSeed<'_> {
    type Value = Option<Leaf>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(PathVisitor {
            segments: self.segments,
        })
    }
}

/// Visits one JSON value: a leaf when no segment is left, else the container to descend.
struct PathVisitor<'p> {
    /// The keys still to follow.
    segments: &'p [String],
}

impl PathVisitor<'_> {
    /// A scalar is a result only when the path ends here.
    fn leaf(&self, leaf: Leaf) -> Option<Leaf> {
        self.segments.is_empty().then_some(leaf)
    }
}

impl<'de> Visitor<'de> for PathVisitor<'_> {
    type Value = Option<Leaf>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(self.leaf(Leaf::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(self.leaf(Leaf::Number(v.to_string())))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(self.leaf(Leaf::Number(v.to_string())))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(self.leaf(Leaf::Number(v.to_string())))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.leaf(Leaf::Str(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(self.leaf(Leaf::Str(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let Some((wanted, rest)) = self.segments.split_first() else {
            // An object where a scalar was wanted.
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(None);
        };
        let mut found = None;
        while let Some(matches) = map.next_key_seed(KeyMatch { wanted })? {
            if matches && found.is_none() {
                found = map.next_value_seed(PathSeed { segments: rest })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let wanted = self
            .segments
            .split_first()
            .and_then(|(key, rest)| key.parse::<usize>().ok().map(|i| (i, rest)));
        let mut found = None;
        let mut index = 0usize;
        loop {
            match wanted {
                Some((i, rest)) if i == index => {
                    match seq.next_element_seed(PathSeed { segments: rest })? {
                        Some(leaf) => found = leaf,
                        None => break,
                    }
                }
                _ => {
                    if seq.next_element::<IgnoredAny>()?.is_none() {
                        break;
                    }
                }
            }
            index = index.saturating_add(1);
        }
        Ok(found)
    }
}

/// Compares an object key with the wanted one without allocating.
struct KeyMatch<'p> {
    /// The key the path follows.
    wanted: &'p str,
}

impl<'de> DeserializeSeed<'de> for KeyMatch<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyMatch<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v == self.wanted)
    }
}

/// Where the sender of a message comes from (see the module docs for the spec syntax).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inspector {
    /// The value of a NATS header.
    Header(String),
    /// A subject token: 0-based, negative counts from the end (`-1` is the last token).
    SubjectToken(i64),
    /// A dotted path into a JSON payload.
    Json(JsonPath),
}

// === impl Inspector ===

impl Inspector {
    /// Parses `header:<Name>`, `subject:<N>` or a JSON path.
    pub fn parse(spec: &str) -> Result<Self, InspectError> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(InspectError::Empty);
        }
        if let Some(name) = spec.strip_prefix("header:") {
            let name = name.trim();
            let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
            return if valid {
                Ok(Self::Header(name.to_owned()))
            } else {
                Err(InspectError::InvalidHeader(name.to_owned()))
            };
        }
        if let Some(index) = spec.strip_prefix("subject:") {
            return index
                .trim()
                .parse::<i64>()
                .map(Self::SubjectToken)
                .map_err(|_| InspectError::InvalidToken(index.to_owned()));
        }
        JsonPath::parse(spec).map(Self::Json)
    }

    /// A short name for what is inspected, used as the advisory's `inspect_field`:
    /// the header name, `subject:<N>`, or the JSON path.
    pub fn field_name(&self) -> Cow<'_, str> {
        match self {
            Self::Header(name) => Cow::Borrowed(name),
            Self::SubjectToken(index) => Cow::Owned(format!("subject:{index}")),
            Self::Json(path) => Cow::Borrowed(path.as_str()),
        }
    }

    /// The sender of one message, or `None` when the header, token or field is missing or
    /// empty, or the payload is not JSON (for a JSON path). Numbers and bools are rendered as
    /// text. `header` looks a header up by name, e.g.
    /// `|name| msg.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str())`.
    pub fn extract<F, H>(&self, subject: &str, header: F, payload: &[u8]) -> Option<String>
    where
        F: FnOnce(&str) -> Option<H>,
        H: AsRef<str>,
    {
        match self {
            Self::Header(name) => header(name)
                .map(|value| value.as_ref().trim().to_owned())
                .filter(|value| !value.is_empty()),
            Self::SubjectToken(index) => subject_token(subject, *index).map(str::to_owned),
            Self::Json(path) => path.extract(payload),
        }
    }

    /// Whether `force_field` is the JSON bool `true` in `payload`, which forces a copy
    /// whatever the sampling says. Independent of what is inspected; see [`JsonPath::is_true`].
    pub fn force(&self, payload: &[u8], force_field: &JsonPath) -> bool {
        force_field.is_true(payload)
    }
}

impl fmt::Display for Inspector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header(name) => write!(f, "header:{name}"),
            Self::SubjectToken(index) => write!(f, "subject:{index}"),
            Self::Json(path) => write!(f, "{path}"),
        }
    }
}

impl FromStr for Inspector {
    type Err = InspectError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        Self::parse(spec)
    }
}

/// Token `index` of `subject` (0-based; negative counts from the end); empty tokens are `None`.
fn subject_token(subject: &str, index: i64) -> Option<&str> {
    let token = if index >= 0 {
        subject.split('.').nth(usize::try_from(index).ok()?)
    } else {
        let from_end = usize::try_from(index.unsigned_abs()).ok()?.checked_sub(1)?;
        subject.rsplit('.').nth(from_end)
    };
    token.filter(|token| !token.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_headers(_: &str) -> Option<&'static str> {
        None
    }

    fn json(spec: &str, payload: &str) -> Option<String> {
        Inspector::parse(spec)
            .unwrap()
            .extract("a.b", no_headers, payload.as_bytes())
    }

    #[test]
    fn specs_parse_into_their_kind() {
        assert_eq!(
            Inspector::parse("header:Sender").unwrap(),
            Inspector::Header("Sender".into())
        );
        assert_eq!(
            Inspector::parse("subject:-2").unwrap(),
            Inspector::SubjectToken(-2)
        );
        assert!(matches!(
            Inspector::parse("$.data.identity").unwrap(),
            Inspector::Json(_)
        ));
        assert_eq!(
            Inspector::parse("data.identity").unwrap().to_string(),
            "data.identity"
        );
    }

    #[test]
    fn empty_and_invalid_specs_are_refused() {
        assert_eq!(Inspector::parse(""), Err(InspectError::Empty));
        assert_eq!(Inspector::parse("  "), Err(InspectError::Empty));
        assert!(matches!(
            Inspector::parse("header:"),
            Err(InspectError::InvalidHeader(_))
        ));
        assert!(matches!(
            Inspector::parse("header:Bad Name"),
            Err(InspectError::InvalidHeader(_))
        ));
        assert!(matches!(
            Inspector::parse("subject:x"),
            Err(InspectError::InvalidToken(_))
        ));
        assert!(matches!(
            Inspector::parse("subject:"),
            Err(InspectError::InvalidToken(_))
        ));
        for bad in ["$", "$.", "a..b", ".a", "a."] {
            assert!(
                matches!(Inspector::parse(bad), Err(InspectError::InvalidPath(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn header_value_is_the_sender() {
        let inspector = Inspector::parse("header:Choria-Sender").unwrap();
        let lookup = |name: &str| (name == "Choria-Sender").then_some("node1.example");
        assert_eq!(
            inspector.extract("x", lookup, b"not json"),
            Some("node1.example".into())
        );
        assert_eq!(inspector.extract("x", no_headers, b""), None);
        assert_eq!(inspector.extract("x", |_| Some(String::new()), b""), None);
    }

    #[test]
    fn subject_tokens_count_from_zero_and_from_the_end() {
        let subject = "choria.registration.node1.example";
        let token = |i| Inspector::SubjectToken(i).extract(subject, no_headers, b"");
        assert_eq!(token(0), Some("choria".into()));
        assert_eq!(token(2), Some("node1".into()));
        assert_eq!(token(-1), Some("example".into()));
        assert_eq!(token(-4), Some("choria".into()));
        assert_eq!(token(4), None);
        assert_eq!(token(-5), None);
        assert_eq!(token(i64::MIN), None);
    }

    #[test]
    fn json_fields_are_found_at_any_depth() {
        let payload =
            r#"{"other":{"sender":"no"},"sender":"n1","data":{"identity":"n2","n":[1,2]}}"#;
        assert_eq!(json("sender", payload), Some("n1".into()));
        assert_eq!(json("data.identity", payload), Some("n2".into()));
        assert_eq!(json("$.data.identity", payload), Some("n2".into()));
        assert_eq!(json("data.n.1", payload), Some("2".into()));
        assert_eq!(json("data.n.2", payload), None);
    }

    #[test]
    fn json_scalars_are_rendered_as_strings() {
        let payload =
            r#"{"i":-42,"u":7,"f":1.5,"t":true,"f2":false,"e":"","z":null,"o":{},"a":[]}"#;
        assert_eq!(json("i", payload), Some("-42".into()));
        assert_eq!(json("u", payload), Some("7".into()));
        assert_eq!(json("f", payload), Some("1.5".into()));
        assert_eq!(json("t", payload), Some("true".into()));
        assert_eq!(json("f2", payload), Some("false".into()));
        for absent in ["e", "z", "o", "a", "missing", "i.deeper"] {
            assert_eq!(json(absent, payload), None, "{absent}");
        }
    }

    #[test]
    fn escaped_json_keys_and_values_are_decoded() {
        let payload = r#"{"se\u006eder":"n\u00e9ud"}"#;
        assert_eq!(json("sender", payload), Some("néud".into()));
    }

    #[test]
    fn non_json_payloads_have_no_sender() {
        assert_eq!(json("sender", "hello"), None);
        assert_eq!(json("sender", ""), None);
        assert_eq!(json("sender", r#"{"sender":"n1"} trailing"#), None);
        assert_eq!(json("sender", r#"{"sender":"n1""#), None);
        assert_eq!(json("sender", r#"["n1"]"#), None);
    }

    #[test]
    fn force_field_needs_a_json_true() {
        let inspector = Inspector::parse("sender").unwrap();
        let force = JsonPath::parse("update").unwrap();
        let forced = |payload: &str| inspector.force(payload.as_bytes(), &force);
        assert!(forced(r#"{"update":true}"#));
        assert!(!forced(r#"{"update":false}"#));
        assert!(!forced(r#"{"update":"true"}"#));
        assert!(!forced(r#"{"update":1}"#));
        assert!(!forced(r#"{"sender":"x"}"#));
        assert!(!forced("not json"));
    }

    #[test]
    fn field_name_names_what_is_inspected() {
        assert_eq!(Inspector::parse("header:X").unwrap().field_name(), "X");
        assert_eq!(
            Inspector::parse("subject:-1").unwrap().field_name(),
            "subject:-1"
        );
        assert_eq!(
            Inspector::parse("$.data.identity").unwrap().field_name(),
            "$.data.identity"
        );
    }
}
