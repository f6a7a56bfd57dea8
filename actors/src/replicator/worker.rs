//! `ReplicaWorkerActor`: the actor that copies messages. An ordered replicator has one, pinned
//! to its own arbiter; a queued replicator has a pool, one per arbiter. The actor is a thin
//! shell around the copy loops in [`super::ordered`] and [`super::queued`], which recover from
//! every failure by resuming from what the target and the source consumer know.
//!
//! Each worker opens its own connections to the source and the target from its arbiter
//! ([`crate::connection::dedicated`]), so a message goes from the source socket through the
//! copy loop to the target socket, and its ack comes back, without crossing a thread. Through
//! the node's shared network connections every message would cross threads three times.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use actix::prelude::*;
use tracing::info;

use super::context::{WorkerContext, WorkerKind, WorkerShared};
use crate::supervision::Shutdown;

/// One copying worker.
pub struct ReplicaWorkerActor {
    shared: Arc<WorkerShared>,
    kind: WorkerKind,
    confirmed: Arc<AtomicU64>,
    /// The running copy loop.
    copying: Option<SpawnHandle>,
    /// Stopped for good by [`Shutdown`]: not started again.
    stopped: bool,
}

impl ReplicaWorkerActor {
    /// A worker of `kind` for `shared`.
    pub fn new(shared: Arc<WorkerShared>, kind: WorkerKind) -> Self {
        Self {
            shared,
            kind,
            confirmed: Arc::new(AtomicU64::new(0)),
            copying: None,
            stopped: false,
        }
    }
}

impl Actor for ReplicaWorkerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.stopped {
            return;
        }
        info!(replicator = %self.shared.settings.name, worker = ?self.kind, "Replica worker started.");
        let (shared, kind, confirmed) = (self.shared.clone(), self.kind, self.confirmed.clone());
        let work = async move {
            let context = Arc::new(WorkerContext::connect(&shared, kind).await);
            match kind {
                WorkerKind::Ordered => super::ordered::run(context, confirmed).await,
                WorkerKind::Queued(index) => super::queued::run(context, index).await,
            }
        };
        self.copying = Some(ctx.spawn(work.into_actor(self)));
    }
}

/// At node shutdown (sent by its replicator before the replicator stops the worker's
/// arbiter): the copy loop ends where it is and the worker stays stopped. Nothing is lost:
/// copies the target has not acked leave their source message unacked (queued: the source
/// redelivers it and the target's duplicate window drops a copy that landed), and an ordered
/// worker resumes from the last source sequence the target holds.
impl Handler<Shutdown> for ReplicaWorkerActor {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        self.stopped = true;
        if let Some(copying) = self.copying.take() {
            ctx.cancel_future(copying);
        }
        info!(replicator = %self.shared.settings.name, worker = ?self.kind, "Replica worker stopped.");
    }
}

impl Supervised for ReplicaWorkerActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        info!(replicator = %self.shared.settings.name, worker = ?self.kind, "Restarting replica worker.");
    }
}
