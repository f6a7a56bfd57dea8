//! A validating JSON scanner that locates values in a payload without decoding them, so the
//! broker can splice a transport's bytes instead of parsing and re-serialising it.
//!
//! The scanner checks the whole grammar of RFC 8259 (strings: escapes, no raw control
//! characters, valid UTF-8; numbers; literals; nesting at most [`MAX_DEPTH`] deep) and hands
//! out the raw bytes of values ([`Str::raw`], [`Scanner::value`]). Any span it returns is
//! therefore valid JSON text that can be copied verbatim into another document. Strings are
//! decoded only when asked ([`Str::text`]) and borrow the payload unless they hold escapes.
//!
//! The hot part is [`Scanner::string`] over the transport's `data` (about 1 KiB of base64):
//! it checks sixteen bytes per step for a quote, a backslash, a control or a non-ASCII byte
//! and drops to byte-wise handling only around those.

use std::borrow::Cow;

/// Deepest nesting accepted (as serde_json's recursion limit).
pub const MAX_DEPTH: usize = 128;

/// Why a payload is not JSON (or not the expected shape).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {at}")]
pub struct ScanError {
    /// What was wrong.
    pub what: &'static str,
    /// Where.
    pub at: usize,
}

/// A JSON string as it appears in the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Str<'a> {
    raw: &'a [u8],
    escaped: bool,
}

impl<'a> Str<'a> {
    /// The string's JSON text, quotes included: valid JSON, ready to be copied.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Whether the string is `""`.
    pub fn is_empty(&self) -> bool {
        self.raw.len() == 2
    }

    /// The decoded value, borrowed from the payload when it holds no escapes.
    pub fn text(&self) -> Cow<'a, str> {
        let inner = self.raw.get(1..self.raw.len() - 1).unwrap_or_default();
        if !self.escaped {
            // Validated as UTF-8 by the scanner; the fallback is unreachable.
            return std::str::from_utf8(inner).map_or(Cow::Borrowed(""), Cow::Borrowed);
        }
        serde_json::from_slice::<String>(self.raw).map_or(Cow::Borrowed(""), Cow::Owned)
    }

    /// Whether the decoded value equals `s`.
    pub fn is(&self, s: &str) -> bool {
        if self.escaped {
            self.text() == s
        } else {
            self.raw.get(1..self.raw.len() - 1) == Some(s.as_bytes())
        }
    }
}

/// Reads JSON values from a byte slice, front to back.
pub struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
const QUOTES: u64 = u64::from_ne_bytes([b'"'; 8]);
const BACKSLASHES: u64 = u64::from_ne_bytes([b'\\'; 8]);
const SPACES: u64 = u64::from_ne_bytes([0x20; 8]);

/// The high bit of each byte of `word` that is (or follows one that is) below 0x20, a
/// quote, a backslash or not ASCII: zero iff the eight bytes need no attention. (`x - 1`
/// sets a byte's high bit iff the byte is 0 or above 0x80; bytes above 0x80 are flagged by
/// `word` itself.)
fn special(word: u64) -> u64 {
    let quote = (word ^ QUOTES).wrapping_sub(ONES);
    let backslash = (word ^ BACKSLASHES).wrapping_sub(ONES);
    let control = word.wrapping_sub(SPACES);
    (quote | backslash | control | word) & HIGHS
}

/// How many leading bytes of `bytes`, in whole words, need no attention in a string.
fn plain_prefix(bytes: &[u8]) -> usize {
    let (pairs, _) = bytes.as_chunks::<16>();
    let mut plain = 0;
    for pair in pairs {
        let (a, b) = pair.split_at(8);
        let a = u64::from_ne_bytes(<[u8; 8]>::try_from(a).unwrap_or([0; 8]));
        let b = u64::from_ne_bytes(<[u8; 8]>::try_from(b).unwrap_or([0; 8]));
        if special(a) | special(b) != 0 {
            if special(a) == 0 {
                plain += 8;
            }
            return plain;
        }
        plain += 16;
    }
    let (words, _) = bytes.get(plain..).unwrap_or_default().as_chunks::<8>();
    for word in words {
        if special(u64::from_ne_bytes(*word)) != 0 {
            break;
        }
        plain += 8;
    }
    plain
}

impl<'a> Scanner<'a> {
    /// A scanner at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// An error at the current position.
    pub fn fail(&self, what: &'static str) -> ScanError {
        ScanError { what, at: self.pos }
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    /// The next non-whitespace byte, not consumed.
    pub fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8, what: &'static str) -> Result<(), ScanError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.fail(what))
        }
    }

    /// Checks that only whitespace is left.
    pub fn end(&mut self) -> Result<(), ScanError> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.fail("trailing characters")),
        }
    }

    /// Reads `null` if it comes next.
    pub fn null(&mut self) -> Result<bool, ScanError> {
        if self.peek() != Some(b'n') {
            return Ok(false);
        }
        self.literal(b"null")?;
        Ok(true)
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), ScanError> {
        let end = self.pos + word.len();
        if self.bytes.get(self.pos..end) == Some(word) {
            self.pos = end;
            Ok(())
        } else {
            Err(self.fail("expected a value"))
        }
    }

    /// Reads a string.
    pub fn string(&mut self) -> Result<Str<'a>, ScanError> {
        if self.peek() != Some(b'"') {
            return Err(self.fail("expected a string"));
        }
        let start = self.pos;
        self.pos += 1;
        let mut escaped = false;
        loop {
            // Whole words at a time, then byte by byte up to the next byte that needs
            // attention; back to words after an escape or a multi-byte character.
            self.pos += plain_prefix(self.bytes.get(self.pos..).unwrap_or_default());
            loop {
                let Some(&byte) = self.bytes.get(self.pos) else {
                    return Err(self.fail("unterminated string"));
                };
                match byte {
                    b'"' => {
                        self.pos += 1;
                        return Ok(Str {
                            raw: &self.bytes[start..self.pos],
                            escaped,
                        });
                    }
                    b'\\' => {
                        escaped = true;
                        self.escape()?;
                        break;
                    }
                    0x00..=0x1f => return Err(self.fail("control character in string")),
                    0x80.. => {
                        self.utf8()?;
                        break;
                    }
                    _ => self.pos += 1,
                }
            }
        }
    }

    /// One escape sequence, the backslash at `pos`.
    fn escape(&mut self) -> Result<(), ScanError> {
        self.pos += 1;
        match self.bytes.get(self.pos) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.pos += 1;
                Ok(())
            }
            Some(b'u') => {
                let hex = self.bytes.get(self.pos + 1..self.pos + 5);
                if hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    // Lone surrogates are accepted here and rejected by `Str::text`'s decoder
                    // only if the string is ever decoded: copied verbatim they stay as sent.
                    self.pos += 5;
                    Ok(())
                } else {
                    Err(self.fail("invalid \\u escape"))
                }
            }
            _ => Err(self.fail("invalid escape")),
        }
    }

    /// One multi-byte UTF-8 character starting at `pos`.
    fn utf8(&mut self) -> Result<(), ScanError> {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        let len = match rest.first() {
            Some(0xc2..=0xdf) => 2,
            Some(0xe0..=0xef) => 3,
            Some(0xf0..=0xf4) => 4,
            _ => return Err(self.fail("invalid UTF-8")),
        };
        match rest.get(..len).map(std::str::from_utf8) {
            Some(Ok(_)) => {
                self.pos += len;
                Ok(())
            }
            _ => Err(self.fail("invalid UTF-8")),
        }
    }

    fn number(&mut self) -> Result<(), ScanError> {
        let digits = |s: &mut Self| {
            let from = s.pos;
            while s.bytes.get(s.pos).is_some_and(u8::is_ascii_digit) {
                s.pos += 1;
            }
            s.pos > from
        };
        if self.bytes.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        if self.bytes.get(self.pos) == Some(&b'0') {
            self.pos += 1;
        } else if !digits(self) {
            return Err(self.fail("invalid number"));
        }
        if self.bytes.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if !digits(self) {
                return Err(self.fail("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.pos) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.pos) {
                self.pos += 1;
            }
            if !digits(self) {
                return Err(self.fail("invalid number"));
            }
        }
        Ok(())
    }

    /// Skips any value (validated) and returns its raw text.
    pub fn value(&mut self) -> Result<&'a [u8], ScanError> {
        self.skip_ws();
        let start = self.pos;
        self.skip_value(0)?;
        Ok(&self.bytes[start..self.pos])
    }

    fn skip_value(&mut self, depth: usize) -> Result<(), ScanError> {
        if depth >= MAX_DEPTH {
            return Err(self.fail("nested too deeply"));
        }
        match self.peek() {
            Some(b'"') => self.string().map(drop),
            Some(b'{') => self.object(|s, _| s.skip_value(depth + 1)),
            Some(b'[') => self.array(|s| s.skip_value(depth + 1)).map(drop),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.fail("expected a value")),
        }
    }

    /// Reads an object, calling `member` with each key; `member` must read the value.
    pub fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, Str<'a>) -> Result<(), ScanError>,
    ) -> Result<(), ScanError> {
        self.eat(b'{', "expected an object")?;
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            let key = self.string()?;
            self.eat(b':', "expected ':'")?;
            member(self, key)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.fail("expected ',' or '}'")),
            }
        }
    }

    /// Reads an array, calling `element` for each element (it must read it); returns how
    /// many there were.
    pub fn array(
        &mut self,
        mut element: impl FnMut(&mut Self) -> Result<(), ScanError>,
    ) -> Result<usize, ScanError> {
        self.eat(b'[', "expected an array")?;
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(0);
        }
        let mut count = 0;
        loop {
            element(self)?;
            count += 1;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(count);
                }
                _ => return Err(self.fail("expected ',' or ']'")),
            }
        }
    }

    /// The raw text of an array whose elements `element` reads, and how many there were.
    pub fn array_raw(
        &mut self,
        element: impl FnMut(&mut Self) -> Result<(), ScanError>,
    ) -> Result<(&'a [u8], usize), ScanError> {
        self.skip_ws();
        let start = self.pos;
        let count = self.array(element)?;
        Ok((&self.bytes[start..self.pos], count))
    }
}

/// The strings of an array already validated by [`Scanner::array_raw`] as holding only
/// strings.
pub fn strings(raw: &[u8]) -> impl Iterator<Item = Str<'_>> + '_ {
    let mut scanner = Scanner::new(raw);
    let mut started = false;
    std::iter::from_fn(move || {
        let next = if started { b',' } else { b'[' };
        started = true;
        scanner.eat(next, "").ok()?;
        scanner.string().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skip(text: &str) -> Result<(), ScanError> {
        let mut s = Scanner::new(text.as_bytes());
        s.value()?;
        s.end()
    }

    #[test]
    fn agrees_with_serde_json_on_validity() {
        let cases = [
            r#""""#,
            r#""abc""#,
            r#""a\"b\\c\/d\b\f\n\r\t\u00e9\uD83D\uDE00""#,
            "\"caf\u{e9} \u{1f600} \u{7ff}\u{800}\u{ffff}\u{10000}\"",
            r#""12345678901234567890123456789012\"x""#,
            r#"{"a":[1,-2,3.5,-0.0e+10,1E3,true,false,null,{"b":{}},[]]}"#,
            " \t\n\r{ \"a\" : [ 1 , 2 ] } \n",
            "\"a\u{1}\"",
            "\"12345678\u{1f}\"",
            r#""\x""#,
            r#""\u12G4""#,
            r#""abc"#,
            r#"{"a":1,}"#,
            r#"[1,]"#,
            r#"[1 2]"#,
            r#"{"a" 1}"#,
            r#"{1:2}"#,
            "01",
            "1.",
            "-",
            "1e",
            ".5",
            "+1",
            "tru",
            "nul",
            "[",
            "]",
            "",
            "{} x",
        ];
        for case in cases {
            let ours = skip(case).is_ok();
            let theirs = serde_json::from_str::<serde::de::IgnoredAny>(case).is_ok();
            assert_eq!(ours, theirs, "{case:?}: ours {ours}, serde_json {theirs}");
        }
    }

    #[test]
    fn invalid_utf8_is_refused() {
        for bytes in [
            &b"\"\xff\""[..],
            b"\"\xc3\"",
            b"\"\xc3(\"",
            b"\"\xe2\x82\"",
            b"\"\xed\xa0\x80\"",
            b"\"\xf5\x80\x80\x80\"",
            b"\"12345678\xc0\xaf\"",
        ] {
            let mut s = Scanner::new(bytes);
            assert!(s.string().is_err(), "{bytes:?}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_without_overflow() {
        let deep = "[".repeat(100_000);
        assert!(skip(&deep).is_err());
        let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(skip(&ok).is_ok());
    }

    #[test]
    fn strings_decode_and_compare() {
        let mut s = Scanner::new(br#""plain" "a\u0062c\n""#);
        let plain = s.string().unwrap();
        let escaped = s.string().unwrap();
        assert_eq!(plain.raw(), br#""plain""#);
        assert!(matches!(plain.text(), Cow::Borrowed("plain")));
        assert_eq!(escaped.text(), "abc\n");
        assert!(plain.is("plain") && escaped.is("abc\n") && !escaped.is("abc"));
        let (raw, n) = Scanner::new(br#" [ "x" , "y\u007a" ] "#)
            .array_raw(|s| s.string().map(drop))
            .unwrap();
        assert_eq!(n, 2);
        let texts: Vec<_> = strings(raw).map(|s| s.text().into_owned()).collect();
        assert_eq!(texts, ["x", "yz"]);
    }

    #[test]
    fn the_word_test_finds_every_special_byte() {
        for special_byte in (0u8..0x20).chain([b'"', b'\\']).chain(0x80..=0xff) {
            for at in 0..8 {
                let mut word = [b'A'; 8];
                word[at] = special_byte;
                assert_ne!(
                    special(u64::from_ne_bytes(word)),
                    0,
                    "{special_byte:#x} at {at}"
                );
                let mut long = [b'A'; 40];
                long[at * 4 + 3] = special_byte;
                assert_eq!(
                    plain_prefix(&long),
                    (at * 4 + 3) / 8 * 8,
                    "{special_byte:#x}"
                );
            }
        }
        let plain: Vec<u8> = (0x20u8..0x80)
            .filter(|&b| b != b'"' && b != b'\\')
            .collect();
        for (i, word) in plain.windows(8).enumerate() {
            let word: [u8; 8] = word.try_into().unwrap();
            assert_eq!(special(u64::from_ne_bytes(word)), 0, "window {i}");
        }
        assert_eq!(plain_prefix(&plain), plain.len() / 8 * 8);
    }
}
