//! Source subject → target subject: remove a prefix, then add one.

/// A subject rewrite.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubjectMap {
    remove: Option<String>,
    prefix: Option<String>,
}

impl SubjectMap {
    /// Removes `remove` (when the subject starts with it) and then adds `prefix`. Either may be
    /// given with or without the joining dot.
    pub fn new(remove: Option<String>, prefix: Option<String>) -> Self {
        let norm = |s: Option<String>| {
            s.map(|s| s.trim_end_matches('.').to_owned())
                .filter(|s| !s.is_empty())
        };
        Self {
            remove: norm(remove),
            prefix: norm(prefix),
        }
    }

    /// Whether subjects are copied unchanged.
    pub fn is_identity(&self) -> bool {
        self.remove.is_none() && self.prefix.is_none()
    }

    /// The target subject of `subject` (also works on wildcard patterns).
    pub fn map(&self, subject: &str) -> String {
        let mut rest = subject;
        if let Some(remove) = &self.remove {
            if rest == remove {
                rest = "";
            } else if let Some(r) = rest
                .strip_prefix(remove.as_str())
                .and_then(|r| r.strip_prefix('.'))
            {
                rest = r;
            }
        }
        match (&self.prefix, rest.is_empty()) {
            (Some(p), true) => p.clone(),
            (Some(p), false) => format!("{p}.{rest}"),
            (None, _) => rest.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_keeps_subjects() {
        assert_eq!(SubjectMap::default().map("a.b.c"), "a.b.c");
        assert!(SubjectMap::default().is_identity());
    }

    #[test]
    fn prefix_is_added_and_removal_happens_first() {
        let map = SubjectMap::new(Some("region1".into()), Some("central.region1.".into()));
        assert_eq!(
            map.map("region1.registration.node1"),
            "central.region1.registration.node1"
        );
        assert_eq!(map.map("other.x"), "central.region1.other.x");
        assert_eq!(map.map("region1.>"), "central.region1.>");
    }

    #[test]
    fn removal_only_strips_whole_tokens() {
        let map = SubjectMap::new(Some("reg".into()), None);
        assert_eq!(map.map("reg.a"), "a");
        assert_eq!(map.map("registration.a"), "registration.a");
    }
}
