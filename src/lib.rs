//! choir: an actor-model federation broker runtime for NATS and Choria networks.
//!
//! One long-running, TOML-configured node hosts supervised actors (in the `choir-actors`
//! crate) that replicate streams between clusters, bridge federation and collective networks,
//! emulate fleets of Choria daemons, measure them and run playbooks.
//!
//! # Layout
//!
//! - [`client_cli`]: `choir ping`, `choir rpc` and `choir measure` (the measuring client).
//! - [`config`]: the TOML config: one struct per section, defaults in one place, validation
//!   that reports every problem with its key and value.
//! - [`node`]: the supervision tree that turns a config into running actors, and the ordered
//!   shutdown.
//! - [`adapters`]: starts the `[adapters.<name>]` sections (protocol adapter workers).
//! - [`embedded`]: the embedded default, a loopback nats-server child process supervised by
//!   `EmbeddedServerActor`.
//! - [`emulate`]: `choir emulate` and the `[emulator]` fleet of `choir run` (fd limit,
//!   progress bar, `/debug/vars`).
//! - [`federation`]: starts the `[federation.<cluster>]` brokers.
//! - [`nats_binary`]: where the `nats-server` binary is (used by config checks and
//!   [`embedded`]).
//! - [`monitor`]: the HTTP monitor (`/metrics`, `/healthz`, `/debug/vars`).
//! - [`playbook`]: `choir playbook run|show|check`, the command-line playbook runner.
//! - [`replication`]: starts the `[replicators.*]` (the actors live in `choir-actors`).
//! - [`signal`]: waiting for SIGINT or SIGTERM.
//! - [`telemetry`]: logging setup.
//!
//! The binary (`src/main.rs`) is only the command line.

pub mod adapters;
pub mod agent;
pub mod client_cli;
pub mod config;
pub mod embedded;
pub mod emulate;
pub mod federation;
pub mod monitor;
pub mod nats_binary;
pub mod node;
pub mod playbook;
pub mod replication;
pub mod security_args;
pub mod signal;
pub mod telemetry;

pub use choir_actors as actors;
