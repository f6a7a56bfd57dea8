//! Property tests of the sampling inspector, the decoder that reads a sender out of every
//! copied message: on JSON documents of any shape it finds what a walk of the parsed
//! `serde_json::Value` finds, and on those documents mutated it never panics and only ever
//! finds a sender in JSON (as `serde_json::from_slice` reads it).

use super::inspect::JsonPath;
use crate::fuzzing::{cases, mutate, mutations};
use proptest::prelude::*;
use serde_json::Value;

/// What the path names in `value`, as [`JsonPath::extract`] documents it.
fn reference(value: &Value, path: &[&str]) -> Option<String> {
    let mut at = value;
    for key in path {
        at = match at {
            Value::Object(map) => map.get(*key)?,
            Value::Array(items) => items.get(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    match at {
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => u.to_string(),
            (None, Some(i), _) => i.to_string(),
            (None, None, Some(f)) => f.to_string(),
            _ => return None,
        }),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn document() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[ab01]", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn path() -> impl Strategy<Value = Vec<&'static str>> {
    proptest::collection::vec(proptest::sample::select(vec!["a", "b", "0", "1"]), 1..4)
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn finds_what_a_walk_of_the_value_finds(doc in document(), keys in path(), muts in mutations(4)) {
        let spec = keys.join(".");
        let json_path = JsonPath::parse(&spec).unwrap();
        let bytes = serde_json::to_vec(&doc).unwrap();
        prop_assert_eq!(json_path.extract(&bytes), reference(&doc, &keys), "{} in {}", spec, doc);
        prop_assert_eq!(json_path.is_true(&bytes), reference(&doc, &keys).as_deref() == Some("true") && matches!(
            keys.iter().try_fold(&doc, |at, k| match at {
                Value::Object(m) => m.get(*k),
                Value::Array(a) => k.parse::<usize>().ok().and_then(|i| a.get(i)),
                _ => None,
            }),
            Some(Value::Bool(true))
        ));
        let mutated = mutate(bytes, &muts);
        if json_path.extract(&mutated).is_some() {
            // JSON as serde_json's slice reader takes it: the UTF-8 of strings it skips is
            // not checked (a sender is only ever read from a string it decodes).
            prop_assert!(serde_json::from_slice::<serde::de::IgnoredAny>(&mutated).is_ok());
        }
    }

    #[test]
    fn arbitrary_paths_and_bytes_never_panic(spec in "\\PC{0,12}", bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        if let Ok(path) = JsonPath::parse(&spec) {
            let _ = path.extract(&bytes);
            let _ = path.is_true(&bytes);
        }
    }
}
