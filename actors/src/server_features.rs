//! What a nats-server supports, learned from what it says about itself rather than guessed
//! from its version string: the `INFO` it sends on connect (`headers`, `jetstream`,
//! `api_lvl`) and the JetStream account info (`api.level`, 2.11+). The version is only the
//! fallback for a server that states no API level (2.10 and older), and those predate every
//! feature below anyway.
//!
//! Whether a *stream* takes a batched publish is the stream's own business
//! (`allow_batched`, `allow_atomic` in its config): [`StreamBatching`] reads that, and
//! [`PublishPath`] combines both into the path a replicator takes.

use serde_json::Value;

/// JetStream API level of nats-server 2.11: pull-consumer priority groups, batch direct get.
pub const LEVEL_2_11: u64 = 1;
/// JetStream API level of nats-server 2.12: atomic batch publish (`allow_atomic`).
pub const LEVEL_2_12: u64 = 2;
/// JetStream API level of nats-server 2.14: fast-ingest batch publish (`allow_batched`).
pub const LEVEL_2_14: u64 = 4;

/// What a server told us about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerFeatures {
    /// `version` from `INFO`, as the server wrote it.
    pub version: String,
    /// The server accepts message headers.
    pub headers: bool,
    /// JetStream is enabled on the server.
    pub jetstream: bool,
    /// The JetStream API level: `api.level` of the account info, else `api_lvl` of `INFO`,
    /// else 0 (a server older than 2.11 states none).
    pub api_level: u64,
}

impl ServerFeatures {
    /// From the server's `INFO` (the JSON after `INFO `).
    pub fn from_info(info: &Value) -> Self {
        Self {
            version: info
                .get("version")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            headers: info
                .get("headers")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            jetstream: info
                .get("jetstream")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            api_level: info.get("api_lvl").and_then(Value::as_u64).unwrap_or(0),
        }
    }

    /// From the fields async-nats keeps of `INFO` (it drops `api_lvl`; the account info
    /// brings the level, see [`Self::with_account_info`]).
    pub fn from_server_info(info: &async_nats::ServerInfo) -> Self {
        Self {
            version: info.version.clone(),
            headers: info.headers,
            jetstream: info.jetstream,
            api_level: 0,
        }
    }

    /// Takes the API level from a JetStream account info response (`$JS.API.INFO`), which is
    /// what the account really gets (it can be lower than the server's in a mixed cluster).
    pub fn with_account_info(mut self, account: &Value) -> Self {
        if let Some(level) = account
            .get("api")
            .and_then(|api| api.get("level"))
            .and_then(Value::as_u64)
        {
            self.api_level = level;
        }
        self
    }

    /// Fast-ingest batch publishing (2.14+): the server acks once per flow window.
    pub fn fast_batch(&self) -> bool {
        self.jetstream && self.headers && self.api_level >= LEVEL_2_14
    }

    /// Atomic batch publishing (2.12+).
    pub fn atomic_batch(&self) -> bool {
        self.jetstream && self.headers && self.api_level >= LEVEL_2_12
    }

    /// Pull-consumer priority groups (2.11+).
    pub fn priority_groups(&self) -> bool {
        self.jetstream && self.api_level >= LEVEL_2_11
    }

    /// Batch direct get (2.11+).
    pub fn batch_direct_get(&self) -> bool {
        self.jetstream && self.api_level >= LEVEL_2_11
    }

    /// A one-line summary for logs and `/debug/vars`.
    pub fn summary(&self) -> String {
        let mut parts = vec![format!("api level {}", self.api_level)];
        for (on, name) in [
            (self.fast_batch(), "fast batch"),
            (self.atomic_batch(), "atomic batch"),
            (self.priority_groups(), "priority groups"),
            (self.batch_direct_get(), "batch direct get"),
        ] {
            if on {
                parts.push(name.to_owned());
            }
        }
        format!("nats-server {} ({})", self.version, parts.join(", "))
    }
}

/// What a stream's config allows of batched publishing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamBatching {
    /// `allow_batched`: fast-ingest batches.
    pub fast: bool,
    /// `allow_atomic`: atomic batches.
    pub atomic: bool,
}

impl StreamBatching {
    /// From a stream info or create response (`config`), or from a bare stream config.
    pub fn from_stream(info: &Value) -> Self {
        let config = info.get("config").unwrap_or(info);
        let flag = |key: &str| config.get(key).and_then(Value::as_bool).unwrap_or(false);
        Self {
            fast: flag("allow_batched"),
            atomic: flag("allow_atomic"),
        }
    }
}

/// How a replicator publishes into its target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublishPath {
    /// Fast-ingest batches: one target ack per flow window.
    FastBatch,
    /// One JetStream publish per copy, with its own ack (or, in ordered mode, sparse acks).
    PerMessage {
        /// Why the fast path was not taken.
        reason: String,
    },
}

impl PublishPath {
    /// The path for a target server with `server` features and a target stream allowing
    /// `stream`.
    pub fn choose(server: &ServerFeatures, stream: StreamBatching) -> Self {
        if !server.fast_batch() {
            return Self::PerMessage {
                reason: format!(
                    "the target server has no fast-ingest batches (nats-server {}, api level {}; needs 2.14, level {LEVEL_2_14})",
                    server.version, server.api_level
                ),
            };
        }
        if !stream.fast {
            return Self::PerMessage {
                reason:
                    "the target stream does not allow batched publishing (allow_batched is false)"
                        .to_owned(),
            };
        }
        Self::FastBatch
    }

    /// `fast_batch` or `per_message`, for `/debug/vars` and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::FastBatch => "fast_batch",
            Self::PerMessage { .. } => "per_message",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    const INFO_2_9: &str = include_str!("server_features/nats-2.9.10.info.json");
    const ACCOUNT_2_9: &str = include_str!("server_features/nats-2.9.10.account.json");
    const INFO_2_15: &str = include_str!("server_features/nats-2.15.1.info.json");
    const ACCOUNT_2_15: &str = include_str!("server_features/nats-2.15.1.account.json");

    #[test]
    fn nats_2_9_offers_no_batches_nor_2_11_features() {
        let f = ServerFeatures::from_info(&json(INFO_2_9)).with_account_info(&json(ACCOUNT_2_9));
        assert_eq!(f.version, "2.9.10");
        assert!(f.headers && f.jetstream);
        assert_eq!(f.api_level, 0);
        assert!(!f.fast_batch() && !f.atomic_batch());
        assert!(!f.priority_groups() && !f.batch_direct_get());
    }

    #[test]
    fn nats_2_15_offers_every_batch_feature() {
        let f = ServerFeatures::from_info(&json(INFO_2_15)).with_account_info(&json(ACCOUNT_2_15));
        assert_eq!(f.version, "2.15.1");
        assert_eq!(f.api_level, 5);
        assert!(f.fast_batch() && f.atomic_batch());
        assert!(f.priority_groups() && f.batch_direct_get());
        assert!(f.summary().contains("fast batch"), "{}", f.summary());
    }

    #[test]
    fn the_account_level_wins_over_the_info_level() {
        // A 2.15 server in a cluster whose account is held back at 2.12's level.
        let account = json(r#"{"api":{"level":2,"total":0,"errors":0}}"#);
        let f = ServerFeatures::from_info(&json(INFO_2_15)).with_account_info(&account);
        assert!(f.atomic_batch());
        assert!(!f.fast_batch());
    }

    #[test]
    fn the_level_comes_from_info_when_the_account_says_nothing() {
        let f = ServerFeatures::from_info(&json(INFO_2_15)).with_account_info(&json("{}"));
        assert_eq!(f.api_level, 5);
    }

    #[test]
    fn a_version_string_alone_grants_nothing() {
        // Feature detection, not version guessing: "2.15.1" without a level is level 0.
        let f = ServerFeatures::from_info(&json(
            r#"{"version":"2.15.1","headers":true,"jetstream":true}"#,
        ));
        assert!(!f.fast_batch());
    }

    #[test]
    fn no_jetstream_means_no_batches() {
        let f = ServerFeatures::from_info(&json(
            r#"{"version":"2.15.1","headers":true,"jetstream":false,"api_lvl":5}"#,
        ));
        assert!(!f.fast_batch() && !f.atomic_batch() && !f.priority_groups());
    }

    #[test]
    fn stream_flags_come_from_its_config() {
        let info = json(r#"{"config":{"name":"T","allow_atomic":true,"allow_batched":true}}"#);
        assert_eq!(
            StreamBatching::from_stream(&info),
            StreamBatching {
                fast: true,
                atomic: true
            }
        );
        // 2.9 does not even know the keys.
        let old = json(r#"{"config":{"name":"T","allow_direct":false}}"#);
        assert_eq!(StreamBatching::from_stream(&old), StreamBatching::default());
    }

    #[test]
    fn the_fast_path_needs_both_the_server_and_the_stream() {
        let new =
            ServerFeatures::from_info(&json(INFO_2_15)).with_account_info(&json(ACCOUNT_2_15));
        let old = ServerFeatures::from_info(&json(INFO_2_9)).with_account_info(&json(ACCOUNT_2_9));
        let allowed = StreamBatching {
            fast: true,
            atomic: false,
        };
        assert_eq!(PublishPath::choose(&new, allowed), PublishPath::FastBatch);
        let PublishPath::PerMessage { reason } =
            PublishPath::choose(&new, StreamBatching::default())
        else {
            panic!("a stream without allow_batched took the fast path");
        };
        assert!(reason.contains("allow_batched"), "{reason}");
        let PublishPath::PerMessage { reason } = PublishPath::choose(&old, allowed) else {
            panic!("a 2.9 server took the fast path");
        };
        assert!(reason.contains("2.9.10"), "{reason}");
    }
}
