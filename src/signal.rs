//! Waiting for the operator's stop signal (SIGINT or SIGTERM), shared by `choir run`,
//! `choir emulate` and `choir playbook run`.

use tracing::warn;

/// Completes on SIGINT or SIGTERM; falls back to tokio's Ctrl-C when the handlers cannot be
/// installed.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => {
            warn!("Cannot install signal handlers; only Ctrl-C via tokio works.");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
