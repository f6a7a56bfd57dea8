//! The per-message decision shared by every worker of a replicator: too old, sampled out,
//! or copy.

use std::sync::Arc;
use std::time::SystemTime;

use async_nats::HeaderMap;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::gossip::Seen;
use super::metrics::ReplicatorStats;
use super::sampling::{self, CopyReason, SamplingTracker, SenderEvent};
use super::settings::ReplicatorSettings;

/// What to do with one source message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GateVerdict {
    /// Copy it into the target.
    Copy,
    /// Older than `max_age`: acknowledge without copying.
    TooOld,
    /// The sampler says this sender was copied recently: acknowledge without copying.
    Sampled,
}

/// The shared decision maker of one replicator. Cheap to clone.
#[derive(Clone)]
pub struct Gate {
    settings: Arc<ReplicatorSettings>,
    tracker: Option<Arc<Mutex<SamplingTracker>>>,
    events: mpsc::Sender<SenderEvent>,
    stats: ReplicatorStats,
    gossip: Option<(String, mpsc::Sender<Seen>)>,
}

impl Gate {
    /// A gate for `settings`; sender events (new, recover) go to `events` without waiting.
    pub fn new(
        settings: Arc<ReplicatorSettings>,
        tracker: Option<Arc<Mutex<SamplingTracker>>>,
        events: mpsc::Sender<SenderEvent>,
        stats: ReplicatorStats,
    ) -> Self {
        Self {
            settings,
            tracker,
            events,
            stats,
            gossip: None,
        }
    }

    /// Also reports every sampled copy (as node `node`) to `gossip`, without waiting: HA
    /// replicas merge it into their trackers ([`super::gossip`]).
    pub fn with_gossip(mut self, node: String, gossip: mpsc::Sender<Seen>) -> Self {
        self.gossip = Some((node, gossip));
        self
    }

    /// Whether every message is copied (no `max_age`, no sampling): then no decision can
    /// skip one.
    pub fn copies_everything(&self) -> bool {
        self.settings.max_age.is_none() && self.tracker.is_none()
    }

    /// Decides for one message: `seq` is its source stream sequence and `published` the time
    /// the source stored it (sampling runs on the stream's clock, so a replayed backlog is
    /// sampled as it was sent).
    pub fn decide(
        &self,
        subject: &str,
        headers: Option<&HeaderMap>,
        payload: &[u8],
        seq: u64,
        published: SystemTime,
    ) -> GateVerdict {
        if let Some(max_age) = self.settings.max_age {
            let age = SystemTime::now()
                .duration_since(published)
                .unwrap_or_default();
            if age > max_age {
                self.stats.skipped_too_old.inc();
                return GateVerdict::TooOld;
            }
        }
        let (Some(sampling), Some(tracker)) = (&self.settings.sampling, &self.tracker) else {
            return GateVerdict::Copy;
        };
        let header = |name: &str| {
            headers
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_owned())
        };
        let Some(sender) = sampling.inspector.extract(subject, header, payload) else {
            self.stats.no_sender.inc();
            return GateVerdict::Copy;
        };
        let forced = sampling
            .force_field
            .as_ref()
            .is_some_and(|f| f.is_true(payload));
        if forced {
            self.stats.forced.inc();
        }
        let decision = tracker
            .lock()
            .observe(&sender, seq, published, payload.len(), forced);
        let copy = decision.is_copy();
        if let (sampling::SamplingVerdict::Copy(reason), Some((node, gossip))) =
            (decision.verdict, &self.gossip)
        {
            if reason != CopyReason::Redelivered {
                let seen = Seen {
                    node: node.clone(),
                    sender: sender.to_string(),
                    copied_ms: sampling::unix_millis(published),
                    seq,
                    size: u64::try_from(payload.len()).unwrap_or(u64::MAX),
                };
                if gossip.try_send(seen).is_err() {
                    self.stats.gossip("dropped");
                }
            }
        }
        if let Some(event) = decision.event {
            if self.settings.advisories.is_some() && self.events.try_send(event).is_err() {
                self.stats.advisory("dropped");
            }
        }
        if copy {
            GateVerdict::Copy
        } else {
            self.stats.skipped_sampling.inc();
            self.stats
                .skipped_bytes
                .inc_by(u64::try_from(payload.len()).unwrap_or(u64::MAX));
            GateVerdict::Sampled
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::metrics::MetricsRegistry;
    use crate::replicator::inspect::{Inspector, JsonPath};
    use crate::replicator::metrics::ReplicatorMetrics;
    use crate::replicator::sampling::SamplingConfig;
    use crate::replicator::settings::SamplingSettings;

    /// A gate for `settings` (with a tracker when sampling is set), its stats and the
    /// receiving end of its sender events.
    fn gate(settings: ReplicatorSettings) -> (Gate, ReplicatorStats, mpsc::Receiver<SenderEvent>) {
        let stats =
            ReplicatorMetrics::register(&MetricsRegistry::new()).for_replicator(&settings.name);
        let tracker = settings.sampling.as_ref().map(|s| {
            Arc::new(Mutex::new(
                SamplingTracker::new(s.config.clone()).expect("valid sampling config"),
            ))
        });
        let (events, received) = mpsc::channel(8);
        (
            Gate::new(Arc::new(settings), tracker, events, stats.clone()),
            stats,
            received,
        )
    }

    fn sampled(age: Duration) -> ReplicatorSettings {
        let mut settings = ReplicatorSettings::new("r", "S");
        settings.sampling = Some(SamplingSettings {
            inspector: Inspector::Header("Sender".to_owned()),
            force_field: Some(JsonPath::parse("forced").expect("valid path")),
            config: SamplingConfig::new(age),
            state_file: PathBuf::from("unused"),
        });
        settings
    }

    fn from(sender: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("Sender", sender);
        headers
    }

    #[test]
    fn without_max_age_or_sampling_everything_is_copied() {
        let (gate, stats, _events) = gate(ReplicatorSettings::new("r", "S"));
        assert!(gate.copies_everything());
        let long_ago = SystemTime::UNIX_EPOCH;
        assert_eq!(
            gate.decide("a.b", None, b"{}", 1, long_ago),
            GateVerdict::Copy
        );
        assert_eq!(stats.skipped_too_old.get(), 0);
    }

    #[test]
    fn a_message_older_than_max_age_is_skipped_and_counted() {
        let mut settings = ReplicatorSettings::new("r", "S");
        settings.max_age = Some(Duration::from_secs(60));
        let (gate, stats, _events) = gate(settings);
        assert!(!gate.copies_everything());
        let old = SystemTime::now() - Duration::from_secs(3600);
        assert_eq!(gate.decide("a.b", None, b"{}", 1, old), GateVerdict::TooOld);
        assert_eq!(stats.skipped_too_old.get(), 1);
        assert_eq!(
            gate.decide("a.b", None, b"{}", 2, SystemTime::now()),
            GateVerdict::Copy
        );
        assert_eq!(stats.skipped_too_old.get(), 1);
    }

    #[test]
    fn sampling_copies_a_sender_once_per_age_unless_forced() {
        let (gate, stats, _events) = gate(sampled(Duration::from_secs(60)));
        assert!(!gate.copies_everything());
        let now = SystemTime::now();
        let a = from("a");
        assert_eq!(gate.decide("x", Some(&a), b"{}", 1, now), GateVerdict::Copy);
        assert_eq!(
            gate.decide("x", Some(&a), b"{}", 2, now),
            GateVerdict::Sampled
        );
        assert_eq!(stats.skipped_sampling.get(), 1);
        let forced = br#"{"forced":true}"#;
        assert_eq!(
            gate.decide("x", Some(&a), forced, 3, now),
            GateVerdict::Copy
        );
        // Another sender is sampled on its own.
        assert_eq!(
            gate.decide("x", Some(&from("b")), b"{}", 4, now),
            GateVerdict::Copy
        );
        // The sampler runs on the stream's clock: an age later, `a` is copied again.
        let later = now + Duration::from_secs(61);
        assert_eq!(
            gate.decide("x", Some(&a), b"{}", 5, later),
            GateVerdict::Copy
        );
        assert_eq!(stats.skipped_sampling.get(), 1);
    }

    #[test]
    fn every_sampled_copy_but_a_redelivery_is_gossiped() {
        let (gate, _stats, _events) = gate(sampled(Duration::from_secs(60)));
        let (tx, mut rx) = mpsc::channel(8);
        let gate = gate.with_gossip("node-1".to_owned(), tx);
        let now = SystemTime::now();
        let a = from("a");
        assert_eq!(gate.decide("x", Some(&a), b"{}", 1, now), GateVerdict::Copy);
        assert_eq!(
            gate.decide("x", Some(&a), b"{}", 2, now),
            GateVerdict::Sampled
        );
        assert_eq!(gate.decide("x", Some(&a), b"{}", 1, now), GateVerdict::Copy);
        let seen = rx.try_recv().expect("the first copy is gossiped");
        assert_eq!(
            (
                seen.node.as_str(),
                seen.sender.as_str(),
                seen.seq,
                seen.size
            ),
            ("node-1", "a", 1, 2)
        );
        assert_eq!(seen.copied_ms, sampling::unix_millis(now));
        assert!(
            rx.try_recv().is_err(),
            "a skip or a redelivery is not gossiped"
        );
    }

    #[test]
    fn a_message_without_a_sender_is_copied_and_counted() {
        let (gate, stats, _events) = gate(sampled(Duration::from_secs(60)));
        let now = SystemTime::now();
        assert_eq!(gate.decide("x", None, b"{}", 1, now), GateVerdict::Copy);
        assert_eq!(gate.decide("x", None, b"{}", 2, now), GateVerdict::Copy);
        assert_eq!(stats.no_sender.get(), 2);
        assert_eq!(stats.skipped_sampling.get(), 0);
    }

    #[test]
    fn sender_events_go_out_only_with_advisories_configured() {
        let (gate, _stats, mut events) = gate(sampled(Duration::from_secs(60)));
        assert_eq!(
            gate.decide("x", Some(&from("a")), b"{}", 1, SystemTime::now()),
            GateVerdict::Copy
        );
        assert!(events.try_recv().is_err(), "no advisories, no events");
    }
}
