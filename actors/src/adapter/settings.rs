//! What an adapter worker needs: plain values, already validated by the config layer.

use std::num::NonZeroUsize;
use std::time::Duration;

use serde::Deserialize;

use super::subject::SubjectTemplate;

/// How incoming messages are turned into stream messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdapterProtocol {
    /// Copy payload and headers unchanged.
    #[default]
    Raw,
    /// Decode a Choria v1 request and write `choria:adapters:jetstream:output:1`.
    Choria,
}

impl AdapterProtocol {
    /// The name used in config and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Choria => "choria",
        }
    }
}

/// Everything one adapter's workers need.
#[derive(Debug, Clone)]
pub struct AdapterSettings {
    /// The adapter's name (`[adapters.<name>]`).
    pub name: String,
    /// The network subscribed on.
    pub network: String,
    /// The subject (wildcards allowed) subscribed to.
    pub subject: String,
    /// The queue group every worker joins.
    pub queue_group: String,
    /// Number of workers.
    pub workers: NonZeroUsize,
    /// The network holding the stream.
    pub stream_network: String,
    /// The JetStream stream written to.
    pub stream: String,
    /// The subject published to; `None` keeps the subject the message arrived on.
    pub stream_subject: Option<SubjectTemplate>,
    /// Create the stream when it is missing.
    pub create_stream: bool,
    /// How messages are transformed.
    pub protocol: AdapterProtocol,
    /// Most publishes per worker waiting for their JetStream ack.
    pub max_pending: NonZeroUsize,
    /// Retries of a failed publish before the message is dropped.
    pub publish_retries: u32,
    /// First delay before a retry; doubles up to `max_backoff`.
    pub retry_backoff: Duration,
    /// Longest delay between retries (and between setup attempts).
    pub max_backoff: Duration,
    /// How long a publish waits for its ack.
    pub ack_timeout: Duration,
    /// `choria` only: drop requests outside `time ± ttl`.
    pub check_ttl: bool,
}

impl AdapterSettings {
    /// Settings for adapter `name` from `subject` on `network` into `stream` on the same
    /// network, every other value at its default (tests and tools).
    pub fn new(
        name: impl Into<String>,
        network: impl Into<String>,
        subject: impl Into<String>,
        stream: impl Into<String>,
    ) -> Self {
        let name = name.into();
        let network = network.into();
        Self {
            queue_group: default_queue_group(&name),
            name,
            stream_network: network.clone(),
            network,
            subject: subject.into(),
            workers: NonZeroUsize::new(4).unwrap_or(NonZeroUsize::MIN),
            stream: stream.into(),
            stream_subject: None,
            create_stream: true,
            protocol: AdapterProtocol::Raw,
            max_pending: NonZeroUsize::new(256).unwrap_or(NonZeroUsize::MIN),
            publish_retries: 5,
            retry_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            ack_timeout: Duration::from_secs(5),
            check_ttl: true,
        }
    }

    /// The subject filter of a stream created for this adapter: what the stream subject
    /// renders to, or the subscription subject when the original subject is kept.
    pub fn capture_subject(&self) -> String {
        match &self.stream_subject {
            Some(template) => template.capture(),
            None => self.subject.clone(),
        }
    }
}

/// The default queue group of adapter `name`: `choir_adapter_<name>`.
pub fn default_queue_group(name: &str) -> String {
    format!("choir_adapter_{name}")
}
