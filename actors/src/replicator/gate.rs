//! The per-message decision shared by every worker of a replicator: too old, sampled out,
//! or copy.

use std::sync::Arc;
use std::time::SystemTime;

use async_nats::HeaderMap;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::sampling::{SamplingTracker, SenderEvent};
use super::settings::ReplicatorSettings;
use super::stats::ReplicatorStats;

/// What to do with one source message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
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
        }
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
    ) -> Verdict {
        if let Some(max_age) = self.settings.max_age {
            let age = SystemTime::now()
                .duration_since(published)
                .unwrap_or_default();
            if age > max_age {
                self.stats.skipped_too_old.inc();
                return Verdict::TooOld;
            }
        }
        let (Some(sampling), Some(tracker)) = (&self.settings.sampling, &self.tracker) else {
            return Verdict::Copy;
        };
        let header = |name: &str| {
            headers
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_owned())
        };
        let Some(sender) = sampling.inspector.extract(subject, header, payload) else {
            self.stats.no_sender.inc();
            return Verdict::Copy;
        };
        let forced = sampling
            .force_field
            .as_ref()
            .is_some_and(|f| f.is_true(payload));
        let decision = tracker
            .lock()
            .observe(&sender, seq, published, payload.len(), forced);
        let copy = decision.is_copy();
        if let Some(event) = decision.event {
            if self.settings.advisories.is_some() && self.events.try_send(event).is_err() {
                self.stats.advisory("dropped");
            }
        }
        if copy {
            Verdict::Copy
        } else {
            self.stats.skipped_sampling.inc();
            Verdict::Sampled
        }
    }
}
