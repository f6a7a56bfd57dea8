//! choir: an actor-model federation broker runtime for NATS and Choria networks.
//!
//! One long-running, TOML-configured node hosts supervised actors (in the `choir-actors`
//! crate) that replicate streams between clusters, bridge federation and collective networks,
//! emulate fleets of Choria daemons, measure them and run playbooks.
//!
//! # Layout
//!
//! - [`agent`]: `choir agent`, the load-test agent: a Choria server whose `emulator` and
//!   `nats` agents start and stop `choir emulate` and `nats-server` on its host.
//! - [`client_cli`]: `choir ping`, `choir rpc` and `choir measure` (the measuring client).
//! - [`config`]: the TOML config: one struct per section, defaults in one place, validation
//!   that reports every problem with its key and value.
//! - [`node`]: the supervision tree that turns a config into running actors, and the ordered
//!   shutdown; its parts under `node/`: [`node::adapters`] (the `[adapters.<name>]` workers),
//!   [`node::replicators`] (the `[replicators.*]`), [`node::brokers`] (the
//!   `[federation.<cluster>]` brokers), [`node::embedded`] (the embedded default, a loopback
//!   nats-server child process supervised by `EmbeddedServerActor`) and [`node::emulator`]
//!   (the `[emulator]` fleet of `choir run`).
//! - [`emulate`]: `choir emulate` (fd limit, progress bar, `/debug/vars`) and the fleet
//!   preflight it shares with [`node::emulator`].
//! - [`import`]: `choir import stream-replicator`, the Choria Stream Replicator's YAML as
//!   choir TOML (also read directly by `choir run sr.yaml`).
//! - [`nats_binary`]: where the `nats-server` binary is (used by config checks and
//!   [`node::embedded`]).
//! - [`monitor`]: the HTTP monitor (`/metrics`, `/healthz`, `/debug/vars`).
//! - [`playbook`]: `choir playbook run|show|check`, the command-line playbook runner.
//! - [`replicator_cli`]: `choir replicator state|advisories`, operator tools.
//! - [`signal`]: waiting for SIGINT or SIGTERM.
//! - [`telemetry`]: logging setup.
//!
//! The binary (`src/main.rs`) is only the command line.

#![warn(unreachable_pub)]

pub mod agent;
pub mod client_cli;
pub mod config;
pub mod emulate;
pub mod import;
pub mod monitor;
pub mod nats_binary;
pub mod node;
pub mod playbook;
pub mod replicator_cli;
pub mod security_args;
pub mod signal;
pub mod telemetry;

pub use choir_actors as actors;
