//! The naming rules of the config, each in one place: section names (the rule shared with
//! playbooks, [`choir_actors::names`]) and stream names.

pub(super) use choir_actors::names::{valid_name, NAME_RULE};

/// Whether `name` is a valid JetStream stream name by the NATS rule: not empty, at most 255
/// bytes, and no whitespace, control character, `.`, `*`, `>`, `/` or `\`.
pub(super) fn valid_stream_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '.' | '*' | '>' | '/' | '\\')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_name_with_a_character_nats_refuses_is_invalid() {
        for bad in [
            "a.b", "a*b", "a>b", "a/b", "a\\b", "a b", "a\tb", "a\nb", "a\u{0}b", "a\u{7f}b",
        ] {
            assert!(!valid_stream_name(bad), "{bad:?} accepted");
        }
    }

    #[test]
    fn an_empty_or_overlong_stream_name_is_invalid() {
        assert!(!valid_stream_name(""));
        assert!(!valid_stream_name(&"x".repeat(256)));
        assert!(valid_stream_name(&"x".repeat(255)));
    }

    #[test]
    fn a_plain_stream_name_is_valid() {
        for good in ["ORDERS", "orders-2", "my_stream", "Ü-stream"] {
            assert!(valid_stream_name(good), "{good:?} refused");
        }
    }
}
