//! Choria Stream Replicator compatibility (`compat = "choria"`): the parts of a copy, an
//! advisory, a heartbeat and a metric that the SR's tools, dashboards and advisory consumers
//! read, made the SR's way. choir's own headers, advisories and metrics stay as they are; these
//! come in addition (advisories instead, since one event gets one advisory).
//!
//! - [`source_header`]: `Choria-SR-Source: "<stream> <seq> <site> <name> <ts_ms>"`;
//! - [`advisory`]: `io.choria.sr.v2.age_advisory` and its k-sortable event id;
//! - [`heartbeat`]: a unix-timestamp body with `Choria-SR-Originator`;
//! - [`metrics`]: `choria_stream_replicator_*` series with `stream`, `replicator`, `worker`.

pub mod advisory;
pub mod heartbeat;
pub mod metrics;
pub mod source_header;

pub use advisory::{SrAdvisory, SR_ADVISORY_PROTOCOL};
pub use source_header::{SrSource, SR_SOURCE};
