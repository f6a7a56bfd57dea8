//! Test support for the property tests over untrusted input (the `*fuzz_tests` modules):
//! mutations of valid messages, so that the properties reach deep code, not only the first
//! byte check of each decoder, and the case count every such test runs.

use proptest::prelude::*;
use proptest::test_runner::Config;

/// `default` cases, or `PROPTEST_CASES` when set (as proptest's own default config reads it):
/// CI runs a bounded count, a long local run sets the variable.
pub fn cases(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        // No `proptest-regressions/` files in the tree: regression cases live in the tests.
        failure_persistence: None,
        ..Config::default()
    }
}

/// One edit of a byte string; positions wrap around its length.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// XOR a byte with a non-zero value.
    Flip(usize, u8),
    /// Insert a byte.
    Insert(usize, u8),
    /// Remove a byte.
    Delete(usize),
    /// Cut everything from here.
    Truncate(usize),
    /// Insert random bytes.
    Splice(usize, Vec<u8>),
    /// Insert a token that matters to a JSON or NATS parser.
    Token(usize, &'static [u8]),
    /// Copy a range of the input to another place (repeated keys, nested repeats).
    Repeat(usize, usize, usize),
}

/// Tokens that steer a parser into its rarer branches.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b"\\",
    b"\\u",
    b"\\ud800",
    b"\\udc00",
    b"\\ud83d\\ude00",
    b"\\u0000",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"null",
    b"true",
    b"-0.0e+1",
    b"1e99999",
    b"18446744073709551616",
    b"-",
    b" ",
    b"\t",
    b"\r\n",
    b"\n",
    b"\x00",
    b"\x7f",
    b"\xc3",
    b"\xe2\x82",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    "é".as_bytes(),
    "\u{2028}".as_bytes(),
    "🎉".as_bytes(),
    b"=",
    b"[[",
    b"]]",
    b"'",
    b"#",
    b"\"\"\"",
    b"'''",
    b"[[tasks]]",
    b"[inputs.x]",
    b"{{ ",
    b" }}",
    b"MSG ",
    b"HMSG ",
    b"INFO ",
    b"PING\r\n",
    b"-ERR ",
];

/// Any [`Mutation`].
pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        2 => any::<usize>().prop_map(Mutation::Delete),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Mutation::Splice(i, b)),
        3 => (any::<usize>(), proptest::sample::select(TOKENS))
            .prop_map(|(i, t)| Mutation::Token(i, t)),
        1 => (any::<usize>(), 1usize..64, any::<usize>())
            .prop_map(|(from, len, to)| Mutation::Repeat(from, len, to)),
    ]
}

/// One to `max` mutations.
pub fn mutations(max: usize) -> impl Strategy<Value = Vec<Mutation>> {
    proptest::collection::vec(mutation(), 1..=max.max(1))
}

/// Applies `mutations` in order.
pub fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len();
        match m {
            Mutation::Flip(i, b) if len > 0 => bytes[i % len] ^= (*b).max(1),
            Mutation::Insert(i, b) => bytes.insert(i % (len + 1), *b),
            Mutation::Delete(i) if len > 0 => {
                bytes.remove(i % len);
            }
            Mutation::Truncate(i) => bytes.truncate(i % (len + 1)),
            Mutation::Splice(i, insert) => {
                let at = i % (len + 1);
                bytes.splice(at..at, insert.iter().copied());
            }
            Mutation::Token(i, token) => {
                let at = i % (len + 1);
                bytes.splice(at..at, token.iter().copied());
            }
            Mutation::Repeat(from, n, to) if len > 0 => {
                let start = from % len;
                let end = (start + n).min(len);
                let copy = bytes[start..end].to_vec();
                let at = to % (len + 1);
                bytes.splice(at..at, copy);
            }
            _ => {}
        }
    }
    bytes
}

/// [`mutate`] on text, made UTF-8 again (for decoders that take `&str`).
pub fn mutate_text(text: &str, mutations: &[Mutation]) -> String {
    String::from_utf8_lossy(&mutate(text.as_bytes().to_vec(), mutations)).into_owned()
}
