//! A signed request crossing a choir federation broker still verifies at the far end: the
//! broker rewrites headers only, so a secure emulator in the collective answers the signed
//! request and refuses an insecure one sent the same way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../protocol/src/security/test_pki.rs"]
mod pki;
#[path = "federation/support.rs"]
mod support;

use std::num::NonZeroUsize;
use std::time::Duration;

use choir::actors::client::{ChoriaClient, ClientOptions, Discovery};
use choir::actors::emulator::{EmulatorMetrics, Fleet, FleetSpec};
use choir::actors::protocol::security::{SecurityPolicy, SigningIdentity};
use common::{ChoirNode, NatsServer};
use pki::{CertSpec, TestCa};

const N: usize = 10;

async fn discover(fed: &NatsServer, options: ClientOptions, timeout: Duration) -> usize {
    ChoriaClient::connect(&[fed.url()], options, 1 << 12)
        .await
        .unwrap()
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

#[actix_rt::test]
async fn signed_request_through_a_federation_broker_verifies_at_the_far_end() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca");
    let rip = ca.issue(&CertSpec::client("rip.mcollective"));
    let fed = NatsServer::start();
    let c0 = NatsServer::start();
    let node = ChoirNode::start(&support::broker_config(&fed, &[("c0", &c0)], ""));
    let mut spec = FleetSpec::new("far", N, vec![c0.url()]);
    spec.arbiters = NonZeroUsize::new(1);
    spec.secure = Some(SecurityPolicy::with_defaults(&ca.cert));
    let metrics = EmulatorMetrics::unregistered();
    let fleet = Fleet::start(spec, metrics.clone()).unwrap();
    assert!(fleet.wait_started(Duration::from_secs(30), |_| {}).await);
    support::wait_subscribed(&node, 1);

    let mut options = ClientOptions::new("mcollective", fed.url());
    options.federation = vec!["c0".into()];
    let signed = options
        .clone()
        .signed_by(SigningIdentity::load(&rip.cert, &rip.key).unwrap());
    assert_eq!(discover(&fed, signed, Duration::from_secs(30)).await, N);
    assert_eq!(metrics.security.verified.get(), 1);
    assert_eq!(metrics.security.refused_for("invalid_signature"), 0);

    // The same path without a signature: refused at the far end.
    assert_eq!(
        discover(&fed, options, Duration::from_millis(1500)).await,
        0
    );
    assert!(
        common::eventually(Duration::from_secs(10), || {
            let m = metrics.clone();
            async move { m.security.refused_for("insecure") == 1 }
        })
        .await
    );
    fleet.shutdown().await;
}
