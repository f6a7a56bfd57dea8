//! Request ids: 32 lowercase hex characters (a UUIDv4 without dashes in Go and Ruby).

use std::fmt::Write as _;

/// Generates a new request id: a random UUID (version 4, RFC 4122 variant) as 32 lowercase
/// hex characters without dashes.
pub fn new_request_id() -> String {
    let mut buffer = uuid::Uuid::encode_buffer();
    uuid::Uuid::new_v4()
        .simple()
        .encode_lower(&mut buffer)
        .to_string()
}

/// Whether `id` is a valid request id: exactly 32 ASCII hex digits.
///
/// Upper-case digits are accepted on receipt (the schema only checks the length); ids this
/// module generates are always lowercase.
pub fn is_valid_request_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Lowercase hex of `bytes`.
pub(crate) fn lower_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format() {
        let id = new_request_id();
        assert_eq!(id.len(), 32);
        assert!(
            id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            "{id}"
        );
        assert!(is_valid_request_id(&id));
        assert_ne!(id, new_request_id());
    }

    #[test]
    fn request_ids_are_version_4_with_the_rfc_4122_variant() {
        for _ in 0..64 {
            let id = new_request_id();
            // The version nibble: the 13th hex digit.
            assert_eq!(&id[12..13], "4", "{id}");
            // The variant: the top two bits of the 17th hex digit are 10 (8, 9, a or b).
            assert!(matches!(&id[16..17], "8" | "9" | "a" | "b"), "{id}");
        }
    }

    #[test]
    fn validation() {
        assert!(is_valid_request_id("a3f1c0d2e4b54c6f8a9b0c1d2e3f4a5b"));
        assert!(!is_valid_request_id("a3f1c0d2e4b54c6f8a9b0c1d2e3f4a5"));
        assert!(!is_valid_request_id("a3f1c0d2e4b54c6f8a9b0c1d2e3f4a5bb"));
        assert!(!is_valid_request_id("g3f1c0d2e4b54c6f8a9b0c1d2e3f4a5b"));
        assert!(!is_valid_request_id("a3f1c0d2-4b54c6f8a9b0c1d2e3f4a5b"));
        assert!(!is_valid_request_id(""));
    }

    #[test]
    fn hex() {
        assert_eq!(lower_hex(&[0, 0xab, 0x0f]), "00ab0f");
    }
}
