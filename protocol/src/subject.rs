//! NATS subjects of Choria protocol v1 and a classifier for them.

use super::request_id::lower_hex;
use md5::{Digest as _, Md5};

/// `<collective>.broadcast.agent.<agent>`: requests to every node running `agent`.
pub fn broadcast_agent(collective: &str, agent: &str) -> String {
    format!("{collective}.broadcast.agent.{agent}")
}

/// `<collective>.node.<identity>`: directed requests to one node.
pub fn node(collective: &str, identity: &str) -> String {
    format!("{collective}.node.{identity}")
}

/// `<collective>.reply.<md5hex(callerid)>.<requestid>`: where a Go client collects replies.
pub fn reply(collective: &str, callerid: &str, requestid: &str) -> String {
    let digest = Md5::digest(callerid.as_bytes());
    format!("{collective}.reply.{}.{requestid}", lower_hex(&digest))
}

/// `choria.federation.<cluster>.federation`: federated requests arrive here (federation NATS).
pub fn federation_requests(cluster: &str) -> String {
    format!("choria.federation.{cluster}.federation")
}

/// `<cluster>_federation`: queue group of the brokers subscribed to [`federation_requests`].
pub fn federation_requests_queue_group(cluster: &str) -> String {
    format!("{cluster}_federation")
}

/// `choria.federation.<cluster>.collective`: replies from federated nodes arrive here
/// (collective NATS).
pub fn federation_replies(cluster: &str) -> String {
    format!("choria.federation.{cluster}.collective")
}

/// `<cluster>_collective`: queue group of the brokers subscribed to [`federation_replies`].
pub fn federation_replies_queue_group(cluster: &str) -> String {
    format!("{cluster}_collective")
}

/// What a subject is, as far as the federation broker is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectKind<'a> {
    /// `<collective>.broadcast.agent.<agent>`.
    Broadcast {
        /// The collective.
        collective: &'a str,
        /// The agent.
        agent: &'a str,
    },
    /// `<collective>.node.<identity>` (the identity may contain dots).
    Node {
        /// The collective.
        collective: &'a str,
        /// The node identity.
        identity: &'a str,
    },
    /// `<collective>.reply.<rest>` (Go `<md5>.<requestid>`, Ruby `<md5>.<pid>.<seq>`).
    Reply {
        /// The collective.
        collective: &'a str,
        /// Everything after `reply.`.
        rest: &'a str,
    },
    /// Anything else, including any subject with wildcards (`*`, `>`), whitespace or empty
    /// tokens.
    Other,
}

impl SubjectKind<'_> {
    /// Whether a federation broker may publish a request to this subject (broadcast or node).
    pub fn is_request_target(&self) -> bool {
        matches!(self, Self::Broadcast { .. } | Self::Node { .. })
    }

    /// Whether this is a reply subject (what a federated `reply-to` must be).
    pub fn is_reply(&self) -> bool {
        matches!(self, Self::Reply { .. })
    }
}

/// The longest subject choir publishes to on behalf of a message (a federation target or
/// reply-to, an adapter's stream subject, an advisory). nats-server closes a connection whose
/// control line (`HPUB <subject> <reply> <sizes>`) exceeds its `max_control_line`, 4 KiB by
/// default, so one message naming a longer subject would cut the connection every other
/// message shares; Choria's own subjects (identities are host names) stay far below this.
pub const MAX_SUBJECT_LEN: usize = 1024;

/// Classifies a subject. Used by the federation broker to refuse bridging into arbitrary
/// subjects: targets must be [`SubjectKind::Broadcast`] or [`SubjectKind::Node`], reply-to
/// must be [`SubjectKind::Reply`]. Stricter than the Ruby broker's regexes: tokens must be
/// non-empty, with no wildcards or whitespace, a broadcast subject has exactly 4 tokens, and
/// no subject is longer than [`MAX_SUBJECT_LEN`].
pub fn classify_subject(subject: &str) -> SubjectKind<'_> {
    let valid = !subject.is_empty()
        && subject.len() <= MAX_SUBJECT_LEN
        && subject.split('.').all(|t| {
            !t.is_empty() && !t.contains(|c: char| c == '*' || c == '>' || c.is_whitespace())
        });
    if !valid {
        return SubjectKind::Other;
    }
    let Some((collective, rest)) = subject.split_once('.') else {
        return SubjectKind::Other;
    };
    if let Some(agent) = rest.strip_prefix("broadcast.agent.") {
        if !agent.contains('.') {
            return SubjectKind::Broadcast { collective, agent };
        }
    } else if let Some(identity) = rest.strip_prefix("node.") {
        return SubjectKind::Node {
            collective,
            identity,
        };
    } else if let Some(rest) = rest.strip_prefix("reply.") {
        return SubjectKind::Reply { collective, rest };
    }
    SubjectKind::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders() {
        assert_eq!(
            broadcast_agent("mcollective", "emulated0"),
            "mcollective.broadcast.agent.emulated0"
        );
        assert_eq!(
            node("mcollective", "n1.example.net"),
            "mcollective.node.n1.example.net"
        );
        assert_eq!(
            reply(
                "mcollective",
                "choria=rip.mcollective",
                "a3f1c0d2e4b54c6f8a9b0c1d2e3f4a5b"
            ),
            "mcollective.reply.37bdf08389145a56c13096c178802d3b.a3f1c0d2e4b54c6f8a9b0c1d2e3f4a5b"
        );
        assert_eq!(
            federation_requests("london"),
            "choria.federation.london.federation"
        );
        assert_eq!(
            federation_requests_queue_group("london"),
            "london_federation"
        );
        assert_eq!(
            federation_replies("london"),
            "choria.federation.london.collective"
        );
        assert_eq!(
            federation_replies_queue_group("london"),
            "london_collective"
        );
    }

    #[test]
    fn classifier() {
        assert_eq!(
            classify_subject("mcollective.broadcast.agent.emulated0"),
            SubjectKind::Broadcast {
                collective: "mcollective",
                agent: "emulated0"
            }
        );
        assert_eq!(
            classify_subject("mcollective.node.n1.example.net"),
            SubjectKind::Node {
                collective: "mcollective",
                identity: "n1.example.net"
            }
        );
        assert_eq!(
            classify_subject("mcollective.reply.37bd.a3f1"),
            SubjectKind::Reply {
                collective: "mcollective",
                rest: "37bd.a3f1"
            }
        );
        assert!(classify_subject("mcollective.node.x").is_request_target());
        assert!(classify_subject("mcollective.reply.x.y").is_reply());
        for other in [
            "",
            "mcollective",
            "mcollective.node",
            "mcollective.node.",
            "mcollective.node.*",
            "mcollective.node.>",
            "*.node.n1",
            "mcollective.broadcast.agent.a.b",
            "mcollective.broadcast.service.a",
            "mcollective.broadcast.agent.",
            "mcollective.reply",
            "choria.federation.london.federation",
            "choria.lifecycle.event.alive.server",
            "$SYS.REQ.SERVER.PING",
            ".node.x",
            "mcollective.node.a b",
            "mcollective..node.x",
        ] {
            assert_eq!(classify_subject(other), SubjectKind::Other, "{other:?}");
            assert!(!classify_subject(other).is_request_target());
        }
    }
}
