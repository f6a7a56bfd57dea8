//! What a replica worker's copy loop works with: the parts every worker of one replicator
//! shares ([`WorkerShared`]), which loop it runs ([`WorkerKind`]) and its own two connections
//! ([`WorkerContext`]). The copy loops ([`super::ordered`], [`super::queued`]) and the actor
//! ([`super::worker`]) all import from here, so neither imports the other.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use async_nats::Client;

use super::gate::Gate;
use super::metrics::ReplicatorStats;
use super::settings::ReplicatorSettings;
use crate::connection::dedicated::{connect_with_retry, Owner};
use crate::connection::NetworkSettings;

/// What every worker of one replicator shares.
pub struct WorkerShared {
    /// The replicator's settings.
    pub settings: Arc<ReplicatorSettings>,
    /// How to connect to the source network.
    pub source: Arc<NetworkSettings>,
    /// How to connect to the target network.
    pub target: Arc<NetworkSettings>,
    /// The shared decision maker (max_age, sampling).
    pub gate: Gate,
    /// Metric handles.
    pub stats: ReplicatorStats,
}

/// What one worker's copy loop works with: the shared parts and its own two connections.
pub struct WorkerContext {
    /// The replicator's settings.
    pub settings: Arc<ReplicatorSettings>,
    /// This worker's source connection.
    pub source: Client,
    /// This worker's target connection.
    pub target: Client,
    /// The shared decision maker (max_age, sampling).
    pub gate: Gate,
    /// Metric handles.
    pub stats: ReplicatorStats,
}

impl WorkerContext {
    /// Connects worker `kind`'s own clients (retrying until both are up) from the calling
    /// arbiter.
    pub async fn connect(shared: &WorkerShared, kind: WorkerKind) -> Self {
        let name = match kind {
            WorkerKind::Ordered => shared.settings.name.clone(),
            WorkerKind::Queued(index) => format!("{}/{index}", shared.settings.name),
        };
        let owner = Owner {
            kind: "replica worker",
            suffix: format!("replicator-{}", name.replace('/', "-")),
            name,
        };
        let source = connect_with_retry(&shared.source, &owner).await;
        let target = connect_with_retry(&shared.target, &owner).await;
        Self {
            settings: shared.settings.clone(),
            source,
            target,
            gate: shared.gate.clone(),
            stats: shared.stats.clone(),
        }
    }

    /// Most bytes one pull from the source may deliver: `window_bytes`, but never less than
    /// twice the source server's largest message, so no single message can exceed a pull
    /// (the server would refuse it, and the same pull would be refused again).
    pub fn pull_max_bytes(&self) -> usize {
        let largest = self.source.server_info().max_payload;
        self.settings
            .window_bytes
            .get()
            .max(largest.saturating_mul(2))
    }

    /// Records a copy acked by the target.
    pub fn copied(&self, bytes: usize, sent: Instant, published: SystemTime) {
        self.stats.copied.inc();
        self.stats.bytes.inc_by(u64::try_from(bytes).unwrap_or(0));
        let took = sent.elapsed();
        self.stats.latency.observe(took.as_secs_f64());
        self.stats
            .processing_micros
            .inc_by(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
        let age = SystemTime::now()
            .duration_since(published)
            .unwrap_or_default();
        self.stats.last_copied_age.set(age.as_secs_f64());
    }
}

/// Which copy loop a worker runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerKind {
    /// The single ordered worker.
    Ordered,
    /// Worker `n` of a queued pool.
    Queued(usize),
}
