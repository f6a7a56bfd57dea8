//! `[networks.<name>]`: one NATS network (a cluster, or a single server), or an embedded
//! nats-server that choir starts and supervises itself.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use choir_actors::connection::{Auth, NetworkSettings, TlsSettings};
use serde::Deserialize;

use super::defaults;
use super::Problems;

/// `[networks.<name>]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// Server URLs; required unless `embedded = true`.
    #[serde(default)]
    pub urls: Vec<String>,
    /// Start and supervise a loopback nats-server for this network.
    #[serde(default)]
    pub embedded: bool,
    /// Embedded only: the client port (default: a free port).
    pub port: Option<u16>,
    /// Embedded only: the nats-server binary (default: found on `PATH` or in `/usr/sbin`).
    pub nats_server: Option<PathBuf>,
    /// The connection name servers show (default `choir-<node>-<network>`).
    pub connection_name: Option<String>,
    /// A `.creds` file.
    pub credentials: Option<PathBuf>,
    /// User name, with `password`.
    pub user: Option<String>,
    /// Password, with `user`.
    pub password: Option<String>,
    /// Bearer token.
    pub token: Option<String>,
    /// nkey seed (`SU…`).
    pub nkey_seed: Option<String>,
    /// TLS.
    pub tls: Option<TlsConfig>,
    /// Timeout of one connect attempt.
    #[serde(default = "defaults::connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Longest wait between first-connect attempts.
    #[serde(default = "defaults::max_backoff", with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Messages buffered per subscription before the client drops them (slow consumer).
    #[serde(default = "defaults::subscription_capacity")]
    pub subscription_capacity: NonZeroUsize,
}

/// `[networks.<name>.tls]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA bundle (PEM) that signed the servers' certificates.
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM), with `key`.
    pub cert: Option<PathBuf>,
    /// Client key (PEM), with `cert`.
    pub key: Option<PathBuf>,
    /// Verify the servers' certificates; only `true` is supported.
    #[serde(default = "defaults::tls_verify")]
    pub verify: bool,
}

const SCHEMES: [&str; 4] = ["nats", "tls", "ws", "wss"];

fn check_file(problems: &mut Problems, key: String, path: &Path) {
    if !path.is_file() {
        problems.value(key, path.display(), "file not found");
    }
}

impl NetworkConfig {
    pub(super) fn validate(&self, name: &str, problems: &mut Problems) {
        let key = |k: &str| format!("networks.{name}.{k}");
        if self.embedded {
            if !self.urls.is_empty() {
                problems.value(
                    key("urls"),
                    self.urls.join(","),
                    "an embedded network gets its URL from the server choir starts; remove urls or embedded",
                );
            }
            if self.port == Some(0) {
                problems.value(key("port"), 0, "leave port out to use a free port");
            }
            match &self.nats_server {
                Some(path) if !path.is_file() => {
                    problems.value(key("nats_server"), path.display(), "file not found")
                }
                Some(_) => {}
                None => {
                    if crate::nats_binary::find_nats_server().is_none() {
                        problems.key(
                            key("embedded"),
                            "no nats-server binary on PATH or in /usr/sbin; install it (apt-get install nats-server) or set nats_server",
                        );
                    }
                }
            }
        } else {
            if self.urls.is_empty() {
                problems.key(
                    key("urls"),
                    "give at least one server URL, or set embedded = true",
                );
            }
            if let Some(port) = self.port {
                problems.value(key("port"), port, "port is only for embedded networks");
            }
            if let Some(path) = &self.nats_server {
                problems.value(
                    key("nats_server"),
                    path.display(),
                    "nats_server is only for embedded networks",
                );
            }
        }
        for (i, raw) in self.urls.iter().enumerate() {
            let k = format!("networks.{name}.urls[{i}]");
            match url::Url::parse(raw) {
                Err(e) => problems.value(k, raw, format!("not a URL: {e}")),
                Ok(u) if !SCHEMES.contains(&u.scheme()) => problems.value(
                    k,
                    raw,
                    format!(
                        "unsupported scheme {:?} (expected nats, tls, ws or wss)",
                        u.scheme()
                    ),
                ),
                Ok(u) if u.host_str().is_none_or(str::is_empty) => {
                    problems.value(k, raw, "no host")
                }
                Ok(_) => {}
            }
        }
        let methods = [
            self.credentials.is_some(),
            self.user.is_some() || self.password.is_some(),
            self.token.is_some(),
            self.nkey_seed.is_some(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            problems.key(
                key("credentials"),
                "choose one of credentials, user/password, token or nkey_seed",
            );
        }
        if self.user.is_some() != self.password.is_some() {
            problems.key(key("user"), "user and password go together");
        }
        if let Some(path) = &self.credentials {
            check_file(problems, key("credentials"), path);
        }
        if let Some(seed) = &self.nkey_seed {
            if !seed.starts_with("SU") {
                problems.value(
                    key("nkey_seed"),
                    "<hidden>",
                    "a user nkey seed starts with SU",
                );
            }
        }
        if let Some(tls) = &self.tls {
            if !tls.verify {
                problems.value(
                    key("tls.verify"),
                    false,
                    "skipping verification is not supported; give the CA that signed the servers in tls.ca",
                );
            }
            if tls.cert.is_some() != tls.key.is_some() {
                problems.key(key("tls"), "cert and key go together");
            }
            for (k, path) in [
                ("tls.ca", &tls.ca),
                ("tls.cert", &tls.cert),
                ("tls.key", &tls.key),
            ] {
                if let Some(path) = path {
                    check_file(problems, key(k), path);
                }
            }
        }
        if self.connect_timeout.is_zero() {
            problems.value(key("connect_timeout"), "0s", "must be longer than zero");
        }
    }

    /// What the `NetworkActor` needs; `urls` are the resolved server URLs (the embedded
    /// server's for an embedded network).
    pub fn settings(&self, node: &str, name: &str, urls: Vec<String>) -> NetworkSettings {
        let auth = if let Some(path) = &self.credentials {
            Auth::CredentialsFile(path.clone())
        } else if let (Some(user), Some(password)) = (&self.user, &self.password) {
            Auth::UserPassword {
                user: user.clone(),
                password: password.clone(),
            }
        } else if let Some(token) = &self.token {
            Auth::Token(token.clone())
        } else if let Some(seed) = &self.nkey_seed {
            Auth::NkeySeed(seed.clone())
        } else {
            Auth::None
        };
        let mut settings = NetworkSettings::new(name, urls);
        settings.connection_name = self
            .connection_name
            .clone()
            .unwrap_or_else(|| format!("choir-{node}-{name}"));
        settings.auth = auth;
        settings.tls = self.tls.as_ref().map(|t| TlsSettings {
            ca: t.ca.clone(),
            cert: t.cert.clone(),
            key: t.key.clone(),
        });
        settings.connect_timeout = self.connect_timeout;
        settings.max_backoff = self.max_backoff;
        settings.subscription_capacity = self.subscription_capacity;
        if self.embedded {
            // The server starts next to us; its first refusals are expected.
            settings.quiet_attempts = 8;
        }
        settings
    }
}
