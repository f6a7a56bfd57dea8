//! The stream message of `protocol = "choria"`: `choria:adapters:jetstream:output:1`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Protocol string of the adapter output.
pub const OUTPUT_PROTOCOL: &str = "choria:adapters:jetstream:output:1";

/// One Choria request as the JetStream adapter of go-choria writes it into a stream.
///
/// Fields serialise in Go's order. `data` is the request's `message` exactly as received (a
/// string: for registration the JSON document as text), as the schema and go-choria's
/// transformer have it. `time` is the request's creation time as RFC 3339 UTC, as go-choria
/// emits it (the schema says integer; real Choria writes a Go `time.Time`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdapterOutput {
    /// Always [`OUTPUT_PROTOCOL`].
    pub protocol: String,
    /// The request's `message`, unmodified.
    pub data: String,
    /// The request's `senderid`.
    pub sender: String,
    /// The request's `time` as RFC 3339 UTC (`2023-11-14T22:13:20Z`).
    pub time: String,
    /// The request's `requestid`.
    pub requestid: String,
}

impl AdapterOutput {
    /// The JSON bytes of the output.
    pub fn to_vec(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
}

/// The last second RFC 3339 can write (9999-12-31T23:59:59Z): `humantime` refuses later
/// years with a formatting error, which `to_string` turns into a panic.
const LATEST_RFC3339: u64 = 253_402_300_799;

/// Formats Unix seconds as RFC 3339 UTC with second precision; times before 1970 become the
/// epoch, times after the year 9999 its last second (a request's `time` is whatever its
/// sender wrote).
pub fn rfc3339(unix_secs: i64) -> String {
    let secs = u64::try_from(unix_secs).unwrap_or(0).min(LATEST_RFC3339);
    let time = UNIX_EPOCH
        .checked_add(Duration::from_secs(secs))
        .unwrap_or(UNIX_EPOCH);
    humantime::format_rfc3339_seconds(time).to_string()
}

/// The current time as RFC 3339 UTC (for logs and tests).
pub fn rfc3339_now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_is_rfc3339_utc() {
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(-5), "1970-01-01T00:00:00Z");
        // Found by the fuzzing pass: a request time past the year 9999 panicked the worker.
        assert_eq!(rfc3339(253_402_300_800), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(i64::MAX), "9999-12-31T23:59:59Z");
        assert!(humantime::parse_rfc3339(&rfc3339_now()).is_ok());
    }

    #[test]
    fn fields_in_go_order() {
        let out = AdapterOutput {
            protocol: OUTPUT_PROTOCOL.into(),
            data: "{\"a\":1}".into(),
            sender: "n1".into(),
            time: rfc3339(0),
            requestid: "r".into(),
        };
        let text = String::from_utf8(out.to_vec().unwrap()).unwrap();
        assert_eq!(
            text,
            r#"{"protocol":"choria:adapters:jetstream:output:1","data":"{\"a\":1}","sender":"n1","time":"1970-01-01T00:00:00Z","requestid":"r"}"#
        );
    }
}
