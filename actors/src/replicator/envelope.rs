//! What a copied message carries: original headers, a deterministic `Nats-Msg-Id`, a
//! provenance header, and (ordered mode) the target sequence it must land after.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::{HeaderMap, HeaderName};

/// JetStream's de-duplication header.
pub const MSG_ID: &str = "Nats-Msg-Id";
/// JetStream's optimistic-concurrency header: the stream's last sequence must be this.
pub const EXPECTED_LAST_SEQUENCE: &str = "Nats-Expected-Last-Sequence";
/// Where a copied message came from: `replicator=<name> stream=<stream> seq=<n> time=<rfc3339>`.
pub const PROVENANCE: &str = "Choir-Provenance";
/// A source message's own `Nats-Msg-Id`, kept under this name.
pub const ORIGINAL_MSG_ID: &str = "Choir-Original-Msg-Id";
/// Why a message was dead-lettered.
pub const DEAD_LETTER_REASON: &str = "Choir-Dead-Letter-Reason";

/// The deterministic id of source message `seq` of `stream` copied by `replicator`.
pub fn msg_id(replicator: &str, stream: &str, seq: u64) -> String {
    format!("{replicator}:{stream}:{seq}")
}

/// The target headers of a copied message.
///
/// Source headers are kept, except `Nats-Expected-*` (the source's publish preconditions mean
/// nothing in the target) and `Nats-Msg-Id` (kept as `Choir-Original-Msg-Id`, replaced by the
/// deterministic id when `with_msg_id`).
pub fn target_headers(
    source: Option<&HeaderMap>,
    replicator: &str,
    stream: &str,
    seq: u64,
    published: SystemTime,
    expected_last: Option<u64>,
    with_msg_id: bool,
) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(source) = source {
        for (name, values) in source.iter() {
            let name: &str = name.as_ref();
            if name.starts_with("Nats-Expected-") {
                continue;
            }
            let target = if name == MSG_ID {
                ORIGINAL_MSG_ID
            } else {
                name
            };
            for value in values {
                headers.append(target, value.as_str());
            }
        }
    }
    // Static names and owned values: no copy of either per message.
    if with_msg_id {
        headers.insert(
            HeaderName::from_static(MSG_ID),
            msg_id(replicator, stream, seq),
        );
    }
    headers.insert(
        HeaderName::from_static(PROVENANCE),
        provenance(replicator, stream, seq, published),
    );
    if let Some(last) = expected_last {
        let mut value = String::with_capacity(20);
        push_digits(&mut value, last, 1);
        headers.insert(HeaderName::from_static(EXPECTED_LAST_SEQUENCE), value);
    }
    headers
}

/// The provenance header's value. Built by hand: it is made once per copied message.
pub fn provenance(replicator: &str, stream: &str, seq: u64, published: SystemTime) -> String {
    let mut out = String::with_capacity(replicator.len() + stream.len() + 72);
    out.push_str("replicator=");
    out.push_str(replicator);
    out.push_str(" stream=");
    out.push_str(stream);
    out.push_str(" seq=");
    push_digits(&mut out, seq, 1);
    out.push_str(" time=");
    push_rfc3339_nanos(&mut out, published);
    out
}

/// Appends `value` in decimal, zero-padded to at least `width` digits.
pub(crate) fn push_digits(out: &mut String, mut value: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut at = digits.len();
    while value > 0 || digits.len() - at < width {
        at -= 1;
        if let Some(d) = digits.get_mut(at) {
            *d = b'0' + (value % 10) as u8;
        }
        value /= 10;
        if at == 0 {
            break;
        }
    }
    for &d in digits.get(at..).unwrap_or_default() {
        out.push(char::from(d));
    }
}

/// Appends `time` as RFC 3339 UTC with nanoseconds (`2023-11-14T22:13:20.000000000Z`, as
/// `humantime::format_rfc3339_nanos` writes it). Times before 1970 are written as 1970.
fn push_rfc3339_nanos(out: &mut String, time: SystemTime) {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = secs / 86_400;
    let of_day = secs % 86_400;
    // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm, non-negative days).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    push_digits(out, year, 4);
    out.push('-');
    push_digits(out, month, 2);
    out.push('-');
    push_digits(out, day, 2);
    out.push('T');
    push_digits(out, of_day / 3_600, 2);
    out.push(':');
    push_digits(out, of_day % 3_600 / 60, 2);
    out.push(':');
    push_digits(out, of_day % 60, 2);
    out.push('.');
    push_digits(out, u64::from(since.subsec_nanos()), 9);
    out.push('Z');
}

/// A parsed provenance header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provenance {
    /// The replicator that copied it.
    pub replicator: String,
    /// The source stream.
    pub stream: String,
    /// The source sequence.
    pub seq: u64,
}

impl Provenance {
    /// Parses a provenance header value; `None` when it is not one.
    pub fn parse(value: &str) -> Option<Self> {
        let mut replicator = None;
        let mut stream = None;
        let mut seq = None;
        for part in value.split_whitespace() {
            match part.split_once('=') {
                Some(("replicator", v)) => replicator = Some(v.to_owned()),
                Some(("stream", v)) => stream = Some(v.to_owned()),
                Some(("seq", v)) => seq = v.parse().ok(),
                _ => {}
            }
        }
        Some(Self {
            replicator: replicator?,
            stream: stream?,
            seq: seq?,
        })
    }
}

/// Unix nanoseconds (as JetStream reports publish times) to a `SystemTime`.
pub fn from_unix_nanos(nanos: i128) -> SystemTime {
    let nanos = u64::try_from(nanos.max(0)).unwrap_or(u64::MAX);
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_headers_are_kept_except_publish_preconditions() {
        let mut source = HeaderMap::new();
        source.insert("X-Trace", "abc");
        source.append("X-Multi", "1");
        source.append("X-Multi", "2");
        source.insert("Nats-Expected-Last-Sequence", "10");
        source.insert("Nats-Msg-Id", "original");
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let h = target_headers(Some(&source), "copy", "ORDERS", 42, at, Some(7), true);
        assert_eq!(h.get("X-Trace").unwrap().as_str(), "abc");
        assert_eq!(
            h.get_all("X-Multi").map(|v| v.as_str()).collect::<Vec<_>>(),
            ["1", "2"]
        );
        assert_eq!(h.get(MSG_ID).unwrap().as_str(), "copy:ORDERS:42");
        assert_eq!(h.get(ORIGINAL_MSG_ID).unwrap().as_str(), "original");
        assert_eq!(h.get(EXPECTED_LAST_SEQUENCE).unwrap().as_str(), "7");
        let p = Provenance::parse(h.get(PROVENANCE).unwrap().as_str()).unwrap();
        assert_eq!(
            p,
            Provenance {
                replicator: "copy".into(),
                stream: "ORDERS".into(),
                seq: 42
            }
        );
        assert!(h
            .get(PROVENANCE)
            .unwrap()
            .as_str()
            .contains("time=2023-11-14T22:13:20"));
    }

    #[test]
    fn without_msg_id_the_source_id_is_still_kept_aside() {
        let mut source = HeaderMap::new();
        source.insert("Nats-Msg-Id", "original");
        let h = target_headers(Some(&source), "copy", "ORDERS", 1, UNIX_EPOCH, None, false);
        assert!(h.get(MSG_ID).is_none());
        assert_eq!(h.get(ORIGINAL_MSG_ID).unwrap().as_str(), "original");
        assert!(h.get(PROVENANCE).is_some());
    }

    #[test]
    fn provenance_times_match_humantime() {
        for (secs, nanos) in [
            (0u64, 0u32),
            (951_782_400, 5), // 2000-02-29
            (1_700_000_000, 123_456_789),
            (4_107_542_399, 999_999_999), // 2100-02-28T23:59:59
            (4_107_542_400, 1),           // 2100-03-01
            (253_402_300_799, 0),         // 9999-12-31T23:59:59
        ] {
            let t = UNIX_EPOCH + Duration::new(secs, nanos);
            let mut ours = String::new();
            push_rfc3339_nanos(&mut ours, t);
            assert_eq!(ours, humantime::format_rfc3339_nanos(t).to_string());
        }
        assert_eq!(
            provenance("r", "S", 1_234, UNIX_EPOCH),
            "replicator=r stream=S seq=1234 time=1970-01-01T00:00:00.000000000Z"
        );
        assert_eq!(
            provenance("r", "S", 0, UNIX_EPOCH),
            "replicator=r stream=S seq=0 time=1970-01-01T00:00:00.000000000Z"
        );
    }

    #[test]
    fn msg_ids_are_deterministic_per_replicator_stream_and_sequence() {
        assert_eq!(msg_id("a", "S", 1), msg_id("a", "S", 1));
        assert_ne!(msg_id("a", "S", 1), msg_id("b", "S", 1));
        assert_ne!(msg_id("a", "S", 1), msg_id("a", "S", 2));
    }

    #[test]
    fn garbage_provenance_is_none() {
        assert_eq!(Provenance::parse("hello"), None);
        assert_eq!(Provenance::parse("replicator=a stream=b seq=x"), None);
    }
}
