//! What a `FederationBrokerActor` needs: plain values, already validated by the config layer.

use std::num::NonZeroUsize;

use crate::protocol::subject;

/// The settings of the broker of one cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerSettings {
    /// The cluster name (`<cluster>` in subjects and queue groups).
    pub cluster: String,
    /// The identity the broker shows in `seen-by` hops and in the `identity` metric label.
    pub identity: String,
    /// The name of the federation network (for logs).
    pub federation_network: String,
    /// The name of the collective network (for logs).
    pub collective_network: String,
    /// Workers per path (request, reply): each is one queue subscription that ingests,
    /// transforms and egests (Choria's three stages, reported under their names).
    pub workers: NonZeroUsize,
    /// Whether the federation network is configured for TLS (its `seen-by` URLs say `tls://`).
    pub federation_tls: bool,
    /// Whether the collective network is configured for TLS.
    pub collective_tls: bool,
}

impl BrokerSettings {
    /// Settings for `cluster` with 2 workers per path.
    pub fn new(cluster: impl Into<String>, identity: impl Into<String>) -> Self {
        Self {
            cluster: cluster.into(),
            identity: identity.into(),
            federation_network: "federation".to_owned(),
            collective_network: "collective".to_owned(),
            workers: NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN),
            federation_tls: false,
            collective_tls: false,
        }
    }

    /// `choria.federation.<cluster>.federation`: where requests arrive.
    pub fn request_subject(&self) -> String {
        subject::federation_requests(&self.cluster)
    }

    /// `<cluster>_federation`.
    pub fn request_queue_group(&self) -> String {
        subject::federation_requests_queue_group(&self.cluster)
    }

    /// `choria.federation.<cluster>.collective`: where replies arrive, and the `reply-to` the
    /// broker puts on requests.
    pub fn reply_subject(&self) -> String {
        subject::federation_replies(&self.cluster)
    }

    /// `<cluster>_collective`.
    pub fn reply_queue_group(&self) -> String {
        subject::federation_replies_queue_group(&self.cluster)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_and_groups() {
        let s = BrokerSettings::new("london", "fb1");
        assert_eq!(s.request_subject(), "choria.federation.london.federation");
        assert_eq!(s.request_queue_group(), "london_federation");
        assert_eq!(s.reply_subject(), "choria.federation.london.collective");
        assert_eq!(s.reply_queue_group(), "london_collective");
        assert_eq!(s.workers.get(), 2);
    }
}
