//! The emulator: thousands of Choria daemons in one process, each answering Choria protocol v1
//! requests like a real server, for load tests of NATS and Choria networks.
//!
//! ```text
//! Fleet ──start──▶ WireDaemon task ×N            (dedicated: own NATS connection each,
//!   │               or EmulatedNodeActor ×N        subscriptions per collective × agent
//!   │               (TLS, creds, nkeys), spread    plus <collective>.node.<identity>)
//!   │               over one arbiter per core,
//!   │               bounded connects
//!   └──────────▶ SharedLinkActor ×K               (shared: K connections, each carrying many
//!                                                   EmulatedNode cores)
//! ```
//!
//! A `WireDaemon` speaks the NATS protocol on its socket itself (`wire`, `wire_daemon`): it
//! answers a request in the poll that read it, with one task wake-up, one read and one write.
//! Each actor and task is a thin shell around [`EmulatedNode`], the plain-Rust core that turns one NATS
//! message into at most one reply: decode → TTL → collective → filter → agent dispatch →
//! encoded reply ([`EmulatedNode::handle`]). Everything it refuses is counted in
//! [`EmulatorMetrics`] by [`DropReason`] and never answered.
//!
//! A request reaching thousands of daemons of one process is decoded once per arbiter thread
//! ([`RequestCache`], keyed by the payload's bytes) and each daemon only encodes its own reply
//! (with the thread's [`ReplyEncoder`](crate::protocol::ReplyEncoder) buffers).
//!
//! - [`agents`]: `discovery`, `rpcutil` (the actions of go-choria's rpcutil DDL) and
//!   `emulated0..N-1#generate`.
//! - [`daemon_stats`]: what each daemon saw, for `rpcutil#daemon_stats`.
//! - [`registration`]: the registration request each daemon publishes on a timer.
//! - [`audit`]: the Choria audit log, one JSON line per RPC request handled.
//! - [`budget`]: how many open files a fleet needs, checked before anything starts.
//! - [`spec`]: [`FleetSpec`], everything a fleet is made of.
//! - [`fleet`]: [`Fleet`], which starts the actors and reports progress.

pub mod agents;
pub mod audit;
pub mod budget;
mod connect;
mod daemon;
pub mod daemon_stats;
mod failure_log;
pub mod fleet;
mod fleet_shared;
pub mod keepalive;
mod metrics;
mod node;
pub mod registration;
mod request_cache;
pub mod security;
mod servers;
mod shared;
pub mod spec;
mod subscriptions;
mod wire;
mod wire_daemon;
#[cfg(test)]
mod wire_fuzz_tests;

pub use agents::{AgentInput, AgentOutcome};
pub use audit::{AuditLog, AuditRecord};
pub use budget::{check_fd_budget, FdBudget};
pub use daemon::EmulatedNodeActor;
pub use fleet::{Fleet, FleetProgress, FleetStatus};
pub use metrics::{DropReason, EmulatorMetrics};
pub use node::{EmulatedNode, Handled, Incoming, NodeProfile, Outgoing, Prepared};
pub use request_cache::RequestCache;
pub use security::{FleetSecurity, RequestSecurity, SecurityMetrics};
pub use shared::SharedLinkActor;
pub use spec::{ConnectionMode, FleetSpec, RegistrationSpec};

/// Errors of the emulator.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The fleet needs more open files than this process may hold.
    #[error("{0}")]
    FdBudget(String),
    /// The fleet has no server to connect to.
    #[error("no NATS server given")]
    NoServers,
    /// The security policy of a secure emulator cannot be loaded.
    #[error("cannot load the emulator's security policy")]
    Security(#[from] crate::protocol::security::SecurityError),
    /// The audit log cannot be opened.
    #[error("cannot open audit log {path}")]
    Audit {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A connect attempt failed (retried by the daemon).
    #[error("connect to {url} failed")]
    Connect {
        /// The server.
        url: String,
        /// Why.
        source: async_nats::ConnectError,
    },
    /// The credentials file cannot be read.
    #[error("cannot read credentials file {path}")]
    Credentials {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}
