//! `[adapters.<name>]`: a NATS subject (queue group, N workers) into a JetStream stream.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use choir_actors::adapter::subject::{
    filters_overlap, validate_subscribe_subject, SubjectTemplate,
};
use choir_actors::adapter::{default_queue_group, AdapterProtocol, AdapterSettings};
use serde::Deserialize;

use super::defaults;
use super::names::valid_stream_name;
use super::Config;
use super::Problems;

/// Most workers one adapter may have.
pub const MAX_WORKERS: usize = 256;
/// Most publishes one worker may have in flight.
pub const MAX_PENDING: usize = 65_536;

/// `[adapters.<name>]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterConfig {
    /// The network to subscribe on.
    pub network: String,
    /// The subject to subscribe to (wildcards allowed).
    pub subject: String,
    /// The queue group the workers join (default `choir_adapter_<name>`).
    pub queue_group: Option<String>,
    /// Number of workers, each with its own queue subscription.
    #[serde(default = "defaults::adapter_workers")]
    pub workers: NonZeroUsize,
    /// The network holding the stream (default: `network`).
    pub stream_network: Option<String>,
    /// The JetStream stream to publish into.
    pub stream: String,
    /// The subject to publish to; `%s` is replaced by the sender identity (`choria` only).
    /// Default: the subject the message arrived on.
    pub stream_subject: Option<String>,
    /// Create the stream (capturing the stream subject) when it is missing.
    #[serde(default = "defaults::adapter_create_stream")]
    pub create_stream: bool,
    /// `raw` (copy payload and headers) or `choria` (decode a Choria request).
    #[serde(default)]
    pub protocol: AdapterProtocol,
    /// Publishes per worker waiting for their ack.
    #[serde(default = "defaults::adapter_max_pending")]
    pub max_pending: NonZeroUsize,
    /// Retries of a failed publish before the message is dropped.
    #[serde(default = "defaults::adapter_publish_retries")]
    pub publish_retries: u32,
    /// First delay before a retry; doubles per retry up to `max_backoff`.
    #[serde(default = "defaults::adapter_retry_backoff", with = "humantime_serde")]
    pub retry_backoff: Duration,
    /// Longest delay between retries.
    #[serde(default = "defaults::adapter_max_backoff", with = "humantime_serde")]
    pub max_backoff: Duration,
    /// How long a publish waits for its ack.
    #[serde(default = "defaults::adapter_ack_timeout", with = "humantime_serde")]
    pub ack_timeout: Duration,
    /// `choria` only: drop requests outside their `time ± ttl` window.
    #[serde(default = "defaults::adapter_check_ttl")]
    pub check_ttl: bool,
}

impl AdapterConfig {
    /// The network holding the stream.
    pub fn stream_network(&self) -> &str {
        self.stream_network.as_deref().unwrap_or(&self.network)
    }

    pub(super) fn validate(&self, name: &str, config: &Config, problems: &mut Problems) {
        let key = |k: &str| format!("adapters.{name}.{k}");
        config.check_network_ref(key("network"), &self.network, problems);
        if let Some(network) = &self.stream_network {
            config.check_network_ref(key("stream_network"), network, problems);
        }
        if let Err(e) = validate_subscribe_subject(&self.subject) {
            problems.value(key("subject"), &self.subject, e.to_string());
        }
        if let Some(group) = &self.queue_group {
            if group.is_empty() || group.chars().any(|c| c.is_whitespace() || c.is_control()) {
                problems.value(
                    key("queue_group"),
                    group,
                    "must be non-empty, without whitespace",
                );
            }
        }
        if self.workers.get() > MAX_WORKERS {
            problems.value(
                key("workers"),
                self.workers,
                format!("at most {MAX_WORKERS}"),
            );
        }
        if !valid_stream_name(&self.stream) {
            problems.value(
                key("stream"),
                &self.stream,
                "a stream name is non-empty, without whitespace, '.', '*', '>', '/' or '\\'",
            );
        }
        let template = match self.stream_subject.as_deref().map(SubjectTemplate::parse) {
            Some(Err(e)) => {
                problems.value(
                    key("stream_subject"),
                    self.stream_subject.as_deref().unwrap_or_default(),
                    e.to_string(),
                );
                None
            }
            Some(Ok(t)) => Some(t),
            None => None,
        };
        if let Some(t) = &template {
            if t.has_sender() && self.protocol != AdapterProtocol::Choria {
                problems.value(
                    key("stream_subject"),
                    t.as_str(),
                    "'%s' (the sender identity) needs protocol = \"choria\"",
                );
            }
        }
        if self.stream_network() == self.network {
            match &template {
                None if self.stream_subject.is_none() => problems.key(
                    key("stream_subject"),
                    "required when the stream is on the subscribed network: keeping the original subject would feed the adapter its own output",
                ),
                Some(t) if filters_overlap(&self.subject, &t.capture()) => problems.value(
                    key("stream_subject"),
                    t.as_str(),
                    format!(
                        "overlaps the subscribed subject {:?} on the same network: the adapter would read its own output",
                        self.subject
                    ),
                ),
                _ => {}
            }
        }
        if self.max_pending.get() > MAX_PENDING {
            problems.value(
                key("max_pending"),
                self.max_pending,
                format!("at most {MAX_PENDING}"),
            );
        }
        for (k, d) in [
            ("retry_backoff", self.retry_backoff),
            ("max_backoff", self.max_backoff),
            ("ack_timeout", self.ack_timeout),
        ] {
            if d.is_zero() {
                problems.value(key(k), "0s", "must be longer than zero");
            }
        }
        if self.max_backoff < self.retry_backoff {
            problems.value(
                key("max_backoff"),
                humantime::format_duration(self.max_backoff),
                format!(
                    "shorter than retry_backoff ({})",
                    humantime::format_duration(self.retry_backoff)
                ),
            );
        }
    }

    /// What the adapter's workers need (call on a validated config).
    pub fn settings(&self, name: &str) -> Arc<AdapterSettings> {
        let mut settings = AdapterSettings::new(name, &self.network, &self.subject, &self.stream);
        settings.queue_group = self
            .queue_group
            .clone()
            .unwrap_or_else(|| default_queue_group(name));
        settings.workers = self.workers;
        settings.stream_network = self.stream_network().to_owned();
        settings.stream_subject = self
            .stream_subject
            .as_deref()
            .and_then(|t| SubjectTemplate::parse(t).ok());
        settings.create_stream = self.create_stream;
        settings.protocol = self.protocol;
        settings.max_pending = self.max_pending;
        settings.publish_retries = self.publish_retries;
        settings.retry_backoff = self.retry_backoff;
        settings.max_backoff = self.max_backoff;
        settings.ack_timeout = self.ack_timeout;
        settings.check_ttl = self.check_ttl;
        Arc::new(settings)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{parse, ConfigError};

    const NETWORKS: &str = "[networks.region]\nurls = [\"nats://127.0.0.1:4222\"]\n[networks.central]\nurls = [\"nats://127.0.0.1:4223\"]\n";

    fn problems(adapter: &str) -> Vec<String> {
        let text = format!("{NETWORKS}[adapters.reg]\n{adapter}");
        match parse(Path::new("t.toml"), &text) {
            Ok(_) => vec![],
            Err(ConfigError::Invalid { problems, .. }) => {
                problems.iter().map(ToString::to_string).collect()
            }
            Err(e) => vec![e.to_string()],
        }
    }

    #[test]
    fn defaults() {
        let text = format!(
            "{NETWORKS}[adapters.reg]\nnetwork = \"region\"\nsubject = \"mcollective.broadcast.agent.registration\"\nstream = \"REGISTRATION\"\nstream_subject = \"registration.%s\"\nprotocol = \"choria\"\n"
        );
        let config = parse(Path::new("t.toml"), &text).unwrap();
        let settings = config.adapters["reg"].settings("reg");
        assert_eq!(settings.queue_group, "choir_adapter_reg");
        assert_eq!(settings.workers.get(), 4);
        assert_eq!(settings.stream_network, "region");
        assert!(settings.create_stream);
        assert_eq!(settings.max_pending.get(), 256);
        assert_eq!(settings.publish_retries, 5);
        assert!(settings.check_ttl);
        assert_eq!(settings.capture_subject(), "registration.>");
    }

    #[test]
    fn raw_is_the_default_protocol_and_other_networks_keep_the_subject() {
        let found = problems(
            "network = \"region\"\nstream_network = \"central\"\nsubject = \"a.>\"\nstream = \"A\"\n",
        );
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn every_problem_names_key_and_value() {
        let found = problems(
            "network = \"nowhere\"\nsubject = \"a..b\"\nstream = \"a.b\"\nstream_subject = \"x.%s\"\nqueue_group = \"a b\"\nworkers = 1000\nack_timeout = \"0s\"\n",
        );
        let expect = [
            "adapters.reg.network = \"nowhere\": no such network",
            "adapters.reg.subject = \"a..b\": empty token",
            "adapters.reg.stream = \"a.b\"",
            "adapters.reg.stream_subject = \"x.%s\": '%s' (the sender identity) needs protocol = \"choria\"",
            "adapters.reg.queue_group = \"a b\"",
            "adapters.reg.workers = \"1000\"",
            "adapters.reg.ack_timeout = \"0s\"",
        ];
        for e in expect {
            assert!(
                found.iter().any(|p| p.starts_with(e)),
                "{e} not in {found:#?}"
            );
        }
        assert_eq!(found.len(), expect.len(), "{found:#?}");
    }

    #[test]
    fn feeding_its_own_output_is_refused() {
        let found = problems("network = \"region\"\nsubject = \"a.>\"\nstream = \"A\"\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("adapters.reg.stream_subject: required"),
            "{found:?}"
        );
        let found = problems(
            "network = \"region\"\nsubject = \"a.>\"\nstream = \"A\"\nstream_subject = \"a.out\"\n",
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("overlaps"), "{found:?}");
    }

    #[test]
    fn unknown_protocol_and_keys_are_named() {
        let found = problems(
            "network = \"region\"\nsubject = \"a\"\nstream = \"A\"\nstream_subject = \"b\"\nprotocol = \"json\"\n",
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("adapters.reg:") && found[0].contains("json"),
            "{found:?}"
        );
        let found = problems(
            "network = \"region\"\nsubject = \"a\"\nstream = \"A\"\nstream_subject = \"b\"\nworkerz = 2\n",
        );
        assert!(
            found.len() == 1 && found[0].contains("workerz"),
            "{found:?}"
        );
    }
}
