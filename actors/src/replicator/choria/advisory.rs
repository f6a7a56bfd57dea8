//! Sender advisories in the Choria Stream Replicator's `io.choria.sr.v2.age_advisory` shape:
//! `{protocol, event_id, inspect_field, age, seen, replicator, timestamp, event, value}`.
//!
//! Differences from choir's own [`Advisory`](super::super::advisory::Advisory): `age` is how
//! long ago the sender was last seen (seconds), as the SR documents it, not the configured
//! sampling age; `replicator` is the SR's top-level name (choir's node name); `event_id` is
//! shaped as a KSUID (27 base62 characters, k-sortable by its first four bytes, seconds since
//! 2014-05-13) but derived from the event instead of random, so a retried reliable publish
//! still dedupes on `Nats-Msg-Id`.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::super::advisory::event_id as choir_event_id;
use super::super::sampling::{unix_millis, EventKind, SenderEvent};

/// The `protocol` of every SR advisory.
pub const SR_ADVISORY_PROTOCOL: &str = "io.choria.sr.v2.age_advisory";

/// The KSUID epoch: 2014-05-13T16:53:20Z, in Unix seconds.
const KSUID_EPOCH: u64 = 1_400_000_000;

/// An advisory as the Choria Stream Replicator publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SrAdvisory {
    /// Always [`SR_ADVISORY_PROTOCOL`].
    pub protocol: String,
    /// KSUID-shaped, deterministic per (site, replicator, value, event, timestamp).
    pub event_id: String,
    /// What is inspected to find the sender.
    pub inspect_field: String,
    /// Seconds since the sender was last seen.
    pub age: u64,
    /// When the sender was last seen, Unix seconds.
    pub seen: u64,
    /// The SR's top-level `name`: choir's node name.
    pub replicator: String,
    /// When the advisory was made, Unix seconds.
    pub timestamp: u64,
    /// `new`, `timeout`, `recover` or `expire`.
    pub event: EventKind,
    /// The sender.
    pub value: String,
}

impl SrAdvisory {
    /// The advisory for `event` made at `now` by replicator `name` of node `site`.
    pub fn new(
        event: &SenderEvent,
        inspect_field: &str,
        site: &str,
        name: &str,
        now: SystemTime,
    ) -> Self {
        let timestamp = unix_millis(now) / 1000;
        let seen = event.last_seen_ms / 1000;
        Self {
            protocol: SR_ADVISORY_PROTOCOL.to_owned(),
            event_id: ksuid_like(
                timestamp,
                &choir_event_id(
                    &format!("{site}/{name}"),
                    &event.sender,
                    event.kind,
                    timestamp,
                ),
            ),
            inspect_field: inspect_field.to_owned(),
            age: timestamp.saturating_sub(seen),
            seen,
            replicator: site.to_owned(),
            timestamp,
            event: event.kind,
            value: event.sender.clone(),
        }
    }

    /// The JSON body to publish.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
}

/// A KSUID-shaped id: four bytes of seconds since the KSUID epoch, then sixteen bytes derived
/// from `seed` (two FNV-1a 64 hashes), in 27 base62 characters.
pub fn ksuid_like(unix_secs: u64, seed: &str) -> String {
    let mut bytes = [0u8; 20];
    let since = u32::try_from(unix_secs.saturating_sub(KSUID_EPOCH)).unwrap_or(u32::MAX);
    bytes[..4].copy_from_slice(&since.to_be_bytes());
    bytes[4..12].copy_from_slice(&fnv1a(0, seed).to_be_bytes());
    bytes[12..].copy_from_slice(&fnv1a(1, seed).to_be_bytes());
    base62(bytes)
}

fn fnv1a(salt: u8, text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in std::iter::once(&salt).chain(text.as_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// 20 bytes (big-endian number) in base62 (`0-9A-Za-z`), left-padded to 27 characters.
fn base62(mut number: [u8; 20]) -> String {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut digits = [b'0'; 27];
    for slot in digits.iter_mut().rev() {
        // One long division of the whole number by 62.
        let mut remainder: u32 = 0;
        for byte in number.iter_mut() {
            let acc = (remainder << 8) | u32::from(*byte);
            *byte = u8::try_from(acc / 62).unwrap_or(0);
            remainder = acc % 62;
        }
        *slot = ALPHABET.get(remainder as usize).copied().unwrap_or(b'0');
    }
    String::from_utf8_lossy(&digits).into_owned()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn the_advisory_has_the_sr_fields_and_age_since_seen() {
        let event = SenderEvent {
            kind: EventKind::Timeout,
            sender: "some.host".into(),
            last_seen_ms: 1_647_351_430_500,
        };
        let now = UNIX_EPOCH + Duration::from_secs(1_647_355_030);
        let a = SrAdvisory::new(&event, "sender", "US-EAST", "registration", now);
        assert_eq!(a.protocol, SR_ADVISORY_PROTOCOL);
        assert_eq!(a.age, 3600);
        assert_eq!(a.seen, 1_647_351_430);
        assert_eq!(a.timestamp, 1_647_355_030);
        assert_eq!(a.replicator, "US-EAST");
        assert_eq!(a.event_id.len(), 27);
        assert!(a.event_id.bytes().all(|b| b.is_ascii_alphanumeric()));
        let again = SrAdvisory::new(&event, "sender", "US-EAST", "registration", now);
        assert_eq!(a.event_id, again.event_id, "deterministic");
        let other = SrAdvisory::new(&event, "sender", "US-EAST", "other", now);
        assert_ne!(a.event_id, other.event_id);
        let json: serde_json::Value = serde_json::from_slice(&a.to_json().unwrap()).unwrap();
        assert_eq!(json["event"], "timeout");
    }

    #[test]
    fn ids_sort_by_time() {
        let early = ksuid_like(1_700_000_000, "zzz");
        let late = ksuid_like(1_700_000_001, "aaa");
        assert!(early < late, "{early} {late}");
    }

    #[test]
    fn base62_of_known_values() {
        assert_eq!(base62([0; 20]), "0".repeat(27));
        let mut one = [0u8; 20];
        one[19] = 61;
        assert_eq!(base62(one), format!("{}z", "0".repeat(26)));
        // The largest KSUID.
        assert_eq!(base62([0xff; 20]), "aWgEPTl1tmebfsQzFP4bxwgy80V");
    }
}
