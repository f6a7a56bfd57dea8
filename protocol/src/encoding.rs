//! Base64 as Choria uses it: standard alphabet, padded, line-break tolerant on decode.

use base64::alphabet::STANDARD;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use std::borrow::Cow;

/// Lenient decoder: like Go's `StdEncoding` it accepts non-zero trailing bits, and like Ruby's
/// `Base64.decode64` it does not insist on padding.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Encodes bytes as standard padded base64 without line breaks (what Go emits).
pub fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes standard base64, ignoring embedded `\r` and `\n` (Ruby's `Base64.encode64` wraps
/// lines every 60 characters).
pub fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let mut out = Vec::new();
    decode_base64_into(text.as_bytes(), &mut out)?;
    Ok(out)
}

/// Like [`decode_base64`] on the base64 text's bytes, appending the bytes to `out` (a buffer
/// reused across messages).
pub fn decode_base64_into(text: &[u8], out: &mut Vec<u8>) -> Result<(), base64::DecodeError> {
    if memchr::memchr2(b'\r', b'\n', text).is_some() {
        let cleaned: Vec<u8> = text
            .iter()
            .copied()
            .filter(|b| !matches!(b, b'\r' | b'\n'))
            .collect();
        LENIENT.decode_vec(cleaned, out)
    } else {
        LENIENT.decode_vec(text, out)
    }
}

/// Interprets a request `message` as an agent payload the way a Go server does: try a strict
/// base64 decode (Go `choria ping` sends `base64("ping")`), and fall back to the raw bytes
/// (mcorpc JSON text is embedded as-is since 2018).
///
/// Note the inherent ambiguity Go shares: a raw payload that happens to be valid base64, such as
/// `ping`, is decoded.
pub fn decode_agent_payload(message: &str) -> Cow<'_, [u8]> {
    match base64::engine::general_purpose::STANDARD.decode(message) {
        Ok(bytes) => Cow::Owned(bytes),
        Err(_) => Cow::Borrowed(message.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let data = b"{\"protocol\":\"choria:secure:request:1\"}";
        let text = encode_base64(data);
        assert!(text.ends_with('='));
        assert_eq!(decode_base64(&text).unwrap(), data);
    }

    #[test]
    fn line_breaks_are_ignored() {
        let data: Vec<u8> = (0..=255u8).cycle().take(500).collect();
        let text = encode_base64(&data);
        // Ruby style: a newline every 60 characters and at the end, plus a CRLF variant.
        let wrapped: String = text
            .as_bytes()
            .chunks(60)
            .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
            .collect();
        assert_eq!(decode_base64(&wrapped).unwrap(), data);
        let crlf = wrapped.replace('\n', "\r\n");
        assert_eq!(decode_base64(&crlf).unwrap(), data);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode_base64("not base64!").is_err());
    }

    #[test]
    fn agent_payload() {
        assert_eq!(&*decode_agent_payload("cGluZw=="), b"ping");
        let json = r#"{"agent":"rpcutil","action":"ping","data":{}}"#;
        assert_eq!(&*decode_agent_payload(json), json.as_bytes());
    }
}
