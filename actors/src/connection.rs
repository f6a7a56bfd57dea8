//! `NetworkActor`: one per `[networks.X]`, the owner of that network's NATS connection.
//!
//! The actor is started on its own arbiter so the connection's socket I/O runs on that
//! arbiter's thread (async-nats does its I/O on the runtime where `connect()` ran). The first
//! connect is retried with exponential backoff instead of failing; after that, async-nats
//! reconnects forever by itself and reports events, which the actor counts and logs. Other
//! actors get the client with the [`GetClient`] query, which waits until the network is up.
//!
//! If the connection is closed for good (not by a drain), the actor stops itself and its
//! actix `Supervisor` restarts it, which connects anew.

pub mod dedicated;
pub mod metrics;
pub mod settings;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use crate::error_chain::Chain;
use crate::supervision::{Backoff, Shutdown};
use actix::prelude::*;
use async_nats::{Client, ConnectOptions, Event};
use tokio::sync::watch;
use tracing::{debug, info, warn};

pub use metrics::NetworkMetrics;
pub use settings::{Auth, NetworkSettings, TlsSettings};
pub use status::{NetworkHealth, NetworkStatus};

/// How long [`Shutdown`] waits for the connection to report itself closed.
const DRAIN_WAIT: Duration = Duration::from_secs(5);

/// Errors of the connection layer.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The network actor went away while a caller waited for its client.
    #[error("network {0} is shutting down")]
    Closed(String),
    /// A credentials file could not be read.
    #[error("network {network}: cannot read credentials file {path}")]
    Credentials {
        /// The network.
        network: String,
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A connect attempt failed.
    #[error("network {network}: connect to {urls} failed")]
    Connect {
        /// The network.
        network: String,
        /// The URLs tried.
        urls: String,
        /// Why.
        source: async_nats::ConnectError,
    },
}

/// `options` with the network's credentials and TLS ([`NetworkSettings::secure`]); a
/// credentials file that cannot be read is named in the error.
pub(crate) async fn secure(
    settings: &NetworkSettings,
    options: ConnectOptions,
) -> Result<ConnectOptions, NetworkError> {
    settings
        .secure(options)
        .await
        .map_err(|source| NetworkError::Credentials {
            network: settings.name.clone(),
            path: settings.credentials_path(),
            source,
        })
}

/// The owner of one network's connection.
pub struct NetworkActor {
    settings: Arc<NetworkSettings>,
    metrics: NetworkMetrics,
    status: Arc<NetworkStatus>,
    client: watch::Sender<Option<Client>>,
    draining: bool,
}

impl NetworkActor {
    /// An actor for `settings`, reporting into `metrics` and `status`.
    pub fn new(
        settings: NetworkSettings,
        metrics: NetworkMetrics,
        status: Arc<NetworkStatus>,
    ) -> Self {
        let (client, _) = watch::channel(None);
        Self {
            settings: Arc::new(settings),
            metrics,
            status,
            client,
            draining: false,
        }
    }

    fn on_event(
        network: &str,
        status: &NetworkStatus,
        metrics: &NetworkMetrics,
        addr: &Addr<Self>,
        event: Event,
    ) {
        match event {
            Event::Connected => {
                metrics.event(network, "connected");
                metrics
                    .connected
                    .get_or_create(&NetworkMetrics::label(network))
                    .set(1);
                if status.mark_connected() {
                    metrics.event(network, "reconnected");
                    info!(network, "Reconnected to NATS.");
                }
            }
            Event::Disconnected => {
                metrics.event(network, "disconnected");
                metrics
                    .connected
                    .get_or_create(&NetworkMetrics::label(network))
                    .set(0);
                status.mark_disconnected();
                warn!(network, "Lost the NATS connection; reconnecting.");
            }
            Event::SlowConsumer(sid) => {
                metrics.event(network, "slow_consumer");
                warn!(
                    network,
                    sid, "Slow consumer: the NATS client dropped messages."
                );
            }
            Event::ServerError(error) => {
                metrics.event(network, "server_error");
                warn!(network, %error, "NATS server reported an error.");
            }
            Event::ClientError(error) => {
                metrics.event(network, "client_error");
                warn!(network, %error, "NATS client error.");
            }
            Event::LameDuckMode => {
                metrics.event(network, "lame_duck");
                warn!(network, "NATS server entered lame duck mode.");
            }
            Event::Draining => {
                metrics.event(network, "draining");
                info!(network, "Draining the NATS connection.");
            }
            Event::Closed => {
                metrics.event(network, "closed");
                metrics
                    .connected
                    .get_or_create(&NetworkMetrics::label(network))
                    .set(0);
                status.mark_disconnected();
                addr.do_send(ConnectionClosed);
            }
        }
    }

    async fn options(
        settings: &NetworkSettings,
        status: Arc<NetworkStatus>,
        metrics: NetworkMetrics,
        addr: Addr<Self>,
    ) -> Result<ConnectOptions, NetworkError> {
        let network = settings.name.clone();
        let options = ConnectOptions::new()
            .name(&settings.connection_name)
            .connection_timeout(settings.connect_timeout)
            .subscription_capacity(settings.subscription_capacity.get())
            .max_reconnects(None)
            .event_callback(move |event| {
                Self::on_event(&network, &status, &metrics, &addr, event);
                async {}
            });
        secure(settings, options).await
    }

    /// Connects, retrying with backoff until it works.
    async fn connect_with_retry(
        settings: Arc<NetworkSettings>,
        status: Arc<NetworkStatus>,
        metrics: NetworkMetrics,
        addr: Addr<Self>,
    ) -> Client {
        let label = NetworkMetrics::label(&settings.name);
        let urls = settings.urls.join(",");
        let mut backoff = Backoff::new(settings.initial_backoff, settings.max_backoff);
        loop {
            metrics.connect_attempts.get_or_create(&label).inc();
            let result =
                match Self::options(&settings, status.clone(), metrics.clone(), addr.clone()).await
                {
                    Ok(options) => options.connect(urls.as_str()).await.map_err(|source| {
                        NetworkError::Connect {
                            network: settings.name.clone(),
                            urls: urls.clone(),
                            source,
                        }
                    }),
                    Err(e) => Err(e),
                };
            match result {
                Ok(client) => return client,
                Err(error) => {
                    metrics.connect_failures.get_or_create(&label).inc();
                    let attempt = backoff.attempts();
                    let delay = backoff.next_delay();
                    if attempt < settings.quiet_attempts {
                        debug!(network = %settings.name, attempt, retry_in = ?delay, error = %Chain(&error), "Cannot connect to NATS yet; retrying.");
                    } else {
                        warn!(network = %settings.name, attempt, retry_in = ?delay, error = %Chain(&error), "Cannot connect to NATS yet; retrying.");
                    }
                    actix_rt::time::sleep(delay).await;
                }
            }
        }
    }
}

impl Actor for NetworkActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
        self.metrics
            .actor_starts
            .get_or_create(&NetworkMetrics::label(&self.settings.name))
            .inc();
        self.draining = false;
        let connect = Self::connect_with_retry(
            self.settings.clone(),
            self.status.clone(),
            self.metrics.clone(),
            ctx.address(),
        );
        ctx.spawn(connect.into_actor(self).map(|client, act, _| {
            let label = NetworkMetrics::label(&act.settings.name);
            act.metrics.connected.get_or_create(&label).set(1);
            act.status.mark_connected();
            info!(
                network = %act.settings.name,
                server = %client.server_info().server_name,
                "Connected to NATS."
            );
            act.client.send_replace(Some(client));
        }));
    }
}

impl Supervised for NetworkActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        info!(network = %self.settings.name, "Restarting the network actor.");
        self.client.send_replace(None);
        self.status.mark_disconnected();
    }
}

/// Event: the client closed its connection for good.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ConnectionClosed;

impl Handler<ConnectionClosed> for NetworkActor {
    type Result = ();

    fn handle(&mut self, _: ConnectionClosed, ctx: &mut Self::Context) {
        if self.draining {
            info!(network = %self.settings.name, "NATS connection closed after draining.");
        } else {
            warn!(network = %self.settings.name, "NATS connection closed; restarting the actor.");
            ctx.stop();
        }
    }
}

/// Query: the network's client, once connected (waits until then; callers bound the wait).
#[derive(Debug, Message)]
#[rtype(result = "Result<Client, NetworkError>")]
pub struct GetClient;

impl Handler<GetClient> for NetworkActor {
    type Result = ResponseFuture<Result<Client, NetworkError>>;

    fn handle(&mut self, _: GetClient, _: &mut Self::Context) -> Self::Result {
        let mut rx = self.client.subscribe();
        let network = self.settings.name.clone();
        Box::pin(async move {
            let client = rx
                .wait_for(Option::is_some)
                .await
                .map_err(|_| NetworkError::Closed(network.clone()))?;
            client.clone().ok_or(NetworkError::Closed(network))
        })
    }
}

/// A point-in-time view of a network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkSnapshot {
    /// The network's name.
    pub name: String,
    /// Whether its connection is up.
    pub connected: bool,
    /// The name of the server it is connected to, if any.
    pub server: Option<String>,
}

/// Query: the network's state.
#[derive(Debug, Message)]
#[rtype(result = "NetworkSnapshot")]
pub struct GetStatus;

impl Handler<GetStatus> for NetworkActor {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Self::Context) -> Self::Result {
        let server = self
            .client
            .borrow()
            .as_ref()
            .map(|c| c.server_info().server_name.clone());
        MessageResult(NetworkSnapshot {
            name: self.settings.name.clone(),
            connected: self.status.is_connected(),
            server,
        })
    }
}

/// At node shutdown the network drains its connection (unsubscribe, deliver what is buffered,
/// flush, close) and answers once it is closed; it does not reconnect afterwards.
impl Handler<Shutdown> for NetworkActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Shutdown, _: &mut Self::Context) -> Self::Result {
        self.draining = true;
        let client = self.client.borrow().clone();
        let network = self.settings.name.clone();
        Box::pin(async move {
            if let Some(client) = client {
                if let Err(error) = client.flush().await {
                    debug!(network, %error, "Flush before drain failed.");
                }
                // Wait until it is closed, so that whatever stops next (an embedded server)
                // does not cut the drain short.
                if !drain_and_close(&client, DRAIN_WAIT).await {
                    warn!(network, wait = ?DRAIN_WAIT, "The NATS connection did not finish draining in time.");
                }
            }
        })
    }
}

/// Drains `client` (its subscriptions end, what it still has to publish is flushed) and waits,
/// at most `wait`, until the connection is closed: `drain()` only starts the drain. Returns
/// whether it closed in time.
pub async fn drain_and_close(client: &Client, wait: Duration) -> bool {
    if client.drain().await.is_err() {
        // The connection is gone already.
        return true;
    }
    let closed = async {
        // Once the connection has closed, the client cannot even queue a flush.
        while client.flush().await.is_ok() {
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        }
    };
    actix_rt::time::timeout(wait, closed).await.is_ok()
}
