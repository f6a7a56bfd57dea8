//! The client's NATS connection with credentials and TLS: the same settings, and the same
//! code ([`NetworkSettings::secure`]), as every `[networks.*]` connection.

use async_nats::{Client, ConnectOptions};

use super::ClientError;
use crate::connection::NetworkSettings;

/// Connects to a reachable server of `settings.urls` (a server list as async-nats takes it:
/// a server that is down is skipped), with its credentials and TLS, each
/// attempt bounded by `settings.connect_timeout`. Reply subscriptions buffer up to
/// `subscription_capacity` messages.
pub async fn connect_with(
    settings: &NetworkSettings,
    subscription_capacity: usize,
) -> Result<Client, ClientError> {
    if settings.urls.is_empty() {
        return Err(ClientError::NoServers);
    }
    let joined = settings.urls.join(",");
    let options = ConnectOptions::new()
        .name(settings.connection_name.as_str())
        .connection_timeout(settings.connect_timeout)
        .subscription_capacity(subscription_capacity.max(1));
    let options = settings
        .secure(options)
        .await
        .map_err(|source| ClientError::Credentials {
            path: settings.credentials_path(),
            source,
        })?;
    options
        .connect(settings.urls.as_slice())
        .await
        .map_err(|e| ClientError::Connect {
            urls: joined.clone(),
            message: e.to_string(),
        })
}
