//! JSON string literals without serde: escaping exactly as `serde_json` does and unescaping
//! into a caller's buffer.
//!
//! The onion nests JSON inside JSON strings twice, so the hot paths (the client decoding tens
//! of thousands of replies, the emulator encoding as many) spend their time escaping and
//! unescaping. These helpers do it into reused buffers: no allocation per message, and the
//! bytes are the ones `serde_json` produces and accepts.

/// How `serde_json` escapes each byte: 0 = as is, `u` = `\u00XX`, otherwise `\<that byte>`.
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        table[i] = b'u';
        i += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `value` to `out` as a JSON string literal, quotes included, byte for byte as
/// `serde_json::to_writer(out, value)` writes it.
pub fn write_json_string(out: &mut Vec<u8>, value: &str) {
    out.push(b'"');
    write_json_string_contents(out, value);
    out.push(b'"');
}

/// Appends `value` escaped as the inside of a JSON string literal (no quotes).
pub fn write_json_string_contents(out: &mut Vec<u8>, value: &str) {
    escape_into(out, value.as_bytes());
}

/// Appends UTF-8 `bytes` escaped as the inside of a JSON string literal (the escapes only
/// touch ASCII, so valid UTF-8 stays valid).
pub(crate) fn escape_into(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() + 16);
    let mut start = 0;
    loop {
        let special = find_special::<false>(bytes, start);
        out.extend_from_slice(&bytes[start..special]);
        let Some(&byte) = bytes.get(special) else {
            return;
        };
        let escape = ESCAPE[usize::from(byte)];
        if escape == b'u' {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0xf)]);
        } else {
            out.push(b'\\');
            out.push(escape);
        }
        start = special + 1;
    }
}

/// Appends the value of JSON string literal `literal` (quotes included, as a
/// `serde_json::value::RawValue` holds it) to `out`. Returns `false`, leaving `out` with
/// whatever was appended so far, when `literal` is not a string literal `serde_json` would
/// accept as a Rust `String`: missing quotes, a raw control character, an unknown escape,
/// bad hex or a lone surrogate.
pub fn unescape_json_string(literal: &str, out: &mut String) -> bool {
    literal.starts_with('"')
        && unescape_until_quote(literal.as_bytes(), 1, out) == Some(literal.len())
}

/// Unescapes the JSON string whose contents start at byte `start` of `bytes` (just after its
/// opening quote) into `out`, in one pass and a UTF-8 check of what it appended; returns the
/// index just past the closing quote, or `None` when the string is malformed (a raw control
/// character, a bad escape, a lone surrogate, not UTF-8) or not closed. On `None`, `out`
/// keeps what was appended before the error, unless the contents were not UTF-8: then `out`
/// is as it was.
pub(crate) fn unescape_until_quote(bytes: &[u8], start: usize, out: &mut String) -> Option<usize> {
    let kept = out.len();
    let mut buffer = std::mem::take(out).into_bytes();
    let end = unescape_bytes(bytes, start, &mut buffer);
    match String::from_utf8(buffer) {
        Ok(text) => {
            *out = text;
            end
        }
        Err(error) => {
            let mut buffer = error.into_bytes();
            buffer.truncate(kept);
            *out = String::from_utf8(buffer).unwrap_or_default();
            None
        }
    }
}

/// [`unescape_until_quote`] without the UTF-8 check.
fn unescape_bytes(bytes: &[u8], mut start: usize, out: &mut Vec<u8>) -> Option<usize> {
    loop {
        let run_end = find_special::<false>(bytes, start);
        out.extend_from_slice(bytes.get(start..run_end)?);
        match bytes.get(run_end)? {
            b'"' => return Some(run_end + 1),
            b'\\' => {}
            // A raw control character.
            _ => return None,
        }
        let kind = *bytes.get(run_end + 1)?;
        start = run_end + 2;
        let plain = match kind {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let (c, used) = unicode_escape(bytes.get(start..)?)?;
                start += used;
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                continue;
            }
            _ => return None,
        };
        out.push(plain);
    }
}

/// The index of the first backslash, quote or control character at or after `from`
/// (`bytes.len()` if none), sixteen then eight bytes at a time; with `NON_ASCII`, also of the
/// first byte above 0x7f (for a scanner that checks multi-byte characters itself).
#[inline]
pub(crate) fn find_special<const NON_ASCII: bool>(bytes: &[u8], from: usize) -> usize {
    let mut i = from;
    while let Some(chunk) = bytes.get(i..i + 16) {
        let mut pair = [0u8; 16];
        pair.copy_from_slice(chunk);
        let pair = u128::from_le_bytes(pair);
        let low = special::<NON_ASCII>(pair as u64);
        let high = special::<NON_ASCII>((pair >> 64) as u64);
        if low | high != 0 {
            return if low != 0 {
                i + (low.trailing_zeros() / 8) as usize
            } else {
                i + 8 + (high.trailing_zeros() / 8) as usize
            };
        }
        i += 16;
    }
    if let Some(chunk) = bytes.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let found = special::<NON_ASCII>(u64::from_le_bytes(word));
        if found != 0 {
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    bytes
        .get(i..)
        .and_then(|rest| {
            rest.iter()
                .position(|&b| b == b'\\' || b == b'"' || b < 0x20 || (NON_ASCII && b > 0x7f))
        })
        .map_or(bytes.len(), |n| i + n)
}

/// The high bit of each byte of `word` (little-endian) that is below 0x20, a quote or a
/// backslash (or, with `NON_ASCII`, above 0x7f), exact up to the first such byte (borrows
/// only run towards higher bytes, so bytes after it may be flagged too): zero iff the eight
/// bytes need no attention.
#[inline]
fn special<const NON_ASCII: bool>(word: u64) -> u64 {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES << 7;
    // `x - ONES` sets a byte's high bit iff the byte is 0 or above 0x80, and `word - 0x20..`
    // iff it is below 0x20 or above 0x9f. Bytes above 0x7f are then all flagged (`| word`) or
    // all cleared (`& !word`), which leaves exactly the wanted ones.
    let control = word.wrapping_sub(ONES * 0x20);
    let quote = (word ^ (ONES * u64::from(b'"'))).wrapping_sub(ONES);
    let backslash = (word ^ (ONES * u64::from(b'\\'))).wrapping_sub(ONES);
    let found = control | quote | backslash;
    if NON_ASCII {
        (found | word) & HIGH
    } else {
        found & !word & HIGH
    }
}

/// Decodes the hex of a `\u` escape (the `\u` already consumed) and, for a leading
/// surrogate, the `\uXXXX` trailing surrogate that must follow. Returns the character and
/// how many bytes it used.
fn unicode_escape(bytes: &[u8]) -> Option<(char, usize)> {
    let first = hex4(bytes)?;
    match first {
        0xDC00..=0xDFFF => None,
        0xD800..=0xDBFF => {
            let rest = bytes.get(4..)?;
            if !rest.starts_with(b"\\u") {
                return None;
            }
            let second = hex4(rest.get(2..)?)?;
            if !(0xDC00..=0xDFFF).contains(&second) {
                return None;
            }
            let code = (((first - 0xD800) << 10) | (second - 0xDC00)) + 0x1_0000;
            Some((char::from_u32(code)?, 10))
        }
        _ => Some((char::from_u32(first)?, 4)),
    }
}

fn hex4(bytes: &[u8]) -> Option<u32> {
    let digits = bytes.get(..4)?;
    let mut n = 0u32;
    for &d in digits {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => return None,
        };
        n = (n << 4) | u32::from(v);
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn unescape(literal: &str) -> Option<String> {
        let mut out = String::from("kept:");
        unescape_json_string(literal, &mut out).then(|| out.split_off(5))
    }

    #[test]
    fn escapes_like_serde_json() {
        for s in [
            "",
            "plain",
            "q\"b\\s/",
            "\x00\x01\x08\t\n\x0b\x0c\r\x1f\x7f",
            "ünï ☃ 🎉",
            r#"{"protocol":"choria:reply:1","message":"{\"a\":1}"}"#,
        ] {
            let mut out = Vec::new();
            write_json_string(&mut out, s);
            assert_eq!(out, serde_json::to_vec(s).unwrap(), "{s:?}");
            assert_eq!(
                unescape(std::str::from_utf8(&out).unwrap()).as_deref(),
                Some(s)
            );
        }
    }

    #[test]
    fn unescapes_every_escape() {
        assert_eq!(
            unescape(r#""a\"\\\/\b\f\n\r\t\u00e9\u2603\ud83c\udf89z""#).as_deref(),
            Some("a\"\\/\x08\x0c\n\r\t\u{e9}\u{2603}\u{1f389}z")
        );
    }

    #[test]
    fn rejects_what_serde_json_rejects() {
        for bad in [
            "",
            "\"",
            "abc",
            "\"abc",
            "abc\"",
            "\"a\"b\"",
            "\"\\\"",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\u12g4\"",
            "\"\\ud83c\"",
            "\"\\ud83cx\"",
            "\"\\ud83c\\n\"",
            "\"\\ud83c\\u0041\"",
            "\"\\udf89\"",
            "\"tab\there\"",
            "\"nl\nhere\"",
        ] {
            assert_eq!(unescape(bad), None, "{bad:?}");
            assert!(serde_json::from_str::<String>(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn finds_the_first_special_byte() {
        let text: Vec<u8> = (0..40).map(|i| b'a' + (i % 26) as u8).collect();
        assert_eq!(find_special::<false>(&text, 0), 40);
        assert_eq!(find_special::<true>(&text, 0), 40);
        for special in [b'"', b'\\', 0x00, 0x1f] {
            for at in 0..40 {
                let mut t = text.clone();
                t[at] = special;
                for from in 0..=at {
                    assert_eq!(find_special::<false>(&t, from), at);
                    assert_eq!(find_special::<true>(&t, from), at);
                }
                // Non-ASCII bytes are special only when asked.
                t[at] = 0xc3;
                assert_eq!(find_special::<false>(&t, 0), 40);
                assert_eq!(find_special::<true>(&t, 0), at);
            }
        }
    }

    #[test]
    fn the_word_test_finds_every_special_byte() {
        let ascii = (0u8..0x20).chain([b'"', b'\\']);
        for (special_byte, non_ascii) in ascii
            .map(|b| (b, false))
            .chain((0x80..=0xff).map(|b| (b, true)))
        {
            for at in 0..8 {
                let mut word = [b'A'; 8];
                word[at] = special_byte;
                // Special bytes later in the word do not move the answer.
                word[7] = if at < 7 { b'"' } else { special_byte };
                let word = u64::from_le_bytes(word);
                let first = |found: u64| (found.trailing_zeros() / 8) as usize;
                assert_eq!(
                    first(special::<true>(word)),
                    at,
                    "{special_byte:#x} at {at}"
                );
                if !non_ascii {
                    assert_eq!(first(special::<false>(word)), at, "{special_byte:#x}");
                }
            }
            for at in 0..40 {
                let mut long = [b'A'; 40];
                long[at] = special_byte;
                assert_eq!(find_special::<true>(&long, 0), at, "{special_byte:#x}");
                let plain = if non_ascii { 40 } else { at };
                assert_eq!(find_special::<false>(&long, 0), plain, "{special_byte:#x}");
            }
        }
        let plain: Vec<u8> = (0x20u8..=0xff)
            .filter(|&b| b != b'"' && b != b'\\')
            .collect();
        for (i, word) in plain.windows(8).enumerate() {
            let word = u64::from_le_bytes(word.try_into().unwrap());
            assert_eq!(special::<false>(word), 0, "window {i}");
            assert_eq!(
                special::<true>(word) == 0,
                word & (u64::MAX / 255) << 7 == 0
            );
        }
        assert_eq!(find_special::<false>(&plain, 0), plain.len());
        assert_eq!(find_special::<false>(&plain, plain.len() + 1), plain.len());
    }

    proptest! {
        #[test]
        fn agrees_with_serde_json(s in "\\PC*|[\\x00-\\x7f]*") {
            let mut out = Vec::new();
            write_json_string(&mut out, &s);
            prop_assert_eq!(&out, &serde_json::to_vec(&s).unwrap());
            prop_assert_eq!(unescape(std::str::from_utf8(&out).unwrap()), Some(s));
        }

        #[test]
        fn arbitrary_literals_match_serde_json(body in "[a-z\\\\\"u0-9dDfF/\\x00\\x1f]{0,24}") {
            let literal = format!("\"{body}\"");
            let ours = unescape(&literal);
            let theirs = serde_json::from_str::<String>(&literal).ok();
            prop_assert_eq!(ours, theirs);
        }
    }
}
