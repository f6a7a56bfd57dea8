//! Supervision beyond what actix gives.
//!
//! actix's `Supervisor` restarts an actor that *stopped itself* (the same struct, a fresh
//! context), which is how every choir actor recovers from an error. A *panic*, however, closes
//! the mailbox for good. The [`WatchdogActor`] polls the actors it watches and re-creates any
//! whose mailbox has closed, through the factory it was given, and stores the new address in
//! the actor's [`ActorSlot`] so every holder of the slot reaches the new actor.
//!
//! The lifecycle rules every actor shares live here too:
//!
//! - [`backoff`]: [`Backoff`], the one retry delay policy (initial, cap, factor, jitter) with
//!   its named presets, used by every retry loop;
//! - [`restarts`]: [`Restarts`], the restart-with-backoff state machine of actors that stop
//!   themselves on an error and are restarted by their actix `Supervisor`;
//! - [`shutdown`]: [`Shutdown`], the one "stop for good" command the node sends at shutdown.

pub mod backoff;
pub mod restarts;
pub mod shutdown;

pub use backoff::{Backoff, Jitter};
pub use restarts::Restarts;
pub use shutdown::{shutdown_all, Shutdown};

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use parking_lot::RwLock;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tracing::{error, info};

use crate::metrics::MetricsRegistry;

/// The current address of a watched actor, shared by everyone who talks to it.
pub struct ActorSlot<A: Actor> {
    name: Arc<str>,
    addr: Arc<RwLock<Addr<A>>>,
}

impl<A: Actor> Clone for ActorSlot<A> {
    fn clone(&self) -> Self {
        Self {
            name: Arc::clone(&self.name),
            addr: Arc::clone(&self.addr),
        }
    }
}

impl<A: Actor> ActorSlot<A> {
    /// A slot named `name` (as in logs and metrics, e.g. `network/region`) holding `addr`.
    pub fn new(name: impl Into<Arc<str>>, addr: Addr<A>) -> Self {
        Self {
            name: name.into(),
            addr: Arc::new(RwLock::new(addr)),
        }
    }

    /// The actor's name, e.g. `network/region`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name and the current address, as [`shutdown_all`] takes them.
    pub fn named(&self) -> (String, Addr<A>) {
        (self.name.to_string(), self.get())
    }

    /// The current address (a cheap clone).
    pub fn get(&self) -> Addr<A> {
        self.addr.read().clone()
    }

    /// Whether the current actor's mailbox is still open.
    pub fn connected(&self) -> bool {
        self.addr.read().connected()
    }

    fn replace(&self, addr: Addr<A>) {
        *self.addr.write() = addr;
    }
}

/// Something the watchdog can check and bring back.
pub trait Watched: Send {
    /// The name used in logs and metrics, e.g. `network/region`.
    fn name(&self) -> &str;
    /// Whether the actor's mailbox is still open.
    fn alive(&self) -> bool;
    /// Creates the actor again and publishes its new address.
    fn respawn(&mut self);
    /// Test-only (feature `fault-injection`): asks the actor to panic; false when it cannot.
    #[cfg(feature = "fault-injection")]
    fn inject_panic(&self) -> bool;
}

/// Whether this build can make a watched actor panic on request: only with the test-only
/// cargo feature `fault-injection`, which choir's tests turn on and no normal build does.
pub const FAULT_INJECTION: bool = cfg!(feature = "fault-injection");

/// Test-only command: panic inside the handler, as a bug would. Only sent when the build has
/// the `fault-injection` feature (see [`FAULT_INJECTION`]); actors that accept it panic only
/// in such a build.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct InjectPanic;

/// A watched actor: its slot and the factory that creates it.
pub struct WatchedActor<A: Actor> {
    name: String,
    slot: ActorSlot<A>,
    factory: Box<dyn Fn() -> Addr<A> + Send>,
    #[cfg(feature = "fault-injection")]
    injector: Option<fn(&Addr<A>)>,
}

impl<A: Actor> WatchedActor<A> {
    /// Starts the actor with `factory` and returns the watch entry plus its slot.
    pub fn start(
        name: impl Into<String>,
        factory: impl Fn() -> Addr<A> + Send + 'static,
    ) -> (Self, ActorSlot<A>) {
        let name = name.into();
        let slot = ActorSlot::new(name.as_str(), factory());
        let watched = Self {
            name,
            slot: slot.clone(),
            factory: Box::new(factory),
            #[cfg(feature = "fault-injection")]
            injector: None,
        };
        (watched, slot)
    }

    /// Lets [`PanicWatched`] reach this actor with [`InjectPanic`]; a no-op unless the build
    /// has the test-only `fault-injection` feature.
    #[must_use]
    pub fn with_fault_injection(self) -> Self
    where
        A: Handler<InjectPanic>,
        A::Context: actix::dev::ToEnvelope<A, InjectPanic>,
    {
        #[cfg(feature = "fault-injection")]
        {
            let mut this = self;
            this.injector = Some(|addr: &Addr<A>| addr.do_send(InjectPanic));
            this
        }
        #[cfg(not(feature = "fault-injection"))]
        self
    }
}

impl<A: Actor> Watched for WatchedActor<A> {
    fn name(&self) -> &str {
        &self.name
    }

    fn alive(&self) -> bool {
        self.slot.connected()
    }

    fn respawn(&mut self) {
        self.slot.replace((self.factory)());
    }

    #[cfg(feature = "fault-injection")]
    fn inject_panic(&self) -> bool {
        match self.injector {
            Some(inject) => {
                inject(&self.slot.get());
                true
            }
            None => false,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActorLabel {
    actor: String,
}

/// Re-creates watched actors whose mailbox closed (a panic, or a stop with no supervisor).
pub struct WatchdogActor {
    watched: Vec<Box<dyn Watched>>,
    interval: Duration,
    respawns: Family<ActorLabel, Counter>,
}

impl WatchdogActor {
    /// A watchdog checking every `interval`, counting respawns in `metrics` as
    /// `choir_actor_respawns_total{actor}`.
    pub fn new(interval: Duration, metrics: &MetricsRegistry) -> Self {
        let respawns = Family::<ActorLabel, Counter>::default();
        metrics.register(
            "choir_actor_respawns",
            "Actors re-created by the watchdog after their mailbox closed (a panic)",
            respawns.clone(),
        );
        Self {
            watched: Vec::new(),
            interval,
            respawns,
        }
    }

    /// A watchdog that counts into a private registry (for tests and tools).
    pub fn unregistered(interval: Duration) -> Self {
        Self::new(interval, &MetricsRegistry::new())
    }

    fn check(&mut self) {
        for watched in &mut self.watched {
            if !watched.alive() {
                error!(
                    actor = watched.name(),
                    "Actor mailbox closed (it panicked); re-creating it."
                );
                watched.respawn();
                self.respawns
                    .get_or_create(&ActorLabel {
                        actor: watched.name().to_owned(),
                    })
                    .inc();
            }
        }
    }
}

impl Actor for WatchdogActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        info!(interval = ?self.interval, "Watchdog started.");
        ctx.run_interval(self.interval, |act, _| act.check());
    }
}

/// At node shutdown, first of all: the watchdog stops checking, so no actor that the
/// shutdown stops is re-created behind it.
impl Handler<Shutdown> for WatchdogActor {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        info!("Watchdog stopped.");
        ctx.stop();
    }
}

/// Command: watch one more actor.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Watch(pub Box<dyn Watched>);

impl Handler<Watch> for WatchdogActor {
    type Result = ();

    fn handle(&mut self, msg: Watch, _: &mut Self::Context) {
        self.watched.push(msg.0);
    }
}

/// Query: how many times each watched actor was re-created.
#[derive(Message)]
#[rtype(result = "Vec<(String, u64)>")]
pub struct GetRespawns;

impl Handler<GetRespawns> for WatchdogActor {
    type Result = MessageResult<GetRespawns>;

    fn handle(&mut self, _: GetRespawns, _: &mut Self::Context) -> Self::Result {
        MessageResult(
            self.watched
                .iter()
                .map(|w| {
                    let label = ActorLabel {
                        actor: w.name().to_owned(),
                    };
                    (
                        w.name().to_owned(),
                        self.respawns.get_or_create(&label).get(),
                    )
                })
                .collect(),
        )
    }
}

/// Test-only command to the watchdog: make the watched actor named `0` (e.g.
/// `adapter/registration/0`) panic. Answers whether the request reached such an actor; always
/// `false` in a build without the `fault-injection` feature.
#[derive(Debug, Message)]
#[rtype(result = "bool")]
pub struct PanicWatched(pub String);

impl Handler<PanicWatched> for WatchdogActor {
    type Result = bool;

    #[cfg(feature = "fault-injection")]
    fn handle(&mut self, msg: PanicWatched, _: &mut Self::Context) -> bool {
        let found = self
            .watched
            .iter()
            .find(|w| w.name() == msg.0)
            .is_some_and(|w| w.inject_panic());
        tracing::warn!(
            actor = %msg.0,
            found,
            "Fault injection: asked a watched actor to panic."
        );
        found
    }

    #[cfg(not(feature = "fault-injection"))]
    fn handle(&mut self, _: PanicWatched, _: &mut Self::Context) -> bool {
        false
    }
}
