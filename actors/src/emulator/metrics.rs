//! The emulator's counters, shared by every daemon of a fleet.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::metrics::MetricsRegistry;

/// Why a daemon did not answer a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// A layer was not valid JSON (truncated, garbage).
    Json,
    /// The transport `data` was not valid base64.
    Base64,
    /// Wrong protocol string, bad request id, ttl < 30, empty field.
    Invalid,
    /// Outside `now ± ttl`.
    Expired,
    /// No `reply-to` header: nowhere to answer.
    NoReplyTo,
    /// The request's collective is not the subject's, or not one of the daemon's.
    WrongCollective,
    /// The filter does not select this daemon.
    Filtered,
    /// The filter has a compound filter outside what is evaluated.
    UnsupportedFilter,
    /// The compound filter calls a data plugin (`fstatement`); none is emulated.
    DataPlugin,
    /// The daemon does not run the request's agent.
    UnknownAgent,
    /// The agent payload made no sense for the agent (discovery without `ping`).
    BadPayload,
    /// A directed request for an identity this process does not emulate (shared mode).
    UnknownIdentity,
    /// The reply could not be encoded.
    Encode,
    /// A secure emulator refused the request (see
    /// [`RequestSecurity`](super::security::RequestSecurity)).
    Security,
}

impl DropReason {
    /// Every reason, for registering label values up front.
    pub const ALL: [DropReason; 14] = [
        Self::Json,
        Self::Base64,
        Self::Invalid,
        Self::Expired,
        Self::NoReplyTo,
        Self::WrongCollective,
        Self::Filtered,
        Self::UnsupportedFilter,
        Self::DataPlugin,
        Self::UnknownAgent,
        Self::BadPayload,
        Self::UnknownIdentity,
        Self::Encode,
        Self::Security,
    ];

    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Base64 => "base64",
            Self::Invalid => "invalid",
            Self::Expired => "expired",
            Self::NoReplyTo => "no_reply_to",
            Self::WrongCollective => "wrong_collective",
            Self::Filtered => "filtered",
            Self::UnsupportedFilter => "unsupported_filter",
            Self::DataPlugin => "data_plugin",
            Self::UnknownAgent => "unknown_agent",
            Self::BadPayload => "bad_payload",
            Self::UnknownIdentity => "unknown_identity",
            Self::Encode => "encode",
            Self::Security => "security",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// Label of the drop counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// A [`DropReason::as_str`].
    pub reason: String,
}

/// Every counter of a fleet; cloning shares them (atomics behind `Arc`s).
#[derive(Clone, Debug, Default)]
pub struct EmulatorMetrics {
    /// `choir_emulator_daemons`: daemons whose subscriptions are in place.
    pub started: Gauge,
    /// `choir_emulator_connected`: daemons (or shared links) connected right now.
    pub connected: Gauge,
    /// `choir_emulator_connect_failures_total`: failed connect attempts (retried).
    pub connect_failures: Counter,
    /// `choir_emulator_connect_waiting`: daemons retrying a failed connect right now.
    pub connect_waiting: Gauge,
    /// `choir_emulator_oversize_total`: replies and registrations larger than the server's
    /// `max_payload`, not sent.
    pub oversize: Counter,
    /// `choir_emulator_lame_duck_moves_total`: daemons that left a server in lame-duck mode.
    pub lame_duck_moves: Counter,
    /// `choir_emulator_stale_connections_total`: connections given up after unanswered pings.
    pub stale_connections: Counter,
    /// `choir_emulator_reconnects_total`: connections that came back after a loss.
    pub reconnects: Counter,
    /// `choir_emulator_slow_consumers_total`: messages the NATS client dropped.
    pub slow_consumers: Counter,
    /// `choir_emulator_messages_total`: messages received, per daemon they reached.
    pub messages: Counter,
    /// `choir_emulator_replies_total`: replies published.
    pub replies: Counter,
    /// `choir_emulator_publish_errors_total`: replies or registrations that failed to publish.
    pub publish_errors: Counter,
    /// `choir_emulator_registrations_total`: registration messages published.
    pub registrations: Counter,
    /// `choir_emulator_audit_errors_total`: audit lines that could not be written.
    pub audit_errors: Counter,
    /// `choir_emulator_dropped_total{reason}`: messages not answered.
    pub dropped: Family<ReasonLabel, Counter>,
    /// Verification of secure requests (a secure emulator).
    pub security: super::security::SecurityMetrics,
    drops: Vec<Counter>,
}

impl EmulatorMetrics {
    /// Counters not registered anywhere (tests, tools).
    pub fn unregistered() -> Self {
        let dropped: Family<ReasonLabel, Counter> = Family::default();
        let drops = DropReason::ALL
            .iter()
            .map(|r| {
                dropped
                    .get_or_create(&ReasonLabel {
                        reason: r.as_str().to_owned(),
                    })
                    .clone()
            })
            .collect();
        Self {
            dropped,
            drops,
            ..Self::default()
        }
    }

    /// Creates the families and registers them in `metrics` (once per process).
    pub fn register(metrics: &MetricsRegistry) -> Self {
        let this = Self::unregistered();
        metrics.register(
            "choir_emulator_daemons",
            "Emulated daemons whose subscriptions are in place",
            this.started.clone(),
        );
        metrics.register(
            "choir_emulator_connected",
            "Emulator connections (one per daemon in dedicated mode) up right now",
            this.connected.clone(),
        );
        metrics.register(
            "choir_emulator_connect_waiting",
            "Emulated daemons retrying a failed connect right now",
            this.connect_waiting.clone(),
        );
        let counters = [
            (
                "choir_emulator_connect_failures",
                "Failed emulator connect attempts (retried)",
                &this.connect_failures,
            ),
            (
                "choir_emulator_reconnects",
                "Emulator connections that came back after a loss",
                &this.reconnects,
            ),
            (
                "choir_emulator_slow_consumers",
                "Slow-consumer events of emulator connections",
                &this.slow_consumers,
            ),
            (
                "choir_emulator_messages",
                "Messages received by emulated daemons",
                &this.messages,
            ),
            (
                "choir_emulator_replies",
                "Replies published by emulated daemons",
                &this.replies,
            ),
            (
                "choir_emulator_publish_errors",
                "Replies and registrations that failed to publish",
                &this.publish_errors,
            ),
            (
                "choir_emulator_registrations",
                "Registration messages published",
                &this.registrations,
            ),
            (
                "choir_emulator_oversize",
                "Replies and registrations larger than the server's max_payload, not sent",
                &this.oversize,
            ),
            (
                "choir_emulator_lame_duck_moves",
                "Emulated daemons that left a server in lame-duck mode",
                &this.lame_duck_moves,
            ),
            (
                "choir_emulator_stale_connections",
                "Emulator connections given up after unanswered pings",
                &this.stale_connections,
            ),
            (
                "choir_emulator_audit_errors",
                "Audit lines that could not be written",
                &this.audit_errors,
            ),
        ];
        for (name, help, counter) in counters {
            metrics.register(name, help, counter.clone());
        }
        metrics.register(
            "choir_emulator_dropped",
            "Messages emulated daemons did not answer, by reason",
            this.dropped.clone(),
        );
        this.security.register(metrics);
        this
    }

    /// Counts one message dropped for `reason`.
    pub fn drop_for(&self, reason: DropReason) {
        match self.drops.get(reason.index()) {
            Some(counter) => {
                counter.inc();
            }
            None => {
                self.dropped
                    .get_or_create(&ReasonLabel {
                        reason: reason.as_str().to_owned(),
                    })
                    .inc();
            }
        }
    }

    /// How many messages were dropped for `reason`.
    pub fn dropped_for(&self, reason: DropReason) -> u64 {
        self.dropped
            .get_or_create(&ReasonLabel {
                reason: reason.as_str().to_owned(),
            })
            .get()
    }

    /// Messages dropped for any reason.
    pub fn dropped_total(&self) -> u64 {
        DropReason::ALL.iter().map(|r| self.dropped_for(*r)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_counted_by_reason() {
        let m = EmulatorMetrics::unregistered();
        m.drop_for(DropReason::Expired);
        m.drop_for(DropReason::Expired);
        m.drop_for(DropReason::Json);
        assert_eq!(m.dropped_for(DropReason::Expired), 2);
        assert_eq!(m.dropped_for(DropReason::Json), 1);
        assert_eq!(m.dropped_total(), 3);
        let registry = MetricsRegistry::new();
        let r = EmulatorMetrics::register(&registry);
        r.drop_for(DropReason::Filtered);
        let text = registry.encode().unwrap();
        assert!(text.contains("choir_emulator_dropped_total{reason=\"filtered\"} 1"));
    }
}
