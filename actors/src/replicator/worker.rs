//! `ReplicaWorkerActor`: the actor that copies messages. An ordered replicator has one, pinned
//! to its own arbiter; a queued replicator has a pool, one per arbiter. The actor is a thin
//! shell around the copy loops in [`super::ordered`] and [`super::queued`], which recover from
//! every failure by resuming from what the target and the source consumer know.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use actix::prelude::*;
use async_nats::Client;
use tracing::info;

use super::gate::Gate;
use super::settings::ReplicatorSettings;
use super::stats::ReplicatorStats;

/// What every worker of one replicator shares.
pub struct WorkerContext {
    /// The replicator's settings.
    pub settings: Arc<ReplicatorSettings>,
    /// Source network client.
    pub source: Client,
    /// Target network client.
    pub target: Client,
    /// The shared decision maker (max_age, sampling).
    pub gate: Gate,
    /// Metric handles.
    pub stats: ReplicatorStats,
}

impl WorkerContext {
    /// Records a copy acked by the target.
    pub fn copied(&self, bytes: usize, sent: Instant, published: SystemTime) {
        self.stats.copied.inc();
        self.stats.bytes.inc_by(u64::try_from(bytes).unwrap_or(0));
        self.stats.latency.observe(sent.elapsed().as_secs_f64());
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

/// One copying worker.
pub struct ReplicaWorkerActor {
    context: Arc<WorkerContext>,
    kind: WorkerKind,
    confirmed: Arc<AtomicU64>,
}

impl ReplicaWorkerActor {
    /// A worker of `kind` for `context`.
    pub fn new(context: Arc<WorkerContext>, kind: WorkerKind) -> Self {
        Self {
            context,
            kind,
            confirmed: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Actor for ReplicaWorkerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        info!(replicator = %self.context.settings.name, worker = ?self.kind, "Replica worker started.");
        let context = self.context.clone();
        match self.kind {
            WorkerKind::Ordered => {
                ctx.spawn(super::ordered::run(context, self.confirmed.clone()).into_actor(self));
            }
            WorkerKind::Queued(index) => {
                ctx.spawn(super::queued::run(context, index).into_actor(self));
            }
        }
    }
}

impl Supervised for ReplicaWorkerActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        info!(replicator = %self.context.settings.name, worker = ?self.kind, "Restarting replica worker.");
    }
}
