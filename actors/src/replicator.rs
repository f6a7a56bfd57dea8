//! The stream replicator: copies a JetStream stream from one network to another.
//!
//! Plain-Rust cores, unit-tested without actix:
//! - [`sampling`]: `SamplingTracker`, per-sender copy decisions bounded by an LRU, persisted;
//! - [`inspect`]: `Inspector`, where the sender comes from (JSON path, header, subject token);
//! - [`advisory`]: advisory messages and their subjects;
//! - [`envelope`]: the headers a copy carries (provenance, de-duplication, preconditions);
//! - [`subject_map`], [`failure`], [`settings`]: subject rewrite, publish failure classes,
//!   validated settings.
//!
//! Actors and their copy loops:
//! - [`topic`]: `TopicReplicatorActor`, one per `[replicators.X]`: setup, tracker, advisories;
//! - [`worker`]: `ReplicaWorkerActor`, one per worker arbiter, with its own connections;
//! - [`ordered`], [`queued`]: the two copy loops; [`acks`]: the target ack inbox they share;
//! - [`setup`], [`gate`], [`metrics`]: JetStream setup and resume points, copy decisions,
//!   metrics; [`publish_path`]: per-message or fast-ingest batches, asked of the target;
//! - [`election`], [`gossip`]: high availability (one leader among nodes) and the sampling
//!   state its replicas share;
//! - [`choria`]: Choria Stream Replicator compatibility (headers, advisories, heartbeats,
//!   metric names).

pub mod advisory;
pub mod inspect;
#[cfg(test)]
mod inspect_fuzz_tests;
pub mod sampling;

pub mod acks;
pub mod choria;
pub mod context;
pub mod election;
pub mod envelope;
pub mod failure;
pub mod gate;
pub mod gossip;
pub mod metrics;
pub mod ordered;
pub mod publish_path;
pub mod queued;
pub mod settings;
pub mod setup;
pub mod setup_patience;
pub mod subject_map;
pub mod topic;
pub mod worker;

pub use metrics::ReplicatorMetrics;
pub use settings::{Mode, ReplicatorSettings, StartPosition};
pub use topic::{ReplicatorNetworks, TopicReplicatorActor};
