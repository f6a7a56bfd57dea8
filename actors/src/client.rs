//! The measuring client: discovery, RPC, federation-aware publishing and measurement suites.
//!
//! ```text
//! ChoriaClient ──request()──▶ subscribe <collective>.reply.<md5(callerid)>.<requestid>
//!   │                         start RequestActor (owns the subscription, a ReplyCollector
//!   │                         and the deadline), then publish (PublishPlan)
//!   │                                        │
//!   └──────────── Collected ◀── oneshot ─────┘  (expected count reached, or timeout)
//! ```
//!
//! Every request gets its own [`RequestActor`], a thin actix shell around [`ReplyCollector`],
//! the plain-Rust core that records each reply's arrival time relative to the publish, its
//! statuscode, who did not answer, and unexpected or duplicate replies. Publishing is planned
//! by [`PublishPlan`]: broadcast, direct (one publish per node subject) or federated
//! (`choria.federation.<cluster>.federation` with the federation header, direct targets in
//! chunks of [`FEDERATION_CHUNK`]).
//!
//! - [`ChoriaClient`]: connection, [`ChoriaClient::discover`], [`ChoriaClient::rpc`].
//! - [`measure`]: the `measure` suite ([`MeasurePlan`], [`TestResult`], [`SuiteReport`]).
//! - [`report`] and [`chart`]: the CSV/JSON files and the SVG chart of a suite.
//! - [`ReplyDecoder`]: the client's reply decoder (same checks as `protocol::decode_reply`,
//!   hash verified, only the fields it needs, no allocation per reply).
//! - [`Stats`]: min, p50, p90, p99, max, mean and standard deviation of arrival times.
//!
//! Every wait is bounded: a request ends at its timeout even when nothing answers.

pub mod chart;
pub mod choria_config;
mod collector;
mod connect;
mod connect_secure;
mod decode;
#[cfg(test)]
mod decode_fuzz_tests;
pub mod measure;
mod options;
mod plan;
pub mod report;
mod request_actor;
mod session;
mod stats;
pub mod waiting;

pub use collector::{Collected, RecordOutcome, ReplyCollector, ReplyRecord};
pub use connect::connect;
pub use connect_secure::connect_with;
pub use decode::{decode_reply_view, statuscode, DecodedView, ReplyDecoder, ReplyView};
pub use measure::{run_suite, MeasurePlan, SuiteEvent, SuiteReport, TestResult};
pub use options::{ClientOptions, Expectation};
pub use plan::{Addressing, Publication, PublishPlan, FEDERATION_CHUNK};
pub use request_actor::{ReplyArrived, RequestActor};
pub use session::{ChoriaClient, Discovery, RpcCall};
pub use stats::Stats;
pub use waiting::ArrivalWindow;

use crate::protocol::ProtocolError;

/// Errors of the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No server URL was given.
    #[error("no NATS server given")]
    NoServers,
    /// The connection failed.
    #[error("connect to {urls} failed: {message}")]
    Connect {
        /// The servers tried.
        urls: String,
        /// Why.
        message: String,
    },
    /// A request could not be built or encoded.
    #[error("cannot build the request")]
    Protocol(#[from] ProtocolError),
    /// The reply subscription failed.
    #[error("cannot subscribe {subject}: {message}")]
    Subscribe {
        /// The reply subject.
        subject: String,
        /// Why.
        message: String,
    },
    /// A publish failed.
    #[error("cannot publish to {subject}: {message}")]
    Publish {
        /// The subject.
        subject: String,
        /// Why.
        message: String,
    },
    /// The request actor went away without a result.
    #[error("the request actor stopped without a result")]
    Lost,
    /// RPC data is not a JSON object.
    #[error("rpc data must be a JSON object, got {0}")]
    BadData(String),
    /// A request could not be signed.
    #[error("cannot sign the request")]
    Sign(#[from] crate::protocol::security::SecurityError),
    /// A credentials file for the connection could not be read.
    #[error("cannot read credentials file {path}")]
    Credentials {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Discovery found fewer nodes than required.
    #[error("discovered {found} nodes, expected {expected}")]
    TooFewNodes {
        /// Nodes found.
        found: usize,
        /// Nodes required.
        expected: usize,
    },
}
