//! The playbook's Choria client: where discovery node sets and `rpc` tasks connect, from the
//! playbook's `[client]` table overridden by `choir playbook run --server/--collective/
//! --federation`, and the connection itself, made on first use (a playbook without discovery
//! sets or `rpc` tasks never connects) and shared by the rest of the run.

use std::time::Duration;

use tokio::sync::OnceCell;

use super::spec::ClientSpec;
use crate::client::{ChoriaClient, ClientOptions};
use crate::connection::{Auth, NetworkSettings, TlsSettings};
use crate::error_chain::Chain;
use crate::protocol::security::SigningIdentity;

/// The server used when neither `[client]` nor `--server` names one.
pub const DEFAULT_SERVER: &str = "nats://127.0.0.1:4222";
/// The collective used when neither `[client]` nor `--collective` names one.
pub const DEFAULT_COLLECTIVE: &str = "mcollective";
/// How long discovery waits for nodes by default.
pub const DEFAULT_DISCOVERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Reply subscriptions buffer this many messages.
const SUBSCRIPTION_CAPACITY: usize = 1 << 16;

/// Where and how the playbook's client connects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSettings {
    /// NATS server URLs.
    pub servers: Vec<String>,
    /// The collective requests go to.
    pub collective: String,
    /// Federation clusters to publish through (empty: publish directly).
    pub federation: Vec<String>,
    /// How long discovery waits for nodes unless a node set says otherwise.
    pub discovery_timeout: Duration,
    /// NATS credentials.
    pub auth: Auth,
    /// TLS, when configured.
    pub tls: Option<TlsSettings>,
    /// Signs every request (secure mode); `None` sends insecure requests.
    pub signer: Option<SigningIdentity>,
    /// `senderid` (from the Choria config's `identity`), else the host name.
    pub senderid: Option<String>,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            servers: vec![DEFAULT_SERVER.to_string()],
            collective: DEFAULT_COLLECTIVE.to_string(),
            federation: Vec::new(),
            discovery_timeout: DEFAULT_DISCOVERY_TIMEOUT,
            auth: Auth::None,
            tls: None,
            signer: None,
            senderid: None,
        }
    }
}

impl ClientSettings {
    /// The settings a (validated) `[client]` table describes, defaults filled in.
    pub fn from_spec(spec: Option<&ClientSpec>) -> Self {
        let mut settings = Self::default();
        if let Some(spec) = spec {
            if !spec.servers.is_empty() {
                settings.servers = spec.servers.clone();
            }
            if let Some(collective) = &spec.collective {
                settings.collective = collective.clone();
            }
            settings.federation = spec.federation.clone();
            if let Some(timeout) = spec.timeout {
                settings.discovery_timeout = timeout;
            }
        }
        settings
    }

    /// Applies command-line overrides.
    pub fn apply(&mut self, overrides: &ClientOverrides) {
        if !overrides.servers.is_empty() {
            self.servers = overrides.servers.clone();
        }
        if let Some(collective) = &overrides.collective {
            self.collective = collective.clone();
        }
        if let Some(federation) = &overrides.federation {
            self.federation = federation.clone();
        }
    }

    /// The client options these settings describe.
    pub fn options(&self) -> ClientOptions {
        let server = self.servers.first().cloned().unwrap_or_default();
        let mut options = ClientOptions::new(self.collective.clone(), server);
        options.federation = self.federation.clone();
        if let Some(senderid) = &self.senderid {
            options.senderid = senderid.clone();
        }
        if let Some(signer) = &self.signer {
            options = options.signed_by(signer.clone());
        }
        options
    }

    /// The connection settings: servers, credentials and TLS.
    pub fn network(&self) -> NetworkSettings {
        let mut network = NetworkSettings::new("client", self.servers.clone());
        network.connection_name = "choir-playbook".to_owned();
        network.auth = self.auth.clone();
        network.tls = self.tls.clone();
        network
    }
}

/// Command-line overrides of `[client]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientOverrides {
    /// `--server` (repeatable): replaces `servers` when given.
    pub servers: Vec<String>,
    /// `--collective`.
    pub collective: Option<String>,
    /// `--federation` (comma-separated; an empty value turns federation off).
    pub federation: Option<Vec<String>>,
}

/// The run's client: connects on first use; a failed connect is retried on the next use.
#[derive(Debug)]
pub struct PlaybookClient {
    settings: ClientSettings,
    client: OnceCell<ChoriaClient>,
}

impl PlaybookClient {
    /// A client that will connect as `settings` say.
    pub fn new(settings: ClientSettings) -> Self {
        Self {
            settings,
            client: OnceCell::new(),
        }
    }

    /// Its settings.
    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// The connected client; the error names the servers.
    pub async fn get(&self) -> Result<&ChoriaClient, String> {
        self.client
            .get_or_try_init(|| async {
                tracing::info!(
                    servers = %self.settings.servers.join(","),
                    collective = %self.settings.collective,
                    "Playbook client connecting."
                );
                ChoriaClient::connect_with(
                    &self.settings.network(),
                    self.settings.options(),
                    SUBSCRIPTION_CAPACITY,
                )
                .await
                .map_err(|e| Chain(&e).to_string())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_spec_and_overrides() {
        assert_eq!(ClientSettings::from_spec(None), ClientSettings::default());
        let spec = ClientSpec {
            servers: vec!["nats://a:4222".into()],
            collective: Some("c1".into()),
            federation: vec!["x".into()],
            timeout: Some(Duration::from_secs(5)),
            ..ClientSpec::default()
        };
        let mut settings = ClientSettings::from_spec(Some(&spec));
        assert_eq!(settings.servers, ["nats://a:4222"]);
        assert_eq!(settings.discovery_timeout, Duration::from_secs(5));
        settings.apply(&ClientOverrides {
            servers: vec!["nats://b:4222".into()],
            collective: None,
            federation: Some(Vec::new()),
        });
        assert_eq!(settings.servers, ["nats://b:4222"]);
        assert_eq!(settings.collective, "c1");
        assert!(settings.federation.is_empty());
        assert_eq!(settings.options().server_url, "nats://b:4222");
    }
}
