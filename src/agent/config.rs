//! The `choir agent` config file: one `[agent]` table (with `[agent.tls]`, `[agent.auth]` and
//! `[agent.security]`), parsed with `deny_unknown_fields` and validated collecting every
//! problem, each naming its key and value.

use std::path::{Path, PathBuf};
use std::time::Duration;

use choir_actors::connection::{Auth, NetworkSettings, TlsSettings};
use choir_actors::problems::{Problem, Problems};
use serde::Deserialize;

/// The whole file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentFile {
    agent: AgentConfig,
}

/// `[agent]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The agent's Choria identity (one per host).
    pub identity: String,
    /// Its collectives, the main one first.
    #[serde(default = "default_collectives")]
    pub collectives: Vec<String>,
    /// The NATS servers the agent itself connects to.
    pub servers: Vec<String>,
    /// Where its processes' logs, pid files and JetStream data go.
    pub state_dir: PathBuf,
    /// The address the nats-servers it starts listen on (client, monitor and cluster ports).
    #[serde(default = "default_bind")]
    pub bind: String,
    /// Most daemons one `emulator#start` may ask for.
    #[serde(default = "default_max_instances")]
    pub max_instances: u64,
    /// The nats-server binary (default: found as choir finds it).
    #[serde(default)]
    pub nats_server: Option<PathBuf>,
    /// The choir binary run as `choir emulate` (default: this one).
    #[serde(default)]
    pub choir: Option<PathBuf>,
    /// How long a started process may take to listen.
    #[serde(default = "default_start_timeout", with = "humantime_serde")]
    pub start_timeout: Duration,
    /// How long a stopped process may take to exit after SIGTERM before SIGKILL.
    #[serde(default = "default_stop_timeout", with = "humantime_serde")]
    pub stop_timeout: Duration,
    /// TLS to the agent's NATS servers.
    #[serde(default)]
    pub tls: Option<AgentTls>,
    /// NATS credentials of the agent's connection.
    #[serde(default)]
    pub auth: AgentAuth,
    /// Request verification: with this table the agent answers only signed requests it
    /// trusts, as a secure Choria server does.
    #[serde(default)]
    pub security: Option<AgentSecurity>,
}

/// `[agent.tls]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentTls {
    /// CA bundle (PEM) verifying the servers.
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM), with `key`.
    pub cert: Option<PathBuf>,
    /// Client key (PEM), with `cert`.
    pub key: Option<PathBuf>,
}

/// `[agent.auth]`: at most one kind of credentials.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentAuth {
    /// A `.creds` file.
    pub credentials: Option<PathBuf>,
    /// A file holding a user nkey seed (`SU…`).
    pub nkey: Option<PathBuf>,
    /// User name, with `password`.
    pub user: Option<String>,
    /// Password, with `user`.
    pub password: Option<String>,
    /// Bearer token.
    pub token: Option<String>,
}

/// `[agent.security]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSecurity {
    /// CA (PEM) the callers' certificates chain to.
    pub ca: PathBuf,
    /// Certnames allowed to make requests (comma-separated patterns).
    #[serde(default)]
    pub certname_allowlist: Option<String>,
    /// Certnames that may act as any caller.
    #[serde(default)]
    pub privileged_users: Option<String>,
}

fn default_collectives() -> Vec<String> {
    vec!["mcollective".to_owned()]
}

fn default_bind() -> String {
    "127.0.0.1".to_owned()
}

fn default_max_instances() -> u64 {
    10_000
}

fn default_start_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_stop_timeout() -> Duration {
    Duration::from_secs(10)
}

/// Errors loading an agent config.
#[derive(Debug, thiserror::Error)]
pub enum AgentConfigError {
    /// The file cannot be read.
    #[error("{path}: cannot read")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid agent config.
    #[error("{path}: {}", list(problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Reads and validates the agent config at `path`.
pub fn load(path: &Path) -> Result<AgentConfig, AgentConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| AgentConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text).map_err(|problems| AgentConfigError::Invalid {
        path: path.to_owned(),
        problems,
    })
}

/// Parses and validates an agent config's text.
pub fn parse(text: &str) -> Result<AgentConfig, Vec<Problem>> {
    let file: AgentFile = toml::from_str(text).map_err(|e| {
        vec![Problem {
            key: "agent".to_owned(),
            value: None,
            message: e.message().to_owned(),
            line: None,
        }]
    })?;
    let config = file.agent;
    let problems = config.validate();
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(problems.into_vec())
    }
}

impl AgentConfig {
    /// Every problem of this config.
    pub fn validate(&self) -> Problems {
        let mut p = Problems::default();
        if self.identity.trim().is_empty()
            || self
                .identity
                .chars()
                .any(|c| c.is_whitespace() || c == '*' || c == '>')
        {
            p.value(
                "agent.identity",
                &self.identity,
                "must be a non-empty name without spaces, * or >",
            );
        }
        if self.collectives.is_empty() {
            p.key("agent.collectives", "needs at least one collective");
        }
        for (i, c) in self.collectives.iter().enumerate() {
            if c.is_empty() || c.contains(['.', ' ', '*', '>']) {
                p.value(
                    format!("agent.collectives[{i}]"),
                    c,
                    "must be a name without dots, spaces, * or >",
                );
            }
        }
        if self.servers.is_empty() {
            p.key("agent.servers", "needs at least one NATS server");
        }
        for (i, s) in self.servers.iter().enumerate() {
            if url::Url::parse(s)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .is_none_or(|h| h.is_empty())
            {
                p.value(
                    format!("agent.servers[{i}]"),
                    s,
                    "expected a URL such as nats://host:4222",
                );
            }
        }
        if self.bind.parse::<std::net::IpAddr>().is_err() {
            p.value("agent.bind", &self.bind, "expected an IP address");
        }
        if self.max_instances == 0 {
            p.value(
                "agent.max_instances",
                self.max_instances,
                "must be at least 1",
            );
        }
        for (key, path) in [
            ("agent.nats_server", &self.nats_server),
            ("agent.choir", &self.choir),
        ] {
            if let Some(path) = path {
                if !path.is_file() {
                    p.value(key, path.display(), "no such file");
                }
            }
        }
        if let Some(tls) = &self.tls {
            if tls.cert.is_some() != tls.key.is_some() {
                p.key("agent.tls", "cert and key go together");
            }
        }
        let a = &self.auth;
        let kinds = [
            a.credentials.is_some(),
            a.nkey.is_some(),
            a.user.is_some() || a.password.is_some(),
            a.token.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() > 1 {
            p.key(
                "agent.auth",
                "give one of credentials, nkey, user and password, token",
            );
        }
        if a.user.is_some() != a.password.is_some() {
            p.key("agent.auth", "user and password go together");
        }
        p
    }

    /// The network settings of the agent's own connection (the nkey seed read here, its
    /// problems naming the key).
    pub fn network(&self) -> Result<NetworkSettings, Vec<Problem>> {
        let mut settings = NetworkSettings::new("agent", self.servers.clone());
        settings.connection_name = format!("choir-agent-{}", self.identity);
        settings.tls = self.tls.as_ref().map(|t| TlsSettings {
            ca: t.ca.clone(),
            cert: t.cert.clone(),
            key: t.key.clone(),
        });
        let a = &self.auth;
        settings.auth = if let Some(path) = &a.credentials {
            Auth::CredentialsFile(path.clone())
        } else if let Some(path) = &a.nkey {
            let seed = std::fs::read_to_string(path).map_err(|e| {
                problem(
                    "agent.auth.nkey",
                    path.display(),
                    &format!("cannot read: {e}"),
                )
            })?;
            let seed = seed.trim();
            if !seed.starts_with("SU") {
                return Err(problem(
                    "agent.auth.nkey",
                    path.display(),
                    "a user nkey seed starts with SU",
                ));
            }
            Auth::NkeySeed(seed.to_owned())
        } else if let (Some(user), Some(password)) = (&a.user, &a.password) {
            Auth::UserPassword {
                user: user.clone(),
                password: password.clone(),
            }
        } else if let Some(token) = &a.token {
            Auth::Token(token.clone())
        } else {
            Auth::None
        };
        Ok(settings)
    }
}

fn problem(key: &str, value: impl std::fmt::Display, message: &str) -> Vec<Problem> {
    let mut p = Problems::default();
    p.value(key, value, message);
    p.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_config_gets_its_defaults() {
        let c = parse(
            "[agent]\nidentity = \"host1\"\nservers = [\"nats://127.0.0.1:4222\"]\nstate_dir = \"/tmp/x\"\n",
        )
        .unwrap();
        assert_eq!(c.collectives, ["mcollective"]);
        assert_eq!(c.bind, "127.0.0.1");
        assert_eq!(c.max_instances, 10_000);
        assert!(c.security.is_none());
    }

    #[test]
    fn every_problem_is_reported_with_its_key_and_value() {
        let problems = parse(
            "[agent]\nidentity = \"a b\"\ncollectives = [\"x.y\"]\nservers = [\"nope\"]\n\
             state_dir = \"/tmp/x\"\nbind = \"here\"\nmax_instances = 0\n\
             [agent.auth]\ntoken = \"t\"\nuser = \"u\"\n",
        )
        .unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let all = text.join("\n");
        for expected in [
            "agent.identity = \"a b\"",
            "agent.collectives[0] = \"x.y\"",
            "agent.servers[0] = \"nope\"",
            "agent.bind = \"here\"",
            "agent.max_instances = \"0\"",
            "agent.auth: give one of",
            "agent.auth: user and password go together",
        ] {
            assert!(all.contains(expected), "{expected} missing from:\n{all}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let problems = parse(
            "[agent]\nidentity = \"h\"\nservers = [\"nats://127.0.0.1:4222\"]\nstate_dir = \"/x\"\nport = 1\n",
        )
        .unwrap_err();
        assert!(
            problems[0].message.contains("unknown field `port`"),
            "{problems:?}"
        );
    }
}
