//! [`Scanner`]: the one strict, allocation-free JSON reader of the hot paths.
//!
//! The measuring client reads three nested JSON documents per reply and needs a handful of
//! fields of each; the federation broker validates a whole transport and splices a new one
//! from its bytes. `serde_json` does both correctly but spends most of its time in generic
//! machinery (and re-serialising would re-escape the signed `data`). This reader walks an
//! object's fields in order ([`Scanner::begin_object`], [`Scanner::next_key`]), hands string
//! values back as [`Str`] (the raw literal, decoded only when asked, borrowed unless it holds
//! escapes) or unescaped into the caller's buffer ([`Scanner::string_into`]), and skips
//! everything else ([`Scanner::value`], which returns the skipped value's raw text).
//!
//! It reads bytes and validates as it goes: what it accepts is valid JSON (RFC 8259: strings
//! in UTF-8, without raw control characters and with valid escapes, numbers in JSON syntax,
//! literals, nesting at most [`MAX_DEPTH`] deep, nothing after the value but whitespace).
//! Any span it returns is therefore valid JSON text that can be copied verbatim into another
//! document. Lone surrogates in `\u` escapes pass the scan (copied verbatim they stay as
//! sent) and are refused only when the string is decoded, as `serde_json` refuses them.
//!
//! The hot part is the string scan over a transport's `data` (about 1 KiB of base64): it
//! checks sixteen bytes per step for a quote, a backslash, a control or a non-ASCII byte and
//! drops to byte-wise handling only around those; UTF-8 is checked only there, so nothing
//! walks the input twice.

use std::borrow::Cow;

use super::json_string::{find_special, unescape_until_quote};

/// Deepest nesting of containers inside a skipped value (as `serde_json`'s recursion limit).
pub const MAX_DEPTH: usize = 128;

/// Why a text is not JSON, or not the shape the caller expected; `at` is a byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// Something else than the grammar (or the caller) allows here.
    #[error("expected {what} at byte {at}")]
    Expected {
        /// What was expected.
        what: &'static str,
        /// Where.
        at: usize,
    },
    /// A string that is not UTF-8.
    #[error("invalid utf-8 at byte {at}")]
    InvalidUtf8 {
        /// Where.
        at: usize,
    },
    /// A string without its closing quote.
    #[error("unterminated string at byte {at}")]
    UnterminatedString {
        /// Where the string starts.
        at: usize,
    },
    /// A raw control character inside a string.
    #[error("control character in string at byte {at}")]
    ControlCharacter {
        /// Where.
        at: usize,
    },
    /// An unknown escape, a `\u` without four hex digits, or (when unescaping) a lone
    /// surrogate.
    #[error("invalid escape at byte {at}")]
    InvalidEscape {
        /// Where.
        at: usize,
    },
    /// A number not in JSON syntax.
    #[error("invalid number at byte {at}")]
    InvalidNumber {
        /// Where.
        at: usize,
    },
    /// Containers nested deeper than [`MAX_DEPTH`].
    #[error("nested too deeply at byte {at}")]
    TooDeep {
        /// Where.
        at: usize,
    },
    /// More than whitespace after the value.
    #[error("trailing characters at byte {at}")]
    TrailingCharacters {
        /// Where.
        at: usize,
    },
    /// A key the caller reads given twice in one object.
    #[error("duplicate key at byte {at}")]
    DuplicateKey {
        /// Where.
        at: usize,
    },
}

/// A JSON string as it appears in the text, validated (escapes well formed, no raw control
/// characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Str<'a> {
    raw: &'a [u8],
    /// How many escape sequences it holds (a word, not a `bool`: a `bool` here makes the
    /// compiler copy `Option<Str>` with overlapping stores and loads that stall the CPU on
    /// the client's hot path).
    escapes: usize,
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

    /// The decoded value, borrowed from the text when it holds no escapes; `None` when an
    /// escape is a lone surrogate (what `serde_json` refuses to decode).
    pub fn text(&self) -> Option<Cow<'a, str>> {
        if self.escapes == 0 {
            // Checked as UTF-8 by the scanner: this cannot fail.
            let inner = self.raw.get(1..self.raw.len() - 1)?;
            return std::str::from_utf8(inner).ok().map(Cow::Borrowed);
        }
        let mut out = String::with_capacity(self.raw.len());
        let end = unescape_until_quote(self.raw, 1, &mut out)?;
        (end == self.raw.len()).then_some(Cow::Owned(out))
    }

    /// The decoded value as bytes (UTF-8), borrowed from the text when it holds no escapes:
    /// [`Str::text`] without the conversion to `str`, for values read as bytes anyway.
    pub fn bytes(&self) -> Option<Cow<'a, [u8]>> {
        if self.escapes == 0 {
            return self.raw.get(1..self.raw.len() - 1).map(Cow::Borrowed);
        }
        self.text().map(|t| Cow::Owned(t.into_owned().into_bytes()))
    }

    /// Whether the decoded value equals `s`.
    pub fn is(&self, s: &str) -> bool {
        if self.escapes > 0 {
            self.text().is_some_and(|t| t == s)
        } else {
            self.raw.get(1..self.raw.len() - 1) == Some(s.as_bytes())
        }
    }
}

/// A cursor over one JSON text, reading values front to back.
#[derive(Debug, Clone)]
pub struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

/// The state of an object being read with [`Scanner::next_key`].
#[derive(Debug)]
pub struct Fields {
    first: bool,
}

impl<'a> Scanner<'a> {
    /// A scanner at the start of `bytes` (a `&str`'s bytes, or bytes whose strings it checks
    /// for UTF-8 as it reads them).
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// A [`ScanError::Expected`] at the cursor: for callers refusing a valid value of the
    /// wrong shape.
    pub fn expected(&self, what: &'static str) -> ScanError {
        ScanError::Expected { what, at: self.pos }
    }

    /// A [`ScanError::DuplicateKey`] at the cursor.
    pub fn duplicate_key(&self) -> ScanError {
        ScanError::DuplicateKey { at: self.pos }
    }

    /// The input from `start` to the cursor.
    fn since(&self, start: usize) -> &'a [u8] {
        self.bytes.get(start..self.pos).unwrap_or_default()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    /// The next byte that is not whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8, what: &'static str) -> Result<(), ScanError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.expected(what))
        }
    }

    /// Checks that only whitespace is left.
    pub fn end(&mut self) -> Result<(), ScanError> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(ScanError::TrailingCharacters { at: self.pos }),
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
            Err(self.expected("a value"))
        }
    }

    /// Reads a string, validated (not decoded).
    pub fn string(&mut self) -> Result<Str<'a>, ScanError> {
        if self.peek() != Some(b'"') {
            return Err(self.expected("a string"));
        }
        let start = self.pos;
        let bytes = self.bytes;
        let mut i = start + 1;
        let mut escapes = 0;
        loop {
            i = find_special::<true>(bytes, i);
            match bytes.get(i) {
                Some(b'"') => break,
                Some(b'\\') => {
                    escapes += 1;
                    i += match bytes.get(i + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => 2,
                        Some(b'u')
                            if bytes
                                .get(i + 2..i + 6)
                                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) =>
                        {
                            6
                        }
                        _ => return Err(ScanError::InvalidEscape { at: i }),
                    };
                }
                Some(0x80..) => i += utf8_len(bytes.get(i..).unwrap_or_default(), i)?,
                Some(_) => return Err(ScanError::ControlCharacter { at: i }),
                None => return Err(ScanError::UnterminatedString { at: start }),
            }
        }
        self.pos = i + 1;
        Ok(Str {
            raw: self.since(start),
            escapes,
        })
    }

    /// Appends the string value at the cursor, unescaped, to `out` (validated and decoded in
    /// one pass; on error `out` holds what was decoded so far).
    pub fn string_into(&mut self, out: &mut String) -> Result<(), ScanError> {
        if self.peek() != Some(b'"') {
            return Err(self.expected("a string"));
        }
        self.pos = unescape_until_quote(self.bytes, self.pos + 1, out).ok_or(
            self.expected("a string with valid escapes, no control characters and in utf-8"),
        )?;
        Ok(())
    }

    /// The unsigned integer at the cursor, if it fits a `u8` (no sign, fraction or exponent,
    /// as `serde_json` reads a `u8`).
    pub fn u8_value(&mut self) -> Result<u8, ScanError> {
        self.skip_ws();
        let start = self.pos;
        let raw = self.number()?;
        let at = ScanError::Expected {
            what: "an integer from 0 to 255",
            at: start,
        };
        if raw.iter().any(|b| !b.is_ascii_digit()) {
            self.pos = start;
            return Err(at);
        }
        raw.iter()
            .try_fold(0u8, |n, d| n.checked_mul(10)?.checked_add(d - b'0'))
            .ok_or(at)
    }

    /// A number in JSON syntax: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Result<&'a [u8], ScanError> {
        let bytes = self.bytes;
        let start = self.pos;
        let mut i = start;
        let digits = |i: &mut usize| {
            let from = *i;
            while bytes.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i > from
        };
        let invalid = ScanError::InvalidNumber { at: start };
        if bytes.get(i) == Some(&b'-') {
            i += 1;
        }
        match bytes.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                digits(&mut i);
            }
            _ => return Err(invalid),
        }
        if bytes.get(i) == Some(&b'.') {
            i += 1;
            if !digits(&mut i) {
                return Err(invalid);
            }
        }
        if let Some(b'e' | b'E') = bytes.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = bytes.get(i) {
                i += 1;
            }
            if !digits(&mut i) {
                return Err(invalid);
            }
        }
        self.pos = i;
        Ok(self.since(start))
    }

    /// Inside an open container closed by `close`: steps past the `,` before the next
    /// element (`Ok(true)`, the cursor then on that element) or past the closing bracket
    /// (`Ok(false)`). `first`: no element was read yet.
    fn step(&mut self, close: u8, first: bool) -> Result<bool, ScanError> {
        match self.peek() {
            Some(b) if b == close => {
                self.pos += 1;
                Ok(false)
            }
            Some(b',') if !first => {
                self.pos += 1;
                Ok(true)
            }
            Some(_) if first => Ok(true),
            _ if close == b'}' => Err(self.expected("',' or '}'")),
            _ => Err(self.expected("',' or ']'")),
        }
    }

    /// An object key and its `:`.
    fn key(&mut self) -> Result<Str<'a>, ScanError> {
        let key = self.string()?;
        self.eat(b':', "':'")?;
        Ok(key)
    }

    /// Skips the value at the cursor (validated) and returns its raw text.
    pub fn value(&mut self) -> Result<&'a [u8], ScanError> {
        self.skip_ws();
        let start = self.pos;
        // Open containers, innermost at bit `depth - 1`: set for an object.
        let mut objects: u128 = 0;
        let mut depth = 0usize;
        loop {
            // At the start of a value.
            let mut opened = false;
            match self.peek() {
                Some(open @ (b'{' | b'[')) => {
                    if depth == MAX_DEPTH {
                        return Err(ScanError::TooDeep { at: self.pos });
                    }
                    self.pos += 1;
                    let bit = 1u128 << depth;
                    objects = if open == b'{' {
                        objects | bit
                    } else {
                        objects & !bit
                    };
                    depth += 1;
                    opened = true;
                }
                Some(b'"') => {
                    self.string()?;
                }
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                Some(b'-' | b'0'..=b'9') => {
                    self.number()?;
                }
                _ => return Err(self.expected("a value")),
            }
            // After a value, or just inside a container: close containers until one has a
            // next element, and move onto it.
            loop {
                let Some(inner) = depth.checked_sub(1) else {
                    return Ok(self.since(start));
                };
                let object = objects >> inner & 1 == 1;
                if self.step(if object { b'}' } else { b']' }, opened)? {
                    if object {
                        self.key()?;
                    }
                    break;
                }
                depth = inner;
                opened = false;
            }
        }
    }

    /// Enters an object: `{`. Then call [`Scanner::next_key`] until it returns `None`.
    pub fn begin_object(&mut self) -> Result<Fields, ScanError> {
        self.eat(b'{', "an object")?;
        Ok(Fields { first: true })
    }

    /// The next key of the object entered with `fields` (the cursor then sits on its value,
    /// which must be read or skipped), or `None` after its closing `}`.
    pub fn next_key(&mut self, fields: &mut Fields) -> Result<Option<Str<'a>>, ScanError> {
        if !self.step(b'}', fields.first)? {
            return Ok(None);
        }
        fields.first = false;
        self.key().map(Some)
    }

    /// Reads an array, calling `element` for each element (it must read it); returns how
    /// many there were.
    pub fn array(
        &mut self,
        mut element: impl FnMut(&mut Self) -> Result<(), ScanError>,
    ) -> Result<usize, ScanError> {
        self.eat(b'[', "an array")?;
        let mut count = 0;
        while self.step(b']', count == 0)? {
            element(self)?;
            count += 1;
        }
        Ok(count)
    }

    /// The raw text of an array whose elements `element` reads, and how many there were.
    pub fn array_raw(
        &mut self,
        element: impl FnMut(&mut Self) -> Result<(), ScanError>,
    ) -> Result<(&'a [u8], usize), ScanError> {
        self.skip_ws();
        let start = self.pos;
        let count = self.array(element)?;
        Ok((self.since(start), count))
    }

    /// The strings of the array at the cursor, which [`Scanner::array_raw`] already
    /// validated as holding only strings (iteration stops at anything else).
    pub fn strings(mut self) -> impl Iterator<Item = Str<'a>> {
        let mut first = true;
        std::iter::from_fn(move || {
            if first {
                self.eat(b'[', "an array").ok()?;
            }
            let more = self.step(b']', first).ok()?;
            first = false;
            more.then(|| self.string().ok()).flatten()
        })
    }
}

/// The length of the multi-byte UTF-8 character at the start of `rest` (at byte `at`).
fn utf8_len(rest: &[u8], at: usize) -> Result<usize, ScanError> {
    let len = match rest.first() {
        Some(0xc2..=0xdf) => 2,
        Some(0xe0..=0xef) => 3,
        Some(0xf0..=0xf4) => 4,
        _ => return Err(ScanError::InvalidUtf8 { at }),
    };
    match rest.get(..len).map(std::str::from_utf8) {
        Some(Ok(_)) => Ok(len),
        _ => Err(ScanError::InvalidUtf8 { at }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reads an object's fields the way the decoders do: every value skipped, keys collected.
    fn keys_and_values(text: &str) -> Result<Vec<(String, String)>, ScanError> {
        let mut scan = Scanner::new(text.as_bytes());
        let mut fields = scan.begin_object()?;
        let mut out = Vec::new();
        while let Some(key) = scan.next_key(&mut fields)? {
            let key = key.text().ok_or(ScanError::InvalidEscape { at: 0 })?;
            let key = key.into_owned();
            out.push((key, String::from_utf8_lossy(scan.value()?).into_owned()));
        }
        scan.end()?;
        Ok(out)
    }

    /// The keys `serde_json` reads from an object whose values it ignores (as the decoders'
    /// derived structs do).
    fn serde_keys(text: &str) -> Option<Vec<String>> {
        let map: std::collections::HashMap<String, serde::de::IgnoredAny> =
            serde_json::from_str(text).ok()?;
        Some(map.into_keys().collect())
    }

    /// Skips one value of `text` and checks nothing follows.
    fn skip(text: &str) -> Result<(), ScanError> {
        let mut s = Scanner::new(text.as_bytes());
        s.value()?;
        s.end()
    }

    #[test]
    fn reads_fields_in_order() {
        let text = r#" { "a" : 1 , "b\u0063":"x\"y", "d":[1,{"e":[true,false,null]}],"f":{} ,"g":-0.5e+3} "#;
        let got = keys_and_values(text).unwrap();
        let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a", "bc", "d", "f", "g"]);
        assert_eq!(got[2].1, r#"[1,{"e":[true,false,null]}]"#);
        assert_eq!(got[4].1, "-0.5e+3");
        assert_eq!(keys_and_values("{}").unwrap(), []);
    }

    #[test]
    fn strings_and_numbers() {
        let mut s = Scanner::new(br#""plain" "es\"caped\u00e9" 42 300 4.0 -1"#);
        assert_eq!(s.string().unwrap().text(), Some(Cow::Borrowed("plain")));
        let mut out = String::new();
        s.string_into(&mut out).unwrap();
        assert_eq!(out, "es\"caped\u{e9}");
        assert_eq!(s.u8_value().unwrap(), 42);
        assert!(s.u8_value().is_err());
        let mut s = Scanner::new(b"4.0");
        assert!(s.u8_value().is_err());
        let mut s = Scanner::new(b"-1");
        assert!(s.u8_value().is_err());
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "{",
            "}",
            "[]",
            r#"{"a"}"#,
            r#"{"a":}"#,
            r#"{"a":1,}"#,
            r#"{,"a":1}"#,
            r#"{"a":1 "b":2}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":.5}"#,
            r#"{"a":1e}"#,
            r#"{"a":-}"#,
            r#"{"a":tru}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":[,1]}"#,
            r#"{"a":{"b"}}"#,
            r#"{"a":{"b":1,}}"#,
            r#"{"a":[1}"#,
            r#"{"a":"\x"}"#,
            r#"{"a":"\u12"}"#,
            "{\"a\":\"tab\there\"}",
            r#"{"a":1} x"#,
            r#"{"a":"open}"#,
        ] {
            assert!(keys_and_values(bad).is_err(), "{bad:?}");
            assert!(
                serde_json::from_str::<serde_json::Value>(bad)
                    .ok()
                    .filter(serde_json::Value::is_object)
                    .is_none(),
                "{bad:?}"
            );
        }
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
        assert!(keys_and_values(&deep).is_err());
        let ok = format!("{{\"a\":{}{}}}", "[".repeat(100), "]".repeat(100));
        assert!(keys_and_values(&ok).is_ok());
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
            let read = Scanner::new(bytes).string();
            assert!(
                matches!(read, Err(ScanError::InvalidUtf8 { .. })),
                "{bytes:?}"
            );
            let mut out = String::from("kept");
            assert!(Scanner::new(bytes).string_into(&mut out).is_err());
            assert_eq!(out, "kept");
        }
        let mut s = Scanner::new("\"caf\u{e9}\"".as_bytes());
        assert!(s.string().unwrap().is("caf\u{e9}"));
    }

    #[test]
    fn deep_nesting_is_refused_without_overflow() {
        let deep = "[".repeat(100_000);
        assert!(skip(&deep).is_err());
        let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(skip(&ok).is_ok());
        let limit = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(skip(&limit).is_ok());
        let over = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(matches!(skip(&over), Err(ScanError::TooDeep { .. })));
    }

    #[test]
    fn strings_decode_and_compare() {
        let mut s = Scanner::new(br#""plain" "a\u0062c\n" "\ud800""#);
        let plain = s.string().unwrap();
        let escaped = s.string().unwrap();
        let lone = s.string().unwrap();
        assert_eq!(plain.raw(), br#""plain""#);
        assert!(matches!(plain.text(), Some(Cow::Borrowed("plain"))));
        assert_eq!(escaped.text().unwrap(), "abc\n");
        assert!(plain.is("plain") && escaped.is("abc\n") && !escaped.is("abc"));
        assert_eq!(
            lone.text(),
            None,
            "a lone surrogate scans but does not decode"
        );
        assert!(matches!(plain.bytes(), Some(Cow::Borrowed(b"plain"))));
        assert_eq!(escaped.bytes().unwrap(), &b"abc\n"[..]);
        assert_eq!(lone.bytes(), None);
        let mut s = Scanner::new(br#" [ "x" , "y\u007a" ] "#);
        let (raw, n) = s.array_raw(|s| s.string().map(drop)).unwrap();
        assert_eq!(n, 2);
        let texts: Vec<_> = Scanner::new(raw)
            .strings()
            .map(|s| s.text().unwrap().into_owned())
            .collect();
        assert_eq!(texts, ["x", "yz"]);
        assert_eq!(Scanner::new(b"[]").strings().count(), 0);
    }

    #[test]
    fn errors_say_what_and_where() {
        let mut s = Scanner::new(br#"{"a":1,"a":"#);
        let mut fields = s.begin_object().unwrap();
        s.next_key(&mut fields).unwrap();
        s.value().unwrap();
        assert_eq!(s.next_key(&mut fields).unwrap().unwrap().raw(), br#""a""#);
        assert_eq!(s.duplicate_key().to_string(), "duplicate key at byte 11");
        assert_eq!(
            s.value().unwrap_err().to_string(),
            "expected a value at byte 11"
        );
        assert_eq!(
            skip(r#"["a\q"]"#).unwrap_err(),
            ScanError::InvalidEscape { at: 3 }
        );
        assert_eq!(
            skip("\"a\tb\"").unwrap_err(),
            ScanError::ControlCharacter { at: 2 }
        );
        assert_eq!(
            skip(r#"[1, "ab"#).unwrap_err(),
            ScanError::UnterminatedString { at: 4 }
        );
        assert_eq!(
            skip("[1] 2").unwrap_err(),
            ScanError::TrailingCharacters { at: 4 }
        );
        assert_eq!(skip("-x").unwrap_err(), ScanError::InvalidNumber { at: 0 });
    }

    proptest! {
        /// On arbitrary JSON-ish text, the reader accepts an object exactly when serde_json
        /// parses it as one, with the same keys.
        #[test]
        fn agrees_with_serde_json(text in r#"\{[ "a-c:,\[\]{}0-9.eE+\-tfnrul\\]{0,30}\}"#) {
            let ours = keys_and_values(&text).ok().map(|kv| {
                let mut keys: Vec<String> = kv.into_iter().map(|(k, _)| k).collect();
                keys.sort();
                keys.dedup();
                keys
            });
            let theirs = serde_keys(&text).map(|mut k| { k.sort(); k });
            prop_assert_eq!(ours, theirs);
        }

        #[test]
        fn values_round_trip(value in proptest::collection::vec(any::<(u8, String, bool, i64)>(), 0..4)) {
            let text = serde_json::to_string(&serde_json::json!({"v": value, "w": "x"})).unwrap();
            let got = keys_and_values(&text).unwrap();
            let back: serde_json::Value = serde_json::from_str(&got[0].1).unwrap();
            prop_assert_eq!(back, serde_json::to_value(&value).unwrap());
        }
    }
}
