//! [`ClientOptions`] (who the client is, where it publishes) and [`Expectation`] (who should
//! answer a request).

use std::collections::BTreeSet;

use crate::protocol::security::SigningIdentity;

/// Who the client is and how it publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// The collective requests go to (`mcollective` by default).
    pub collective: String,
    /// `envelope.callerid`; its md5 names the reply subject.
    pub callerid: String,
    /// `envelope.senderid` and `mc_sender`: this machine's identity.
    pub senderid: String,
    /// Federation clusters: when non-empty every request is published to
    /// `choria.federation.<cluster>.federation` of each, with the federation header.
    pub federation: Vec<String>,
    /// The server URL written in the client's `seen-by` hop.
    pub server_url: String,
    /// Request `ttl` in seconds (at least 30).
    pub ttl: i64,
    /// Signs every request (secure mode, `callerid` = `choria=<certname>`); `None` sends
    /// insecure requests.
    pub signer: Option<SigningIdentity>,
}

impl ClientOptions {
    /// Options for `collective`, caller `choria=<user>.mcollective`, sender = host name.
    pub fn new(collective: impl Into<String>, server_url: impl Into<String>) -> Self {
        let user = std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty() && u.chars().all(|c| c.is_alphanumeric() || c == '_'))
            .unwrap_or_else(|| "choir".to_owned());
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_owned())
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "choir-client".to_owned());
        Self {
            collective: collective.into(),
            callerid: format!("choria={user}.mcollective"),
            senderid: host,
            federation: Vec::new(),
            server_url: server_url.into(),
            ttl: crate::protocol::DEFAULT_TTL,
            signer: None,
        }
    }
}

impl ClientOptions {
    /// These options signing every request with `signer`, whose caller id they take.
    pub fn signed_by(mut self, signer: SigningIdentity) -> Self {
        self.callerid = signer.callerid();
        self.signer = Some(signer);
        self
    }
}

/// Who should answer a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Expectation {
    /// Unknown: collect until the timeout.
    #[default]
    Unknown,
    /// Finish as soon as this many distinct nodes answered (discovery with `--expect`).
    Count(usize),
    /// Exactly these nodes: finish when all answered; others are unexpected; the missing
    /// ones are reported as no-response.
    Nodes(BTreeSet<String>),
}

impl Expectation {
    /// The number of replies that completes the request, if known.
    pub fn count(&self) -> Option<usize> {
        match self {
            Self::Unknown => None,
            Self::Count(n) => Some(*n),
            Self::Nodes(nodes) => Some(nodes.len()),
        }
    }
}
