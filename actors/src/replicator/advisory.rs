//! Sender liveness advisories: the wire message and its subject.
//!
//! The [`SamplingTracker`](super::sampling::SamplingTracker) reports [`SenderEvent`]s; when a
//! topic configures advisories the replicator turns each into an [`Advisory`] (JSON) published
//! on a subject rendered from a [`SubjectTemplate`] (`%s` = event, `%v` = sender), with
//! `Nats-Msg-Id` set to [`Advisory::event_id`] so a reliable (JetStream) publish that is retried
//! is stored once.
//!
//! The layout follows SRv2's `io.choria.sr.v2.age_advisory` (`inspect_field`, `value`, `age`,
//! `seen`, `replicator`, `timestamp`, `event`, `event_id`, `protocol`) under choir's own
//! protocol tag; times are Unix seconds and `age` is the configured sampling age in seconds.

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, SystemTime};

use md5::Digest as _;
use serde::{Deserialize, Serialize};

use super::sampling::{unix_millis, EventKind, SenderEvent};

/// The `protocol` of every advisory choir publishes.
pub const ADVISORY_PROTOCOL: &str = "io.choir.replicator.advisory.v1";

/// A sender liveness advisory as published (JSON).
///
/// Unknown fields are accepted when decoding, so newer publishers stay readable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advisory {
    /// Always [`ADVISORY_PROTOCOL`] for this layout.
    pub protocol: String,
    /// Deterministic per (replicator, value, event, timestamp); used as `Nats-Msg-Id`.
    pub event_id: String,
    /// `new`, `timeout`, `recover` or `expire`.
    pub event: EventKind,
    /// What is inspected to find the sender (a JSON path, header name or `subject:<N>`).
    pub inspect_field: String,
    /// The sender.
    pub value: String,
    /// The configured sampling age, seconds.
    pub age: u64,
    /// When the sender was last seen, Unix seconds.
    pub seen: u64,
    /// The replicator (topic) that reports it.
    pub replicator: String,
    /// When the advisory was made, Unix seconds.
    pub timestamp: u64,
}

// === impl Advisory ===

impl Advisory {
    /// The advisory for `event`, made at `now` by `replicator`, which samples on
    /// `inspect_field` with `age`.
    pub fn new(
        event: &SenderEvent,
        inspect_field: &str,
        age: Duration,
        replicator: &str,
        now: SystemTime,
    ) -> Self {
        let timestamp = unix_millis(now) / 1000;
        Self {
            protocol: ADVISORY_PROTOCOL.to_owned(),
            event_id: event_id(replicator, &event.sender, event.kind, timestamp),
            event: event.kind,
            inspect_field: inspect_field.to_owned(),
            value: event.sender.clone(),
            age: age.as_secs(),
            seen: event.last_seen_ms / 1000,
            replicator: replicator.to_owned(),
            timestamp,
        }
    }

    /// The JSON body to publish.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
}

/// The event id of an advisory: `<event>-<timestamp>-<16 hex digits>`, the digits being a
/// FNV-1a 64 hash of the replicator and the value. Stable across processes, platforms and
/// releases (unlike `std`'s hasher), so a retried or re-made advisory dedupes on the target.
pub fn event_id(replicator: &str, value: &str, event: EventKind, timestamp: u64) -> String {
    let mut hash = Fnv1a::new();
    for field in [
        replicator.as_bytes(),
        value.as_bytes(),
        event.as_str().as_bytes(),
    ] {
        // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
        hash.write(&(field.len() as u64).to_le_bytes());
        hash.write(field);
    }
    hash.write(&timestamp.to_le_bytes());
    format!("{event}-{timestamp}-{:016x}", hash.finish())
}

/// 64-bit FNV-1a, written out so its output never changes.
struct Fnv1a(u64);

// === impl Fnv1a ===

impl Fnv1a {
    /// FNV-1a 64 offset basis.
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    /// FNV-1a 64 prime.
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    /// A hash of nothing yet.
    fn new() -> Self {
        Self(Self::OFFSET)
    }

    /// Mixes `bytes` in.
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    /// The hash.
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Why an advisory subject template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdvisoryError {
    /// The template is empty.
    #[error("advisory subject is empty")]
    EmptySubject,
    /// The template is not a valid publish subject.
    #[error("invalid advisory subject {subject:?}: {reason}")]
    InvalidSubject {
        /// The template.
        subject: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// An advisory subject template: a NATS subject in which `%s` stands for the event name and
/// `%v` for the sender, e.g. `choria.advisories.%s.%v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectTemplate(String);

// === impl SubjectTemplate ===

impl SubjectTemplate {
    /// Parses a template: a publish subject (no wildcards, no empty tokens, no whitespace)
    /// whose only `%` sequences are `%s` and `%v`.
    pub fn parse(template: &str) -> Result<Self, AdvisoryError> {
        if template.is_empty() {
            return Err(AdvisoryError::EmptySubject);
        }
        let invalid = |reason| AdvisoryError::InvalidSubject {
            subject: template.to_owned(),
            reason,
        };
        if template
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid("whitespace or control character"));
        }
        for token in template.split('.') {
            match token {
                "" => return Err(invalid("empty token")),
                "*" | ">" => return Err(invalid("wildcard token")),
                _ => {}
            }
        }
        let mut chars = template.chars();
        while let Some(c) = chars.next() {
            if c == '%' && !matches!(chars.next(), Some('s' | 'v')) {
                return Err(invalid("only %s and %v placeholders are allowed"));
            }
        }
        Ok(Self(template.to_owned()))
    }

    /// The template as configured.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The subject for `event` about `value`; the value is made a single token with
    /// [`sanitize_token`].
    pub fn render(&self, event: EventKind, value: &str) -> String {
        let value = sanitize_token(value);
        let mut subject = String::with_capacity(self.0.len() + value.len());
        let mut chars = self.0.chars();
        while let Some(c) = chars.next() {
            match c {
                '%' => match chars.next() {
                    Some('s') => subject.push_str(event.as_str()),
                    Some('v') => subject.push_str(&value),
                    // Refused by `parse`; kept literally should it ever get here.
                    Some(other) => {
                        subject.push('%');
                        subject.push(other);
                    }
                    None => subject.push('%'),
                },
                c => subject.push(c),
            }
        }
        subject
    }
}

impl fmt::Display for SubjectTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The longest sender token written into an advisory subject; a longer value (a sender
/// field is whatever the message says) is cut and given a digest of the whole value, so the
/// subject stays far below what nats-server accepts in a control line.
const MAX_TOKEN: usize = 256;

/// `value` as one valid NATS subject token: `.`, `*`, `>`, whitespace and control characters
/// become `_`, an empty value becomes `_`, and a value longer than 256 bytes becomes its first
/// 200 bytes (whole characters), `~` and the MD5 of the whole value in hex.
pub fn sanitize_token(value: &str) -> Cow<'_, str> {
    if value.len() > MAX_TOKEN {
        let mut cut = 200;
        while !value.is_char_boundary(cut) {
            cut -= 1;
        }
        let digest = md5::Md5::digest(value.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let head = sanitize_token(&value[..cut]);
        return Cow::Owned(format!("{head}~{hex}"));
    }
    let bad = |c: char| matches!(c, '.' | '*' | '>') || c.is_whitespace() || c.is_control();
    if value.is_empty() {
        Cow::Borrowed("_")
    } else if value.contains(bad) {
        Cow::Owned(
            value
                .chars()
                .map(|c| if bad(c) { '_' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn event(kind: EventKind, sender: &str) -> SenderEvent {
        SenderEvent {
            kind,
            sender: sender.to_owned(),
            last_seen_ms: 1_700_000_000_999,
        }
    }

    fn at_secs(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn advisory_carries_the_event_in_seconds() {
        let advisory = Advisory::new(
            &event(EventKind::Timeout, "node1.example"),
            "sender",
            Duration::from_millis(300_500),
            "registration",
            at_secs(1_700_000_100) + Duration::from_millis(700),
        );
        assert_eq!(advisory.protocol, ADVISORY_PROTOCOL);
        assert_eq!(advisory.event, EventKind::Timeout);
        assert_eq!(advisory.inspect_field, "sender");
        assert_eq!(advisory.value, "node1.example");
        assert_eq!(advisory.age, 300);
        assert_eq!(advisory.seen, 1_700_000_000);
        assert_eq!(advisory.timestamp, 1_700_000_100);
        assert_eq!(advisory.replicator, "registration");
        assert!(advisory.event_id.starts_with("timeout-1700000100-"));
    }

    #[test]
    fn advisory_json_uses_lowercase_event_names() {
        let advisory = Advisory::new(
            &event(EventKind::Recover, "n1"),
            "sender",
            Duration::from_secs(60),
            "r",
            at_secs(1_700_000_100),
        );
        let json: serde_json::Value = serde_json::from_slice(&advisory.to_json().unwrap()).unwrap();
        assert_eq!(json["event"], "recover");
        assert_eq!(json["protocol"], "io.choir.replicator.advisory.v1");
        assert_eq!(json["age"], 60);
        for key in [
            "event_id",
            "inspect_field",
            "value",
            "seen",
            "replicator",
            "timestamp",
        ] {
            assert!(json.get(key).is_some(), "{key}");
        }
        let mut json = json;
        json["future_field"] = serde_json::json!(1);
        let back: Advisory = serde_json::from_value(json).unwrap();
        assert_eq!(back, advisory);
    }

    #[test]
    fn event_id_is_deterministic_and_distinct_per_input() {
        let id = |r, v, e, t| event_id(r, v, e, t);
        let base = id("r", "n1", EventKind::New, 100);
        assert_eq!(base, id("r", "n1", EventKind::New, 100));
        assert!(base.starts_with("new-100-") && base.len() == "new-100-".len() + 16);
        let others = [
            id("r2", "n1", EventKind::New, 100),
            id("r", "n2", EventKind::New, 100),
            id("r", "n1", EventKind::Expire, 100),
            id("r", "n1", EventKind::New, 101),
            id("rn", "1", EventKind::New, 100),
        ];
        for other in &others {
            assert_ne!(&base, other);
        }
        assert!(base.bytes().all(|b| b.is_ascii_graphic()));
    }

    #[test]
    fn event_id_is_stable_across_releases() {
        // Pinned: a changed id would defeat dedupe of advisories retried across an upgrade.
        assert_eq!(
            event_id(
                "registration",
                "node1.example",
                EventKind::Timeout,
                1_700_000_000
            ),
            "timeout-1700000000-59ed1b840d46bec1"
        );
        // FNV-1a 64 reference value for "a".
        let mut h = Fnv1a::new();
        h.write(b"a");
        assert_eq!(h.finish(), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn subject_placeholders_are_replaced() {
        let template = SubjectTemplate::parse("choria.advisories.%s.%v").unwrap();
        assert_eq!(
            template.render(EventKind::Expire, "node1"),
            "choria.advisories.expire.node1"
        );
        let template = SubjectTemplate::parse("adv.%v_%s.%s").unwrap();
        assert_eq!(template.render(EventKind::New, "n"), "adv.n_new.new");
        let fixed = SubjectTemplate::parse("adv.all").unwrap();
        assert_eq!(fixed.render(EventKind::New, "n"), "adv.all");
    }

    #[test]
    fn values_become_a_single_subject_token() {
        let template = SubjectTemplate::parse("adv.%s.%v").unwrap();
        assert_eq!(
            template.render(EventKind::Timeout, "node1.example.net"),
            "adv.timeout.node1_example_net"
        );
        assert_eq!(
            template.render(EventKind::Timeout, "a b*c>d\te\u{7}f"),
            "adv.timeout.a_b_c_d_e_f"
        );
        assert_eq!(template.render(EventKind::Timeout, ""), "adv.timeout._");
        // A value containing a placeholder is not expanded again.
        assert_eq!(template.render(EventKind::New, "%s"), "adv.new.%s");
        // A sender too long for a subject token is cut and made distinct by a digest.
        let (a, b) = ("x".repeat(5000), format!("{}y", "x".repeat(4999)));
        let (ta, tb) = (sanitize_token(&a), sanitize_token(&b));
        assert!(ta.len() <= 256 && tb.len() <= 256, "{}", ta.len());
        assert_ne!(ta, tb);
        assert!(ta.starts_with(&"x".repeat(200)));
        assert!(sanitize_token(&"é.".repeat(200)).len() <= 256);
        assert_eq!(sanitize_token("plain-value"), Cow::Borrowed("plain-value"));
        assert_eq!(sanitize_token("nœud"), "nœud");
    }

    #[test]
    fn invalid_subject_templates_are_refused() {
        assert_eq!(SubjectTemplate::parse(""), Err(AdvisoryError::EmptySubject));
        for bad in [
            "a..b", ".a", "a.", "a.*", "a.>", "a b", "a.%x", "a.%", "a.\n",
        ] {
            assert!(
                matches!(
                    SubjectTemplate::parse(bad),
                    Err(AdvisoryError::InvalidSubject { .. })
                ),
                "{bad:?}"
            );
        }
    }
}
