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

pub mod acks;
pub mod envelope;
pub mod failure;
pub mod gate;
pub mod ordered;
pub mod queued;
pub mod settings;
pub mod setup;
pub mod stats;
pub mod subject_map;
pub mod topic;
pub mod worker;

pub use settings::{Mode, ReplicatorSettings, StartPosition};
pub use stats::ReplicatorMetrics;
pub use topic::{StopReplicator, TopicReplicatorActor};
