//! What every actor of a fleet shares ([`FleetShared`], with its [`RegistrationPlan`]), and the
//! reply path both kinds of daemon use ([`send_reply`], [`write_audit`]). The fleet, the
//! async-nats daemons and the wire daemons all import from here, so none imports another.

use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use async_nats::Client;
use rand::Rng as _;
use tokio::sync::Semaphore;

use super::failure_log::FailureLog;
use super::servers::ServerPool;
use super::{AuditLog, EmulatorMetrics, Outgoing};
use crate::connection::NetworkSettings;

/// Registration as the actors use it: the subject resolved.
#[derive(Debug, Clone)]
pub(super) struct RegistrationPlan {
    pub(super) interval: Duration,
    pub(super) splay: bool,
    pub(super) subject: String,
}

impl RegistrationPlan {
    /// How long a daemon waits before its first registration: a random splay below
    /// `interval` when `splay` is on, else none.
    pub(super) fn first_delay(&self) -> Duration {
        if !self.splay {
            return Duration::ZERO;
        }
        let ms = u64::try_from(self.interval.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        Duration::from_millis(rand::thread_rng().gen_range(0..ms))
    }
}

/// What every actor of a fleet shares.
#[derive(Debug)]
pub(super) struct FleetShared {
    pub(super) settings: NetworkSettings,
    pub(super) metrics: EmulatorMetrics,
    pub(super) connect_slots: Semaphore,
    pub(super) audit: Option<AuditLog>,
    pub(super) registration: Option<Arc<RegistrationPlan>>,
    /// The servers wire daemons connect to (grows with the servers' `connect_urls`).
    pub(super) servers: ServerPool,
    /// Connect failures, logged at most once per period.
    pub(super) failures: FailureLog,
    /// Keep-alive ping interval of wire daemons.
    pub(super) ping_interval: Duration,
}

/// Sends `out` (a reply) on `client`, writing its audit line first.
pub(super) fn send_reply(
    fleet: &FleetShared,
    client: Rc<Client>,
    out: Outgoing,
) -> impl Future<Output = ()> {
    write_audit(fleet, &out);
    let metrics = fleet.metrics.clone();
    async move {
        match client.publish(out.subject, out.payload.into()).await {
            Ok(()) => metrics.replies.inc(),
            Err(_) => metrics.publish_errors.inc(),
        };
    }
}

/// Writes the audit line of reply `out`, if it has one and the fleet keeps an audit log.
pub(super) fn write_audit(fleet: &FleetShared, out: &Outgoing) {
    if let (Some(log), Some(record)) = (&fleet.audit, &out.audit) {
        if log.write(record).is_err() {
            fleet.metrics.audit_errors.inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(interval: Duration, splay: bool) -> RegistrationPlan {
        RegistrationPlan {
            interval,
            splay,
            subject: "choria.lifecycle".into(),
        }
    }

    #[test]
    fn without_splay_the_first_registration_is_at_once() {
        assert_eq!(
            plan(Duration::from_secs(300), false).first_delay(),
            Duration::ZERO
        );
    }

    #[test]
    fn a_splayed_first_registration_is_within_one_interval() {
        let plan = plan(Duration::from_millis(50), true);
        for _ in 0..200 {
            assert!(plan.first_delay() < Duration::from_millis(50));
        }
        assert_eq!(
            self::plan(Duration::ZERO, true).first_delay(),
            Duration::ZERO
        );
    }
}
