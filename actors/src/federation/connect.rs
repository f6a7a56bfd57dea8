//! The broker's own connections: async-nats options from [`NetworkSettings`], first connect
//! retried with backoff, then async-nats reconnects forever by itself.
//!
//! The broker connects from its own arbiter, so the socket I/O of both of its connections
//! runs on the same thread as its workers: a message crosses no thread between the federation
//! socket, the transform and the collective socket.

use std::time::Duration;

use async_nats::{Client, ConnectOptions, Event};
use tracing::{info, warn};

use crate::connection::{backoff, NetworkSettings};

/// Errors of one connect attempt.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The credentials file cannot be read.
    #[error("network {network}: cannot read credentials file {path}: {source}")]
    Credentials {
        /// The network.
        network: String,
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The servers refused or did not answer.
    #[error("network {network}: connect to {urls} failed: {source}")]
    Connect {
        /// The network.
        network: String,
        /// The URLs.
        urls: String,
        /// Why.
        source: async_nats::ConnectError,
    },
}

async fn options(
    settings: &NetworkSettings,
    name: &str,
    cluster: &str,
) -> Result<ConnectOptions, ConnectError> {
    let (network, cluster_name) = (settings.name.clone(), cluster.to_owned());
    let mut options = ConnectOptions::new()
        .name(name)
        .connection_timeout(settings.connect_timeout)
        .subscription_capacity(settings.subscription_capacity.get())
        .max_reconnects(None)
        .event_callback(move |event| {
            match event {
                Event::Disconnected => warn!(
                    cluster = %cluster_name, network = %network,
                    "Federation broker lost its NATS connection; reconnecting."
                ),
                Event::Connected => info!(
                    cluster = %cluster_name, network = %network,
                    "Federation broker connected to NATS."
                ),
                Event::SlowConsumer(sid) => warn!(
                    cluster = %cluster_name, network = %network, sid,
                    "Slow consumer: the NATS client dropped federation messages."
                ),
                _ => {}
            }
            async {}
        });
    options = settings
        .secure(options)
        .await
        .map_err(|source| ConnectError::Credentials {
            network: settings.name.clone(),
            path: settings.credentials_path(),
            source,
        })?;
    Ok(options)
}

/// Connects to `settings` as `<connection_name>-<suffix>`, retrying with backoff until it
/// works (a broker without its networks has nothing else to do).
pub async fn connect_with_retry(settings: &NetworkSettings, cluster: &str, suffix: &str) -> Client {
    let name = format!("{}-{suffix}", settings.connection_name);
    let urls = settings.urls.join(",");
    let mut attempt = 0u32;
    loop {
        let result = match options(settings, &name, cluster).await {
            Ok(options) => {
                options
                    .connect(urls.as_str())
                    .await
                    .map_err(|source| ConnectError::Connect {
                        network: settings.name.clone(),
                        urls: urls.clone(),
                        source,
                    })
            }
            Err(error) => Err(error),
        };
        match result {
            Ok(client) => return client,
            Err(error) => {
                let delay = backoff(attempt, Duration::from_millis(100), settings.max_backoff);
                warn!(
                    cluster, network = %settings.name, attempt, retry_in = ?delay, %error,
                    "Federation broker cannot connect yet; retrying."
                );
                tokio::time::sleep(delay).await;
                attempt = attempt.saturating_add(1);
            }
        }
    }
}
