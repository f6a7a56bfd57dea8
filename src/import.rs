//! `choir import <kind> <file>`: other tools' configs turned into choir TOML.
//!
//! - [`stream_replicator`]: the Choria Stream Replicator's v2 YAML.

pub mod stream_replicator;

use std::path::{Path, PathBuf};

/// Why a file could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read.
    #[error("{path}: cannot read")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid YAML, or a key has the wrong type or is unknown.
    #[error("{path}{line}: {key}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// `:<line>`, or empty when unknown.
        line: String,
        /// The key (dotted path) at fault.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The YAML parsed but cannot be mapped (a required key is missing, a value is invalid).
    #[error("{path}: {} problem{}{}", .problems.len(), if .problems.len() == 1 { "" } else { "s" }, ProblemList(.path, .problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// `(line suffix, key = value: why)` for each problem.
        problems: Vec<String>,
    },
}

struct ProblemList<'a>(&'a Path, &'a [String]);

impl std::fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for p in self.1 {
            write!(f, "\n  {}{p}", self.0.display())?;
        }
        Ok(())
    }
}

/// Whether `path` looks like a YAML file (`.yaml`, `.yml`).
pub fn is_yaml(path: &Path) -> bool {
    choir_actors::playbook::yaml::is_yaml(path)
}
