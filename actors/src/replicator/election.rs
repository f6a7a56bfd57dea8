//! Leader election among the choir nodes that run the same replicator (`[replicators.X.ha]`).
//!
//! The mechanism is the Choria Stream Replicator's, so that its tools recognise the keys: a KV
//! bucket (default `CHORIA_LEADER_ELECTION`) whose `max_age` is the TTL, and one key per
//! replicator, `SR_<name>_<stream>`, holding the leader's identity.
//! - A standby *campaigns* every `TTL / 4`: `create` of the key, which succeeds only when the
//!   key is absent (never written, expired after its TTL, or deleted by a leader that stopped).
//! - The leader *renews* every `TTL / 4`: `update` at the revision it last wrote. A refusal
//!   (someone else wrote the key) ends its leadership at once.
//! - A leader whose last successful renewal was *sent* more than `3/4 × TTL` ago steps down
//!   by itself: the key it wrote lives at least `TTL` after that send, so it stops before any
//!   other node can win, and at most one `TTL` after its last renewal.
//! - A node that finds its own identity in the key (it restarted within the TTL) adopts the
//!   key at its revision instead of waiting for it to expire.
//!
//! [`Campaign`] is the plain decision core; [`Ballot`] does the KV requests.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use async_nats::Client;
use bytes::Bytes;

use super::settings::HaSettings;

/// Shortest pause between two election requests.
const MIN_INTERVAL: Duration = Duration::from_millis(50);

/// This node's place in one election.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Another node leads, or nobody yet: campaign.
    Standby,
    /// This node leads.
    Leader {
        /// The key's revision this node last wrote.
        revision: u64,
        /// When the last successful write was sent.
        renewed: Instant,
    },
}

/// The next request to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// Try to create the key.
    Campaign,
    /// Rewrite the key at this revision.
    Renew(u64),
}

/// What the server answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The key is ours at this revision (created, renewed or adopted).
    Written(u64),
    /// Another node holds the key.
    Held,
    /// A renewal was refused: the key moved on, another node leads.
    Conflict,
    /// No answer, or an error: try again later.
    Failed(String),
}

/// A change of role the caller acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Nothing changed.
    None,
    /// This node became the leader: start copying.
    Won,
    /// This node is no longer the leader: stop copying.
    Lost,
}

/// The election's decision core: no I/O, times passed in.
#[derive(Clone, Debug)]
pub struct Campaign {
    ttl: Duration,
    role: Role,
}

impl Campaign {
    /// A standby in an election whose keys live `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            role: Role::Standby,
        }
    }

    /// The keys' TTL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// How often to campaign or renew: a quarter of the TTL.
    pub fn interval(&self) -> Duration {
        (self.ttl / 4).max(MIN_INTERVAL)
    }

    /// How long a leader trusts its last renewal: three quarters of the TTL.
    pub fn lease(&self) -> Duration {
        self.ttl.saturating_mul(3) / 4
    }

    /// The current role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether this node leads.
    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader { .. })
    }

    /// The next request.
    pub fn attempt(&self) -> Attempt {
        match self.role {
            Role::Standby => Attempt::Campaign,
            Role::Leader { revision, .. } => Attempt::Renew(revision),
        }
    }

    /// Records the answer to a request sent at `sent`.
    pub fn record(&mut self, outcome: Outcome, sent: Instant) -> Change {
        match (self.role, outcome) {
            (Role::Standby, Outcome::Written(revision)) => {
                self.role = Role::Leader {
                    revision,
                    renewed: sent,
                };
                Change::Won
            }
            (Role::Leader { renewed, .. }, Outcome::Written(revision)) => {
                self.role = Role::Leader {
                    revision,
                    renewed: renewed.max(sent),
                };
                Change::None
            }
            (Role::Leader { .. }, Outcome::Conflict | Outcome::Held) => {
                self.role = Role::Standby;
                Change::Lost
            }
            (_, Outcome::Failed(_)) | (Role::Standby, Outcome::Held | Outcome::Conflict) => {
                Change::None
            }
        }
    }

    /// A leader whose last renewal is older than the lease at `now` steps down.
    pub fn expire(&mut self, now: Instant) -> Change {
        match self.role {
            Role::Leader { renewed, .. }
                if now.saturating_duration_since(renewed) >= self.lease() =>
            {
                self.role = Role::Standby;
                Change::Lost
            }
            _ => Change::None,
        }
    }

    /// Gives leadership up (the node stops): the revision to delete, if this node led.
    pub fn resign(&mut self) -> Option<u64> {
        let revision = match self.role {
            Role::Leader { revision, .. } => Some(revision),
            Role::Standby => None,
        };
        self.role = Role::Standby;
        revision
    }
}

/// Why the election bucket cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ElectionError {
    /// The bucket could neither be opened nor created.
    #[error("election bucket {bucket}: {message}")]
    Bucket {
        /// The bucket.
        bucket: String,
        /// What the server said.
        message: String,
    },
}

/// The KV side of one election: the bucket, the key and this node's identity.
#[derive(Clone)]
pub struct Ballot {
    kv: kv::Store,
    key: String,
    identity: Bytes,
    ttl: Duration,
}

impl Ballot {
    /// Opens (or creates, with `max_age = ttl`) the bucket of `ha` through `client`. When the
    /// bucket exists with another TTL, the bucket's TTL is the one that counts
    /// ([`Ballot::ttl`]).
    pub async fn open(client: Client, ha: &HaSettings, key: String) -> Result<Self, ElectionError> {
        let js = jetstream::new(client);
        let error = |message: String| ElectionError::Bucket {
            bucket: ha.bucket.clone(),
            message,
        };
        let store = match js.get_key_value(&ha.bucket).await {
            Ok(store) => store,
            Err(_) => {
                // Created as a stream directly: `create_key_value` first asks for the account
                // info, which 2.9 answers in another shape.
                let created = js
                    .get_or_create_stream(jetstream::stream::Config {
                        name: format!("KV_{}", ha.bucket),
                        description: Some("choir / Choria leader election".to_owned()),
                        subjects: vec![format!("$KV.{}.>", ha.bucket)],
                        max_messages_per_subject: 1,
                        max_age: ha.ttl,
                        max_bytes: -1,
                        max_message_size: 1024,
                        storage: jetstream::stream::StorageType::File,
                        allow_rollup: true,
                        deny_delete: true,
                        allow_direct: true,
                        discard: jetstream::stream::DiscardPolicy::New,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| e.to_string());
                match js.get_key_value(&ha.bucket).await {
                    Ok(store) => store,
                    Err(e) => return Err(error(created.err().unwrap_or_else(|| e.to_string()))),
                }
            }
        };
        let ttl = match store.status().await {
            Ok(status) if !status.info.config.max_age.is_zero() => status.info.config.max_age,
            Ok(_) => {
                return Err(error(
                    "the bucket has no TTL (max_age), so a dead leader's key never expires"
                        .to_owned(),
                ))
            }
            Err(e) => return Err(error(e.to_string())),
        };
        Ok(Self {
            kv: store,
            key,
            identity: Bytes::from(ha.identity.clone()),
            ttl,
        })
    }

    /// The TTL of the bucket's keys.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Makes `attempt`, giving up after `within`.
    pub async fn run(&self, attempt: Attempt, within: Duration) -> Outcome {
        match tokio::time::timeout(within, self.request(attempt)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Failed("no answer in time".to_owned()),
        }
    }

    async fn request(&self, attempt: Attempt) -> Outcome {
        match attempt {
            Attempt::Renew(revision) => {
                match self
                    .kv
                    .update(&self.key, self.identity.clone(), revision)
                    .await
                {
                    Ok(revision) => Outcome::Written(revision),
                    Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                        Outcome::Conflict
                    }
                    Err(e) => Outcome::Failed(e.to_string()),
                }
            }
            Attempt::Campaign => match self.kv.create(&self.key, self.identity.clone()).await {
                Ok(revision) => Outcome::Written(revision),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => self.adopt().await,
                Err(e) => Outcome::Failed(e.to_string()),
            },
        }
    }

    /// The key exists: if it holds this node's identity (a restart within the TTL), take it
    /// over at its revision.
    async fn adopt(&self) -> Outcome {
        match self.kv.entry(&self.key).await {
            Ok(Some(entry))
                if entry.operation == kv::Operation::Put && entry.value == self.identity =>
            {
                match self
                    .kv
                    .update(&self.key, self.identity.clone(), entry.revision)
                    .await
                {
                    Ok(revision) => Outcome::Written(revision),
                    Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Outcome::Held,
                    Err(e) => Outcome::Failed(e.to_string()),
                }
            }
            Ok(_) => Outcome::Held,
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }

    /// Deletes the key if it is still at `revision`, so a standby takes over at once.
    pub async fn release(&self, revision: u64) -> Result<(), String> {
        let delete = self.kv.delete_expect_revision(&self.key, Some(revision));
        match tokio::time::timeout(Duration::from_secs(2), delete).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err("no answer in time".to_owned()),
        }
    }

    /// Who holds the key now, if anyone.
    pub async fn holder(&self) -> Option<String> {
        match self.kv.entry(&self.key).await {
            Ok(Some(entry)) if entry.operation == kv::Operation::Put => {
                Some(String::from_utf8_lossy(&entry.value).into_owned())
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(4);

    fn leader(at: Instant) -> Campaign {
        let mut c = Campaign::new(TTL);
        assert_eq!(c.record(Outcome::Written(7), at), Change::Won);
        c
    }

    #[test]
    fn a_standby_campaigns_and_wins_when_its_create_succeeds() {
        let mut c = Campaign::new(TTL);
        assert_eq!(c.attempt(), Attempt::Campaign);
        assert_eq!(c.record(Outcome::Held, Instant::now()), Change::None);
        assert!(!c.is_leader());
        assert_eq!(c.record(Outcome::Written(3), Instant::now()), Change::Won);
        assert!(c.is_leader());
        assert_eq!(c.attempt(), Attempt::Renew(3));
    }

    #[test]
    fn a_leader_renews_at_the_revision_it_last_wrote() {
        let t0 = Instant::now();
        let mut c = leader(t0);
        assert_eq!(c.record(Outcome::Written(9), t0 + TTL / 4), Change::None);
        assert_eq!(c.attempt(), Attempt::Renew(9));
        assert_eq!(
            c.role(),
            Role::Leader {
                revision: 9,
                renewed: t0 + TTL / 4
            }
        );
    }

    #[test]
    fn a_refused_renewal_ends_leadership_at_once() {
        let mut c = leader(Instant::now());
        assert_eq!(c.record(Outcome::Conflict, Instant::now()), Change::Lost);
        assert_eq!(c.attempt(), Attempt::Campaign);
    }

    #[test]
    fn a_leader_that_cannot_renew_steps_down_before_its_key_can_expire() {
        let t0 = Instant::now();
        let mut c = leader(t0);
        assert_eq!(
            c.record(Outcome::Failed("timeout".into()), t0 + TTL / 4),
            Change::None
        );
        assert_eq!(c.expire(t0 + TTL / 2), Change::None);
        assert!(c.lease() < TTL);
        assert_eq!(c.expire(t0 + c.lease()), Change::Lost);
        assert!(!c.is_leader());
        assert_eq!(c.expire(t0 + TTL), Change::None);
    }

    #[test]
    fn a_late_answer_to_an_older_renewal_does_not_move_the_lease_back() {
        let t0 = Instant::now();
        let mut c = leader(t0 + TTL / 2);
        c.record(Outcome::Written(8), t0);
        assert_eq!(
            c.role(),
            Role::Leader {
                revision: 8,
                renewed: t0 + TTL / 2
            }
        );
    }

    #[test]
    fn resigning_returns_the_revision_to_delete_only_for_a_leader() {
        let mut c = Campaign::new(TTL);
        assert_eq!(c.resign(), None);
        let mut c = leader(Instant::now());
        assert_eq!(c.resign(), Some(7));
        assert!(!c.is_leader());
    }

    #[test]
    fn the_interval_is_a_quarter_of_the_ttl_and_never_zero() {
        assert_eq!(Campaign::new(TTL).interval(), Duration::from_secs(1));
        assert_eq!(
            Campaign::new(Duration::from_millis(1)).interval(),
            MIN_INTERVAL
        );
    }
}
