//! Local failure recovery: an actor that stops itself is restarted by its actix Supervisor
//! without touching its siblings; an actor that panics is re-created by the watchdog.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use choir::actors::connection::{
    GetClient, NetworkActor, NetworkMetrics, NetworkSettings, NetworkStatus,
};
use choir::actors::supervision::{GetRespawns, Watch, WatchdogActor, WatchedActor};
use common::{eventually, NatsServer};

#[derive(Default)]
struct Counts {
    starts: AtomicUsize,
    restarts: AtomicUsize,
}

struct FlakyActor {
    counts: Arc<Counts>,
}

impl Actor for FlakyActor {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        self.counts.starts.fetch_add(1, Ordering::SeqCst);
    }
}

impl Supervised for FlakyActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        self.counts.restarts.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Fail;

#[derive(Message)]
#[rtype(result = "()")]
struct Panic;

#[derive(Message)]
#[rtype(result = "usize")]
struct Ping;

impl Handler<Fail> for FlakyActor {
    type Result = ();
    fn handle(&mut self, _: Fail, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<Panic> for FlakyActor {
    type Result = ();
    fn handle(&mut self, _: Panic, _: &mut Self::Context) {
        panic!("deliberate panic from a test");
    }
}

impl Handler<Ping> for FlakyActor {
    type Result = usize;
    fn handle(&mut self, _: Ping, _: &mut Self::Context) -> usize {
        self.counts.starts.load(Ordering::SeqCst)
    }
}

const WAIT: Duration = Duration::from_secs(10);

#[actix::test]
async fn an_actor_that_fails_is_restarted_and_its_sibling_is_untouched() {
    let (a, b) = (Arc::new(Counts::default()), Arc::new(Counts::default()));
    let ca = a.clone();
    let flaky = Supervisor::start(move |_| FlakyActor { counts: ca });
    let cb = b.clone();
    let sibling = Supervisor::start(move |_| FlakyActor { counts: cb });
    assert_eq!(flaky.send(Ping).await.unwrap(), 1);
    assert_eq!(sibling.send(Ping).await.unwrap(), 1);

    flaky.send(Fail).await.unwrap();
    flaky.send(Fail).await.unwrap();
    assert!(eventually(WAIT, || async { a.starts.load(Ordering::SeqCst) == 3 }).await);
    assert_eq!(a.restarts.load(Ordering::SeqCst), 2);
    assert_eq!(
        flaky.send(Ping).await.unwrap(),
        3,
        "the same address reaches the restarted actor"
    );

    assert_eq!(sibling.send(Ping).await.unwrap(), 1);
    assert_eq!(b.restarts.load(Ordering::SeqCst), 0);
}

#[actix::test]
async fn an_actor_that_panics_is_recreated_by_the_watchdog() {
    let (a, b) = (Arc::new(Counts::default()), Arc::new(Counts::default()));
    let watchdog = WatchdogActor::unregistered(Duration::from_millis(50)).start();
    let ca = a.clone();
    let (watched, slot) =
        WatchedActor::start("flaky", move || FlakyActor { counts: ca.clone() }.start());
    watchdog.send(Watch(Box::new(watched))).await.unwrap();
    let cb = b.clone();
    let sibling = FlakyActor { counts: cb }.start();

    let before = slot.get();
    assert!(
        before.send(Panic).await.is_err(),
        "a panicking handler never answers"
    );
    assert!(eventually(WAIT, || async { a.starts.load(Ordering::SeqCst) == 2 }).await);
    assert!(!before.connected(), "the old mailbox is closed for good");
    assert_eq!(
        slot.get().send(Ping).await.unwrap(),
        2,
        "the slot reaches the new actor"
    );

    let respawns = watchdog.send(GetRespawns).await.unwrap();
    assert_eq!(respawns, vec![("flaky".to_owned(), 1)]);
    assert_eq!(
        sibling.send(Ping).await.unwrap(),
        1,
        "the sibling kept running"
    );
}

#[actix::test]
async fn a_network_actor_hands_out_its_client_once_connected() {
    let port = common::nats::free_port();
    let settings = NetworkSettings::new("t", vec![format!("nats://127.0.0.1:{port}")]);
    let status = Arc::new(NetworkStatus::default());
    let metrics = NetworkMetrics::default();
    let network = Supervisor::start(move |_| NetworkActor::new(settings, metrics, status));
    let pending = network.send(GetClient);
    let early = tokio::time::timeout(Duration::from_millis(300), network.send(GetClient)).await;
    assert!(early.is_err(), "no client before the server exists");

    let _server = NatsServer::start_with(port, &[]);
    let client = tokio::time::timeout(WAIT, pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    client.publish("t.ping", "x".into()).await.unwrap();
    client.flush().await.unwrap();
}
