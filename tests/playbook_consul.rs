//! The Consul store against the Consul-API test server (tests/common/consul.rs): KV values
//! round-trip, a second session cannot take a held lock, a non-holder cannot release it, an
//! expired session's lock key is deleted (`Behavior: delete`) and a renewed one is kept.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use choir_actors::playbook::store::consul::ConsulStore;
use choir_actors::playbook::store::{DataStore, LockToken, StoreError};
use common::consul::ConsulApi;
use common::poll::poll_until;

#[tokio::test]
async fn consul_kv_values_are_written_read_and_deleted() {
    let consul = ConsulApi::start();
    let store = ConsulStore::new("pb", &consul.url(), None);
    assert_eq!(store.read("choria/kv/cluster").await.unwrap(), None);
    store.write("choria/kv/cluster", "alpha é").await.unwrap();
    assert_eq!(
        store.read("choria/kv/cluster").await.unwrap().as_deref(),
        Some("alpha é")
    );
    store.delete("choria/kv/cluster").await.unwrap();
    assert_eq!(store.read("choria/kv/cluster").await.unwrap(), None);
}

#[tokio::test]
async fn a_consul_lock_held_by_one_session_cannot_be_acquired_by_another() {
    let consul = ConsulApi::start();
    let store = ConsulStore::new("pb", &consul.url(), None);
    let held = store
        .lock("locks/a", Duration::from_secs(1), Duration::from_secs(30))
        .await
        .unwrap();
    let error = store
        .lock(
            "locks/a",
            Duration::from_millis(600),
            Duration::from_secs(30),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::LockTimeout { .. }), "{error}");
    // The waiter destroyed its session: only the holder's is left.
    assert_eq!(consul.live_sessions(), 1);
    store.release(&held).await.unwrap();
    let next = store
        .lock("locks/a", Duration::from_secs(1), Duration::from_secs(30))
        .await
        .unwrap();
    assert!(
        held.fence < next.fence,
        "{} then {}",
        held.fence,
        next.fence
    );
    store.release(&next).await.unwrap();
    assert_eq!(consul.live_sessions(), 0);
}

#[tokio::test]
async fn a_consul_lock_is_not_released_by_a_session_that_does_not_hold_it() {
    let consul = ConsulApi::start();
    let store = ConsulStore::new("pb", &consul.url(), None);
    let held = store
        .lock("locks/b", Duration::from_secs(1), Duration::from_secs(30))
        .await
        .unwrap();
    let stranger = LockToken {
        handle: "00000000-0000-0000-0000-999999999999".into(),
        ..held.clone()
    };
    assert!(store.release(&stranger).await.is_err());
    // Still held: another session still cannot take it.
    assert!(store
        .lock(
            "locks/b",
            Duration::from_millis(300),
            Duration::from_secs(30)
        )
        .await
        .is_err());
    store.release(&held).await.unwrap();
}

#[tokio::test]
async fn an_expired_consul_session_deletes_its_lock_key_and_a_renewed_one_keeps_it() {
    let consul = ConsulApi::start();
    let store = ConsulStore::new("pb", &consul.url(), None);
    let ttl = Duration::from_secs(1);
    let kept = store
        .lock("locks/kept", Duration::from_secs(1), ttl)
        .await
        .unwrap();
    let dropped = store
        .lock("locks/dropped", Duration::from_secs(1), ttl)
        .await
        .unwrap();
    assert!(store.read("locks/dropped").await.unwrap().is_some());
    // Renew only `kept` until `dropped`'s session has expired and its key is gone.
    let mut gone = false;
    for _ in 0..40 {
        store.renew(&kept).await.unwrap();
        if store.read("locks/dropped").await.unwrap().is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the expired session's lock key is still there");
    assert!(store.read("locks/kept").await.unwrap().is_some());
    assert!(matches!(
        store.renew(&dropped).await.unwrap_err(),
        StoreError::LockLost { .. }
    ));
    store.release(&kept).await.unwrap();
    assert!(poll_until(Duration::from_secs(5), || consul
        .live_sessions()
        == 0));
}
