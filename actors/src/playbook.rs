//! Playbooks: TOML files of inputs, data stores, distributed locks, node sets, tasks and hooks,
//! run by a [`PlaybookRunActor`] that always releases its locks.
//!
//! # Layout
//!
//! - [`spec`]: the model of the file as written (serde, `deny_unknown_fields`); TOML files
//!   deserialize straight into it, YAML files through [`yaml`] (Choria's layout).
//! - [`validate`]: loading and validation naming the file and key; the validated [`Playbook`].
//! - [`input`]: typed input values and validation rules (`shellsafe`, `ipv4`, `/regex/`, …).
//! - [`template`]: `{{ x }}` / `{{{ x }}}` rendering.
//! - [`store`]: data stores behind one trait: memory, nats_kv, etcd, file, environment.
//! - [`lock`]: `LockKeeper`, TTL renewal and lost-lock detection.
//! - [`client`]: where discovery node sets and `rpc` tasks connect (`[client]`, CLI flags).
//! - [`nodes`]: node sets (list, file, discovery, yaml, shell), their ping test.
//! - [`uses`]: agent version ranges checked against `rpcutil#agent_inventory`.
//! - [`task`]: shell, data, sleep, webhook, slack, graphite_event, rpc.
//! - [`run`]: the run core ([`Runner`]); [`actor`]: its actix shell.
//! - [`report`]: the JSON report.

pub mod actor;
pub mod client;
mod client_security;
pub mod input;
pub mod lock;
pub mod nodes;
pub mod report;
pub mod run;
pub mod spec;
pub mod store;
pub mod task;
pub mod template;
pub mod uses;
pub mod validate;
#[cfg(test)]
mod validate_fuzz_tests;
pub mod yaml;

use std::path::PathBuf;

pub use actor::{PlaybookRunActor, RunPlaybook};
pub use report::Report;
pub use run::Runner;
pub use validate::{load, parse, Playbook, Problem};

/// Why a playbook could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PlaybookError {
    /// The file could not be read.
    #[error("{}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// TOML or YAML syntax or shape error.
    #[error("{}{line}: {key}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// `:<line>` when known.
        line: String,
        /// Dotted key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// Validation problems.
    #[error("{}: invalid playbook:{}", path.display(), problems.iter().map(|p| match p.line {
        Some(line) => format!("\n  line {line}: {p}"),
        None => format!("\n  {p}"),
    }).collect::<String>())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}
