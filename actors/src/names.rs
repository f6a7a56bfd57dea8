//! The name rule shared by the files users write: node config sections and nodes, playbook
//! inputs, locks, node sets and stores.

/// What [`valid_name`] allows, as a problem message.
pub const NAME_RULE: &str = "names use letters, digits, '-' and '_' only";

/// Whether `name` is a valid name: not empty, letters, digits, `-` and `_` only.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_letters_digits_dashes_and_underscores() {
        for good in ["a", "Region-1", "fed_east", "0"] {
            assert!(valid_name(good), "{good:?}");
        }
        for bad in ["", "a.b", "a b", "a/b", "é", "a*", "a>"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}
