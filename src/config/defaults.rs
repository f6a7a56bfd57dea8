//! Every default of the config, in one place.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

/// `[node].name`.
pub fn node_name() -> String {
    "choir".to_owned()
}

/// `[node].state_dir`.
pub fn state_dir() -> PathBuf {
    PathBuf::from("choir-state")
}

/// `[node].monitor`.
pub fn monitor() -> String {
    "127.0.0.1:9180".to_owned()
}

/// `[node].shutdown_timeout`.
pub const fn shutdown_timeout() -> Duration {
    Duration::from_secs(10)
}

/// `[node].watchdog_interval`.
pub const fn watchdog_interval() -> Duration {
    Duration::from_secs(1)
}

/// `[networks.X].connect_timeout`.
pub const fn connect_timeout() -> Duration {
    Duration::from_secs(5)
}

/// `[networks.X].max_backoff`.
pub const fn max_backoff() -> Duration {
    Duration::from_secs(5)
}

/// `[networks.X].subscription_capacity`.
pub const fn subscription_capacity() -> NonZeroUsize {
    match NonZeroUsize::new(65_536) {
        Some(n) => n,
        None => NonZeroUsize::MIN,
    }
}

/// `[networks.X.tls].verify`.
pub const fn tls_verify() -> bool {
    true
}

/// `[adapters.X].workers`.
pub const fn adapter_workers() -> NonZeroUsize {
    match NonZeroUsize::new(4) {
        Some(n) => n,
        None => NonZeroUsize::MIN,
    }
}

/// `[adapters.X].create_stream`.
pub const fn adapter_create_stream() -> bool {
    true
}

/// `[adapters.X].max_pending`: publishes per worker waiting for their ack.
pub const fn adapter_max_pending() -> NonZeroUsize {
    match NonZeroUsize::new(256) {
        Some(n) => n,
        None => NonZeroUsize::MIN,
    }
}

/// `[adapters.X].publish_retries`.
pub const fn adapter_publish_retries() -> u32 {
    5
}

/// `[adapters.X].retry_backoff`.
pub const fn adapter_retry_backoff() -> Duration {
    Duration::from_millis(100)
}

/// `[adapters.X].max_backoff`.
pub const fn adapter_max_backoff() -> Duration {
    Duration::from_secs(5)
}

/// `[adapters.X].ack_timeout`.
pub const fn adapter_ack_timeout() -> Duration {
    Duration::from_secs(5)
}

/// `[adapters.X].check_ttl`.
pub const fn adapter_check_ttl() -> bool {
    true
}

/// A `true` default.
pub const fn yes() -> bool {
    true
}

/// `[replicators.X].workers` (queued mode).
pub const fn replicator_workers() -> NonZeroUsize {
    match NonZeroUsize::new(4) {
        Some(n) => n,
        None => NonZeroUsize::MIN,
    }
}

/// `[replicators.X].window`: target publishes in flight per worker.
pub const fn replicator_window() -> NonZeroUsize {
    match NonZeroUsize::new(1024) {
        Some(n) => n,
        None => NonZeroUsize::MIN,
    }
}

/// `[replicators.X].window_bytes`: payload bytes in flight per worker (8 MiB).
pub const fn replicator_window_bytes() -> NonZeroUsize {
    match NonZeroUsize::new(8 << 20) {
        Some(n) => n,
        None => NonZeroUsize::MIN,
    }
}

/// `[replicators.X].msg_id` in ordered mode (queued mode always sends it).
pub const ORDERED_MSG_ID: bool = false;

/// `[replicators.X].max_senders`.
pub const fn max_senders() -> NonZeroUsize {
    match NonZeroUsize::new(100_000) {
        Some(n) => n,
        None => NonZeroUsize::MIN,
    }
}

/// `[replicators.X].max_rejections`.
pub const fn max_rejections() -> NonZeroUsize {
    match NonZeroUsize::new(3) {
        Some(n) => n,
        None => NonZeroUsize::MIN,
    }
}

/// `[replicators.X].ack_wait`.
pub const fn ack_wait() -> Duration {
    Duration::from_secs(30)
}

/// `[emulator].name`.
pub fn emulator_name() -> String {
    "emulated".to_owned()
}

/// `[emulator].instances`.
pub const fn emulator_instances() -> NonZeroUsize {
    match NonZeroUsize::new(10) {
        Some(n) => n,
        None => NonZeroUsize::MIN,
    }
}

/// `[emulator].agents`.
pub const fn emulator_agents() -> usize {
    1
}

/// `[emulator].collectives`.
pub const fn emulator_collectives() -> NonZeroUsize {
    NonZeroUsize::MIN
}

/// `[emulator].shared_connections`.
pub const fn emulator_shared_connections() -> NonZeroUsize {
    match NonZeroUsize::new(4) {
        Some(n) => n,
        None => NonZeroUsize::MIN,
    }
}

/// `[emulator].connect_concurrency`.
pub const fn emulator_connect_concurrency() -> NonZeroUsize {
    match NonZeroUsize::new(64) {
        Some(n) => n,
        None => NonZeroUsize::MIN,
    }
}

/// `[emulator].subscription_capacity`.
pub const fn emulator_subscription_capacity() -> NonZeroUsize {
    match NonZeroUsize::new(1024) {
        Some(n) => n,
        None => NonZeroUsize::MIN,
    }
}

/// `[emulator].ping_interval`.
pub const fn emulator_ping_interval() -> std::time::Duration {
    choir_actors::emulator::keepalive::DEFAULT_PING_INTERVAL
}

/// `[emulator].registration_splay`.
pub const fn emulator_registration_splay() -> bool {
    true
}

/// `[federation.X].workers`: workers per path. Each does ingest, transform and egest on the
/// broker's one thread, so more add no parallelism; 2 measured best on 2 cores.
pub const fn federation_workers() -> NonZeroUsize {
    match NonZeroUsize::new(2) {
        Some(n) => n,
        None => NonZeroUsize::MIN,
    }
}
