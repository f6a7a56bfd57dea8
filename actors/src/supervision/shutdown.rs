//! One way to stop a long-lived actor for good: the [`Shutdown`] command.
//!
//! Every actor the node stops at shutdown handles it: it finishes what it accepted (a network
//! drains its connection, a replicator persists its tracker, a federation broker drains its
//! connections, an embedded server terminates its child), does not restart afterwards, and
//! answers once that is done. The node sends it group by group, in its order
//! ([`shutdown_all`] per group).

use actix::dev::ToEnvelope;
use actix::prelude::*;
use tracing::warn;

/// Command: stop for good, the node is shutting down. The answer comes once what the actor
/// accepted is finished (drained, flushed, persisted); it is not restarted afterwards.
#[derive(Clone, Copy, Debug, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// Sends [`Shutdown`] to every named actor in `actors` at once and waits for every answer;
/// an actor whose mailbox is already closed is logged and skipped.
pub async fn shutdown_all<A>(actors: impl IntoIterator<Item = (String, Addr<A>)>)
where
    A: Actor + Handler<Shutdown>,
    A::Context: ToEnvelope<A, Shutdown>,
{
    let stops = actors.into_iter().map(|(name, addr)| async move {
        if addr.send(Shutdown).await.is_err() {
            warn!(actor = %name, "Actor was gone at shutdown.");
        }
    });
    futures::future::join_all(stops).await;
}
