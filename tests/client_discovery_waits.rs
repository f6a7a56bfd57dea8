//! A discovery told how many nodes to expect keeps waiting past its timeout while replies still
//! arrive (in bursts, as from a large fleet), and ends once they stop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use choir::actors::client::{ChoriaClient, ClientOptions, Discovery};
use choir::actors::protocol::{
    decode_request, encode_reply, subject, unix_now, Reply, TransportHeaders,
};
use common::NatsServer;
use futures::StreamExt as _;

const BURSTS: usize = 10;
const PER_BURST: usize = 5;

/// Answers every discovery request with `BURSTS` bursts of `PER_BURST` distinct nodes, one
/// burst every `gap`.
async fn slow_responder(url: &str, gap: Duration) -> tokio::task::JoinHandle<()> {
    let nats = async_nats::connect(url).await.unwrap();
    let mut requests = nats
        .subscribe(subject::broadcast_agent("mcollective", "discovery"))
        .await
        .unwrap();
    nats.flush().await.unwrap();
    tokio::spawn(async move {
        while let Some(msg) = requests.next().await {
            let decoded = decode_request(&msg.payload, unix_now()).unwrap();
            let reply_to = decoded.reply_to().unwrap().to_owned();
            let nats = nats.clone();
            tokio::spawn(async move {
                for burst in 0..BURSTS {
                    for i in 0..PER_BURST {
                        let sender = format!("slow-{}", burst * PER_BURST + i);
                        let reply =
                            Reply::for_request(&decoded.request, sender, "\"pong\"".to_owned());
                        let headers = TransportHeaders::for_reply_to(
                            &decoded.transport.headers,
                            "slow".to_owned(),
                        );
                        let bytes = encode_reply(&reply, headers).unwrap();
                        nats.publish(reply_to.clone(), bytes.into()).await.unwrap();
                    }
                    nats.flush().await.unwrap();
                    tokio::time::sleep(gap).await;
                }
            });
        }
    })
}

#[actix_rt::test]
async fn discovery_that_expects_n_nodes_waits_while_replies_still_arrive() {
    let server = NatsServer::start();
    // 10 bursts 200 ms apart: the last one comes 1.8 s after the request, long past the
    // 800 ms timeout, but never more than the quiet period (800 ms) after the one before.
    let responder = slow_responder(&server.url(), Duration::from_millis(200)).await;
    let options = ClientOptions::new("mcollective", server.url());
    let client = ChoriaClient::connect(&[server.url()], options, 1 << 16)
        .await
        .unwrap();
    let all = BURSTS * PER_BURST;
    let found = client
        .discover(&Discovery {
            timeout: Duration::from_millis(800),
            expect: Some(all),
            ..Discovery::default()
        })
        .await
        .unwrap();
    assert_eq!(found.senders().len(), all, "{:?}", found.senders());
    assert!(!found.timed_out);

    // More expected than will ever answer: it waits for the bursts, then ends once they
    // stopped, with everyone who answered.
    let short = client
        .discover(&Discovery {
            timeout: Duration::from_millis(800),
            expect: Some(all + 1),
            ..Discovery::default()
        })
        .await
        .unwrap();
    assert_eq!(short.senders().len(), all);
    assert!(short.timed_out);
    responder.abort();
}
