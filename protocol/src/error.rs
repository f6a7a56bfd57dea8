//! The error type of the protocol module.

/// Everything that can go wrong while encoding, decoding or validating a protocol message.
///
/// Messages are lowercase without a trailing period. [`ProtocolError::Expired`] is a distinct
/// variant so callers can count expired requests separately (`ttlexpired`), and
/// [`ProtocolError::Json`] lets them count JSON parse failures.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// A layer was not valid JSON or did not have the expected shape.
    #[error("invalid {layer} json")]
    Json {
        /// Which layer failed (`transport`, `secure request`, …).
        layer: &'static str,
        /// The underlying serde error.
        #[source]
        source: serde_json::Error,
    },
    /// A layer carried a different `protocol` string than expected.
    #[error("unexpected protocol {found:?}, expected {expected:?}")]
    WrongProtocol {
        /// The protocol string that was expected.
        expected: &'static str,
        /// The protocol string that was found.
        found: String,
    },
    /// The transport `data` was not valid base64.
    #[error("invalid base64 data")]
    Base64(#[from] base64::DecodeError),
    /// A request id was not 32 hex characters.
    #[error("invalid request id {0:?}, expected 32 hex characters")]
    InvalidRequestId(String),
    /// A TTL below the protocol minimum of 30 seconds.
    #[error("ttl {0} is below the minimum of 30 seconds")]
    TtlTooShort(i64),
    /// A request created outside `now ± ttl` (too old or dated in the future).
    #[error("request {requestid} expired: created at {time} with ttl {ttl}, now {now}")]
    Expired {
        /// The request id.
        requestid: String,
        /// The request creation time (Unix seconds).
        time: i64,
        /// The request TTL in seconds.
        ttl: i64,
        /// The time of the check (Unix seconds).
        now: i64,
    },
    /// A required field was empty.
    #[error("empty {0}")]
    EmptyField(&'static str),
    /// A secure reply `hash` did not match the SHA-256 of its `message`.
    #[error("reply hash mismatch: got {found:?}, computed {computed:?}")]
    HashMismatch {
        /// The hash carried by the message.
        found: String,
        /// The hash computed over the message string.
        computed: String,
    },
}

impl ProtocolError {
    pub(crate) fn json(layer: &'static str) -> impl FnOnce(serde_json::Error) -> Self {
        move |source| Self::Json { layer, source }
    }

    pub(crate) fn check_protocol(expected: &'static str, found: &str) -> Result<(), Self> {
        if found == expected {
            Ok(())
        } else {
            Err(Self::WrongProtocol {
                expected,
                found: found.to_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase_without_trailing_period() {
        let errors = [
            ProtocolError::InvalidRequestId("x".into()),
            ProtocolError::TtlTooShort(10),
            ProtocolError::EmptyField("agent"),
            ProtocolError::Expired {
                requestid: "r".into(),
                time: 1,
                ttl: 60,
                now: 100,
            },
        ];
        for e in errors {
            let m = e.to_string();
            assert!(!m.ends_with('.'), "{m}");
            assert!(m.chars().next().is_some_and(|c| c.is_lowercase()), "{m}");
        }
    }
}
