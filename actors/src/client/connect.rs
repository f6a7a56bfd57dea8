//! The client's NATS connection.

use std::time::Duration;

use async_nats::{Client, ConnectOptions};

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
    if urls.is_empty() {
        return Err(ClientError::NoServers);
    }
    let joined = urls.join(",");
    ConnectOptions::new()
        .name("choir-client")
        .connection_timeout(timeout)
        .subscription_capacity(subscription_capacity.max(1))
        .connect(urls)
        .await
        .map_err(|e| ClientError::Connect {
            urls: joined.clone(),
            message: e.to_string(),
        })
}
