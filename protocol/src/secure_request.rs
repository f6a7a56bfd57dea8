//! The security layer of a request: `choria:secure:request:1`.

use super::{ProtocolError, INSECURE, SECURE_REQUEST_PROTOCOL};
use serde::{Deserialize, Serialize};

/// A `choria:secure:request:1` message.
///
/// `message` is the request JSON text kept exactly as received: the signature covers those
/// bytes, so it must never be re-serialised before verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecureRequest {
    /// Always `choria:secure:request:1`.
    pub protocol: String,
    /// The `choria:request:1` JSON text.
    pub message: String,
    /// Base64 RSA PKCS#1 v1.5 SHA-256 signature of `message`, or `insecure`.
    pub signature: String,
    /// The caller's PEM certificate, or `insecure`.
    pub pubcert: String,
}

impl SecureRequest {
    /// Wraps a request JSON text in insecure mode (`signature` and `pubcert` = `insecure`).
    pub fn insecure(message: String) -> Self {
        Self {
            protocol: SECURE_REQUEST_PROTOCOL.to_owned(),
            message,
            signature: INSECURE.to_owned(),
            pubcert: INSECURE.to_owned(),
        }
    }

    /// Whether this request is unsigned (insecure mode).
    pub fn is_insecure(&self) -> bool {
        self.signature == INSECURE
    }

    /// Parses secure request JSON, checking the protocol string and a non-empty message.
    /// The signature is not verified.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let secure: Self =
            serde_json::from_slice(bytes).map_err(ProtocolError::json("secure request"))?;
        ProtocolError::check_protocol(SECURE_REQUEST_PROTOCOL, &secure.protocol)?;
        if secure.message.is_empty() {
            return Err(ProtocolError::EmptyField("secure request message"));
        }
        Ok(secure)
    }

    /// Serialises the secure request.
    pub fn to_vec(&self) -> Result<Vec<u8>, ProtocolError> {
        serde_json::to_vec(self).map_err(ProtocolError::json("secure request"))
    }
}
