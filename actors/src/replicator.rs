//! The stream replicator: copies a JetStream stream from one network to another.
//!
//! Plain-Rust cores, unit-tested without actix:
//! - [`sampling`]: `SamplingTracker`, per-sender copy decisions bounded by an LRU, persisted;
//! - [`inspect`]: `Inspector`, where the sender comes from (JSON path, header, subject token);
//! - [`advisory`]: advisory messages and their subjects;
//! - [`window`]: `AckWindow`, in-order source acks for the pipelined ordered worker.

pub mod advisory;
pub mod inspect;
pub mod sampling;
pub mod window;
