//! `[emulator]`: a fleet of emulated Choria daemons run by the node.
//!
//! ```toml
//! [emulator]
//! network = "region"              # required: the [networks.X] the daemons connect to
//! name = "emulated"               # identities are <name>-<i>, i = 0..instances-1
//! instances = 10                  # daemons
//! agents = 1                      # emulated0..emulated{agents-1}, plus discovery and rpcutil
//! collectives = 1                 # mcollective, collective1, … collective{N-1}
//! connections = "dedicated"       # or "shared": few connections, less realistic
//! shared_connections = 4          # connections in shared mode
//! connect_concurrency = 64        # connects in flight while the fleet starts
//! subscription_capacity = 1024    # messages buffered per subscription
//! classes = ["emulated"]          # configuration classes the daemons report
//! registration_interval = "60s"   # publish registration this often (absent: never)
//! registration_splay = true       # random first delay up to the interval
//! registration_subject = "choria.registration"   # default <collective>.broadcast.agent.registration
//! audit = "emulator-audit.log"    # Choria audit log, one JSON line per RPC request
//! secure = false                  # true: verify every request, answer only trusted ones
//! security_ca = "ca.pem"          # the CA client certificates chain to (default: tls.ca)
//! certname_whitelist = ['\.mcollective$', '\.choria$']   # Choria's defaults
//! privileged_users = ['\.privileged.mcollective$']
//!
//! string_facts = false            # send every fact as a string (for Ruby mco clients)
//!
//! [emulator.facts]                # every daemon's facts; "{instance}" and "{identity}" expand
//! country = "mt"                  # instance, identity and fqdn are always added
//! ```

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use choir_actors::connection::NetworkSettings;
use choir_actors::emulator::{budget, ConnectionMode, FleetSpec, RegistrationSpec};
use choir_actors::protocol::security::{NamePatterns, SecurityPolicy, Verifier};
use choir_actors::protocol::{classify_subject, SubjectKind};
use serde::Deserialize;

use super::defaults;
use super::Config;
use super::Problems;

/// `[emulator].connections`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Connections {
    /// One NATS connection per daemon (realistic; bounded by the open-file limit).
    #[default]
    Dedicated,
    /// Daemons multiplexed over `shared_connections` connections.
    Shared,
}

impl From<Connections> for ConnectionMode {
    fn from(c: Connections) -> Self {
        match c {
            Connections::Dedicated => ConnectionMode::Dedicated,
            Connections::Shared => ConnectionMode::Shared,
        }
    }
}

/// `[emulator]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmulatorConfig {
    /// The network the daemons connect to (its URLs, credentials and TLS).
    pub network: String,
    /// Identity prefix: daemon `i` is `<name>-<i>`.
    #[serde(default = "defaults::emulator_name")]
    pub name: String,
    /// Number of daemons.
    #[serde(default = "defaults::emulator_instances")]
    pub instances: NonZeroUsize,
    /// Number of emulated agents (`emulated0..N-1`), besides `discovery` and `rpcutil`.
    #[serde(default = "defaults::emulator_agents")]
    pub agents: usize,
    /// Number of collectives (`mcollective`, `collective1`, …).
    #[serde(default = "defaults::emulator_collectives")]
    pub collectives: NonZeroUsize,
    /// `dedicated` (one connection per daemon) or `shared`.
    #[serde(default)]
    pub connections: Connections,
    /// Connections used in shared mode.
    #[serde(default = "defaults::emulator_shared_connections")]
    pub shared_connections: NonZeroUsize,
    /// Connects in flight at once while the fleet starts.
    #[serde(default = "defaults::emulator_connect_concurrency")]
    pub connect_concurrency: NonZeroUsize,
    /// Messages buffered per subscription before the client drops them.
    #[serde(default = "defaults::emulator_subscription_capacity")]
    pub subscription_capacity: NonZeroUsize,
    /// Facts of every daemon (`{instance}` and `{identity}` expand in strings).
    #[serde(default)]
    pub facts: serde_json::Map<String, serde_json::Value>,
    /// Configuration management classes of every daemon.
    #[serde(default)]
    pub classes: Vec<String>,
    /// Send every fact as a string (MCollective 2.12's Ruby client expects strings).
    #[serde(default)]
    pub string_facts: bool,
    /// Publish a registration message this often; absent = no registration.
    #[serde(default, with = "humantime_serde")]
    pub registration_interval: Option<Duration>,
    /// Wait a random time up to the interval before the first registration.
    #[serde(default = "defaults::emulator_registration_splay")]
    pub registration_splay: bool,
    /// Registration subject (default `<main collective>.broadcast.agent.registration`).
    pub registration_subject: Option<String>,
    /// Audit log file (one JSON line per RPC request handled).
    pub audit: Option<PathBuf>,
    /// Time between two keep-alive pings of a daemon (2 unanswered: it reconnects).
    #[serde(default = "defaults::emulator_ping_interval", with = "humantime_serde")]
    pub ping_interval: Duration,
    /// Verify every request as a Choria server does and answer only trusted ones.
    #[serde(default)]
    pub secure: bool,
    /// The CA client certificates must chain to (default: the network's `tls.ca`).
    pub security_ca: Option<PathBuf>,
    /// `plugin.choria.security.certname_whitelist` (default `\.mcollective$`, `\.choria$`).
    pub certname_whitelist: Option<Vec<String>>,
    /// `plugin.choria.security.privileged_users` (default `\.privileged.mcollective$`).
    pub privileged_users: Option<Vec<String>>,
}

/// The soft limit this process can raise its open files to (the hard limit).
pub fn fd_hard_limit() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(_, hard)| hard)
        .unwrap_or(1024)
}

impl EmulatorConfig {
    pub(super) fn validate(&self, config: &Config, problems: &mut Problems) {
        config.check_network_ref("emulator.network".to_owned(), &self.network, problems);
        if self.name.is_empty()
            || self
                .name
                .contains(|c: char| c == '*' || c == '>' || c.is_whitespace())
        {
            problems.value(
                "emulator.name",
                &self.name,
                "must be non-empty without whitespace, '*' or '>' (it is part of NATS subjects)",
            );
        }
        if let Err(message) = budget::check_fd_budget(
            self.instances.get(),
            self.connections.into(),
            self.shared_connections.get(),
            fd_hard_limit(),
        ) {
            problems.value("emulator.instances", self.instances, message);
        }
        if self.ping_interval < Duration::from_millis(10) {
            problems.value(
                "emulator.ping_interval",
                humantime::format_duration(self.ping_interval),
                "must be at least 10ms",
            );
        }
        if let Some(interval) = self.registration_interval {
            if interval.is_zero() {
                problems.value(
                    "emulator.registration_interval",
                    "0s",
                    "must be longer than zero (leave it out for no registration)",
                );
            }
        } else if let Some(subject) = &self.registration_subject {
            problems.value(
                "emulator.registration_subject",
                subject,
                "has no effect without registration_interval",
            );
        }
        if let Some(subject) = &self.registration_subject {
            let valid = !subject.is_empty()
                && subject
                    .split('.')
                    .all(|t| !t.is_empty() && !t.contains(['*', '>', ' ', '\t']));
            if !valid || matches!(classify_subject(subject), SubjectKind::Reply { .. }) {
                problems.value(
                    "emulator.registration_subject",
                    subject,
                    "not a publishable NATS subject",
                );
            }
        }
        if let Err((key, value, message)) = self.security_policy(network_ca(config, &self.network))
        {
            problems.value(key, value, message);
        }
        if let Some(path) = &self.audit {
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
            if parent.is_some_and(|p| !p.is_dir()) {
                problems.value(
                    "emulator.audit",
                    path.display(),
                    "its directory does not exist",
                );
            }
        }
    }

    /// The fleet this section describes on `network` (the resolved network settings).
    pub fn spec(&self, network: NetworkSettings) -> FleetSpec {
        let mut spec = FleetSpec::new(&self.name, self.instances.get(), Vec::new());
        spec.network = network;
        spec.network.subscription_capacity = self.subscription_capacity;
        spec.agents = self.agents;
        spec.collectives = self.collectives;
        spec.mode = self.connections.into();
        spec.shared_connections = self.shared_connections;
        spec.connect_concurrency = self.connect_concurrency;
        spec.facts = self.facts.clone();
        spec.classes = self.classes.clone();
        spec.string_facts = self.string_facts;
        spec.registration = self.registration_interval.map(|interval| RegistrationSpec {
            interval,
            splay: self.registration_splay,
            subject: self.registration_subject.clone(),
        });
        spec.audit = self.audit.clone();
        spec.ping_interval = self.ping_interval;
        // Validation has refused a policy that does not load.
        let ca = spec.network.tls.as_ref().and_then(|t| t.ca.clone());
        spec.secure = self.security_policy(ca).ok().flatten();
        spec
    }

    /// The verification policy of `secure = true`: `security_ca` (else `network_ca`) and the
    /// name patterns; an error names the key, its value and what is wrong.
    fn security_policy(
        &self,
        network_ca: Option<PathBuf>,
    ) -> Result<Option<SecurityPolicy>, (&'static str, String, String)> {
        if !self.secure {
            return Ok(None);
        }
        let ca = self.security_ca.clone().or(network_ca).ok_or((
            "emulator.secure",
            "true".to_owned(),
            "needs security_ca or a tls.ca on its network".to_owned(),
        ))?;
        let patterns = |key: &'static str, list: &Option<Vec<String>>, default: NamePatterns| {
            list.as_ref().map_or(Ok(default), |list| {
                NamePatterns::from_entries(key, list.iter().map(String::as_str))
                    .map_err(|e| (key, list.join(","), e.to_string()))
            })
        };
        let policy = SecurityPolicy {
            allowlist: patterns(
                "emulator.certname_whitelist",
                &self.certname_whitelist,
                NamePatterns::default_allowlist(),
            )?,
            privileged: patterns(
                "emulator.privileged_users",
                &self.privileged_users,
                NamePatterns::default_privileged(),
            )?,
            ca,
        };
        Verifier::new(&policy).map_err(|e| {
            let mut message = e.to_string();
            if let Some(source) = std::error::Error::source(&e) {
                message = format!("{message}: {source}");
            }
            (
                "emulator.security_ca",
                policy.ca.display().to_string(),
                message,
            )
        })?;
        Ok(Some(policy))
    }
}

/// The `tls.ca` of network `name`, if any.
fn network_ca(config: &Config, name: &str) -> Option<PathBuf> {
    config
        .networks
        .get(name)
        .and_then(|n| n.tls.as_ref())
        .and_then(|t| t.ca.clone())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::Path;

    use super::super::{parse, ConfigError};
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match parse(Path::new("t.toml"), text) {
            Ok(_) => vec![],
            Err(ConfigError::Invalid { problems, .. }) => {
                problems.iter().map(ToString::to_string).collect()
            }
            Err(e) => vec![e.to_string()],
        }
    }

    #[test]
    fn secure_emulator_keys_are_checked_and_make_a_policy() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let out = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=ca", "-keyout"])
            .arg(dir.path().join("ca.key"))
            .arg("-out")
            .arg(&ca)
            .output()
            .unwrap();
        assert!(out.status.success());
        let body = |extra: &str| {
            format!(
                "[networks.r]\nurls = [\"nats://127.0.0.1:4222\"]\n[emulator]\nnetwork = \"r\"\ninstances = 2\n{extra}\n"
            )
        };
        let ok = body(&format!(
            "secure = true\nsecurity_ca = {:?}\ncertname_whitelist = ['^ops\\.']\n",
            ca.display().to_string()
        ));
        let config = parse(Path::new("t.toml"), &ok).unwrap();
        let section = config.emulator.as_ref().unwrap();
        let spec = section.spec(choir_actors::connection::NetworkSettings::new("r", vec![]));
        let policy = spec.secure.unwrap();
        assert!(policy.allowlist.matches("ops.example"));
        assert!(!policy.allowlist.matches("rip.mcollective"));

        let found = problems(&body("secure = true\n"));
        assert!(
            found.iter().any(|p| p.contains("emulator.secure")),
            "{found:?}"
        );
        let found = problems(&body(&format!(
            "secure = true\nsecurity_ca = {:?}\nprivileged_users = ['(']\n",
            ca.display().to_string()
        )));
        assert!(
            found
                .iter()
                .any(|p| p.contains("emulator.privileged_users")),
            "{found:?}"
        );
        let found = problems(&body(
            "secure = true\nsecurity_ca = \"/nonexistent/ca.pem\"\n",
        ));
        assert!(
            found
                .iter()
                .any(|p| p.contains("emulator.security_ca") && p.contains("/nonexistent/ca.pem")),
            "{found:?}"
        );
    }

    #[test]
    fn string_facts_reaches_the_fleet() {
        let text = "[networks.n]\nurls = [\"nats://127.0.0.1:4222\"]\n\n[emulator]\nnetwork = \"n\"\nstring_facts = true\n";
        let emulator = parse(Path::new("t.toml"), text).unwrap().emulator.unwrap();
        assert!(emulator.string_facts);
        assert!(
            emulator
                .spec(NetworkSettings::new("n", vec![]))
                .string_facts
        );
        let default = text.replace("string_facts = true\n", "");
        let emulator = parse(Path::new("t.toml"), &default)
            .unwrap()
            .emulator
            .unwrap();
        assert!(
            !emulator
                .spec(NetworkSettings::new("n", vec![]))
                .string_facts
        );
    }
}
