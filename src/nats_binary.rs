//! Where the `nats-server` binary is: a plain lookup with no runtime parts, so that config
//! validation (`choir check`) and the embedded server ([`crate::node::embedded`]) use the same rule
//! without the config importing the runtime.
//!
//! Two rules: [`find_nats_server`] takes the first `nats-server` on `PATH` or in the usual
//! system places (enough to say whether one is installed); [`newest_nats_server`] asks every
//! one it finds for its `--version` and takes the highest (the embedded default).

use std::cmp::Ordering;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tracing::debug;

/// The system places searched after `PATH`.
const USUAL_DIRS: [&str; 4] = ["/usr/sbin", "/usr/local/sbin", "/usr/local/bin", "/usr/bin"];

/// How long `nats-server --version` may take before the binary is passed over.
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors of asking a binary for its version.
#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    /// The binary could not be run.
    #[error("cannot run {path} --version")]
    Spawn {
        /// The binary.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The binary did not answer in time.
    #[error("{path} --version did not answer within {timeout:?}")]
    Timeout {
        /// The binary.
        path: String,
        /// How long it was given.
        timeout: Duration,
    },
    /// The answer holds no version.
    #[error("{path} --version printed no version: {output:?}")]
    Unparsable {
        /// The binary.
        path: String,
        /// What it printed (first line).
        output: String,
    },
}

/// A nats-server release, as `nats-server --version` prints it (`nats-server: v2.15.1`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServerVersion {
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// Patch number.
    pub patch: u64,
    /// Pre-release tag (`RC.1` in `2.12.0-RC.1`), empty for a release.
    pub pre: String,
}

impl ServerVersion {
    /// Parses `v2.15.1`, `2.9.10`, `2.12.0-RC.1` or a whole `nats-server: v2.15.1` line.
    pub fn parse(text: &str) -> Option<Self> {
        let word = text
            .split_whitespace()
            .map(|w| w.trim_start_matches('v'))
            .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
        let (numbers, pre) = word.split_once('-').unwrap_or((word, ""));
        let mut parts = numbers.split('.');
        let mut number = || parts.next().and_then(|p| p.parse::<u64>().ok());
        let (major, minor) = (number()?, number()?);
        let patch = number().unwrap_or(0);
        Some(Self {
            major,
            minor,
            patch,
            pre: pre.to_owned(),
        })
    }
}

impl Ord for ServerVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            // A release is newer than its own pre-releases.
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => self.pre.cmp(&other.pre),
            })
    }
}

impl PartialOrd for ServerVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre)?;
        }
        Ok(())
    }
}

/// A nats-server binary and the version it reported (`None` when it did not say).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsBinary {
    /// The binary.
    pub path: PathBuf,
    /// Its version.
    pub version: Option<ServerVersion>,
}

/// The directories searched, in order: `PATH`, then the usual system places.
fn search_dirs() -> Vec<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(USUAL_DIRS.map(PathBuf::from))
        .collect()
}

/// Finds `nats-server` on `PATH`, then in the usual system places.
pub fn find_nats_server() -> Option<PathBuf> {
    search_dirs()
        .into_iter()
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file())
}

/// Every `nats-server` file in `dirs`, in order, each real file once (a symlink or a second
/// spelling of a directory already listed is left out).
pub fn candidates_in(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut seen = Vec::new();
    let mut found = Vec::new();
    for path in dirs.iter().map(|dir| dir.join("nats-server")) {
        if !path.is_file() {
            continue;
        }
        let real = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if !seen.contains(&real) {
            seen.push(real);
            found.push(path);
        }
    }
    found
}

/// Runs `path --version` (bounded in time) and parses the answer.
pub fn server_version(path: &Path) -> Result<ServerVersion, VersionError> {
    let shown = path.display().to_string();
    let mut child = Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| VersionError::Spawn {
            path: shown.clone(),
            source,
        })?;
    let deadline = Instant::now() + VERSION_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(VersionError::Timeout {
                    path: shown,
                    timeout: VERSION_TIMEOUT,
                });
            }
        }
    }
    let mut output = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_string(&mut output);
    }
    let line = output.lines().next().unwrap_or_default();
    ServerVersion::parse(line).ok_or_else(|| VersionError::Unparsable {
        path: shown,
        output: line.chars().take(200).collect(),
    })
}

/// Of `paths`, the one reporting the highest version (the first of equals); when none
/// reports a version, the first path with no version; `None` for no paths.
pub fn newest_of(paths: &[PathBuf]) -> Option<NatsBinary> {
    let mut best: Option<NatsBinary> = None;
    for path in paths {
        let version = match server_version(path) {
            Ok(version) => version,
            Err(e) => {
                debug!(error = %choir_actors::error_chain::Chain(&e), "Passing over a nats-server that gives no version.");
                continue;
            }
        };
        debug!(path = %path.display(), %version, "Found a nats-server.");
        if best
            .as_ref()
            .and_then(|b| b.version.as_ref())
            .is_none_or(|b| version > *b)
        {
            best = Some(NatsBinary {
                path: path.clone(),
                version: Some(version),
            });
        }
    }
    best.or_else(|| {
        paths.first().map(|path| NatsBinary {
            path: path.clone(),
            version: None,
        })
    })
}

/// The newest `nats-server` on `PATH` or in the usual system places (the embedded default).
pub fn newest_nats_server() -> Option<NatsBinary> {
    newest_of(&candidates_in(&search_dirs()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn v(text: &str) -> ServerVersion {
        ServerVersion::parse(text).unwrap()
    }

    /// A fake `nats-server` in a new directory under `root` that prints `answer` to
    /// `--version`.
    fn fake(root: &Path, name: &str, answer: &str) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("nats-server");
        std::fs::write(&path, format!("#!/bin/sh\necho '{answer}'\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn versions_parse_from_what_nats_server_prints() {
        assert_eq!(
            v("nats-server: v2.15.1"),
            ServerVersion {
                major: 2,
                minor: 15,
                patch: 1,
                pre: String::new()
            }
        );
        assert_eq!(v("v2.9.10").to_string(), "2.9.10");
        assert_eq!(v("2.12.0-RC.1").to_string(), "2.12.0-RC.1");
        assert_eq!(ServerVersion::parse("nats-server: unknown"), None);
        assert_eq!(ServerVersion::parse(""), None);
    }

    #[test]
    fn versions_order_by_number_not_by_text() {
        assert!(v("2.15.1") > v("2.9.10"));
        assert!(v("2.10.0") > v("2.9.99"));
        assert!(v("3.0.0") > v("2.99.0"));
        assert!(v("2.12.0") > v("2.12.0-RC.1"));
        assert!(v("2.12.0-RC.2") > v("2.12.0-RC.1"));
        assert_eq!(v("2.9.10").cmp(&v("v2.9.10")), Ordering::Equal);
    }

    #[test]
    fn the_newest_binary_wins_wherever_it_is_in_the_search_order() {
        let root = tempfile::tempdir().unwrap();
        let old = fake(root.path(), "a", "nats-server: v2.9.10");
        let new = fake(root.path(), "b", "nats-server: v2.15.1");
        let mid = fake(root.path(), "c", "nats-server: v2.10.3");
        let newest = newest_of(&[old, new.clone(), mid]).unwrap();
        assert_eq!(newest.path, new);
        assert_eq!(newest.version, Some(v("2.15.1")));
    }

    #[test]
    fn a_binary_without_a_version_is_passed_over_unless_it_is_all_there_is() {
        let root = tempfile::tempdir().unwrap();
        let silent = fake(root.path(), "a", "something else");
        let old = fake(root.path(), "b", "nats-server: v2.9.10");
        let found = newest_of(&[silent.clone(), old.clone()]).unwrap();
        assert_eq!(found.path, old);
        let only = newest_of(std::slice::from_ref(&silent)).unwrap();
        assert_eq!(
            only,
            NatsBinary {
                path: silent,
                version: None
            }
        );
        assert_eq!(newest_of(&[]), None);
    }

    #[test]
    fn candidates_list_each_real_binary_once_in_search_order() {
        let root = tempfile::tempdir().unwrap();
        let a = fake(root.path(), "a", "nats-server: v2.9.10");
        let b = fake(root.path(), "b", "nats-server: v2.15.1");
        let link = root.path().join("link");
        std::os::unix::fs::symlink(root.path().join("a"), &link).unwrap();
        let empty = root.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        let dirs = [
            root.path().join("b"),
            link,
            empty,
            root.path().join("a"),
            root.path().join("missing"),
        ];
        assert_eq!(
            candidates_in(&dirs),
            vec![b, root.path().join("link/nats-server")]
        );
        let _ = a;
    }

    #[test]
    fn an_unrunnable_binary_is_an_error_naming_it() {
        let e = server_version(Path::new("/nonexistent/nats-server")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot run /nonexistent/nats-server --version"
        );
    }
}
