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
