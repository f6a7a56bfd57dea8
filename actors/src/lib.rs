//! The engine of choir: every actor and the typed messages they exchange.
//!
//! Each actor is a thin actix shell around a plain-Rust core that is unit-tested without a
//! running `System`.
//!
//! # Layout
//!
//! - [`connection`]: `NetworkActor`, one per `[networks.X]`: owns the async-nats connection,
//!   retries the first connect with backoff, counts connection events and hands the client to
//!   other actors through the [`connection::GetClient`] query; [`connection::dedicated`]
//!   connections for components that keep their socket I/O on their own arbiter.
//! - [`supervision`]: `WatchdogActor`, which re-creates actors whose mailbox closed (actix
//!   does not restart an actor that panicked), and [`supervision::ActorSlot`], the shared,
//!   always-current address of a watched actor.
//! - [`protocol`]: Choria protocol v1 wire types (transport, secure request/reply,
//!   request/reply), filters, subjects and mcorpc bodies; pure serde, no I/O.
//! - [`replicator`]: the stream replicator: sampling tracker, inspector, advisories, the
//!   ordered and queued copy loops, and the actors around them.
//! - [`adapter`]: the protocol adapter: `AdapterActor` workers subscribe a NATS subject with
//!   a queue group and publish into a JetStream stream (raw copy, or Choria requests as
//!   `choria:adapters:jetstream:output:1`).
//! - [`emulator`]: emulated Choria daemons (`EmulatedNodeActor`, shared links, the `Fleet`
//!   that starts them), their agents, registration and audit log.
//! - [`federation`]: the federation broker, `FederationBrokerActor` per cluster: federated
//!   requests into a collective, replies back, headers rewritten, signed data untouched.
//! - [`playbook`]: playbooks: spec and validation, inputs, templates, data stores (memory,
//!   nats_kv, etcd, file, environment), locks with TTL renewal, tasks, `PlaybookRunActor`, report.
//! - [`client`]: the measuring client: discovery, RPC, federation-aware publishing, reply
//!   collection (`RequestActor` per request), measure suites and their reports and chart.
//! - [`atomic_file`]: files replaced atomically (temporary file, fsync, rename, directory
//!   fsync), shared by the replicator's sampling state and the playbook file store.
//! - [`error_chain`]: [`error_chain::Chain`] prints an error with each of its causes once.
//! - [`metrics`]: the process-wide Prometheus registry every actor registers its counters in.
//! - [`names`]: the name rule (letters, digits, `-` and `_`) of config sections and
//!   playbook names.
//! - [`problems`]: every problem of a config or playbook file, each with its key and value.
//! - [`server_features`]: what a nats-server supports (batched publishing, API level), learned
//!   from its `INFO` and JetStream account info.
//!
//! Messages are commands (`Shutdown`), past-tense events (`ConnectionLost`) or queries
//! (`GetClient`, `GetStatus`). Wire types (what travels over NATS) live apart from actor
//! messages.

#![warn(unreachable_pub)]

pub mod adapter;
pub mod atomic_file;
pub mod client;
pub mod connection;
pub mod emulator;
pub mod error_chain;
pub mod federation;
#[cfg(test)]
use choir_protocol::fuzzing;
pub mod metrics;
pub mod names;
pub mod playbook;
pub mod problems;
pub use choir_protocol as protocol;
pub mod replicator;
pub mod server_features;
pub mod supervision;
