//! [`Scan`]: a strict, allocation-free reader of JSON objects for the hot decoders.
//!
//! The client reads three nested JSON documents per reply and needs a handful of fields of
//! each. `serde_json` does that correctly but spends most of its time in generic machinery;
//! this reader walks an object's fields in order, hands string values back borrowed (or
//! unescaped into the caller's buffer) and skips everything else, validating as it goes:
//! what it accepts is valid JSON (RFC 8259: strings without raw control characters and with
//! valid escapes, numbers in JSON syntax, nesting at most 128 deep, nothing after the value
//! but whitespace). It never allocates, except to unescape a key that contains escapes.

use std::borrow::Cow;

use super::json_string::{find_special, unescape_until_quote};

/// How deep skipped values may nest (what `serde_json` allows).
const MAX_DEPTH: usize = 128;

/// The input is not what the reader expected (malformed JSON, or another shape).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed json")]
pub struct Malformed;

/// A cursor over one JSON text.
#[derive(Debug, Clone)]
pub struct Scan<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scan<'a> {
    /// A reader at the start of `text`.
    pub fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes().get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.bytes().get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> Result<(), Malformed> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Malformed)
        }
    }

    /// Enters an object: `{`. Then call [`Scan::next_key`] until it returns `None`.
    pub fn begin_object(&mut self) -> Result<Fields, Malformed> {
        self.eat(b'{')?;
        Ok(Fields { first: true })
    }

    /// The next key of the object entered with `fields` (the cursor then sits on its value,
    /// which must be read or skipped), or `None` after its closing `}`.
    pub fn next_key(&mut self, fields: &mut Fields) -> Result<Option<Cow<'a, str>>, Malformed> {
        match self.peek() {
            Some(b'}') => {
                self.pos += 1;
                return Ok(None);
            }
            Some(b',') if !fields.first => self.pos += 1,
            Some(b'"') if fields.first => {}
            _ => return Err(Malformed),
        }
        fields.first = false;
        let key = self.string_borrowed()?;
        self.eat(b':')?;
        Ok(Some(key))
    }

    /// The raw text of the string literal at the cursor, quotes included, validated for
    /// structure (escapes well formed, no raw control characters), and whether it has
    /// escapes.
    fn string_literal(&mut self) -> Result<(&'a str, bool), Malformed> {
        if self.peek() != Some(b'"') {
            return Err(Malformed);
        }
        let start = self.pos;
        let bytes = self.bytes();
        let mut i = start + 1;
        let mut escaped = false;
        loop {
            i = find_special(bytes, i);
            match bytes.get(i) {
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    i += match bytes.get(i + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => 2,
                        Some(b'u')
                            if bytes
                                .get(i + 2..i + 6)
                                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) =>
                        {
                            6
                        }
                        _ => return Err(Malformed),
                    };
                }
                // A raw control character, or the end of the input.
                _ => return Err(Malformed),
            }
        }
        self.pos = i + 1;
        Ok((self.text.get(start..self.pos).ok_or(Malformed)?, escaped))
    }

    /// The string value at the cursor: borrowed when it has no escapes.
    pub fn string_borrowed(&mut self) -> Result<Cow<'a, str>, Malformed> {
        let (literal, escaped) = self.string_literal()?;
        if !escaped {
            return literal
                .get(1..literal.len() - 1)
                .map(Cow::Borrowed)
                .ok_or(Malformed);
        }
        let mut out = String::with_capacity(literal.len());
        match unescape_until_quote(literal, 1, &mut out) {
            Some(end) if end == literal.len() => Ok(Cow::Owned(out)),
            _ => Err(Malformed),
        }
    }

    /// Appends the string value at the cursor, unescaped, to `out` (one pass).
    pub fn string_into(&mut self, out: &mut String) -> Result<(), Malformed> {
        if self.peek() != Some(b'"') {
            return Err(Malformed);
        }
        self.pos = unescape_until_quote(self.text, self.pos + 1, out).ok_or(Malformed)?;
        Ok(())
    }

    /// The unsigned integer at the cursor, if it fits a `u8` (no sign, fraction or exponent,
    /// as `serde_json` reads a `u8`).
    pub fn u8_value(&mut self) -> Result<u8, Malformed> {
        self.skip_ws();
        let start = self.pos;
        let raw = self.number()?;
        if raw.bytes().any(|b| !b.is_ascii_digit()) {
            self.pos = start;
            return Err(Malformed);
        }
        raw.parse().map_err(|_| Malformed)
    }

    /// Skips the value at the cursor and returns its raw text.
    pub fn skip_value(&mut self) -> Result<&'a str, Malformed> {
        self.skip_ws();
        let start = self.pos;
        // Open containers: `true` for an object, `false` for an array, and whether the next
        // element is the first.
        let mut stack: [(bool, bool); MAX_DEPTH] = [(false, false); MAX_DEPTH];
        let mut depth = 0usize;
        loop {
            // At the start of a value.
            match self.peek().ok_or(Malformed)? {
                b'{' | b'[' => {
                    let object = self.bytes()[self.pos] == b'{';
                    self.pos += 1;
                    *stack.get_mut(depth).ok_or(Malformed)? = (object, true);
                    depth += 1;
                }
                b'"' => {
                    self.string_literal()?;
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                _ => {
                    self.number()?;
                }
            }
            // After a value, or just inside a container: close containers and find the next
            // value to read.
            loop {
                if depth == 0 {
                    return self.text.get(start..self.pos).ok_or(Malformed);
                }
                let (object, first) = stack[depth - 1];
                let close = if object { b'}' } else { b']' };
                match self.peek() {
                    Some(b) if b == close => {
                        self.pos += 1;
                        depth -= 1;
                        continue;
                    }
                    Some(b',') if !first => self.pos += 1,
                    Some(_) if first => {}
                    _ => return Err(Malformed),
                }
                stack[depth - 1].1 = false;
                if object {
                    self.string_literal()?;
                    self.eat(b':')?;
                }
                break;
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Malformed> {
        if self.bytes().get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(Malformed)
        }
    }

    /// A number in JSON syntax: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Result<&'a str, Malformed> {
        let bytes = self.bytes();
        let start = self.pos;
        let mut i = start;
        let digits = |i: &mut usize| {
            let from = *i;
            while bytes.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i > from
        };
        if bytes.get(i) == Some(&b'-') {
            i += 1;
        }
        match bytes.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                digits(&mut i);
            }
            _ => return Err(Malformed),
        }
        if bytes.get(i) == Some(&b'.') {
            i += 1;
            if !digits(&mut i) {
                return Err(Malformed);
            }
        }
        if let Some(b'e' | b'E') = bytes.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = bytes.get(i) {
                i += 1;
            }
            if !digits(&mut i) {
                return Err(Malformed);
            }
        }
        self.pos = i;
        self.text.get(start..i).ok_or(Malformed)
    }

    /// Checks that only whitespace follows.
    pub fn end(&mut self) -> Result<(), Malformed> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(Malformed),
        }
    }
}

/// The state of an object being read with [`Scan::next_key`].
#[derive(Debug)]
pub struct Fields {
    first: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reads an object's fields the way the decoders do: every value skipped, keys collected.
    fn keys_and_values(text: &str) -> Result<Vec<(String, String)>, Malformed> {
        let mut scan = Scan::new(text);
        let mut fields = scan.begin_object()?;
        let mut out = Vec::new();
        while let Some(key) = scan.next_key(&mut fields)? {
            out.push((key.into_owned(), scan.skip_value()?.to_owned()));
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
        let mut s = Scan::new(r#""plain" "es\"caped\u00e9" 42 300 4.0 -1"#);
        assert_eq!(s.string_borrowed().unwrap(), Cow::Borrowed("plain"));
        let mut out = String::new();
        s.string_into(&mut out).unwrap();
        assert_eq!(out, "es\"caped\u{e9}");
        assert_eq!(s.u8_value().unwrap(), 42);
        assert!(s.u8_value().is_err());
        let mut s = Scan::new("4.0");
        assert!(s.u8_value().is_err());
        let mut s = Scan::new("-1");
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
