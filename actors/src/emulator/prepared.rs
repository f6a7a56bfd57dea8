//! [`Prepared`]: a request payload decoded once for every daemon that answers it.

use async_nats::Subject;

use super::agents::AgentInput;
use super::DropReason;
use crate::protocol::{
    decode_request_unchecked_ttl, CompiledCompound, CompoundError, DecodedRequest, ProtocolError,
    ReplyHeadersTemplate,
};

/// A request payload decoded once, with everything its replies share: the parsed agent
/// payload, the reply subject and the reply headers. Independent of the subject it arrived
/// on and of the time.
#[derive(Debug)]
pub struct Prepared {
    /// Every layer of the request.
    pub decoded: DecodedRequest,
    /// The agent payload, parsed.
    pub input: AgentInput,
    /// The `reply-to` subject, if any.
    pub reply_subject: Option<Subject>,
    /// The reply transport headers taken from the request.
    pub headers: ReplyHeadersTemplate,
    /// The filter's compound part, compiled once for every daemon.
    pub compound: Result<CompiledCompound, CompoundError>,
    /// SHA-256 of the secure request (message, signature, pubcert): the key of its
    /// verification verdict (see [`RequestSecurity`](super::security::RequestSecurity)).
    pub secure_digest: [u8; 32],
}

impl Prepared {
    /// Decodes request `payload` (structure only: no TTL window, no `reply-to` check).
    pub fn decode(payload: &[u8]) -> Result<Self, DropReason> {
        let decoded = decode_request_unchecked_ttl(payload).map_err(|e| match e {
            ProtocolError::Json { .. } => DropReason::Json,
            ProtocolError::Base64(_) => DropReason::Base64,
            ProtocolError::Expired { .. } => DropReason::Expired,
            _ => DropReason::Invalid,
        })?;
        let input = AgentInput::new(&decoded.request.message, &decoded.payload());
        let reply_subject = decoded
            .reply_to()
            .filter(|s| !s.is_empty())
            .map(Subject::from);
        let headers =
            ReplyHeadersTemplate::for_request_payload(payload, &decoded.transport.headers)
                .map_err(|_| DropReason::Encode)?;
        let compound = decoded.request.envelope.filter.compile_compound();
        let secure_digest = secure_digest(&decoded);
        Ok(Self {
            decoded,
            input,
            reply_subject,
            headers,
            compound,
            secure_digest,
        })
    }
}

/// SHA-256 over the secure request's message, signature and pubcert, each length-prefixed.
fn secure_digest(decoded: &DecodedRequest) -> [u8; 32] {
    use sha2::{Digest as _, Sha256};
    let secure = &decoded.secure;
    let mut hasher = Sha256::new();
    for part in [&secure.message, &secure.signature, &secure.pubcert] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().into()
}
