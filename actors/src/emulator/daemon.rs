//! `EmulatedNodeActor`: one emulated daemon with its own NATS connection through async-nats.
//!
//! The fleet uses it when the servers need TLS, a credentials file or an nkey; otherwise a
//! leaner [`WireDaemon`](super::wire_daemon) speaks the protocol itself.
//!
//! Started on one of the fleet's arbiters, it connects there (async-nats does its socket I/O
//! on the runtime where `connect()` ran), waiting for a slot of the fleet's connect semaphore
//! and retrying with backoff until the server answers. It then subscribes what a real daemon
//! subscribes ([`EmulatedNode::subjects`]), merges those subscriptions into one stream and
//! answers each message through [`EmulatedNode::handle`]. After a server restart async-nats
//! reconnects and resubscribes by itself.

use std::rc::Rc;
use std::sync::Arc;

use actix::prelude::*;
use async_nats::{Client, Message};
use tracing::{debug, warn};

use super::fleet_shared::{send_reply, FleetShared};
use super::request_cache::with_scratch;
use super::subscriptions::Subscriptions;
use super::{registration, EmulatedNode, Incoming};
use crate::error_chain::Chain;
use crate::protocol::unix_now;
use crate::supervision::{Backoff, Shutdown};

/// How long a stopping daemon waits for its connection to flush what it published.
pub(super) const FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// One emulated daemon (dedicated connection).
pub struct EmulatedNodeActor {
    node: EmulatedNode,
    url: Arc<str>,
    fleet: Arc<FleetShared>,
    client: Option<Rc<Client>>,
    sequence: u64,
}

impl EmulatedNodeActor {
    /// A daemon `node` that will connect to `url`.
    pub(super) fn new(node: EmulatedNode, url: Arc<str>, fleet: Arc<FleetShared>) -> Self {
        Self {
            node,
            url,
            fleet,
            client: None,
            sequence: 0,
        }
    }

    fn register(&mut self, ctx: &mut Context<Self>) {
        let (Some(client), Some(plan)) = (self.client.clone(), self.fleet.registration.clone())
        else {
            return;
        };
        self.sequence += 1;
        publish_registration::<Self>(
            &self.node,
            self.sequence,
            &plan.subject,
            client,
            &self.fleet,
            ctx,
        );
    }
}

/// Publishes registration number `sequence` of `node` from within an actor context.
pub(super) fn publish_registration<A>(
    node: &EmulatedNode,
    sequence: u64,
    subject: &str,
    client: Rc<Client>,
    fleet: &Arc<FleetShared>,
    ctx: &mut A::Context,
) where
    A: Actor,
    A::Context: AsyncContext<A>,
{
    let payload = match registration::encode(node, sequence) {
        Ok(p) => p,
        Err(error) => {
            warn!(identity = node.identity(), %error, "Cannot encode registration.");
            return;
        }
    };
    let metrics = fleet.metrics.clone();
    let subject = subject.to_owned();
    ctx.spawn(actix::fut::wrap_future::<_, A>(async move {
        match client.publish(subject, payload.into()).await {
            Ok(()) => metrics.registrations.inc(),
            Err(_) => metrics.publish_errors.inc(),
        };
    }));
}

/// Schedules the periodic registration of an actor: first after a random splay (or at once),
/// then every `interval`.
pub(super) fn schedule_registration<A, F>(fleet: &FleetShared, ctx: &mut A::Context, mut tick: F)
where
    A: Actor,
    A::Context: AsyncContext<A>,
    F: FnMut(&mut A, &mut A::Context) + Clone + 'static,
{
    let Some(plan) = fleet.registration.clone() else {
        return;
    };
    let splay = plan.first_delay();
    let mut again = tick.clone();
    ctx.run_later(splay, move |act, ctx| {
        tick(act, ctx);
        ctx.run_interval(plan.interval, move |act, ctx| again(act, ctx));
    });
}

impl Actor for EmulatedNodeActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(16);
        let fleet = self.fleet.clone();
        let url = self.url.clone();
        let subjects = self.node.subjects();
        let name = format!("choir-emulator-{}", self.node.identity());
        let setup = connect_and_subscribe(fleet, url, name, subjects);
        // Spawned, not waited on: a Shutdown still reaches a daemon that is connecting.
        ctx.spawn(setup.into_actor(self).map(|(client, messages), act, ctx| {
            act.fleet.metrics.connected.inc();
            act.fleet.metrics.started.inc();
            act.client = Some(Rc::new(client));
            ctx.add_stream(messages);
            schedule_registration::<Self, _>(&act.fleet.clone(), ctx, |act, ctx| act.register(ctx));
        }));
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if self.client.take().is_some() {
            self.fleet.metrics.started.dec();
            self.fleet.metrics.connected.dec();
        }
    }
}

/// At shutdown the daemon stops taking requests, flushes the replies and registrations it
/// published (bounded by `FLUSH_WAIT`, 2 s) and answers; a daemon still connecting just stops.
impl Handler<Shutdown> for EmulatedNodeActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) -> Self::Result {
        let client = self.client.clone();
        ctx.stop();
        Box::pin(flush_at_shutdown(client))
    }
}

/// Flushes `client`, if connected, within [`FLUSH_WAIT`].
pub(super) async fn flush_at_shutdown(client: Option<Rc<Client>>) {
    if let Some(client) = client {
        if let Ok(Err(error)) = tokio::time::timeout(FLUSH_WAIT, client.flush()).await {
            debug!(%error, "Emulated daemon cannot flush at shutdown.");
        }
    }
}

/// Connects to `url` (holding a slot of the fleet's connect semaphore during each attempt)
/// and subscribes `subjects`, retrying with backoff until both work.
pub(super) async fn connect_and_subscribe(
    fleet: Arc<FleetShared>,
    url: Arc<str>,
    name: String,
    subjects: Vec<String>,
) -> (Client, Subscriptions) {
    let mut backoff = Backoff::SETUP;
    loop {
        let permit = fleet.connect_slots.acquire().await;
        let connected =
            super::connect::connect(&fleet.settings, &url, name.clone(), fleet.metrics.clone())
                .await;
        let result = match connected {
            Ok(client) => subscribe(client, &subjects).await,
            Err(e) => Err(Chain(&e).to_string()),
        };
        drop(permit);
        match result {
            Ok(ok) => return ok,
            Err(error) => {
                fleet.metrics.connect_failures.inc();
                let delay = backoff.next_delay();
                debug!(%url, %error, retry_in = ?delay, "Emulator cannot connect yet.");
                actix_rt::time::sleep(delay).await;
            }
        }
    }
}

/// Subscribes `subjects` on `client` and merges them into one stream; flushes so the server
/// has them all before the daemon counts as started.
pub(super) async fn subscribe(
    client: Client,
    subjects: &[String],
) -> Result<(Client, Subscriptions), String> {
    let mut subs = Vec::with_capacity(subjects.len());
    for subject in subjects {
        subs.push(
            client
                .subscribe(subject.clone())
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    client.flush().await.map_err(|e| e.to_string())?;
    Ok((client, Subscriptions::new(subs)))
}

impl StreamHandler<Message> for EmulatedNodeActor {
    fn handle(&mut self, msg: Message, ctx: &mut Self::Context) {
        let metrics = &self.fleet.metrics;
        metrics.messages.inc();
        let audit = self.fleet.audit.is_some();
        let node = &self.node;
        // The first daemon of this thread to see a request decodes it; the others share it.
        let handled = with_scratch(|scratch| {
            let prepared = scratch.requests.prepare(&msg.payload)?;
            let incoming = Incoming::new(&msg.subject, prepared, unix_now())?;
            node.respond(&incoming, audit, &mut scratch.encoder)
        });
        node.record(&handled);
        match handled {
            Ok(out) => {
                if let Some(client) = self.client.clone() {
                    ctx.spawn(send_reply(&self.fleet, client, out).into_actor(self));
                }
            }
            Err(reason) => metrics.drop_for(reason),
        }
    }
}
