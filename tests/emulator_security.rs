//! A secure emulator (`FleetSpec::secure`, `choir emulate --secure`) verifies every request
//! as a Choria server does and answers only trusted ones: a request signed by an allowed
//! client is answered by every daemon; a certname off the allowlist, a certificate from
//! another CA, an expired certificate, a tampered message, a wrong callerid and an insecure
//! request get no reply and are counted by reason. Each distinct request is verified once
//! per process, however many daemons (and threads) receive it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../protocol/src/security/test_pki.rs"]
mod pki;

use std::num::NonZeroUsize;
use std::time::Duration;

use choir::actors::client::{ChoriaClient, ClientOptions, Discovery};
use choir::actors::emulator::{DropReason, EmulatorMetrics, Fleet, FleetSpec};
use choir::actors::protocol::security::{SecurityPolicy, SigningIdentity};
use choir::actors::protocol::{subject, NewRequest, SecureRequest, Transport, TransportHeaders};
use common::{eventually, NatsServer};
use futures::StreamExt as _;
use pki::{CertSpec, Issued, TestCa};

const N: usize = 20;
const WAIT: Duration = Duration::from_secs(30);

struct Setup {
    _dir: tempfile::TempDir,
    server: NatsServer,
    fleet: Fleet,
    metrics: EmulatorMetrics,
    ca: TestCa,
    allowed: Issued,
}

/// `N` secure daemons on two threads trusting a fresh CA with Choria's default allowlist.
async fn secure_fleet() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca");
    let allowed = ca.issue(&CertSpec::client("rip.mcollective"));
    let server = NatsServer::start();
    let mut spec = FleetSpec::new("sec", N, vec![server.url()]);
    spec.arbiters = NonZeroUsize::new(2);
    spec.secure = Some(SecurityPolicy::with_defaults(&ca.cert));
    let metrics = EmulatorMetrics::unregistered();
    let fleet = Fleet::start(spec, metrics.clone()).unwrap();
    assert!(
        fleet.wait_started(WAIT, |_| {}).await,
        "daemons did not start: {:?}",
        fleet.progress()
    );
    Setup {
        _dir: dir,
        server,
        fleet,
        metrics,
        ca,
        allowed,
    }
}

fn identity(issued: &Issued) -> SigningIdentity {
    SigningIdentity::load(&issued.cert, &issued.key).unwrap()
}

/// Replies to one discovery sent with `options` (waits the whole `timeout` unless all `N`
/// answer).
async fn pongs(setup: &Setup, options: ClientOptions, timeout: Duration) -> usize {
    let client = ChoriaClient::connect(&[setup.server.url()], options, 1 << 12)
        .await
        .unwrap();
    client
        .discover(&Discovery {
            timeout,
            expect: Some(N),
            ..Discovery::default()
        })
        .await
        .unwrap()
        .replies
        .len()
}

fn options(setup: &Setup) -> ClientOptions {
    ClientOptions::new("mcollective", setup.server.url())
}

/// Asserts that a request refused for `reason` was counted once and dropped by every daemon.
async fn assert_refused(setup: &Setup, reason: &str, before_drops: u64) {
    let metrics = setup.metrics.clone();
    let reason_owned = reason.to_owned();
    assert!(
        eventually(WAIT, || {
            let m = metrics.clone();
            let r = reason_owned.clone();
            async move {
                m.security.refused_for(&r) == 1
                    && m.dropped_for(DropReason::Security) == before_drops + N as u64
            }
        })
        .await,
        "{reason}: refused {} dropped {}",
        setup.metrics.security.refused_for(reason),
        setup.metrics.dropped_for(DropReason::Security)
    );
}

#[actix_rt::test]
async fn signed_request_from_an_allowed_client_is_answered_and_verified_once() {
    let setup = secure_fleet().await;
    let signed = options(&setup).signed_by(identity(&setup.allowed));
    assert_eq!(pongs(&setup, signed.clone(), WAIT).await, N);
    // Twenty daemons on two threads received it: one verification.
    assert_eq!(setup.metrics.security.verified.get(), 1);
    assert_eq!(setup.metrics.dropped_for(DropReason::Security), 0);
    // The CPU time of that one verification is counted (a chain and a signature check).
    let one = setup.metrics.security.verify_cpu_nanos.get();
    assert!(one > 0, "verification CPU not counted");
    // A second request is a second verification, still not one per daemon.
    assert_eq!(pongs(&setup, signed, WAIT).await, N);
    assert_eq!(setup.metrics.security.verified.get(), 2);
    assert!(setup.metrics.security.verify_cpu_nanos.get() > one);
    setup.fleet.stop();
}

#[actix_rt::test]
async fn refused_requests_get_no_reply_and_are_counted_by_reason() {
    let setup = secure_fleet().await;
    let short = Duration::from_millis(1500);
    let dir = tempfile::tempdir().unwrap();
    let other_ca = TestCa::new(dir.path(), "other-ca");
    let cases: Vec<(&str, ClientOptions)> = vec![
        ("insecure", options(&setup)),
        (
            "certname_not_allowed",
            options(&setup).signed_by(identity(
                &setup.ca.issue(&CertSpec::client("bob.example.net")),
            )),
        ),
        (
            "untrusted_certificate",
            options(&setup).signed_by(identity(
                &other_ca.issue(&CertSpec::client("rip.mcollective")),
            )),
        ),
        (
            "expired_certificate",
            options(&setup).signed_by(identity(&setup.ca.issue(&CertSpec {
                expired: true,
                ..CertSpec::client("old.mcollective")
            }))),
        ),
        ("callerid_mismatch", {
            let mut o = options(&setup).signed_by(identity(&setup.allowed));
            o.callerid = "choria=someone.mcollective".into();
            o
        }),
    ];
    for (reason, options) in cases {
        let drops = setup.metrics.dropped_for(DropReason::Security);
        assert_eq!(pongs(&setup, options, short).await, 0, "{reason}");
        assert_refused(&setup, reason, drops).await;
    }
    setup.fleet.stop();
}

#[actix_rt::test]
async fn tampered_message_gets_no_reply() {
    let setup = secure_fleet().await;
    let id = identity(&setup.allowed);
    let request = NewRequest {
        message: "cGluZw==".into(),
        senderid: "tester".into(),
        callerid: id.callerid(),
        collective: "mcollective".into(),
        agent: "discovery".into(),
        ..NewRequest::default()
    }
    .build()
    .unwrap();
    let reply_to = subject::reply("mcollective", &id.callerid(), &request.envelope.requestid);
    let signed = id.sign_request(&request).unwrap();
    let tampered = SecureRequest {
        message: signed.message.replace("\"ttl\":60", "\"ttl\":61"),
        ..signed.clone()
    };
    assert_ne!(tampered.message, signed.message);
    let nats = async_nats::connect(setup.server.url()).await.unwrap();
    let mut replies = nats.subscribe(reply_to.clone()).await.unwrap();
    let payload = Transport::new(
        &tampered.to_vec().unwrap(),
        TransportHeaders::for_request(reply_to.clone(), "tester"),
    )
    .to_vec()
    .unwrap();
    nats.publish(
        subject::broadcast_agent("mcollective", "discovery"),
        payload.into(),
    )
    .await
    .unwrap();
    nats.flush().await.unwrap();
    assert_refused(&setup, "invalid_signature", 0).await;
    // Every daemon has dropped it; the untampered request still gets its N replies.
    let payload = Transport::new(
        &signed.to_vec().unwrap(),
        TransportHeaders::for_request(reply_to.clone(), "tester"),
    )
    .to_vec()
    .unwrap();
    nats.publish(
        subject::broadcast_agent("mcollective", "discovery"),
        payload.into(),
    )
    .await
    .unwrap();
    for _ in 0..N {
        let reply = tokio::time::timeout(WAIT, replies.next()).await.unwrap();
        assert!(reply.is_some());
    }
    // The first replies were to the signed request: nothing came for the tampered one.
    assert_eq!(setup.metrics.security.verified.get(), 2);
    assert_eq!(setup.metrics.replies.get(), N as u64);
    setup.fleet.stop();
}
