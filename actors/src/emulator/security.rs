//! [`RequestSecurity`]: a secure emulator verifies every request as a Choria server does
//! ([`Verifier`]) and answers only trusted ones.
//!
//! Every daemon of a process receives the same bytes for a broadcast, so a request is
//! verified once per process: the verdict is kept in a small LRU keyed by the SHA-256 of the
//! secure request ([`Prepared::secure_digest`]) and shared by every daemon and thread.
//! Verification costs one chain check and one signature check per distinct request, whatever
//! the number of daemons.
//!
//! A refused request gets no reply. Each verdict is counted once, by reason, in
//! `choir_emulator_security_refused_total{reason}` (and `/debug/vars`), logged at DEBUG with
//! the reason; each daemon that does not answer it counts a `security` drop. The first
//! insecure request is also reported at WARN.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use lru::LruCache;
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tracing::{debug, warn};

use super::metrics::ReasonLabel;
use super::node::Prepared;
use super::DropReason;
use crate::metrics::MetricsRegistry;
use crate::protocol::security::{Rejection, Verdict, Verifier};

/// Distinct requests whose verdict a process remembers.
const VERDICTS: usize = 1024;

/// Counters of request verification, shared by a fleet (cloning shares them).
#[derive(Clone, Debug, Default)]
pub struct SecurityMetrics {
    /// `choir_emulator_security_verified_total`: distinct requests verified.
    pub verified: Counter,
    /// `choir_emulator_security_refused_total{reason}`: distinct requests refused.
    pub refused: Family<ReasonLabel, Counter>,
    /// `choir_emulator_security_verify_cpu_nanoseconds_total`: CPU time (of the verifying
    /// thread) spent in the verifications: chain, names and signature checks.
    pub verify_cpu_nanos: Counter,
}

impl SecurityMetrics {
    /// Registers the counters in `metrics`.
    pub fn register(&self, metrics: &MetricsRegistry) {
        metrics.register(
            "choir_emulator_security_verified",
            "Distinct requests a secure emulator verified (once per process)",
            self.verified.clone(),
        );
        metrics.register(
            "choir_emulator_security_refused",
            "Distinct requests a secure emulator refused, by reason",
            self.refused.clone(),
        );
        metrics.register(
            "choir_emulator_security_verify_cpu_nanoseconds",
            "CPU time a secure emulator spent verifying requests (thread CPU time of the verify calls)",
            self.verify_cpu_nanos.clone(),
        );
        for reason in Rejection::REASONS {
            drop(self.refused.get_or_create(&label(reason)));
        }
    }

    /// Distinct requests refused for `reason` (a [`Rejection::reason`]).
    pub fn refused_for(&self, reason: &str) -> u64 {
        self.refused.get_or_create(&label(reason)).get()
    }

    /// The counters as the `security` object of `/debug/vars`.
    pub fn vars(&self) -> serde_json::Value {
        let refused: serde_json::Map<String, serde_json::Value> = Rejection::REASONS
            .iter()
            .map(|r| ((*r).to_owned(), self.refused_for(r).into()))
            .collect();
        serde_json::json!({
            "verified": self.verified.get(),
            "refused": refused,
            "verify_cpu_ns": self.verify_cpu_nanos.get(),
        })
    }
}

fn label(reason: &str) -> ReasonLabel {
    ReasonLabel {
        reason: reason.to_owned(),
    }
}

/// The verifier of a secure fleet and the verdicts it reached.
pub struct RequestSecurity {
    verifier: Verifier,
    verdicts: Mutex<LruCache<[u8; 32], Option<&'static str>>>,
    metrics: SecurityMetrics,
    warned_insecure: AtomicBool,
}

impl std::fmt::Debug for RequestSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestSecurity").finish_non_exhaustive()
    }
}

impl RequestSecurity {
    /// Verification with `verifier`, counted in `metrics`.
    pub fn new(verifier: Verifier, metrics: SecurityMetrics) -> Self {
        Self {
            verifier,
            verdicts: Mutex::new(LruCache::new(
                NonZeroUsize::new(VERDICTS).unwrap_or(NonZeroUsize::MIN),
            )),
            metrics,
            warned_insecure: AtomicBool::new(false),
        }
    }

    /// Whether `prepared` may be answered ([`DropReason::Security`] if not), verifying it if
    /// this process has not seen it yet.
    pub fn check(&self, prepared: &Prepared) -> Result<(), DropReason> {
        // Held while verifying: a request is verified exactly once even when daemons on
        // several threads see it at the same moment (verification is rare: once per request).
        let mut verdicts = self.verdicts.lock();
        let refused = match verdicts.get(&prepared.secure_digest) {
            Some(refused) => *refused,
            None => {
                let refused = self.verify(prepared);
                verdicts.put(prepared.secure_digest, refused);
                refused
            }
        };
        match refused {
            None => Ok(()),
            Some(_) => Err(DropReason::Security),
        }
    }

    /// Verifies `prepared` and counts and logs a refusal; its reason when refused.
    fn verify(&self, prepared: &Prepared) -> Option<&'static str> {
        let decoded = &prepared.decoded;
        let env = &decoded.request.envelope;
        self.metrics.verified.inc();
        let began = thread_cpu_nanos();
        let verdict = self.verifier.verify(&decoded.secure, &env.callerid);
        self.metrics
            .verify_cpu_nanos
            .inc_by(thread_cpu_nanos().saturating_sub(began));
        match verdict {
            Verdict::Trusted { .. } => None,
            Verdict::Refused(rejection) => {
                let reason = rejection.reason();
                self.metrics.refused.get_or_create(&label(reason)).inc();
                debug!(
                    requestid = %env.requestid,
                    callerid = %env.callerid,
                    reason,
                    %rejection,
                    "Refused a request that failed verification."
                );
                if rejection == Rejection::Insecure
                    && !self.warned_insecure.swap(true, Ordering::Relaxed)
                {
                    warn!(
                        callerid = %env.callerid,
                        "Refusing insecure requests: this emulator is secure (reported once; counted in choir_emulator_security_refused_total)."
                    );
                }
                Some(reason)
            }
        }
    }
}

/// CPU time of the calling thread in nanoseconds (0 if the clock cannot be read).
fn thread_cpu_nanos() -> u64 {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).map_or(0, |t| {
        let nanos = i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec());
        u64::try_from(nanos).unwrap_or(0)
    })
}

/// A fleet's [`RequestSecurity`], shared by its daemons; equal when it is the same one.
#[derive(Clone, Debug)]
pub struct FleetSecurity(pub Arc<RequestSecurity>);

impl PartialEq for FleetSecurity {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for FleetSecurity {}
