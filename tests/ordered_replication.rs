//! Ordered replication: every source message lands in the target exactly once, in source
//! order, with its headers, and a provenance header naming where it came from.

mod common;

use std::time::Duration;

use common::jetstream::{connect, create_stream, publish_many, read_all, wait_for_count};
use common::{ChoirNode, NatsServer};

const N: usize = 100_000;

pub fn replicator_config(source: &NatsServer, target: &NatsServer, extra: &str) -> String {
    format!(
        r#"
[networks.region]
urls = ["{}"]

[networks.central]
urls = ["{}"]

[replicators.orders]
source = "region"
target = "central"
stream = "ORDERS"
{extra}
"#,
        source.url(),
        target.url()
    )
}

#[tokio::test]
async fn ordered_replication_copies_each_message_once_in_source_order_with_headers() {
    let source = NatsServer::start();
    let target = NatsServer::start();
    let src = connect(&source.url()).await;
    create_stream(&src, "ORDERS", &["orders.>"]).await;
    publish_many(&src, N, |i| {
        (
            format!("orders.{}", i % 7),
            format!("{{\"n\":{i}}}").into_bytes(),
        )
    })
    .await;

    let node = ChoirNode::start(&replicator_config(&source, &target, "mode = \"ordered\""));
    let dst = connect(&target.url()).await;
    assert!(
        wait_for_count(&dst, "ORDERS", N as u64, Duration::from_secs(120)).await,
        "target has {} of {N}; log:\n{}",
        common::jetstream::count(&dst, "ORDERS").await,
        node.log()
    );
    let copied = read_all(&dst, "ORDERS").await;
    assert_eq!(copied.len(), N);
    for (i, m) in copied.iter().enumerate() {
        assert_eq!(
            m.payload.as_ref(),
            format!("{{\"n\":{i}}}").as_bytes(),
            "position {i}"
        );
        assert_eq!(m.subject, format!("orders.{}", i % 7));
        assert_eq!(
            m.header("X-Index").as_deref(),
            Some(i.to_string().as_str()),
            "header kept"
        );
        let provenance = m.header("Choir-Provenance").unwrap();
        assert!(
            provenance.starts_with(&format!("replicator=orders stream=ORDERS seq={} ", i + 1)),
            "{provenance}"
        );
        assert_eq!(
            m.header("Nats-Msg-Id").unwrap(),
            format!("orders:ORDERS:{}", i + 1)
        );
    }
}
