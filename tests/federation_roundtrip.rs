//! One federation nats-server, three collective nats-servers, one choir node brokering the
//! three clusters, 300 emulated daemons (100 per collective): a client on the federation
//! network discovers all 300, runs an RPC on all of them with 300 replies, and a directed
//! request to 450 identities (chunks of 200; 250 of them exist) reaches exactly those.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "federation/support.rs"]
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use choir::actors::protocol::{subject, RpcReply, STATUS_OK};
use common::{ChoirNode, NatsServer};
use support::{broker_config, identities, metric_sum, senders, wait_subscribed, FedClient};

const PER_COLLECTIVE: usize = 100;
const CLUSTERS: [&str; 3] = ["c0", "c1", "c2"];

#[actix_rt::test]
async fn three_collectives_discover_rpc_and_direct_through_one_broker_node() {
    let fed = NatsServer::start();
    let collectives: Vec<NatsServer> = (0..3).map(|_| NatsServer::start()).collect();
    let clusters: Vec<(&str, &NatsServer)> = CLUSTERS.iter().copied().zip(&collectives).collect();
    let node = ChoirNode::start(&broker_config(&fed, &clusters, ""));
    let mut _fleets = Vec::new();
    let mut all = BTreeSet::new();
    for (name, server) in &clusters {
        let prefix = format!("{name}-emu");
        _fleets.push(support::start_fleet(&prefix, PER_COLLECTIVE, server).await);
        all.extend(identities(&prefix, PER_COLLECTIVE));
    }
    wait_subscribed(&node, 3);
    let client = FedClient::connect(&fed.url()).await;

    // Discovery through the three brokers: every daemon answers once.
    let ping = FedClient::request("discovery", "ping");
    let replies = client
        .broadcast(&CLUSTERS, &ping, all.len(), Duration::from_secs(30))
        .await;
    let seen = senders(&replies);
    assert_eq!(replies.len(), 300, "one reply per daemon");
    assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), all);
    for r in &replies {
        assert_eq!(r.body(), b"pong");
        // The hops: client, broker (request), daemon, broker (reply).
        let hops = &r.transport.headers.seen_by;
        assert_eq!(hops.len(), 4, "{hops:?}");
        assert_eq!(hops[0].processor(), support::SENDER);
        assert!(
            hops[1].processor().starts_with("test (choria_nats_ingest:")
                && hops[1].processor().contains("choria_request_transformer:"),
            "{hops:?}"
        );
        assert_eq!(hops[2].processor(), r.reply.envelope.senderid);
        assert!(
            hops[3].processor().contains("choria_reply_transformer:"),
            "{hops:?}"
        );
        assert!(r.transport.headers.federation.is_none());
    }

    // An RPC on all of them: 300 mcorpc replies.
    let rpc = FedClient::request(
        "rpcutil",
        r#"{"agent":"rpcutil","action":"ping","data":{}}"#,
    );
    let replies = client
        .broadcast(&CLUSTERS, &rpc, all.len(), Duration::from_secs(30))
        .await;
    assert_eq!(replies.len(), 300);
    assert_eq!(senders(&replies).len(), 300);
    for r in &replies {
        let body = RpcReply::from_slice(r.body()).unwrap();
        assert_eq!(body.statuscode, STATUS_OK, "{body:?}");
    }

    // Directed: 450 identities in chunks of 200, 250 real ones spread over the collectives and
    // 200 that exist nowhere; exactly the 250 answer, once each.
    let chosen: BTreeSet<String> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 6 != 0)
        .map(|(_, id)| id.clone())
        .take(250)
        .collect();
    assert_eq!(chosen.len(), 250);
    let mut targets: Vec<String> = chosen
        .iter()
        .map(|id| subject::node("mcollective", id))
        .collect();
    targets.extend((0..200).map(|i| subject::node("mcollective", &format!("ghost-{i}"))));
    assert_eq!(targets.len(), 450);
    let direct = FedClient::request(
        "rpcutil",
        r#"{"agent":"rpcutil","action":"ping","data":{}}"#,
    );
    let replies = client
        .call(
            &CLUSTERS,
            &direct,
            &targets,
            chosen.len(),
            Duration::from_secs(30),
            Duration::from_millis(500),
        )
        .await;
    let seen = senders(&replies);
    assert_eq!(replies.len(), 250, "exactly one reply per targeted daemon");
    assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), chosen);

    // Choria's metric names, per cluster.
    for cluster in CLUSTERS {
        let ingested = metric_sum(
            &node,
            "choria_federation_received_msgs",
            &[
                ("name", "nats_ingest"),
                ("connected_to", "federation"),
                ("cluster", cluster),
                ("identity", "test"),
            ],
        );
        // discovery + rpc + 3 directed chunks.
        assert_eq!(ingested, 5.0, "cluster {cluster}");
        let published = metric_sum(
            &node,
            "choria_federation_published_msgs",
            &[
                ("name", "nats_egest"),
                ("connected_to", "federation"),
                ("cluster", cluster),
            ],
        );
        assert!(
            published >= 200.0,
            "replies published for {cluster}: {published}"
        );
    }
}
