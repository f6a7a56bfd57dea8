//! `SharedLinkActor`: many emulated daemons multiplexed over one NATS connection.
//!
//! Less realistic than dedicated connections (the broker sees one connection and one set of
//! broadcast subscriptions per link instead of one per daemon), but it fits fleets larger
//! than the open-file limit. A broadcast is decoded once and answered by every daemon of the
//! link; a directed request reaches the one daemon subscribed to its `<c>.node.<identity>`.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use actix::prelude::*;
use async_nats::{Client, Message};

use super::daemon::{
    connect_and_subscribe, flush_at_shutdown, publish_registration, schedule_registration,
};
use super::fleet_shared::{send_reply, FleetShared};
use super::node::Target;
use super::request_cache::with_scratch;
use super::{EmulatedNode, Incoming};
use crate::protocol::{subject, unix_now};
use crate::supervision::Shutdown;

/// One shared connection and the daemons it carries.
pub struct SharedLinkActor {
    index: usize,
    nodes: Vec<EmulatedNode>,
    by_identity: HashMap<String, usize>,
    sequences: Vec<u64>,
    url: Arc<str>,
    fleet: Arc<FleetShared>,
    client: Option<Rc<Client>>,
}

impl SharedLinkActor {
    /// Link number `index` carrying `nodes`, connecting to `url`.
    pub(super) fn new(
        index: usize,
        nodes: Vec<EmulatedNode>,
        url: Arc<str>,
        fleet: Arc<FleetShared>,
    ) -> Self {
        let by_identity = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.identity().to_owned(), i))
            .collect();
        Self {
            index,
            sequences: vec![0; nodes.len()],
            nodes,
            by_identity,
            url,
            fleet,
            client: None,
        }
    }

    fn subjects(&self) -> Vec<String> {
        let Some(first) = self.nodes.first() else {
            return Vec::new();
        };
        let profile = first.profile();
        let mut out = Vec::new();
        for c in &profile.collectives {
            for a in &profile.agents {
                out.push(subject::broadcast_agent(c, a));
            }
            for n in &self.nodes {
                out.push(subject::node(c, n.identity()));
            }
        }
        out
    }

    fn register(&mut self, index: usize, ctx: &mut Context<Self>) {
        let (Some(client), Some(plan), Some(node)) = (
            self.client.clone(),
            self.fleet.registration.clone(),
            self.nodes.get(index),
        ) else {
            return;
        };
        let Some(seq) = self.sequences.get_mut(index) else {
            return;
        };
        *seq += 1;
        publish_registration::<Self>(node, *seq, &plan.subject, client, &self.fleet, ctx);
    }
}

impl Actor for SharedLinkActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(16);
        let setup = connect_and_subscribe(
            self.fleet.clone(),
            self.url.clone(),
            format!("choir-emulator-shared-{}", self.index),
            self.subjects(),
        );
        // Spawned, not waited on: a Shutdown still reaches a link that is connecting.
        ctx.spawn(setup.into_actor(self).map(|(client, messages), act, ctx| {
            act.fleet.metrics.connected.inc();
            act.fleet
                .metrics
                .started
                .inc_by(i64::try_from(act.nodes.len()).unwrap_or(i64::MAX));
            act.client = Some(Rc::new(client));
            ctx.add_stream(messages);
            for i in 0..act.nodes.len() {
                schedule_registration::<Self, _>(&act.fleet.clone(), ctx, move |act, ctx| {
                    act.register(i, ctx)
                });
            }
        }));
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if self.client.take().is_some() {
            let n = i64::try_from(self.nodes.len()).unwrap_or(i64::MAX);
            self.fleet.metrics.started.dec_by(n);
            self.fleet.metrics.connected.dec();
        }
    }
}

/// At shutdown the link stops taking requests for its daemons, flushes what it published
/// (bounded) and answers; a link still connecting just stops.
impl Handler<Shutdown> for SharedLinkActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) -> Self::Result {
        let client = self.client.clone();
        ctx.stop();
        Box::pin(flush_at_shutdown(client))
    }
}

impl StreamHandler<Message> for SharedLinkActor {
    fn handle(&mut self, msg: Message, ctx: &mut Self::Context) {
        let metrics = self.fleet.metrics.clone();
        let Some(client) = self.client.clone() else {
            return;
        };
        let audit = self.fleet.audit.is_some();
        let incoming = match with_scratch(|scratch| {
            let prepared = scratch.requests.prepare(&msg.payload)?;
            Incoming::new(&msg.subject, prepared, unix_now())
        }) {
            Ok(incoming) => incoming,
            Err(reason) => {
                metrics.messages.inc();
                metrics.drop_for(reason);
                return;
            }
        };
        let targets: Vec<&EmulatedNode> = match &incoming.target {
            Target::Node(identity) => self
                .by_identity
                .get(identity)
                .and_then(|i| self.nodes.get(*i))
                .into_iter()
                .collect(),
            Target::Broadcast | Target::Other => self.nodes.iter().collect(),
        };
        metrics.messages.inc_by(targets.len() as u64);
        let mut replies = Vec::new();
        with_scratch(|scratch| {
            for node in targets {
                let handled = node.respond(&incoming, audit, &mut scratch.encoder);
                node.record(&handled);
                match handled {
                    Ok(out) => replies.push(send_reply(&self.fleet, client.clone(), out)),
                    Err(reason) => metrics.drop_for(reason),
                }
            }
        });
        if !replies.is_empty() {
            ctx.spawn(
                async move {
                    for reply in replies {
                        reply.await;
                    }
                }
                .into_actor(self),
            );
        }
    }
}
