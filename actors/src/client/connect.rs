//! The client's NATS connection.

use std::time::Duration;

use async_nats::Client;

use crate::connection::NetworkSettings;

use super::ClientError;

/// Connects to a reachable server of `urls`, a server list as async-nats takes it (each
/// attempt bounded by `timeout`; a server that is down is skipped). Reply
/// subscriptions buffer up to `subscription_capacity` messages, so size it to the largest
/// fleet measured (replies beyond it are dropped by async-nats as a slow consumer).
pub async fn connect(
    urls: &[String],
    subscription_capacity: usize,
    timeout: Duration,
) -> Result<Client, ClientError> {
    let mut settings = NetworkSettings::new("client", urls.to_vec());
    settings.connect_timeout = timeout;
    super::connect_with(&settings, subscription_capacity).await
}
