//! [`AgentServer`]: the actor that is the agent's Choria server. It subscribes what a Choria
//! server subscribes for its agents (`discovery`, `rpcutil`, `emulator`, `nats`) and
//! answers through the emulator's daemon core ([`EmulatedNode`]): the same decoding, TTL,
//! verification (when secure), collective and filter checks and reply encoding as an emulated
//! daemon. `discovery` and `rpcutil` are the emulator's agents; `emulator` and `nats` go to
//! the [`Manager`], each request in a task of its own so a slow start does not hold up
//! discovery.

use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use async_nats::{Client, Message};
use choir_actors::emulator::{DropReason, EmulatedNode, Incoming};
use choir_actors::protocol::{unix_now, ReplyEncoder};
use tracing::debug;

use super::actions::{Manager, AGENTS};

/// Requests refused without an answer, counted.
#[derive(Debug, Default)]
pub struct Dropped(AtomicU64);

impl Dropped {
    /// How many so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The agent's Choria server.
pub struct AgentServer {
    node: EmulatedNode,
    client: Client,
    manager: Rc<Manager>,
    dropped: Arc<Dropped>,
}

impl AgentServer {
    /// A server answering as `node` on `client`, the management agents run by `manager`.
    pub fn new(
        node: EmulatedNode,
        client: Client,
        manager: Rc<Manager>,
        dropped: Arc<Dropped>,
    ) -> Self {
        Self {
            node,
            client,
            manager,
            dropped,
        }
    }

    fn drop_request(&self, reason: DropReason) {
        self.dropped.0.fetch_add(1, Ordering::Relaxed);
        debug!(?reason, "Request not answered.");
    }
}

impl Actor for AgentServer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(Duration::from_secs(1), |act, _| act.manager.reap());
    }
}

impl StreamHandler<Message> for AgentServer {
    fn handle(&mut self, msg: Message, ctx: &mut Self::Context) {
        let incoming = match Incoming::decode(&msg.subject, &msg.payload, unix_now()) {
            Ok(incoming) => incoming,
            Err(reason) => return self.drop_request(reason),
        };
        if let Err(reason) = self.node.admit(&incoming) {
            return self.drop_request(reason);
        }
        let agent = incoming.decoded().request.envelope.agent.clone();
        if !AGENTS.contains(&agent.as_str()) {
            match self
                .node
                .respond(&incoming, false, &mut ReplyEncoder::new())
            {
                Ok(out) => {
                    let client = self.client.clone();
                    ctx.spawn(
                        async move {
                            let _ = client.publish(out.subject, out.payload.into()).await;
                        }
                        .into_actor(self),
                    );
                }
                Err(reason) => self.drop_request(reason),
            }
            return;
        }
        let Some(request) = incoming.prepared.input.rpc().cloned() else {
            return self.drop_request(DropReason::BadPayload);
        };
        let (node, client, manager) =
            (self.node.clone(), self.client.clone(), self.manager.clone());
        let dropped = self.dropped.clone();
        ctx.spawn(
            async move {
                let reply = manager.call(&agent, &request).await;
                let body = match reply.to_json() {
                    Ok(body) => body,
                    Err(_) => {
                        dropped.0.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                };
                match node.reply_with(&incoming, &body, false, &mut ReplyEncoder::new()) {
                    Ok(out) => {
                        let _ = client.publish(out.subject, out.payload.into()).await;
                    }
                    Err(_) => {
                        dropped.0.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            .into_actor(self),
        );
    }
}
