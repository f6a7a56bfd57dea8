//! `[replicators.<name>]`: copy a JetStream stream from one network to another.

use std::num::NonZeroUsize;
use std::path::Path;
use std::time::{Duration, SystemTime};

use choir_actors::replicator::advisory::SubjectTemplate;
use choir_actors::replicator::inspect::{Inspector, JsonPath};
use choir_actors::replicator::sampling::SamplingConfig;
use choir_actors::replicator::settings::{
    AdvisorySettings, ChoriaCompat, Mode, ReplicatorSettings, SamplingSettings, StartPosition,
};
use choir_actors::replicator::subject_map::SubjectMap;
use serde::Deserialize;

mod ha;

pub use ha::HaConfig;

use super::compat::Compat;
use super::defaults;
use super::names::valid_stream_name;
use super::node::NodeConfig;
use super::Config;
use super::Problems;

/// `[replicators.<name>]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicatorConfig {
    /// The network holding the source stream.
    pub source: String,
    /// The network receiving the copy.
    pub target: String,
    /// The source JetStream stream.
    pub stream: String,
    /// The target stream (default: the source stream's name).
    pub target_stream: Option<String>,
    /// Create the target stream from the source's config when it is missing.
    #[serde(default = "defaults::yes")]
    pub create_target: bool,
    /// Copy only messages whose subject matches this filter.
    pub filter_subject: Option<String>,
    /// Prefix added to every subject in the target.
    pub target_subject_prefix: Option<String>,
    /// Prefix removed from every subject before `target_subject_prefix` is added.
    pub target_subject_remove: Option<String>,
    /// `ordered` (one pinned worker, order kept) or `queued` (a pool, fastest).
    #[serde(default)]
    pub mode: ModeConfig,
    /// Workers of a queued replicator (default 4).
    pub workers: Option<NonZeroUsize>,
    /// Target publishes in flight per worker.
    #[serde(default = "defaults::replicator_window")]
    pub window: NonZeroUsize,
    /// Payload bytes in flight per worker; together with `window` it bounds the memory a
    /// worker holds (one message larger than this still goes, alone).
    #[serde(default = "defaults::replicator_window_bytes")]
    pub window_bytes: NonZeroUsize,
    /// Send the deterministic `Nats-Msg-Id` with every copy. Queued mode needs it (default
    /// and only value `true`); ordered mode defaults to `false`: `Nats-Expected-Last-Sequence`
    /// already makes every copy land exactly once, whatever the outage, and the target's
    /// duplicate check costs it about 40 % more CPU per message.
    pub msg_id: Option<bool>,
    /// Where to start when there is no resume point: `"all"`, `"new"`, a sequence number,
    /// an RFC 3339 time, or a duration back from now (`"2h"`).
    #[serde(default)]
    pub start: Option<toml::Value>,
    /// Skip messages older than this.
    #[serde(default, with = "humantime_serde")]
    pub max_age: Option<Duration>,
    /// What identifies a sender for sampling: a JSON path (`sender`, `data.identity`),
    /// `header:<Name>` or `subject:<N>`.
    pub inspect: Option<String>,
    /// With `inspect`: copy each sender at most once per `age`.
    #[serde(default, with = "humantime_serde")]
    pub age: Option<Duration>,
    /// With `inspect`: also copy when a sender's message size changed by this many bytes.
    pub size_trigger: Option<NonZeroUsize>,
    /// With `inspect`: copy when this JSON field is `true`, whatever the sampling says.
    pub force_field: Option<String>,
    /// With `inspect`: how many senders the tracker remembers (LRU).
    #[serde(default = "defaults::max_senders")]
    pub max_senders: NonZeroUsize,
    /// With `inspect`: a sender unseen this long is timed out (default 1.5 × age).
    #[serde(default, with = "humantime_serde")]
    pub sender_timeout: Option<Duration>,
    /// With `inspect`: a sender unseen this long is forgotten (default 2 × sender_timeout).
    #[serde(default, with = "humantime_serde")]
    pub sender_expire: Option<Duration>,
    /// Advisories about senders (`new`, `timeout`, `recover`, `expire`).
    pub advisories: Option<AdvisoryConfig>,
    /// Subject on the target network for messages the target rejects for good.
    pub dead_letter: Option<String>,
    /// How often a message the target rejects is retried before it is dead-lettered.
    #[serde(default = "defaults::max_rejections")]
    pub max_rejections: NonZeroUsize,
    /// How long the source waits for an ack before it redelivers (queued mode).
    #[serde(default = "defaults::ack_wait", with = "humantime_serde")]
    pub ack_wait: Duration,
    /// Publish a status heartbeat to `choir.replicator.<name>.heartbeat` on the target.
    #[serde(default, with = "humantime_serde")]
    pub heartbeat: Option<Duration>,
    /// One leader among the choir nodes running this replicator.
    pub ha: Option<HaConfig>,
    /// Subject of the heartbeats (default `choir.replicator.<name>.heartbeat`).
    pub heartbeat_subject: Option<String>,
    /// `"choria"`: also follow the Choria Stream Replicator's conventions (default: `[node]
    /// compat`, else `"choir"`).
    pub compat: Option<Compat>,
}

/// `mode`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ModeConfig {
    /// One pinned worker; target order equals source order.
    #[default]
    Ordered,
    /// A pool of workers; no order promise.
    Queued,
}

/// `[replicators.<name>.advisories]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdvisoryConfig {
    /// Subject with `%s` for the event and `%v` for the sender value.
    pub subject: String,
    /// Publish through JetStream and wait for the ack (a stream must capture the subject).
    #[serde(default)]
    pub reliable: bool,
}

fn parse_start(value: &toml::Value) -> Result<StartPosition, String> {
    match value {
        toml::Value::Integer(n) => u64::try_from(*n)
            .ok()
            .filter(|n| *n > 0)
            .map(StartPosition::Sequence)
            .ok_or_else(|| "a sequence starts at 1".to_owned()),
        toml::Value::Datetime(dt) => humantime::parse_rfc3339_weak(&dt.to_string())
            .map(StartPosition::Time)
            .map_err(|e| format!("not a time: {e}")),
        toml::Value::String(s) => match s.as_str() {
            "all" => Ok(StartPosition::All),
            "new" => Ok(StartPosition::New),
            other => {
                if let Ok(time) = humantime::parse_rfc3339_weak(other) {
                    Ok(StartPosition::Time(time))
                } else if let Ok(delta) = humantime::parse_duration(other) {
                    Ok(StartPosition::Time(SystemTime::now() - delta))
                } else {
                    Err("expected \"all\", \"new\", a sequence number, an RFC 3339 time or a duration like \"2h\"".to_owned())
                }
            }
        },
        _ => Err("expected \"all\", \"new\", a sequence number, a time or a duration".to_owned()),
    }
}

impl ReplicatorConfig {
    pub(super) fn validate(&self, name: &str, config: &Config, problems: &mut Problems) {
        let key = |k: &str| format!("replicators.{name}.{k}");
        config.check_network_ref(key("source"), &self.source, problems);
        config.check_network_ref(key("target"), &self.target, problems);
        if !valid_stream_name(&self.stream) {
            problems.value(key("stream"), &self.stream, "not a valid stream name");
        }
        if let Some(t) = &self.target_stream {
            if !valid_stream_name(t) {
                problems.value(key("target_stream"), t, "not a valid stream name");
            }
        }
        if self.source == self.target
            && self.target_stream.as_deref().unwrap_or(&self.stream) == self.stream
        {
            problems.value(
                key("target_stream"),
                &self.stream,
                "source and target are the same stream on the same network",
            );
        }
        if let Some(start) = &self.start {
            if let Err(e) = parse_start(start) {
                problems.value(key("start"), start, e);
            }
        }
        if let Some(spec) = &self.inspect {
            if let Err(e) = Inspector::parse(spec) {
                problems.value(key("inspect"), spec, e.to_string());
            }
            match self.age {
                None => problems.key(key("age"), "inspect needs an age (e.g. \"1m\")"),
                Some(age) => {
                    if let Err(e) = self.sampling_config(age).validate() {
                        problems.value(key("age"), humantime::format_duration(age), e.to_string());
                    }
                }
            }
        } else {
            for (k, set) in [
                ("age", self.age.is_some()),
                ("size_trigger", self.size_trigger.is_some()),
                ("force_field", self.force_field.is_some()),
                ("sender_timeout", self.sender_timeout.is_some()),
                ("sender_expire", self.sender_expire.is_some()),
                ("advisories", self.advisories.is_some()),
            ] {
                if set {
                    problems.key(key(k), "only with inspect (sampling)");
                }
            }
        }
        if let Some(f) = &self.force_field {
            if let Err(e) = JsonPath::parse(f) {
                problems.value(key("force_field"), f, e.to_string());
            }
        }
        if let Some(a) = &self.advisories {
            if let Err(e) = SubjectTemplate::parse(&a.subject) {
                problems.value(key("advisories.subject"), &a.subject, e.to_string());
            }
        }
        if let (ModeConfig::Ordered, Some(workers)) = (self.mode, self.workers) {
            problems.value(
                key("workers"),
                workers,
                "ordered mode has exactly one worker; use mode = \"queued\" for a pool",
            );
        }
        if let (ModeConfig::Queued, Some(false)) = (self.mode, self.msg_id) {
            problems.value(
                key("msg_id"),
                false,
                "queued mode needs Nats-Msg-Id for exactly-once copies",
            );
        }
        if let Some(ha) = &self.ha {
            ha.validate(name, config, problems);
        }
        if let Some(subject) = &self.heartbeat_subject {
            if self.heartbeat.is_none() {
                problems.key(key("heartbeat_subject"), "only with heartbeat");
            }
            if SubjectTemplate::parse(subject).is_err() || subject.contains('%') {
                problems.value(
                    key("heartbeat_subject"),
                    subject,
                    "not a valid publish subject",
                );
            }
        }
        if self.ack_wait < Duration::from_secs(1) {
            problems.value(
                key("ack_wait"),
                humantime::format_duration(self.ack_wait),
                "at least 1s",
            );
        }
    }

    /// Choria Stream Replicator compatibility: this replicator's `compat`, else the node's.
    pub fn choria_compat(&self, node: &NodeConfig) -> Option<ChoriaCompat> {
        match self.compat.or(node.compat).unwrap_or_default() {
            Compat::Choir => None,
            Compat::Choria => Some(ChoriaCompat {
                site: node.name.clone(),
            }),
        }
    }

    fn sampling_config(&self, age: Duration) -> SamplingConfig {
        let mut c = SamplingConfig::new(age)
            .with_max_senders(self.max_senders)
            .with_size_trigger(self.size_trigger);
        if let Some(t) = self.sender_timeout {
            c = c.with_timeout(t);
        }
        if let Some(e) = self.sender_expire {
            c = c.with_expire(e);
        }
        c
    }

    /// What the replicator actors need. Only valid after validation (invalid optional parts
    /// are left out).
    pub fn settings(&self, name: &str, state_dir: &Path) -> ReplicatorSettings {
        self.settings_on(name, state_dir, name)
    }

    /// [`Self::settings`] on node `node` (the HA identity when the host name is unknown).
    pub fn settings_on(&self, name: &str, state_dir: &Path, node: &str) -> ReplicatorSettings {
        let sampling = match (&self.inspect, self.age) {
            (Some(spec), Some(age)) => {
                Inspector::parse(spec)
                    .ok()
                    .map(|inspector| SamplingSettings {
                        inspector,
                        force_field: self
                            .force_field
                            .as_deref()
                            .and_then(|f| JsonPath::parse(f).ok()),
                        config: self.sampling_config(age),
                        state_file: state_dir
                            .join("replicators")
                            .join(format!("{name}.tracker")),
                    })
            }
            _ => None,
        };
        let advisories = self.advisories.as_ref().and_then(|a| {
            SubjectTemplate::parse(&a.subject)
                .ok()
                .map(|template| AdvisorySettings {
                    template,
                    reliable: a.reliable,
                })
        });
        ReplicatorSettings {
            name: name.to_owned(),
            source_stream: self.stream.clone(),
            target_stream: self
                .target_stream
                .clone()
                .unwrap_or_else(|| self.stream.clone()),
            create_target: self.create_target,
            filter_subject: self.filter_subject.clone(),
            subject_map: SubjectMap::new(
                self.target_subject_remove.clone(),
                self.target_subject_prefix.clone(),
            ),
            mode: match self.mode {
                ModeConfig::Ordered => Mode::Ordered,
                ModeConfig::Queued => Mode::Queued {
                    workers: self.workers.unwrap_or(defaults::replicator_workers()),
                },
            },
            window: self.window,
            window_bytes: self.window_bytes,
            msg_id: self.msg_id.unwrap_or(match self.mode {
                ModeConfig::Ordered => defaults::ORDERED_MSG_ID,
                ModeConfig::Queued => true,
            }),
            start: self
                .start
                .as_ref()
                .and_then(|s| parse_start(s).ok())
                .unwrap_or(StartPosition::All),
            max_age: self.max_age,
            sampling,
            advisories,
            dead_letter: self
                .dead_letter
                .clone()
                .unwrap_or_else(|| format!("choir.replicator.{name}.dead_letter")),
            max_rejections: self.max_rejections,
            ack_wait: self.ack_wait,
            heartbeat: self.heartbeat,
            ha: self.ha.as_ref().map(|ha| ha.settings(&self.source, node)),
            heartbeat_subject: self
                .heartbeat_subject
                .clone()
                .unwrap_or_else(|| format!("choir.replicator.{name}.heartbeat")),
            choria: None,
        }
    }
}
