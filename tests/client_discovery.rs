//! The client core against emulated daemons behind real nats-servers: broadcast discovery
//! with identity and fact filters and early finish at an expected count; direct RPC with
//! statuscodes and no-response reporting bounded by the timeout; and federation-aware
//! publishing through a choir federation broker (broadcast and direct in chunks of 200),
//! including `choir ping --federation ... --trace`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "client/cli.rs"]
mod cli;
mod common;
#[path = "federation/support.rs"]
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use choir::actors::client::{
    Addressing, ChoriaClient, ClientOptions, Discovery, Expectation, RpcCall,
};
use choir::actors::protocol::{FactFilter, Filter, STATUS_UNKNOWN_ACTION};
use common::{ChoirNode, NatsServer};
use serde_json::json;

async fn client(url: &str, federation: &[&str]) -> ChoriaClient {
    let mut options = ClientOptions::new("mcollective", url);
    options.federation = federation.iter().map(|s| s.to_string()).collect();
    ChoriaClient::connect(&[url.to_owned()], options, 1 << 16)
        .await
        .unwrap()
}

fn generate(nodes: &[&str], action: &str, timeout: Duration) -> RpcCall {
    RpcCall {
        agent: "emulated0".into(),
        action: action.into(),
        data: json!({"size": 7}),
        filter: Filter::default(),
        addressing: Addressing::Direct(nodes.iter().map(|s| s.to_string()).collect()),
        expectation: Expectation::Nodes(nodes.iter().map(|s| s.to_string()).collect()),
        timeout,
        keep_bodies: true,
    }
}

#[actix_rt::test]
async fn discovery_filters_early_finish_and_direct_rpc() {
    let server = NatsServer::start();
    let _fleet = support::start_fleet("emu", 60, &server).await;
    let client = client(&server.url(), &[]).await;

    // Early finish: with --expect 60 discovery ends long before its 30 s timeout.
    let all = client
        .discover(&Discovery {
            timeout: Duration::from_secs(30),
            expect: Some(60),
            ..Discovery::default()
        })
        .await
        .unwrap();
    assert_eq!(all.replies.len(), 60);
    assert!(!all.timed_out);
    assert!(all.request_duration < Duration::from_secs(30));

    // Identity regex: emu-10..emu-19; the request ends at its (short) timeout.
    let by_identity = client
        .discover(&Discovery {
            filter: Filter {
                identity: vec!["/^emu-1\\d$/".into()],
                ..Filter::default()
            },
            timeout: Duration::from_millis(1500),
            ..Discovery::default()
        })
        .await
        .unwrap();
    let expected: Vec<String> = (10..20).map(|i| format!("emu-{i}")).collect();
    assert_eq!(by_identity.senders(), expected);
    assert!(by_identity.timed_out);

    // Fact and agent filters.
    let by_fact = client
        .discover(&Discovery {
            filter: Filter {
                fact: vec![FactFilter::new("instance", "<", "5")],
                agent: vec!["emulated0".into()],
                ..Filter::default()
            },
            timeout: Duration::from_secs(10),
            expect: Some(5),
            ..Discovery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        by_fact.senders(),
        ["emu-0", "emu-1", "emu-2", "emu-3", "emu-4"]
    );
    let nobody = client
        .discover(&Discovery {
            filter: Filter::with_agent("no_such_agent"),
            timeout: Duration::from_millis(500),
            ..Discovery::default()
        })
        .await
        .unwrap();
    assert!(nobody.replies.is_empty());

    // Direct RPC: one request per node, every reply OK with the generated data.
    let ok = client
        .rpc(&generate(
            &["emu-1", "emu-2", "emu-3"],
            "generate",
            Duration::from_secs(20),
        ))
        .await
        .unwrap();
    assert_eq!((ok.ok(), ok.failed(), ok.missing_count), (3, 0, 0));
    assert!(!ok.timed_out);
    for r in &ok.replies {
        assert_eq!(
            r.data.as_ref().unwrap()["message"].as_str().unwrap().len(),
            7
        );
    }

    // Unknown action: statuscode 2 from each node.
    let failed = client
        .rpc(&generate(
            &["emu-4", "emu-5"],
            "nope",
            Duration::from_secs(20),
        ))
        .await
        .unwrap();
    assert_eq!(failed.failed(), 2);
    assert!(failed
        .replies
        .iter()
        .all(|r| r.statuscode == Some(STATUS_UNKNOWN_ACTION)));

    // A node that does not exist: reported as no-response once the call's timeout ends it
    // (the outer timeout only turns a hang into a failure).
    let missing = tokio::time::timeout(
        Duration::from_secs(60),
        client.rpc(&generate(
            &["emu-6", "ghost"],
            "generate",
            Duration::from_secs(1),
        )),
    )
    .await
    .expect("an RPC to a missing node hung past its timeout")
    .unwrap();
    assert_eq!(missing.no_responses, ["ghost"]);
    assert_eq!(missing.ok(), 1);
    assert!(missing.timed_out, "ended by its timeout, not by a reply");

    // Broadcast RPC with a node list: a node outside it is counted as unexpected.
    // "ghost" never answers, so the collector waits out the timeout and sees emu-2 arrive.
    let mut call = generate(
        &["emu-0", "emu-1", "ghost"],
        "generate",
        Duration::from_secs(2),
    );
    call.addressing = Addressing::Broadcast;
    call.filter = Filter {
        identity: vec!["emu-0".into(), "emu-1".into(), "emu-2".into()],
        ..Filter::default()
    };
    let unexpected = client.rpc(&call).await.unwrap();
    assert_eq!(unexpected.ok(), 2);
    assert_eq!(unexpected.unexpected, ["emu-2"]);
    assert_eq!(unexpected.no_responses, ["ghost"]);
}

#[actix_rt::test]
async fn federated_discovery_and_direct_rpc_through_a_broker() {
    let fed = NatsServer::start();
    let c0 = NatsServer::start();
    let c1 = NatsServer::start();
    let node = ChoirNode::start(&support::broker_config(
        &fed,
        &[("c0", &c0), ("c1", &c1)],
        "",
    ));
    let _f0 = support::start_fleet("c0-emu", 250, &c0).await;
    let _f1 = support::start_fleet("c1-emu", 50, &c1).await;
    support::wait_subscribed(&node, 2);
    let client = client(&fed.url(), &["c0", "c1"]).await;

    // Federated broadcast discovery: every daemon of both collectives, 4 seen-by hops each.
    let found = client
        .discover(&Discovery {
            timeout: Duration::from_secs(30),
            expect: Some(300),
            keep_bodies: true,
            ..Discovery::default()
        })
        .await
        .unwrap();
    let mut all: BTreeSet<String> = support::identities("c0-emu", 250);
    all.extend(support::identities("c1-emu", 50));
    assert_eq!(found.senders().into_iter().collect::<BTreeSet<_>>(), all);
    for r in &found.replies {
        assert_eq!(r.seen_by.len(), 4, "{:?}", r.seen_by);
        assert!(r.seen_by[1]
            .processor()
            .contains("choria_request_transformer"));
    }

    // Federated direct RPC to all 300 (two chunks of at most 200 targets, to both
    // clusters): every node answers once; none is unexpected or duplicated.
    let nodes: Vec<&str> = all.iter().map(String::as_str).collect();
    let result = client
        .rpc(&generate(&nodes, "generate", Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!((result.ok(), result.missing_count), (300, 0));
    assert_eq!((result.duplicates, result.unexpected_replies), (0, 0));

    // The CLI: choir ping --federation c0,c1 --trace shows each reply's path.
    let out = cli::choir(
        &[
            "ping",
            "--server",
            &fed.url(),
            "--federation",
            "c0,c1",
            "--expect",
            "1",
            "--timeout",
            "30s",
            "--trace",
            "--identity",
            "c1-emu-7",
        ],
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout.contains("\n1 replies max:"), "{}", out.stdout);
    assert!(
        out.stdout.contains("choria_request_transformer"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("choria_reply_transformer"),
        "{}",
        out.stdout
    );
    assert_eq!(
        out.stdout
            .lines()
            .filter(|l| l.starts_with("     "))
            .count(),
        4
    );
}
