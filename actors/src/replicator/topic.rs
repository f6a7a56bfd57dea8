//! `TopicReplicatorActor`: one per `[replicators.X]`. It gets the clients of its two
//! networks, makes sure the target stream (and, queued, the shared consumer) exists, starts
//! its workers on their own arbiters, and owns the sampling tracker: scrubbing it on a timer,
//! persisting it, and publishing sender advisories from a bounded queue.
//!
//! With `[replicators.X.ha]` the workers run only while this node leads the replicator's
//! election ([`super::election`]): a standby holds no worker, no source consumer and no
//! pull request; it merges the leader's sampling gossip ([`super::gossip`]) into its tracker
//! and campaigns every `TTL / 4`. Losing the election (a refused or overdue renewal) stops the
//! workers' arbiters at once.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use async_nats::jetstream;
use async_nats::{Client, HeaderMap};
use futures::StreamExt;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use super::advisory::Advisory;
use super::choria::heartbeat::{heartbeat, hostname};
use super::choria::SrAdvisory;
use super::context::{WorkerKind, WorkerShared};
use super::election::{Ballot, Campaign, Change, Outcome};
use super::gate::Gate;
use super::gossip::{self, Seen};
use super::metrics::ReplicatorStats;
use super::sampling::{write_state_file, SamplingTracker, SenderEvent};
use super::settings::{HaSettings, Mode, ReplicatorSettings};
use super::setup;
use super::setup_patience::{Report, SetupPatience};
use super::worker::ReplicaWorkerActor;
use crate::connection::{GetClient, NetworkActor, NetworkSettings};
use crate::error_chain::Chain;
use crate::supervision::{shutdown_all, ActorSlot, Backoff, Shutdown};

/// Capacity of the advisory queue; advisories beyond it are counted as dropped.
const ADVISORY_QUEUE: usize = 65_536;

/// Capacity of the gossip queue; records beyond it are counted as dropped.
const GOSSIP_QUEUE: usize = 65_536;

/// A replicator's two networks: the node's shared connections (setup, lag, advisories,
/// heartbeats) and the settings its workers open their own connections with.
#[derive(Clone)]
pub struct ReplicatorNetworks {
    /// The source network's actor.
    pub source: ActorSlot<NetworkActor>,
    /// The target network's actor.
    pub target: ActorSlot<NetworkActor>,
    /// How workers connect to the source network.
    pub source_settings: Arc<NetworkSettings>,
    /// How workers connect to the target network.
    pub target_settings: Arc<NetworkSettings>,
    /// The network holding the election bucket (`[replicators.X.ha]`); the source when
    /// `None`.
    pub election: Option<ActorSlot<NetworkActor>>,
}

/// One replicator.
pub struct TopicReplicatorActor {
    settings: Arc<ReplicatorSettings>,
    networks: ReplicatorNetworks,
    stats: ReplicatorStats,
    tracker: Option<Arc<Mutex<SamplingTracker>>>,
    events: mpsc::Sender<SenderEvent>,
    pending_events: Option<mpsc::Receiver<SenderEvent>>,
    workers: Vec<Addr<ReplicaWorkerActor>>,
    arbiters: Vec<Arbiter>,
    caught_up: bool,
    /// Stopped for good by [`Shutdown`]: a setup that finishes later starts no workers.
    stopped: bool,
    /// HA: the election's KV side, once the bucket is open.
    ballot: Option<Ballot>,
    /// HA: this node's role.
    campaign: Option<Campaign>,
    /// HA: an election request is in flight.
    voting: bool,
    /// HA with sampling: sampled copies to gossip, and the queue's receiving end until its
    /// publisher starts.
    gossip: Option<mpsc::Sender<Seen>>,
    pending_gossip: Option<mpsc::Receiver<Seen>>,
    /// The node's shared source connection, once set up.
    source: Option<Client>,
}

impl TopicReplicatorActor {
    /// A replicator copying between `networks`; the tracker is loaded from its state file
    /// when sampling is on.
    pub fn new(
        settings: ReplicatorSettings,
        networks: ReplicatorNetworks,
        stats: ReplicatorStats,
    ) -> Self {
        let tracker = settings.sampling.as_ref().map(|sampling| {
            let tracker = match SamplingTracker::load(&sampling.state_file, sampling.config.clone()) {
                Ok(t) => {
                    if !t.is_empty() {
                        info!(replicator = %settings.name, senders = t.len(), file = %sampling.state_file.display(), "Loaded the sampling tracker.");
                    }
                    t
                }
                Err(e) => {
                    warn!(replicator = %settings.name, error = %Chain(&e), file = %sampling.state_file.display(), "Cannot load the sampling tracker; starting empty.");
                    SamplingTracker::new(sampling.config.clone()).unwrap_or_else(|_| {
                        // validated config: cannot fail; fall back to a one-second age
                        #[allow(clippy::expect_used)]
                        SamplingTracker::new(super::sampling::SamplingConfig::new(Duration::from_secs(1)))
                            .expect("a one-second sampling config is valid")
                    })
                }
            };
            Arc::new(Mutex::new(tracker))
        });
        let (events, pending_events) = mpsc::channel(ADVISORY_QUEUE);
        let (gossip, pending_gossip) = if settings.ha.is_some() && settings.sampling.is_some() {
            let (tx, rx) = mpsc::channel(GOSSIP_QUEUE);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        Self {
            settings: Arc::new(settings),
            networks,
            stats,
            tracker,
            events,
            pending_events: Some(pending_events),
            workers: Vec::new(),
            arbiters: Vec::new(),
            caught_up: false,
            stopped: false,
            ballot: None,
            campaign: None,
            voting: false,
            gossip,
            pending_gossip,
            source: None,
        }
    }

    /// HA, ordered: deletes this node's own source consumer (it is per node, see
    /// [`ReplicatorSettings::durable_name`]) when it stands by, so no consumer of a standby
    /// is left on the source. A queued replicator's consumer is shared and stays.
    fn delete_own_consumer(&self, ctx: &mut Context<Self>) {
        let (Some(source), Some(_), Mode::Ordered) =
            (self.source.clone(), &self.settings.ha, self.settings.mode)
        else {
            return;
        };
        let settings = self.settings.clone();
        ctx.spawn(
            async move {
                let js = jetstream::new(source);
                if let Ok(stream) = js.get_stream(&settings.source_stream).await {
                    if stream.delete_consumer(&settings.durable_name()).await.is_ok() {
                        info!(replicator = %settings.name, consumer = %settings.durable_name(), "Deleted this standby's source consumer.");
                    }
                }
            }
            .into_actor(self),
        );
    }

    /// Whether this node copies: always without HA, while it leads with HA.
    fn copying(&self) -> bool {
        self.settings.ha.is_none() || self.campaign.as_ref().is_some_and(Campaign::is_leader)
    }

    /// Stops the workers (their arbiters, connections and pull requests).
    fn stop_workers(&mut self) {
        for arbiter in self.arbiters.drain(..) {
            arbiter.stop();
        }
        self.workers.clear();
    }

    /// HA: opens the election bucket on the election network (retrying), subscribes to the
    /// sampling gossip, then campaigns every `TTL / 4`.
    fn start_election(&mut self, ha: HaSettings, ctx: &mut Context<Self>) {
        let slot = self
            .networks
            .election
            .clone()
            .unwrap_or_else(|| self.networks.source.clone());
        let key = self.settings.election_key();
        let gossip_subject = self
            .gossip
            .as_ref()
            .map(|_| gossip::subject(&self.settings.source_stream, &self.settings.name));
        let name = self.settings.name.clone();
        let open = async move {
            let mut attempt = 0u32;
            let mut backoff = Backoff::SETUP;
            loop {
                if let Some(client) = client(&slot).await {
                    let subscribed = match &gossip_subject {
                        Some(subject) => client.subscribe(subject.clone()).await.map(Some),
                        None => Ok(None),
                    };
                    match (
                        Ballot::open(client.clone(), &ha, key.clone()).await,
                        subscribed,
                    ) {
                        (Ok(ballot), Ok(subscriber)) => return (ballot, client, subscriber, ha),
                        (Err(e), _) => {
                            if attempt.is_multiple_of(10) {
                                warn!(replicator = %name, error = %e, "Cannot open the election bucket yet; retrying.");
                            }
                        }
                        (_, Err(e)) => {
                            if attempt.is_multiple_of(10) {
                                warn!(replicator = %name, error = %e, "Cannot subscribe to the sampling gossip yet; retrying.");
                            }
                        }
                    }
                }
                actix_rt::time::sleep(backoff.next_delay()).await;
                attempt = attempt.saturating_add(1);
            }
        };
        ctx.spawn(
            open.into_actor(self)
                .map(|(ballot, client, subscriber, ha), act, ctx| {
                    if ballot.ttl() != ha.ttl {
                        warn!(replicator = %act.settings.name, bucket = %ha.bucket, configured = %humantime::format_duration(ha.ttl), bucket_ttl = %humantime::format_duration(ballot.ttl()), "The election bucket exists with another TTL; using the bucket's.");
                    }
                    let campaign = Campaign::new(ballot.ttl());
                    let interval = campaign.interval();
                    act.start_gossip(client, subscriber, ha.identity.clone(), ctx);
                    act.ballot = Some(ballot);
                    act.campaign = Some(campaign);
                    act.stats.leader.set(0);
                    act.delete_own_consumer(ctx);
                    info!(replicator = %act.settings.name, node = %ha.identity, bucket = %ha.bucket, key = %act.settings.election_key(), "Standing by in the replicator's election.");
                    act.vote(ctx);
                    ctx.run_interval(interval, |act, ctx| act.vote(ctx));
                }),
        );
    }

    /// HA: one election step: step down when the lease ran out, then campaign or renew
    /// (one request at a time).
    fn vote(&mut self, ctx: &mut Context<Self>) {
        let Some(campaign) = self.campaign.as_mut() else {
            return;
        };
        if campaign.expire(Instant::now()) == Change::Lost {
            self.lost("no renewal succeeded within the lease", ctx);
        }
        let (Some(campaign), Some(ballot)) = (self.campaign.as_ref(), self.ballot.clone()) else {
            return;
        };
        if self.voting {
            return;
        }
        self.voting = true;
        let attempt = campaign.attempt();
        let within = campaign.interval().saturating_mul(2);
        let sent = Instant::now();
        ctx.spawn(
            async move { ballot.run(attempt, within).await }
                .into_actor(self)
                .map(move |outcome, act, ctx| {
                    act.voting = false;
                    let leader = act.copying();
                    let Some(campaign) = act.campaign.as_mut() else {
                        return;
                    };
                    if let Outcome::Failed(reason) = &outcome {
                        if leader {
                            warn!(replicator = %act.settings.name, %reason, "Cannot renew the replicator's leadership; retrying.");
                        } else {
                            debug!(replicator = %act.settings.name, %reason, "Campaign request failed.");
                        }
                    }
                    match campaign.record(outcome, sent) {
                        Change::Won => act.won(),
                        Change::Lost => act.lost("another node holds the election key", ctx),
                        Change::None => {}
                    }
                }),
        );
    }

    fn won(&mut self) {
        self.stats.leader.set(1);
        self.stats.elections.inc();
        info!(replicator = %self.settings.name, "Won the replicator's election; copying.");
        self.start_workers();
    }

    fn lost(&mut self, reason: &str, ctx: &mut Context<Self>) {
        self.stop_workers();
        self.stats.leader.set(0);
        self.delete_own_consumer(ctx);
        warn!(replicator = %self.settings.name, %reason, "Lost the replicator's election; stopped copying.");
    }

    /// HA with sampling: publishes this node's sampled copies and merges the others' into
    /// the tracker.
    fn start_gossip(
        &mut self,
        client: Client,
        subscriber: Option<async_nats::Subscriber>,
        identity: String,
        ctx: &mut Context<Self>,
    ) {
        let subject = gossip::subject(&self.settings.source_stream, &self.settings.name);
        if let Some(mut queue) = self.pending_gossip.take() {
            let (client, stats) = (client.clone(), self.stats.clone());
            // Not tied to this actor's context: the queue outlives a restart of the actor.
            actix_rt::spawn(async move {
                while let Some(seen) = queue.recv().await {
                    let Ok(body) = seen.encode() else {
                        stats.gossip("failed");
                        continue;
                    };
                    match client.publish(subject.clone(), body.into()).await {
                        Ok(()) => stats.gossip("sent"),
                        Err(_) => stats.gossip("failed"),
                    }
                }
            });
        }
        let (Some(mut subscriber), Some(tracker)) = (subscriber, self.tracker.clone()) else {
            return;
        };
        let stats = self.stats.clone();
        let merge = async move {
            while let Some(message) = subscriber.next().await {
                stats.gossip("received");
                let Ok(seen) = Seen::decode(&message.payload) else {
                    stats.gossip("invalid");
                    continue;
                };
                if seen.node == identity {
                    continue;
                }
                tracker
                    .lock()
                    .merge_copy(&seen.sender, seen.copied_ms, seen.seq, seen.size);
                stats.gossip("merged");
            }
        };
        ctx.spawn(merge.into_actor(self));
    }

    fn start_workers(&mut self) {
        if self.stopped {
            // Shut down: an election won or a setup finished afterwards starts nothing.
            return;
        }
        let shared = Arc::new(WorkerShared {
            settings: self.settings.clone(),
            source: self.networks.source_settings.clone(),
            target: self.networks.target_settings.clone(),
            gate: {
                let gate = Gate::new(
                    self.settings.clone(),
                    self.tracker.clone(),
                    self.events.clone(),
                    self.stats.clone(),
                );
                match (&self.gossip, &self.settings.ha) {
                    (Some(gossip), Some(ha)) => {
                        gate.with_gossip(ha.identity.clone(), gossip.clone())
                    }
                    _ => gate,
                }
            },
            stats: self.stats.clone(),
        });
        let kinds: Vec<WorkerKind> = match self.settings.mode {
            Mode::Ordered => vec![WorkerKind::Ordered],
            Mode::Queued { workers } => (0..workers.get()).map(WorkerKind::Queued).collect(),
        };
        for kind in kinds {
            let arbiter = Arbiter::new();
            let shared = shared.clone();
            let addr = Supervisor::start_in_arbiter(&arbiter.handle(), move |_| {
                ReplicaWorkerActor::new(shared, kind)
            });
            self.workers.push(addr);
            self.arbiters.push(arbiter);
        }
        info!(
            replicator = %self.settings.name,
            mode = ?self.settings.mode,
            source = %self.settings.source_stream,
            target = %self.settings.target_stream,
            "Replicator started."
        );
    }

    /// Publishes advisories from the queue: choir's own on the target network, or (with
    /// `compat = "choria"`) the Choria SR's `io.choria.sr.v2.age_advisory` on the source
    /// network, where the SR publishes them.
    fn start_advisories(&mut self, source: Client, target: Client) {
        let (Some(mut events), Some(advisories), Some(sampling)) = (
            self.pending_events.take(),
            self.settings.advisories.clone(),
            self.settings.sampling.as_ref(),
        ) else {
            return;
        };
        let name = self.settings.name.clone();
        let field = sampling.inspector.field_name().into_owned();
        let age = sampling.config.age;
        let stats = self.stats.clone();
        let choria = self.settings.choria.clone();
        let client = if choria.is_some() { source } else { target };
        let js = jetstream::new(client.clone());
        // Not tied to this actor's context: the queue outlives a restart of the actor.
        actix_rt::spawn(async move {
            while let Some(event) = events.recv().await {
                let now = SystemTime::now();
                let made = match &choria {
                    Some(c) => {
                        let advisory = SrAdvisory::new(&event, &field, &c.site, &name, now);
                        advisory.to_json().map(|body| (body, advisory.event_id))
                    }
                    None => {
                        let advisory = Advisory::new(&event, &field, age, &name, now);
                        advisory.to_json().map(|body| (body, advisory.event_id))
                    }
                };
                let subject = advisories.template.render(event.kind, &event.sender);
                let Ok((body, event_id)) = made else {
                    continue;
                };
                let sent = if advisories.reliable {
                    let mut headers = HeaderMap::new();
                    headers.insert(super::envelope::MSG_ID, event_id.as_str());
                    match js.publish_with_headers(subject, headers, body.into()).await {
                        Ok(ack) => ack.await.is_ok(),
                        Err(_) => false,
                    }
                } else {
                    client.publish(subject, body.into()).await.is_ok()
                };
                if sent {
                    stats.advisory(event.kind.as_str());
                } else {
                    stats.advisory("failed");
                }
            }
        });
    }

    fn scrub(&mut self) {
        let Some(tracker) = &self.tracker else { return };
        if !self.caught_up {
            // While a backlog replays every sender looks quiet: wait until caught up.
            return;
        }
        let events = tracker.lock().scrub(SystemTime::now());
        self.stats
            .senders
            .set(i64::try_from(tracker.lock().len()).unwrap_or(i64::MAX));
        // A standby's tracker scrubs too (it stays bounded), but only the leader advises.
        if self.settings.advisories.is_some() && self.copying() {
            for event in events {
                if self.events.try_send(event).is_err() {
                    self.stats.advisory("dropped");
                }
            }
        }
    }

    fn persist(&self) -> Option<impl std::future::Future<Output = ()> + 'static> {
        let (Some(tracker), Some(sampling)) = (&self.tracker, &self.settings.sampling) else {
            return None;
        };
        let bytes = match tracker.lock().encode() {
            Ok(bytes) => bytes,
            Err(e) => {
                error!(replicator = %self.settings.name, error = %e, "Cannot encode the sampling tracker.");
                return None;
            }
        };
        let path = sampling.state_file.clone();
        let name = self.settings.name.clone();
        Some(async move {
            let result =
                actix_rt::task::spawn_blocking(move || write_state_file(&path, &bytes)).await;
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    warn!(replicator = %name, error = %Chain(&e), "Cannot persist the sampling tracker.")
                }
                Err(e) => {
                    warn!(replicator = %name, error = %e, "Persisting the sampling tracker failed.")
                }
            }
        })
    }
}

async fn client(slot: &ActorSlot<NetworkActor>) -> Option<Client> {
    slot.get().send(GetClient).await.ok()?.ok()
}

impl Actor for TopicReplicatorActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let (source, target, settings) = (
            self.networks.source.clone(),
            self.networks.target.clone(),
            self.settings.clone(),
        );
        self.stats.ready.set(0);
        let setup = async move {
            let mut backoff = Backoff::SETUP;
            let mut patience = SetupPatience::default();
            let since = std::time::Instant::now();
            loop {
                let clients = match (client(&source).await, client(&target).await) {
                    (Some(s), Some(t)) => Some((s, t)),
                    _ => None,
                };
                if let Some((s, t)) = clients {
                    let (sjs, tjs) = (jetstream::new(s.clone()), jetstream::new(t.clone()));
                    let result = match setup::ensure_target_stream(&sjs, &tjs, &settings).await {
                        Ok(()) => match settings.mode {
                            Mode::Queued { workers } => {
                                setup::queued_consumer(&sjs, &tjs, &settings, workers.get())
                                    .await
                                    .map(|_| ())
                            }
                            Mode::Ordered => Ok(()),
                        },
                        Err(e) => Err(e),
                    };
                    match result {
                        Ok(()) => return (s, t),
                        Err(e) => {
                            let elapsed = since.elapsed();
                            match patience.failed(backoff.attempts(), elapsed) {
                                Some(Report::Info) => {
                                    info!(replicator = %settings.name, error = %e, "Waiting for the replicator's streams (normal at start-up); retrying.")
                                }
                                Some(Report::Warn) => {
                                    warn!(replicator = %settings.name, error = %e, waited = ?elapsed, "Cannot set the replicator up yet; retrying.")
                                }
                                Some(Report::Error) => {
                                    error!(replicator = %settings.name, error = %e, waited = ?elapsed, "Still cannot set the replicator up; retrying.")
                                }
                                None => {}
                            }
                        }
                    }
                }
                actix_rt::time::sleep(backoff.next_delay()).await;
            }
        };
        ctx.spawn(setup.into_actor(self).map(|(source, target), act, ctx| {
            if act.stopped {
                return;
            }
            act.stats.ready.set(1);
            act.start_advisories(source.clone(), target.clone());
            act.source = Some(source.clone());
            match act.settings.ha.clone() {
                None => {
                    act.stats.leader.set(1);
                    act.start_workers();
                }
                Some(ha) => act.start_election(ha, ctx),
            }
            let sjs = jetstream::new(source);
            let settings = act.settings.clone();
            ctx.run_interval(Duration::from_secs(1), move |act, ctx| {
                let (sjs, settings) = (sjs.clone(), settings.clone());
                ctx.spawn(
                    async move { setup::consumer_lag(&sjs, &settings).await }
                        .into_actor(act)
                        .map(|lag, act, _| {
                            if let Some(lag) = lag {
                                act.stats.lag.set(i64::try_from(lag).unwrap_or(i64::MAX));
                                act.caught_up = lag < act.settings.window.get() as u64;
                            }
                        }),
                );
            });
            if let Some(sampling) = &act.settings.sampling {
                let every = (sampling.config.age / 4)
                    .clamp(Duration::from_millis(100), Duration::from_secs(5));
                ctx.run_interval(every, |act, _| act.scrub());
                ctx.run_interval(Duration::from_secs(5), |act, ctx| {
                    if let Some(fut) = act.persist() {
                        ctx.spawn(fut.into_actor(act));
                    }
                });
            }
            if let (Some(every), Some(_)) = (act.settings.heartbeat, &act.settings.choria) {
                let subject = act.settings.heartbeat_subject.clone();
                let originator = hostname();
                let js = jetstream::new(target.clone());
                ctx.run_interval(every, move |act, ctx| {
                    if !act.copying() {
                        return;
                    }
                    let (headers, body) = heartbeat(&subject, &originator, SystemTime::now());
                    let (js, subject, stats) = (js.clone(), subject.clone(), act.stats.clone());
                    ctx.spawn(
                        async move {
                            let sent = std::time::Instant::now();
                            // As the SR: a JetStream publish, so a stream stores it for
                            // `nats server check message`.
                            let acked = match js
                                .publish_with_headers(subject, headers, body.into())
                                .await
                            {
                                Ok(ack) => ack.await.is_ok(),
                                Err(_) => false,
                            };
                            stats.heartbeat_seconds.set(sent.elapsed().as_secs_f64());
                            if acked {
                                stats.heartbeats_sent.inc();
                            } else {
                                stats.heartbeat_errors.inc();
                            }
                        }
                        .into_actor(act),
                    );
                });
            } else if let Some(every) = act.settings.heartbeat {
                let subject = act.settings.heartbeat_subject.clone();
                ctx.run_interval(every, move |act, ctx| {
                    if !act.copying() {
                        return;
                    }
                    let body = serde_json::json!({
                        "replicator": act.settings.name,
                        "time": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
                        "copied": act.stats.copied.get(),
                        "lag": act.stats.lag.get(),
                    });
                    let target = target.clone();
                    let subject = subject.clone();
                    let stats = act.stats.clone();
                    ctx.spawn(
                        async move {
                            match target.publish(subject, body.to_string().into()).await {
                                Ok(()) => stats.heartbeats_sent.inc(),
                                Err(_) => stats.heartbeat_errors.inc(),
                            };
                        }
                        .into_actor(act),
                    );
                });
            }
        }));
    }
}

impl Drop for TopicReplicatorActor {
    /// A replicator that panicked is dropped without `restarting` or `Shutdown`: stop its
    /// workers' arbiters here, or they would copy on beside the workers of the replicator the
    /// watchdog re-creates (two ordered workers fighting over one consumer, and leaked threads
    /// and connections).
    fn drop(&mut self) {
        for arbiter in self.arbiters.drain(..) {
            arbiter.stop();
        }
    }
}

impl Handler<crate::supervision::InjectPanic> for TopicReplicatorActor {
    type Result = ();

    fn handle(&mut self, _: crate::supervision::InjectPanic, _: &mut Self::Context) {
        if crate::supervision::FAULT_INJECTION {
            panic!(
                "fault injection: replicator {} panics on request",
                self.settings.name
            );
        }
    }
}

impl Supervised for TopicReplicatorActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        warn!(replicator = %self.settings.name, "Restarting the replicator.");
        self.stop_workers();
        // The election starts over; a key this node still holds is adopted again.
        self.ballot = None;
        self.campaign = None;
        self.voting = false;
        self.stats.leader.set(0);
    }
}

/// At node shutdown the replicator sends [`Shutdown`] to its workers, stops their arbiters
/// once they answered, and answers once the tracker is persisted.
impl Handler<Shutdown> for TopicReplicatorActor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Shutdown, _: &mut Self::Context) -> Self::Result {
        self.stopped = true;
        let name = self.settings.name.clone();
        let workers: Vec<(String, Addr<ReplicaWorkerActor>)> = self
            .workers
            .drain(..)
            .enumerate()
            .map(|(i, addr)| (format!("replicator/{name}/worker/{i}"), addr))
            .collect();
        let release = match (
            self.campaign.as_mut().and_then(Campaign::resign),
            &self.ballot,
        ) {
            (Some(revision), Some(ballot)) => Some((revision, ballot.clone())),
            _ => None,
        };
        self.stats.leader.set(0);
        Box::pin(shutdown_all(workers).into_actor(self).then(|(), act, _| {
            // The workers stopped copying: the tracker holds their last decisions.
            act.stop_workers();
            let persist = act.persist();
            let name = act.settings.name.clone();
            async move {
                if let Some((revision, ballot)) = release {
                    // A standby takes over at its next campaign instead of after the TTL.
                    match ballot.release(revision).await {
                        Ok(()) => info!(replicator = %name, "Gave up the replicator's leadership."),
                        Err(e) => {
                            warn!(replicator = %name, error = %e, "Cannot give up the replicator's leadership; it expires after its TTL.")
                        }
                    }
                }
                if let Some(persist) = persist {
                    persist.await;
                }
                info!(replicator = %name, "Replicator stopped.");
            }
            .into_actor(act)
        }))
    }
}

/// Query: the tracker's size and counters, for tests and tools.
#[derive(Debug, Message)]
#[rtype(result = "Option<(usize, super::sampling::SamplingCounters)>")]
pub struct GetTracker;

impl Handler<GetTracker> for TopicReplicatorActor {
    type Result = MessageResult<GetTracker>;

    fn handle(&mut self, _: GetTracker, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.tracker.as_ref().map(|t| {
            let t = t.lock();
            (t.len(), t.counters())
        }))
    }
}
