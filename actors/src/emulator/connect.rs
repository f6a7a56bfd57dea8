//! One emulator connection: async-nats options from [`NetworkSettings`], reconnecting forever
//! with jittered backoff, its events counted in [`EmulatorMetrics`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::{Client, ConnectOptions, Event};

use super::{EmulatorError, EmulatorMetrics};
use crate::connection::NetworkSettings;
use crate::supervision::Backoff;

/// Connects to `url` as `name`. After the first success async-nats reconnects by itself
/// forever (with [`Backoff::FLEET_RECONNECT`]: a random 0–2 s on top of a capped backoff, so
/// a fleet does not come back in one burst after a server restart).
pub(super) async fn connect(
    settings: &NetworkSettings,
    url: &str,
    name: String,
    metrics: EmulatorMetrics,
) -> Result<Client, EmulatorError> {
    let lost = Arc::new(AtomicBool::new(false));
    // async-nats calls the delay callback before every attempt, the very first one included:
    // no delay until the first connect succeeded, jitter only on reconnects.
    let connected_once = Arc::new(AtomicBool::new(false));
    let once = connected_once.clone();
    let mut options = ConnectOptions::new()
        .name(name)
        .connection_timeout(settings.connect_timeout)
        .subscription_capacity(settings.subscription_capacity.get())
        .max_reconnects(None)
        .reconnect_delay_callback(move |attempts| reconnect_delay(&connected_once, attempts))
        .event_callback(move |event| {
            on_event(&metrics, &lost, event);
            async {}
        });
    options = settings
        .secure(options)
        .await
        .map_err(|source| EmulatorError::Credentials {
            path: settings.credentials_path(),
            source,
        })?;
    let client = options
        .connect(url)
        .await
        .map_err(|source| EmulatorError::Connect {
            url: url.to_owned(),
            source,
        })?;
    once.store(true, Ordering::Release);
    Ok(client)
}

/// The delay before connect attempt `attempts` (1-based): none before the first connect
/// succeeded (the daemon retries with its own backoff), then [`Backoff::FLEET_RECONNECT`].
fn reconnect_delay(connected_once: &AtomicBool, attempts: usize) -> Duration {
    if !connected_once.load(Ordering::Acquire) {
        return Duration::ZERO;
    }
    let attempt = u32::try_from(attempts.saturating_sub(1)).unwrap_or(u32::MAX);
    Backoff::FLEET_RECONNECT.delay(attempt)
}

fn on_event(metrics: &EmulatorMetrics, lost: &AtomicBool, event: Event) {
    match event {
        Event::Connected if lost.swap(false, Ordering::AcqRel) => {
            metrics.connected.inc();
            metrics.reconnects.inc();
        }
        Event::Disconnected | Event::Closed if !lost.swap(true, Ordering::AcqRel) => {
            metrics.connected.dec();
        }
        Event::SlowConsumer(_) => {
            metrics.slow_consumers.inc();
        }
        _ => {}
    }
}
