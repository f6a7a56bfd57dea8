//! Where the `nats-server` binary is: a plain lookup with no runtime parts, so that config
//! validation (`choir check`) and the embedded server ([`crate::node::embedded`]) use the same rule
//! without the config importing the runtime.

use std::path::PathBuf;

/// Finds `nats-server` on `PATH`, then in the usual system places.
pub fn find_nats_server() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/usr/local/bin", "/usr/bin"].map(PathBuf::from))
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file())
}
