//! The security layer of a reply: `choria:secure:reply:1`.

use super::{reply_hash, ProtocolError, SECURE_REPLY_PROTOCOL};
use serde::{Deserialize, Serialize};

/// A `choria:secure:reply:1` message: the reply JSON text plus its SHA-256 (not signed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecureReply {
    /// Always `choria:secure:reply:1`.
    pub protocol: String,
    /// The `choria:reply:1` JSON text, exactly as produced or received.
    pub message: String,
    /// Standard base64 of the SHA-256 of `message`'s bytes.
    pub hash: String,
}

impl SecureReply {
    /// Wraps a reply JSON text, computing its hash.
    pub fn new(message: String) -> Self {
        let hash = reply_hash(&message);
        Self {
            protocol: SECURE_REPLY_PROTOCOL.to_owned(),
            message,
            hash,
        }
    }

    /// Parses secure reply JSON, checking the protocol string and a non-empty message.
    /// The hash is not checked here (see [`SecureReply::verify_hash`]).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let secure: Self =
            serde_json::from_slice(bytes).map_err(ProtocolError::json("secure reply"))?;
        ProtocolError::check_protocol(SECURE_REPLY_PROTOCOL, &secure.protocol)?;
        if secure.message.is_empty() {
            return Err(ProtocolError::EmptyField("secure reply message"));
        }
        Ok(secure)
    }

    /// Checks that `hash` is the SHA-256 of exactly `message`.
    pub fn verify_hash(&self) -> Result<(), ProtocolError> {
        let computed = reply_hash(&self.message);
        if computed == self.hash {
            Ok(())
        } else {
            Err(ProtocolError::HashMismatch {
                found: self.hash.clone(),
                computed,
            })
        }
    }

    /// Serialises the secure reply.
    pub fn to_vec(&self) -> Result<Vec<u8>, ProtocolError> {
        serde_json::to_vec(self).map_err(ProtocolError::json("secure reply"))
    }
}
