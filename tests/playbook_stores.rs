//! Playbook data stores against real servers, below the runner: a nats_kv lock fails at once
//! with the server's error when the bucket refuses it or the user may not write it; a late nats_kv release never removes
//! someone else's lock; etcd fencing tokens strictly increase across successive holders, even
//! when they talk to different members; two file store instances writing the same file at
//! the same time lose no update.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use choir_actors::playbook::store::{
    self, etcd::EtcdStore, file::FileStore, DataStore, StoreConfig, StoreError, StoreKind,
};
use common::etcd::Etcd;
use common::NatsServer;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn nats_config(server: &NatsServer, ttl: Duration) -> StoreConfig {
    StoreConfig {
        name: "pb".into(),
        timeout: Duration::from_secs(120),
        ttl,
        kind: StoreKind::NatsKv {
            servers: vec![server.url()],
            bucket: "DATA".into(),
            lock_bucket: "LOCKS".into(),
            replicas: 1,
        },
    }
}

#[test]
fn a_nats_kv_lock_the_bucket_refuses_fails_at_once_with_the_servers_error() {
    let server = NatsServer::start();
    let ttl = Duration::from_secs(20);
    runtime().block_on(async {
        // The lock bucket exists already, with values limited to 8 bytes: every owner
        // record is refused by the server. No one holds the lock.
        let client = async_nats::connect(server.url()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        js.create_stream(async_nats::jetstream::stream::Config {
            name: "KV_LOCKS".into(),
            subjects: vec!["$KV.LOCKS.>".into()],
            max_messages_per_subject: 1,
            max_age: ttl,
            max_message_size: 8,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: async_nats::jetstream::stream::DiscardPolicy::New,
            ..Default::default()
        })
        .await
        .unwrap();
        let store = store::open(&nats_config(&server, ttl)).await.unwrap();
        // Bounded: before the fix this waited for the whole 120 s lock timeout.
        let result = tokio::time::timeout(
            Duration::from_secs(60),
            store.lock("k", Duration::from_secs(120), ttl),
        )
        .await
        .expect("the lock kept retrying an error that waiting cannot fix");
        match result {
            Err(StoreError::Backend { message, .. }) => assert!(
                message.contains("message size exceeds maximum allowed"),
                "{message}"
            ),
            other => panic!("expected the server's error, got {other:?}"),
        }
    });
}

#[test]
fn a_nats_kv_lock_a_user_may_not_write_fails_at_once_with_the_servers_error() {
    // Connections without credentials are the user `limited`, who may publish anywhere but to
    // the lock bucket's subjects.
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("server.conf");
    std::fs::write(
        &conf,
        r#"no_auth_user: limited
authorization {
  users = [
    { user: limited, password: limited, permissions: { publish: { allow: [">"], deny: ["$KV.LOCKS.>"] } } }
  ]
}
"#,
    )
    .unwrap();
    let server = NatsServer::start_with(common::nats::free_port(), &["-c", conf.to_str().unwrap()]);
    let ttl = Duration::from_secs(20);
    let config = nats_config(&server, ttl);
    runtime().block_on(async {
        let store = store::open(&config).await.unwrap();
        let result = tokio::time::timeout(
            Duration::from_secs(60),
            store.lock("k", Duration::from_secs(120), ttl),
        )
        .await
        .expect("the lock kept retrying an error that waiting cannot fix");
        match result {
            Err(StoreError::Backend { message, .. }) => assert!(
                message.contains("Permissions Violation for Publish to \"$KV.LOCKS.k\""),
                "{message}"
            ),
            other => panic!("expected the server's error, got {other:?}"),
        }
    });
}

#[test]
fn a_late_nats_kv_release_never_removes_someone_elses_lock() {
    let server = NatsServer::start();
    let ttl = Duration::from_secs(2);
    runtime().block_on(async {
        let config = nats_config(&server, ttl);
        let first = store::open(&config).await.unwrap();
        let second = store::open(&config).await.unwrap();
        let old = first.lock("k", Duration::from_secs(5), ttl).await.unwrap();
        // The first holder stops renewing: its lock ages out and the second one gets it.
        let new = second
            .lock("k", Duration::from_secs(30), ttl)
            .await
            .unwrap();
        assert!(new.fence > old.fence, "{old:?} {new:?}");
        // The first holder wakes up and releases what it thinks it still holds.
        first.release(&old).await.unwrap();
        let client = async_nats::connect(server.url()).await.unwrap();
        let locks = async_nats::jetstream::new(client)
            .get_key_value("LOCKS")
            .await
            .unwrap();
        let entry = locks.entry("k").await.unwrap().expect("the lock is gone");
        assert_eq!(entry.revision, new.fence, "the lock was replaced");
        assert_eq!(
            entry.operation,
            async_nats::jetstream::kv::Operation::Put,
            "the late release removed the new holder's lock"
        );
        // And the new holder still renews it.
        second.renew(&new).await.unwrap();
    });
}

/// How many keys are under `fenced/` (each holder or waiter has one), over etcd's JSON gateway.
fn lock_keys(addr: std::net::SocketAddr) -> Option<u64> {
    use std::io::{Read, Write};
    // "fenced/" to "fenced0", base64.
    let body = r#"{"key":"ZmVuY2VkLw==","range_end":"ZmVuY2VkMA==","count_only":true}"#;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "POST /v3/kv/range HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (_, json) = response.split_once("\r\n\r\n")?;
    let reply: serde_json::Value = serde_json::from_str(json).ok()?;
    match reply.get("count") {
        None => Some(0),
        Some(serde_json::Value::String(count)) => count.parse().ok(),
        Some(count) => count.as_u64(),
    }
}

#[test]
fn etcd_fencing_tokens_strictly_increase_across_holders_on_different_members() {
    let cluster = Etcd::cluster(2);
    let stores: Vec<Arc<EtcdStore>> = cluster
        .iter()
        .map(|member| Arc::new(EtcdStore::new("pb", &member.url())))
        .collect();
    let ttl = Duration::from_secs(10);
    runtime().block_on(async {
        let mut fences = Vec::new();
        // Holders alternate between the members; lease ids carry the granting member's id in
        // their top bits, so they go down at least once here.
        for round in 0..6 {
            let store = &stores[round % stores.len()];
            let token = store
                .lock("fenced", Duration::from_secs(20), ttl)
                .await
                .unwrap();
            fences.push(token.fence);
            store.release(&token).await.unwrap();
        }
        // A holder that had to wait for the previous one.
        let held = stores[1]
            .lock("fenced", Duration::from_secs(20), ttl)
            .await
            .unwrap();
        let waiting = {
            let store = stores[0].clone();
            tokio::spawn(async move { store.lock("fenced", Duration::from_secs(20), ttl).await })
        };
        // The waiter's lock key exists (so it is queued) before the holder lets go.
        let member = cluster[0].addr();
        assert!(
            common::eventually(Duration::from_secs(20), || async move {
                tokio::task::spawn_blocking(move || lock_keys(member))
                    .await
                    .unwrap()
                    == Some(2)
            })
            .await,
            "the second holder never queued"
        );
        fences.push(held.fence);
        stores[1].release(&held).await.unwrap();
        let next = waiting.await.unwrap().unwrap();
        fences.push(next.fence);
        stores[0].release(&next).await.unwrap();
        assert!(
            fences.windows(2).all(|w| w[0] < w[1]),
            "fencing tokens not strictly increasing: {fences:?}"
        );
    });
}

#[test]
fn two_file_store_instances_writing_the_same_file_lose_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.json");
    const WRITES: usize = 200;
    let writers: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|who| {
            let path = path.clone();
            std::thread::spawn(move || {
                // Its own instance, its own runtime: nothing shared in this process.
                let store = FileStore::open(who, &path, true).unwrap();
                runtime().block_on(async {
                    for i in 0..WRITES {
                        store
                            .write(&format!("{who}{i}"), &i.to_string())
                            .await
                            .unwrap();
                    }
                });
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
    let missing: Vec<String> = ["a", "b"]
        .iter()
        .flat_map(|who| (0..WRITES).map(move |i| format!("{who}{i}")))
        .filter(|key| !map.contains_key(key))
        .collect();
    assert!(missing.is_empty(), "lost updates: {missing:?}");
    assert_eq!(map.len(), 2 * WRITES);
    // The file keeps its name and extension; no temporary file is left behind.
    assert!(!dir.path().join("data.tmp").exists());
    assert!(!dir.path().join("data.json.tmp").exists());
}
