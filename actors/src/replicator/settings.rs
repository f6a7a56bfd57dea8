//! What a replicator needs to run: plain values, validated by the config layer.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::advisory::SubjectTemplate;
use super::inspect::{Inspector, JsonPath};
use super::sampling::SamplingConfig;
use super::subject_map::SubjectMap;

/// How messages are spread over workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One pinned worker: target order equals source order.
    Ordered,
    /// A pool of workers sharing one durable consumer; no order promise.
    Queued {
        /// How many workers.
        workers: NonZeroUsize,
    },
}

/// Where a new consumer starts (only when there is no resume point).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartPosition {
    /// The first message in the stream.
    All,
    /// Only messages published from now on.
    New,
    /// This stream sequence.
    Sequence(u64),
    /// Messages stored at or after this time.
    Time(SystemTime),
}

/// Per-sender sampling.
#[derive(Clone, Debug)]
pub struct SamplingSettings {
    /// Where the sender comes from.
    pub inspector: Inspector,
    /// Copy when this JSON field is `true`.
    pub force_field: Option<JsonPath>,
    /// Age, timeouts, bounds.
    pub config: SamplingConfig,
    /// Where the tracker is persisted.
    pub state_file: PathBuf,
}

/// Sender advisories.
#[derive(Clone, Debug)]
pub struct AdvisorySettings {
    /// Subject template (`%s` event, `%v` value).
    pub template: SubjectTemplate,
    /// Publish through JetStream and wait for the ack.
    pub reliable: bool,
}

/// High availability: one leader among the choir nodes running the same replicator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HaSettings {
    /// The KV bucket holding the election keys.
    pub bucket: String,
    /// How long a leader's key lives without renewal.
    pub ttl: Duration,
    /// This node's name in the election (must differ between nodes).
    pub identity: String,
    /// The network whose JetStream holds the bucket.
    pub network: String,
}

/// Choria Stream Replicator compatibility (`compat = "choria"`): what the SR's tools,
/// dashboards and advisory consumers expect, in addition to choir's own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChoriaCompat {
    /// The SR's top-level `name` (the site): choir's node name. It is the `<replicator>` of
    /// `Choria-SR-Source`, the `replicator` of advisories and the `replicator` metric label;
    /// the choir replicator's own name is the SR's per-stream `name` (`worker` label).
    pub site: String,
}

/// Everything one replicator needs.
#[derive(Clone, Debug)]
pub struct ReplicatorSettings {
    /// The replicator's name.
    pub name: String,
    /// The source stream.
    pub source_stream: String,
    /// The target stream.
    pub target_stream: String,
    /// Create the target stream from the source's config when missing.
    pub create_target: bool,
    /// Only messages matching this subject filter.
    pub filter_subject: Option<String>,
    /// Source subject → target subject.
    pub subject_map: SubjectMap,
    /// Ordered or queued.
    pub mode: Mode,
    /// Target publishes in flight per worker.
    pub window: NonZeroUsize,
    /// Payload bytes in flight per worker (a window never waits for a message it cannot
    /// hold: one message larger than this still goes, alone).
    pub window_bytes: NonZeroUsize,
    /// Send the deterministic `Nats-Msg-Id` (always in queued mode; optional in ordered mode,
    /// where `Nats-Expected-Last-Sequence` already makes every copy land exactly once).
    pub msg_id: bool,
    /// Where a new consumer starts.
    pub start: StartPosition,
    /// Skip messages older than this.
    pub max_age: Option<Duration>,
    /// Sampling, when `inspect` is set.
    pub sampling: Option<SamplingSettings>,
    /// Advisories, when configured.
    pub advisories: Option<AdvisorySettings>,
    /// Core NATS subject on the target network for messages rejected for good.
    pub dead_letter: String,
    /// Attempts before a rejected message is dead-lettered.
    pub max_rejections: NonZeroUsize,
    /// Source redelivery delay (queued mode).
    pub ack_wait: Duration,
    /// Status heartbeat interval.
    pub heartbeat: Option<Duration>,
    /// Leader election among nodes, when configured.
    pub ha: Option<HaSettings>,
    /// Where heartbeats go (on the target network).
    pub heartbeat_subject: String,
    /// Choria Stream Replicator compatibility, when on.
    pub choria: Option<ChoriaCompat>,
}

impl ReplicatorSettings {
    /// Settings copying `stream` to the same name with every option at its default.
    pub fn new(name: impl Into<String>, stream: impl Into<String>) -> Self {
        let name = name.into();
        let stream = stream.into();
        Self {
            dead_letter: format!("choir.replicator.{name}.dead_letter"),
            heartbeat_subject: format!("choir.replicator.{name}.heartbeat"),
            name,
            target_stream: stream.clone(),
            source_stream: stream,
            create_target: true,
            filter_subject: None,
            subject_map: SubjectMap::default(),
            mode: Mode::Ordered,
            window: NonZeroUsize::new(1024).unwrap_or(NonZeroUsize::MIN),
            window_bytes: NonZeroUsize::new(8 << 20).unwrap_or(NonZeroUsize::MIN),
            msg_id: false,
            start: StartPosition::All,
            max_age: None,
            sampling: None,
            advisories: None,
            max_rejections: NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN),
            ack_wait: Duration::from_secs(30),
            heartbeat: None,
            ha: None,
            choria: None,
        }
    }

    /// The election key: `SR_<name>_<stream>`, the Choria Stream Replicator's shape, with
    /// every character a KV key refuses replaced by `_`.
    pub fn election_key(&self) -> String {
        let clean = |s: &str| -> String {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '=') {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        };
        format!("SR_{}_{}", clean(&self.name), clean(&self.source_stream))
    }

    /// The durable consumer's name on the source stream: `choir_<name>`, shared by every
    /// worker (and every node) of a queued replicator. An ordered replicator with HA gets one
    /// per node, `choir_<name>_ha_<identity>`: its consumer takes no acks on a limits stream,
    /// so a paused old leader pulling from a shared one would take messages the new leader
    /// then never sees.
    pub fn durable_name(&self) -> String {
        let clean = |s: &str| -> String {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        };
        match (&self.ha, self.mode) {
            (Some(ha), Mode::Ordered) => {
                format!("choir_{}_ha_{}", clean(&self.name), clean(&ha.identity))
            }
            _ => format!("choir_{}", clean(&self.name)),
        }
    }

    /// How long the server keeps an ordered HA node's own consumer without pulls: twice the
    /// TTL, at least 5 s, so a dead leader's consumer goes away by itself.
    pub fn ha_inactive_threshold(&self) -> Option<Duration> {
        match (&self.ha, self.mode) {
            (Some(ha), Mode::Ordered) => Some(ha.ttl.saturating_mul(2).max(Duration::from_secs(5))),
            _ => None,
        }
    }
}
