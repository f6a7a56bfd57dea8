//! Choria protocol v1: wire types, the onion codec, subjects and filters.
//!
//! This module is pure Rust (no actix, no NATS I/O). It speaks the Choria protocol v1 as Go
//! Choria and the Ruby `mco` client do, in insecure mode (`signature`/`pubcert` = `"insecure"`),
//! with types that already carry the fields needed for signed messages.
//!
//! # The onion
//!
//! Every NATS message payload is a JSON transport whose `data` field is the only base64 layer.
//! Inside it is a secure request or reply whose `message` is the inner JSON document kept as a
//! plain string, exactly as received (hashes and signatures cover those exact bytes):
//!
//! ```text
//! NATS payload ── Transport  {"protocol":"choria:transport:1","data":<b64>,"headers":{…}}
//!                   │  data = standard padded base64 of ↓ (decoders ignore \r and \n)
//!                   ▼
//!                 SecureRequest {"protocol":"choria:secure:request:1","message":<string>,
//!                                "signature":"insecure","pubcert":"insecure"}
//!                 SecureReply   {"protocol":"choria:secure:reply:1","message":<string>,
//!                                "hash":<b64 sha256 of message>}
//!                   │  message = the JSON text of ↓, as a string
//!                   ▼
//!                 Request {"protocol":"choria:request:1","message":<payload>,"envelope":{…}}
//!                 Reply   {"protocol":"choria:reply:1","message":<payload>,"envelope":{…}}
//!                   │  message = the agent payload (mcorpc JSON text, "ping", "pong", …)
//!                   ▼
//!                 RpcRequest {"agent","action","caller","data"} / RpcReply {"statuscode",…}
//! ```
//!
//! Federation data and the `seen-by` trace live only in the transport headers
//! ([`TransportHeaders`], [`FederationHeader`], [`SeenByHop`]); a broker rewrites headers and
//! never touches `data`.
//!
//! # Entry points
//!
//! - Requests: build with [`NewRequest`], encode with [`encode_request`], decode with
//!   [`decode_request`] (full validation including the TTL window) or
//!   [`decode_request_unchecked_ttl`].
//! - Replies: build with [`Reply::for_request`], pick headers with
//!   [`TransportHeaders::for_reply_to`], encode with [`encode_reply`], decode with
//!   [`decode_reply`] (verifies the hash).
//! - Transports alone (what a federation broker handles): [`Transport::from_slice`] and
//!   [`Transport::to_vec`].
//! - Subjects: [`subject`] builders and [`classify_subject`].
//! - Filters: [`Filter`], [`Facts`], [`NodeView`], [`FilterOutcome`]; compound filters
//!   (classic MCollective call stacks and go-choria `expr`) in [`compound`], and
//!   [`parse_select`] for a `-S` string.
//! - JSON on the hot paths, without serde: [`Scanner`], the one validating, allocation-free
//!   reader (the client's reply decoder walks the onion's layers with it; the federation
//!   broker validates a whole transport with it and splices the rewritten one from the
//!   [`Str`] and raw spans it returns), and [`write_json_string`] / [`unescape_json_string`]
//!   for string literals byte for byte as `serde_json` writes and reads them.
//!
//! Every decoder returns [`ProtocolError`] on bad input and never panics.

#![warn(unreachable_pub, missing_docs)]

pub mod compound;
mod encoding;
mod error;
mod fact_match;
mod facts;
mod federation;
mod filter;
mod filter_match;
mod json_scan;
mod json_string;
mod reply;
mod reply_codec;
mod request;
mod request_codec;
mod request_id;
mod rpc_reply;
mod rpc_request;
mod secure_reply;
mod secure_request;
pub mod security;
mod seen_by;
pub mod subject;
mod transport;
mod ttl;

#[cfg(test)]
mod fuzz_tests;
#[cfg(any(test, feature = "test-support"))]
pub mod fuzzing;
#[cfg(test)]
pub(crate) mod schema_tests;

pub use compound::{classic::parse_select, CompiledCompound, CompoundError};
pub use encoding::{decode_agent_payload, decode_base64, decode_base64_into, encode_base64};
pub use error::ProtocolError;
pub use fact_match::FactOperator;
pub use facts::Facts;
pub use federation::FederationHeader;
pub use filter::{FactFilter, Filter};
pub use filter_match::{FilterOutcome, NodeView};
pub use json_scan::{Fields, ScanError, Scanner, Str, MAX_DEPTH};
pub use json_string::{unescape_json_string, write_json_string, write_json_string_contents};
pub use reply::{Reply, ReplyEnvelope};
pub use reply_codec::{
    decode_reply, encode_reply, reply_hash, DecodedReply, ReplyEncoder, ReplyFields,
    ReplyHeadersTemplate,
};
pub use request::{NewRequest, Request, RequestEnvelope};
pub use request_codec::{
    decode_request, decode_request_unchecked_ttl, encode_request, DecodedRequest,
};
pub use request_id::{is_valid_request_id, new_request_id};
pub use rpc_reply::{
    RpcReply, STATUS_ABORTED, STATUS_INVALID_DATA, STATUS_MISSING_DATA, STATUS_OK,
    STATUS_UNKNOWN_ACTION, STATUS_UNKNOWN_ERROR,
};
pub use rpc_request::RpcRequest;
pub use secure_reply::SecureReply;
pub use secure_request::SecureRequest;
pub use seen_by::SeenByHop;
pub use subject::{classify_subject, SubjectKind};
pub use transport::{Transport, TransportHeaders};
pub use ttl::{check_ttl_window, unix_now, DEFAULT_TTL, MIN_TTL};

/// Protocol string of the transport layer.
pub const TRANSPORT_PROTOCOL: &str = "choria:transport:1";
/// Protocol string of a secure request.
pub const SECURE_REQUEST_PROTOCOL: &str = "choria:secure:request:1";
/// Protocol string of a secure reply.
pub const SECURE_REPLY_PROTOCOL: &str = "choria:secure:reply:1";
/// Protocol string of a request.
pub const REQUEST_PROTOCOL: &str = "choria:request:1";
/// Protocol string of a reply.
pub const REPLY_PROTOCOL: &str = "choria:reply:1";
/// Value of `signature` and `pubcert` in insecure mode (emulator, insecure builds).
pub const INSECURE: &str = "insecure";
