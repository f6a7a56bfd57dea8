//! What a `NetworkActor` needs to connect: plain values, already validated by the config layer.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use super::status::NetworkHealth;

/// How to authenticate to the NATS servers of a network.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Auth {
    /// No credentials.
    #[default]
    None,
    /// A `.creds` file (JWT plus nkey seed).
    CredentialsFile(PathBuf),
    /// User name and password.
    UserPassword {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// A bearer token.
    Token(String),
    /// An nkey seed (`SU...`).
    NkeySeed(String),
}

/// TLS settings of a network.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// CA bundle used to verify the servers.
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM), with `key`.
    pub cert: Option<PathBuf>,
    /// Client private key (PEM), with `cert`.
    pub key: Option<PathBuf>,
}

/// Everything needed to connect to one NATS network.
#[derive(Clone, Debug)]
pub struct NetworkSettings {
    /// The network's name in the config (`[networks.<name>]`).
    pub name: String,
    /// Server URLs (`nats://host:port`, `tls://…`).
    pub urls: Vec<String>,
    /// The connection name the servers show in their monitoring.
    pub connection_name: String,
    /// Credentials.
    pub auth: Auth,
    /// TLS, when configured.
    pub tls: Option<TlsSettings>,
    /// Timeout of one connect attempt.
    pub connect_timeout: Duration,
    /// Where dedicated connections made with these settings report whether they are up
    /// (the node's `/healthz`); none outside a node.
    pub health: Option<NetworkHealth>,
    /// Messages buffered per subscription before async-nats drops them (slow consumer).
    pub subscription_capacity: NonZeroUsize,
    /// First delay between failed first-connect attempts; doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Longest delay between connect attempts.
    pub max_backoff: Duration,
    /// Failed first-connect attempts logged at DEBUG rather than WARN (an embedded server that
    /// is still starting is expected to refuse a few).
    pub quiet_attempts: u32,
}

impl NetworkSettings {
    /// Settings for `urls` with every other value at its default (tests and tools).
    pub fn new(name: impl Into<String>, urls: Vec<String>) -> Self {
        let name = name.into();
        Self {
            connection_name: format!("choir-{name}"),
            name,
            urls,
            auth: Auth::None,
            tls: None,
            connect_timeout: Duration::from_secs(5),
            health: None,
            subscription_capacity: NonZeroUsize::new(65_536).unwrap_or(NonZeroUsize::MIN),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            quiet_attempts: 0,
        }
    }
}

impl NetworkSettings {
    /// Whether connections to this network use TLS: a `[tls]` section or a `tls://` URL.
    pub fn uses_tls(&self) -> bool {
        self.tls.is_some()
            || self
                .urls
                .iter()
                .any(|u| u.trim_start().to_ascii_lowercase().starts_with("tls://"))
    }

    /// These settings, with dedicated connections reporting their state to `health`.
    pub fn reporting_to(mut self, health: &NetworkHealth) -> Self {
        self.health = Some(health.clone());
        self
    }

    /// The credentials file, for error messages (empty when there is none).
    pub fn credentials_path(&self) -> String {
        match &self.auth {
            Auth::CredentialsFile(path) => path.display().to_string(),
            _ => String::new(),
        }
    }

    /// Adds this network's credentials and TLS settings to `options`; every connection to
    /// the network (the network actor's, an emulated daemon's, a broker worker's) goes through
    /// here. Fails only when a credentials file cannot be read.
    pub async fn secure(
        &self,
        options: async_nats::ConnectOptions,
    ) -> Result<async_nats::ConnectOptions, std::io::Error> {
        let mut options = match &self.auth {
            Auth::None => options,
            Auth::CredentialsFile(path) => options.credentials_file(path).await?,
            Auth::UserPassword { user, password } => {
                options.user_and_password(user.clone(), password.clone())
            }
            Auth::Token(token) => options.token(token.clone()),
            Auth::NkeySeed(seed) => options.nkey(seed.clone()),
        };
        if let Some(tls) = &self.tls {
            options = options.require_tls(true);
            if let Some(ca) = &tls.ca {
                options = options.add_root_certificates(ca.clone());
            }
            if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
                options = options.add_client_certificate(cert.clone(), key.clone());
            }
        }
        Ok(options)
    }
}
