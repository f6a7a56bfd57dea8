//! Certname patterns: `plugin.choria.security.certname_whitelist` and
//! `plugin.choria.security.privileged_users`.

use regex::Regex;

use super::SecurityError;

/// Choria's default certname allowlist.
pub const DEFAULT_ALLOWLIST: &str = r"\.mcollective$,\.choria$";
/// Choria's default privileged-user pattern.
pub const DEFAULT_PRIVILEGED: &str = r"\.privileged.mcollective$";

/// A list of certname patterns, matched as Go Choria matches them: each comma-separated entry
/// is a regular expression, optionally written between slashes (`/…/`), searched anywhere in
/// the name (anchor it with `^…$` to match a whole name).
#[derive(Debug, Clone)]
pub struct NamePatterns {
    patterns: Vec<Regex>,
}

impl NamePatterns {
    /// Parses a comma-separated list; `setting` names the config key or flag in errors.
    /// Empty entries are ignored.
    pub fn parse(setting: &str, list: &str) -> Result<Self, SecurityError> {
        Self::from_entries(setting, list.split(','))
    }

    /// Parses entries one by one (a TOML array, say); `setting` names them in errors.
    pub fn from_entries<'a>(
        setting: &str,
        entries: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, SecurityError> {
        let mut patterns = Vec::new();
        for entry in entries {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let body = entry
                .strip_prefix('/')
                .and_then(|e| e.strip_suffix('/'))
                .filter(|e| !e.is_empty())
                .unwrap_or(entry);
            let regex = Regex::new(body).map_err(|source| SecurityError::Pattern {
                setting: setting.to_owned(),
                pattern: entry.to_owned(),
                source,
            })?;
            patterns.push(regex);
        }
        Ok(Self { patterns })
    }

    /// Choria's default allowlist ([`DEFAULT_ALLOWLIST`]).
    pub fn default_allowlist() -> Self {
        Self::parse("certname_whitelist", DEFAULT_ALLOWLIST).unwrap_or(Self {
            patterns: Vec::new(),
        })
    }

    /// Choria's default privileged users ([`DEFAULT_PRIVILEGED`]).
    pub fn default_privileged() -> Self {
        Self::parse("privileged_users", DEFAULT_PRIVILEGED).unwrap_or(Self {
            patterns: Vec::new(),
        })
    }

    /// Whether any pattern matches `name`.
    pub fn matches(&self, name: &str) -> bool {
        self.patterns.iter().any(|p| p.is_match(name))
    }

    /// Whether there is no pattern (matches nothing).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_choria() {
        let allow = NamePatterns::default_allowlist();
        assert!(allow.matches("rip.mcollective"));
        assert!(allow.matches("bob.choria"));
        assert!(!allow.matches("bob.example.net"));
        assert!(!allow.matches("rip.mcollective.example"));
        let privileged = NamePatterns::default_privileged();
        assert!(privileged.matches("admin.privileged.mcollective"));
        assert!(!privileged.matches("admin.mcollective"));
    }

    #[test]
    fn names_and_slashed_regexes() {
        let p = NamePatterns::parse("k", " ^exact\\.name$ , /^ops-[0-9]+\\.example$/ ,,").unwrap();
        assert!(p.matches("exact.name"));
        assert!(p.matches("ops-12.example"));
        assert!(!p.matches("ops-x.example"));
        assert!(!p.matches("other"));
        assert!(NamePatterns::parse("k", "").unwrap().is_empty());
    }

    #[test]
    fn bad_regex_names_setting_and_pattern() {
        let e = NamePatterns::parse("plugin.choria.security.certname_whitelist", "ok,/a(/")
            .unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("plugin.choria.security.certname_whitelist"),
            "{m}"
        );
        assert!(m.contains("/a(/"), "{m}");
    }
}
