//! Local failure recovery: an actor that stops itself is restarted by its actix Supervisor
//! without touching its siblings; an actor that panics is re-created by the watchdog, a test
//! actor here and a real adapter worker of a running node (panicked on request through the
//! test-only `fault-injection` feature), which then carries on storing messages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use choir::actors::connection::{
    GetClient, NetworkActor, NetworkMetrics, NetworkSettings, NetworkStatus,
};
use choir::actors::supervision::{GetRespawns, Watch, WatchdogActor, WatchedActor};
use common::http::{http_request, metric_value};
use common::jetstream::{connect, count, read_all, wait_for_count};
use common::{eventually, poll_until, ChoirNode, NatsServer};

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
    let failures = metrics
        .connect_failures
        .get_or_create(&NetworkMetrics::label("t"))
        .clone();
    let network = Supervisor::start(move |_| NetworkActor::new(settings, metrics, status));
    let mut pending = Box::pin(network.send(GetClient));
    // Two connect attempts have failed (nothing listens yet) and the request is still
    // waiting: no client, and no error either, before the server exists.
    assert!(
        eventually(WAIT, || async { failures.get() >= 2 }).await,
        "connect failures {}",
        failures.get()
    );
    assert!(
        futures::poll!(pending.as_mut()).is_pending(),
        "no client before the server exists"
    );

    let _server = NatsServer::start_with(port, &[]);
    let client = tokio::time::timeout(WAIT, pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    client.publish("t.ping", "x".into()).await.unwrap();
    client.flush().await.unwrap();
}

/// Messages `{"n":i}` for `range` on `subject`, flushed.
async fn publish_range(client: &async_nats::Client, range: std::ops::Range<usize>) {
    for i in range {
        client
            .publish("in.x", format!("{{\"n\":{i}}}").into())
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
}

fn node_metric(node: &ChoirNode, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let (_, text) = node.get("/metrics").unwrap_or_default();
    metric_value(&text, metric, labels).unwrap_or(0.0)
}

/// A real choir actor, not a test one: the adapter worker of a running node panics in a
/// handler (through the test-only fault-injection route), the watchdog re-creates it, and the
/// new worker subscribes again and stores every message published after it, each once.
#[actix::test]
async fn a_panicked_adapter_worker_is_recreated_and_stores_every_later_message_once() {
    let server = NatsServer::start();
    let node = ChoirNode::start(&format!(
        "[networks.local]\nurls = [\"{}\"]\n\n[adapters.reg]\nnetwork = \"local\"\n\
         subject = \"in.>\"\nworkers = 1\nstream = \"OUT\"\nstream_subject = \"out\"\n",
        server.url()
    ));
    let subscribed = |starts: f64| {
        node_metric(&node, "choir_adapter_subscribed", &[("adapter", "reg")]) == 1.0
            && node_metric(
                &node,
                "choir_adapter_worker_starts_total",
                &[("adapter", "reg")],
            ) == starts
    };
    assert!(
        poll_until(WAIT * 3, || subscribed(1.0)),
        "never subscribed; log:\n{}",
        node.log()
    );
    let client = connect(&server.url()).await;
    publish_range(&client, 0..100).await;
    assert!(wait_for_count(&client, "OUT", 100, WAIT * 3).await);

    let (status, body) = http_request(node.monitor, "POST", "/debug/fault/panic/adapter/reg/0")
        .expect("monitor answers");
    assert_eq!(status, 200, "{body}");
    assert!(
        poll_until(WAIT * 3, || node_metric(
            &node,
            "choir_actor_respawns_total",
            &[("actor", "adapter/reg/0")]
        ) == 1.0
            && subscribed(2.0)),
        "the watchdog did not bring the worker back; log:\n{}",
        node.log()
    );
    assert!(node.log().contains("Actor mailbox closed (it panicked)"));

    publish_range(&client, 100..200).await;
    assert!(
        wait_for_count(&client, "OUT", 200, WAIT * 3).await,
        "stored {} of 200; log:\n{}",
        count(&client, "OUT").await,
        node.log()
    );
    let mut stored: Vec<u64> = read_all(&client, "OUT")
        .await
        .iter()
        .map(|m| {
            serde_json::from_slice::<serde_json::Value>(&m.payload).unwrap()["n"]
                .as_u64()
                .unwrap()
        })
        .collect();
    stored.sort_unstable();
    assert_eq!(
        stored,
        (0..200).collect::<Vec<u64>>(),
        "each message stored once"
    );
}

/// The fault route answers 404 for an actor that does not exist (and so cannot panic).
#[test]
fn the_fault_route_refuses_an_unknown_actor() {
    let server = NatsServer::start();
    let node = ChoirNode::start(&format!(
        "[networks.local]\nurls = [\"{}\"]\n",
        server.url()
    ));
    let (status, _) = http_request(node.monitor, "POST", "/debug/fault/panic/adapter/none/0")
        .expect("monitor answers");
    assert_eq!(status, 404);
}

/// The replicator of a running node panics mid-copy (through the test-only fault-injection
/// route); the watchdog re-creates it, and the copy goes on to the end: every message exactly
/// once, in source order, checked message by message.
#[actix::test]
async fn a_panicked_replicator_is_recreated_and_its_copy_completes_exactly_once_in_order() {
    use common::jetstream::{create_stream, publish_many};
    use common::replication::{assert_exactly_once, replicator_config, settled};
    const N: usize = 50_000;
    let monitor = common::nats::free_port();
    let source = NatsServer::start_with(common::nats::free_port(), &["-m", &monitor.to_string()]);
    let target = NatsServer::start();
    let src = connect(&source.url()).await;
    create_stream(&src, "ORDERS", &["orders.>"]).await;
    publish_many(&src, N, |i| {
        (
            format!("orders.{}", i % 5),
            format!("{{\"n\":{i}}}").into_bytes(),
        )
    })
    .await;
    let node = ChoirNode::start(&replicator_config(&source, &target, "mode = \"ordered\""));
    let dst = connect(&target.url()).await;
    assert!(
        wait_for_count(&dst, "ORDERS", 5_000, WAIT * 6).await,
        "copy did not start; log:\n{}",
        node.log()
    );
    let (status, body) = http_request(node.monitor, "POST", "/debug/fault/panic/replicator/orders")
        .expect("monitor answers");
    assert_eq!(status, 200, "{body}");
    assert!(
        count(&dst, "ORDERS").await < N as u64,
        "the copy finished before the panic"
    );
    assert!(
        poll_until(WAIT * 3, || node_metric(
            &node,
            "choir_actor_respawns_total",
            &[("actor", "replicator/orders")]
        ) == 1.0),
        "the watchdog did not bring the replicator back; log:\n{}",
        node.log()
    );
    let copied = settled(&dst, &node, N as u64, Duration::from_secs(180)).await;
    assert_exactly_once(&copied, N, true);
    // The panicked replicator's worker is gone: one worker connection on the source, not two
    // (an orphaned worker would go on copying beside the new one).
    let workers = || {
        let (_, body) = common::http_get(
            std::net::SocketAddr::from(([127, 0, 0, 1], monitor)),
            "/connz?limit=1000",
        )
        .unwrap_or_default();
        let connz: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        connz["connections"]
            .as_array()
            .map(|all| {
                all.iter()
                    .filter(|c| {
                        c["name"]
                            .as_str()
                            .unwrap_or("")
                            .contains("replicator-orders")
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    assert!(
        poll_until(WAIT, || workers() == 1),
        "{} replica worker connections on the source",
        workers()
    );
    let log = node.log();
    assert!(log.contains("Actor mailbox closed (it panicked)"), "{log}");
    assert!(
        !log.contains("consumer deleted"),
        "two workers deleted each other's consumer:\n{log}"
    );
    assert_eq!(
        log.matches("Replicator started.").count(),
        2,
        "started once, then once more by the watchdog:\n{log}"
    );
}
