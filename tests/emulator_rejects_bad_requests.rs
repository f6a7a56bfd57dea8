//! Expired, wrong-collective, non-matching, malformed-base64 and truncated-JSON requests get
//! no reply, are counted by reason, and leave every daemon answering.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "emulator/client.rs"]
mod client;
mod common;

use std::time::Duration;

use choir::actors::emulator::{DropReason, EmulatorMetrics, Fleet, FleetSpec};
use choir::actors::protocol::{
    encode_request, subject, unix_now, FactFilter, Filter, NewRequest, TransportHeaders,
};
use client::{TestClient, CALLER};
use common::NatsServer;
use futures::StreamExt as _;

const N: usize = 20;

#[actix_rt::test]
async fn bad_requests_get_no_reply_and_are_counted() {
    let server = NatsServer::start();
    let metrics = EmulatorMetrics::unregistered();
    let fleet = Fleet::start(
        FleetSpec::new("bad", N, vec![server.url()]),
        metrics.clone(),
    )
    .unwrap();
    assert!(fleet.wait_started(Duration::from_secs(30), |_| {}).await);
    let client = TestClient::connect(&server.url()).await;
    let target = subject::broadcast_agent("mcollective", "discovery");

    // Everything any daemon answers lands here.
    let mut all_replies = client.nats.subscribe("mcollective.reply.>").await.unwrap();
    client.nats.flush().await.unwrap();

    let build = |change: &dyn Fn(&mut NewRequest)| {
        let mut new = NewRequest {
            message: "ping".into(),
            senderid: "tester".into(),
            callerid: CALLER.into(),
            collective: "mcollective".into(),
            agent: "discovery".into(),
            ..NewRequest::default()
        };
        change(&mut new);
        let request = new.build().unwrap();
        encode_request(
            &request,
            TransportHeaders::for_request(TestClient::reply_subject(&request), "tester"),
        )
        .unwrap()
    };
    let expired = build(&|r| r.time = Some(unix_now() - 3600));
    let wrong_collective = build(&|r| r.collective = "elsewhere".into());
    let filtered = build(&|r| r.filter.fact = vec![FactFilter::new("instance", ">", "1000")]);
    let good = build(&|_| {});
    let truncated = good[..good.len() - 10].to_vec();
    let bad_base64 = br#"{"protocol":"choria:transport:1","data":"%%%% not base64 %%%%","headers":{"reply-to":"mcollective.reply.x.y"}}"#.to_vec();

    for payload in [expired, wrong_collective, filtered, truncated, bad_base64] {
        client
            .nats
            .publish(target.clone(), payload.into())
            .await
            .unwrap();
    }
    // A good request on the same subject after them: its replies prove every daemon processed
    // the bad ones (one subscription delivers in order) and is still alive.
    let barrier = TestClient::request("discovery", "ping", Filter::default());
    let replies = client
        .call(
            &target,
            &barrier,
            N,
            Duration::from_secs(20),
            Duration::ZERO,
        )
        .await;
    assert_eq!(replies.len(), N);

    // Only the barrier's replies were ever published.
    let mut seen = 0;
    while let Ok(Some(msg)) =
        tokio::time::timeout(Duration::from_millis(300), all_replies.next()).await
    {
        assert!(
            msg.subject.ends_with(&barrier.envelope.requestid),
            "unexpected reply on {}",
            msg.subject
        );
        seen += 1;
    }
    assert_eq!(seen, N);

    let n = N as u64;
    assert_eq!(metrics.dropped_for(DropReason::Expired), n);
    assert_eq!(metrics.dropped_for(DropReason::WrongCollective), n);
    assert_eq!(metrics.dropped_for(DropReason::Filtered), n);
    assert_eq!(metrics.dropped_for(DropReason::Json), n);
    assert_eq!(metrics.dropped_for(DropReason::Base64), n);
    assert_eq!(metrics.dropped_total(), 5 * n);
    assert_eq!(metrics.replies.get(), n);
    assert_eq!(metrics.messages.get(), 6 * n);
    fleet.stop();
}
