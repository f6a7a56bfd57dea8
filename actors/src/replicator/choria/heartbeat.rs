//! Heartbeats the Choria Stream Replicator's way: the body is the Unix time in seconds (so
//! `nats server check message --body-timestamp` can alert on an idle stream), with headers
//! `Choria-SR-Originator` (the host) and `Choria-SR-Subject` (the subject published to).

use std::time::SystemTime;

use async_nats::HeaderMap;

use super::super::sampling::unix_millis;

/// Which host sent the heartbeat.
pub const ORIGINATOR: &str = "Choria-SR-Originator";
/// The subject the heartbeat was published to.
pub const SUBJECT: &str = "Choria-SR-Subject";

/// Headers and body of a heartbeat published to `subject` at `now` by `originator`.
pub fn heartbeat(subject: &str, originator: &str, now: SystemTime) -> (HeaderMap, String) {
    let mut headers = HeaderMap::new();
    headers.insert(ORIGINATOR, originator);
    headers.insert(SUBJECT, subject);
    (headers, (unix_millis(now) / 1000).to_string())
}

/// This machine's host name (the kernel's), `localhost` when it cannot be read.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn the_body_is_unix_seconds_and_the_headers_name_host_and_subject() {
        let (h, body) = heartbeat(
            "hb.x",
            "host1",
            UNIX_EPOCH + Duration::from_millis(1_700_000_000_900),
        );
        assert_eq!(body, "1700000000");
        assert_eq!(h.get(ORIGINATOR).unwrap().as_str(), "host1");
        assert_eq!(h.get(SUBJECT).unwrap().as_str(), "hb.x");
        assert!(!hostname().is_empty());
    }
}
