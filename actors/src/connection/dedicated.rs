//! Dedicated connections: a component that must not share its socket I/O with the rest of
//! the node (a federation broker, a replica worker) connects from its own arbiter with
//! [`connect_with_retry`].
//!
//! async-nats runs a connection's I/O on the runtime where `connect()` ran, so a component
//! that connects from its own arbiter keeps a message on one thread from the socket it came in
//! on to the socket it leaves by. The shared [`super::NetworkActor`] connection would cost a
//! cross-thread hand-off (and a wake-up) both ways for every message.
//!
//! The first connect is retried with backoff until it works; after that async-nats reconnects
//! forever by itself, and the events are logged under the owner's name.

use std::sync::Arc;

use async_nats::{Client, ConnectOptions, Event};
use tracing::{debug, info, warn};

use super::{NetworkError, NetworkSettings, NetworkStatus};
use crate::error_chain::Chain;
use crate::supervision::Backoff;

/// Who owns a dedicated connection, for its connection name and its log lines.
#[derive(Clone, Debug)]
pub struct Owner {
    /// What it is, e.g. `federation broker` or `replica worker`.
    pub kind: &'static str,
    /// Which one, e.g. the cluster or `<replicator>/<worker>`.
    pub name: String,
    /// Appended to the network's connection name (`<connection_name>-<suffix>`).
    pub suffix: String,
}

impl Owner {
    /// The key of its connection to `network` in the node's health (`/healthz`).
    pub fn health_key(&self, network: &str) -> String {
        format!("{network}/{} {}", self.kind, self.name)
    }
}

async fn options(
    settings: &NetworkSettings,
    owner: &Owner,
    status: Arc<NetworkStatus>,
) -> Result<ConnectOptions, NetworkError> {
    let (network, kind, name) = (settings.name.clone(), owner.kind, owner.name.clone());
    let options = ConnectOptions::new()
        .name(format!("{}-{}", settings.connection_name, owner.suffix))
        .connection_timeout(settings.connect_timeout)
        .subscription_capacity(settings.subscription_capacity.get())
        .max_reconnects(None)
        .event_callback(move |event| {
            match event {
                Event::Disconnected => {
                    status.mark_disconnected();
                    warn!(
                        owner = kind, %name, %network,
                        "Dedicated NATS connection lost; reconnecting."
                    );
                }
                Event::Connected => {
                    status.mark_connected();
                    info!(
                        owner = kind, %name, %network,
                        "Dedicated NATS connection up."
                    );
                }
                Event::SlowConsumer(sid) => warn!(
                    owner = kind, %name, %network, sid,
                    "Slow consumer: the NATS client dropped messages of a dedicated connection."
                ),
                _ => {}
            }
            async {}
        });
    super::secure(settings, options).await
}

/// Connects to `settings` for `owner`, retrying with backoff until it works (an owner without
/// its connection has nothing else to do). Call it from the arbiter that will use the client.
pub async fn connect_with_retry(settings: &NetworkSettings, owner: &Owner) -> Client {
    let urls = settings.urls.join(",");
    // Known (and not connected) from the first attempt on, so a connection that never comes
    // up shows; outside a node nobody reads it.
    let status = settings
        .health
        .as_ref()
        .map_or_else(Arc::default, |health| {
            health.dedicated(&owner.health_key(&settings.name))
        });
    let mut backoff = Backoff::RESTART.with_max(settings.max_backoff);
    loop {
        let result = match options(settings, owner, status.clone()).await {
            Ok(options) => {
                options
                    .connect(urls.as_str())
                    .await
                    .map_err(|source| NetworkError::Connect {
                        network: settings.name.clone(),
                        urls: urls.clone(),
                        source,
                    })
            }
            Err(error) => Err(error),
        };
        match result {
            Ok(client) => {
                status.mark_connected();
                return client;
            }
            Err(error) => {
                let attempt = backoff.attempts();
                let delay = backoff.next_delay();
                if attempt < settings.quiet_attempts {
                    debug!(
                        owner = owner.kind, name = %owner.name, network = %settings.name, attempt,
                        retry_in = ?delay, error = %Chain(&error),
                        "Dedicated NATS connection cannot connect yet; retrying."
                    );
                } else {
                    warn!(
                        owner = owner.kind, name = %owner.name, network = %settings.name, attempt,
                        retry_in = ?delay, error = %Chain(&error),
                        "Dedicated NATS connection cannot connect yet; retrying."
                    );
                }
                tokio::time::sleep(delay).await;
            }
        }
    }
}
