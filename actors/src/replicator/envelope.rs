//! What a copied message carries: original headers, a deterministic `Nats-Msg-Id`, a
//! provenance header, and (ordered mode) the target sequence it must land after.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::HeaderMap;

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
/// deterministic id).
pub fn target_headers(
    source: Option<&HeaderMap>,
    replicator: &str,
    stream: &str,
    seq: u64,
    published: SystemTime,
    expected_last: Option<u64>,
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
    headers.insert(MSG_ID, msg_id(replicator, stream, seq).as_str());
    headers.insert(
        PROVENANCE,
        provenance(replicator, stream, seq, published).as_str(),
    );
    if let Some(last) = expected_last {
        headers.insert(EXPECTED_LAST_SEQUENCE, last.to_string().as_str());
    }
    headers
}

/// The provenance header's value.
pub fn provenance(replicator: &str, stream: &str, seq: u64, published: SystemTime) -> String {
    let time = humantime::format_rfc3339_nanos(published);
    format!("replicator={replicator} stream={stream} seq={seq} time={time}")
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
        let h = target_headers(Some(&source), "copy", "ORDERS", 42, at, Some(7));
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
