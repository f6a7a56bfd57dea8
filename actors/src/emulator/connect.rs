//! One emulator connection: async-nats options from [`NetworkSettings`], reconnecting forever
//! with jittered backoff, its events counted in [`EmulatorMetrics`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::{Client, ConnectOptions, Event};
use rand::Rng as _;

use super::{EmulatorError, EmulatorMetrics};
use crate::connection::NetworkSettings;

/// Connects to `url` as `name`. After the first success async-nats reconnects by itself
/// forever (with a random 0–2 s delay on top of a capped backoff, so a fleet does not come
/// back in one burst after a server restart).
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
/// succeeded (the daemon retries with its own backoff), then a capped backoff plus 0–2 s of
/// jitter.
fn reconnect_delay(connected_once: &AtomicBool, attempts: usize) -> Duration {
    if !connected_once.load(Ordering::Acquire) {
        return Duration::ZERO;
    }
    reconnect_backoff(attempts)
}

/// The delay before reconnect attempt `attempts` (1-based) of a daemon that was connected:
/// 250 ms more per failed attempt, capped at 5 s, plus 0–2 s of jitter.
pub(super) fn reconnect_backoff(attempts: usize) -> Duration {
    let base = Duration::from_millis(250)
        .saturating_mul(u32::try_from(attempts.saturating_sub(1).min(16)).unwrap_or(16))
        .min(Duration::from_secs(5));
    base + Duration::from_millis(rand::thread_rng().gen_range(0..2000))
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
