//! Subjects of an adapter: validation, the `%s` template of the stream subject, and the loop
//! check between what an adapter subscribes and what it publishes.

/// The placeholder of a stream subject replaced by the sender identity.
pub const SENDER_PLACEHOLDER: &str = "%s";

/// Why a subject or template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    /// Empty subject.
    #[error("empty subject")]
    Empty,
    /// An empty token (`a..b`, leading or trailing dot).
    #[error("empty token in subject")]
    EmptyToken,
    /// Whitespace or control characters.
    #[error("whitespace or control characters in subject")]
    Whitespace,
    /// A wildcard where none is allowed, or one that is not a whole token.
    #[error("wildcards ('*', '>') are not allowed here")]
    Wildcard,
    /// `>` not as the last token.
    #[error("'>' must be the last token")]
    TailNotLast,
    /// `%s` more than once or not as a whole token.
    #[error("'%s' may appear once, as a whole token")]
    Placeholder,
}

fn check_tokens(subject: &str, wildcards: bool) -> Result<(), SubjectError> {
    if subject.is_empty() {
        return Err(SubjectError::Empty);
    }
    if subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(SubjectError::Whitespace);
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    for (i, token) in tokens.iter().enumerate() {
        if token.is_empty() {
            return Err(SubjectError::EmptyToken);
        }
        let wild = *token == "*" || *token == ">";
        if !wild && token.contains(['*', '>']) {
            return Err(SubjectError::Wildcard);
        }
        if wild && !wildcards {
            return Err(SubjectError::Wildcard);
        }
        if *token == ">" && i + 1 != tokens.len() {
            return Err(SubjectError::TailNotLast);
        }
    }
    Ok(())
}

/// Checks a subscription subject: non-empty tokens, no whitespace, wildcards as whole tokens,
/// `>` last.
pub fn validate_subscribe_subject(subject: &str) -> Result<(), SubjectError> {
    check_tokens(subject, true)
}

/// Turns an identity into subject tokens: dots keep separating tokens (as in Choria), empty
/// tokens become `_`, and whitespace, control characters and wildcards become `_`.
pub fn sanitize_identity(identity: &str) -> String {
    identity
        .split('.')
        .map(|token| {
            if token.is_empty() {
                "_".to_owned()
            } else {
                token
                    .chars()
                    .map(|c| {
                        if c.is_whitespace() || c.is_control() || c == '*' || c == '>' {
                            '_'
                        } else {
                            c
                        }
                    })
                    .collect()
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// A stream subject, possibly with one `%s` token replaced by the sender identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectTemplate {
    text: String,
    has_sender: bool,
}

impl SubjectTemplate {
    /// Parses a template: a literal subject (no wildcards) with at most one `%s` token.
    pub fn parse(text: &str) -> Result<Self, SubjectError> {
        let count = text.matches(SENDER_PLACEHOLDER).count();
        let whole = text.split('.').filter(|t| *t == SENDER_PLACEHOLDER).count();
        if count > 1 || count != whole {
            return Err(SubjectError::Placeholder);
        }
        check_tokens(&text.replace(SENDER_PLACEHOLDER, "x"), false)?;
        Ok(Self {
            text: text.to_owned(),
            has_sender: count == 1,
        })
    }

    /// Whether the template uses the sender identity.
    pub fn has_sender(&self) -> bool {
        self.has_sender
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The subject for `sender` (sanitised with [`sanitize_identity`]).
    pub fn render(&self, sender: &str) -> String {
        if self.has_sender {
            self.text
                .replace(SENDER_PLACEHOLDER, &sanitize_identity(sender))
        } else {
            self.text.clone()
        }
    }

    /// A subject filter capturing every subject this template renders: the `%s` token and
    /// everything after it become `>` (identities may contain dots).
    pub fn capture(&self) -> String {
        if !self.has_sender {
            return self.text.clone();
        }
        let mut out: Vec<&str> = Vec::new();
        for token in self.text.split('.') {
            if token == SENDER_PLACEHOLDER {
                out.push(">");
                break;
            }
            out.push(token);
        }
        out.join(".")
    }
}

/// Whether two subject filters (wildcards allowed) can match a common subject.
pub fn filters_overlap(a: &str, b: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split('.').collect(), b.split('.').collect());
    let mut i = 0;
    loop {
        match (a.get(i), b.get(i)) {
            (Some(&">"), Some(_)) | (Some(_), Some(&">")) => return true,
            (Some(x), Some(y)) => {
                if x != y && *x != "*" && *y != "*" {
                    return false;
                }
            }
            (None, None) => return true,
            _ => return false,
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_subjects() {
        assert!(validate_subscribe_subject("mcollective.broadcast.agent.registration").is_ok());
        assert!(validate_subscribe_subject("a.*.c").is_ok());
        assert!(validate_subscribe_subject("a.>").is_ok());
        assert_eq!(validate_subscribe_subject(""), Err(SubjectError::Empty));
        assert_eq!(
            validate_subscribe_subject("a..b"),
            Err(SubjectError::EmptyToken)
        );
        assert_eq!(
            validate_subscribe_subject("a.>.b"),
            Err(SubjectError::TailNotLast)
        );
        assert_eq!(
            validate_subscribe_subject("a b"),
            Err(SubjectError::Whitespace)
        );
        assert_eq!(
            validate_subscribe_subject("a.b*"),
            Err(SubjectError::Wildcard)
        );
    }

    #[test]
    fn templates() {
        let t = SubjectTemplate::parse("registration.%s").unwrap();
        assert!(t.has_sender());
        assert_eq!(t.render("n1.example.net"), "registration.n1.example.net");
        assert_eq!(t.render("bad id*"), "registration.bad_id_");
        assert_eq!(t.render(""), "registration._");
        assert_eq!(t.render("a..b."), "registration.a._.b._");
        assert_eq!(t.capture(), "registration.>");
        let mid = SubjectTemplate::parse("reg.%s.data").unwrap();
        assert_eq!(mid.capture(), "reg.>");
        let plain = SubjectTemplate::parse("registration.all").unwrap();
        assert!(!plain.has_sender());
        assert_eq!(plain.render("x"), "registration.all");
        assert_eq!(plain.capture(), "registration.all");
        assert_eq!(
            SubjectTemplate::parse("a.%s.%s"),
            Err(SubjectError::Placeholder)
        );
        assert_eq!(
            SubjectTemplate::parse("a.x%s"),
            Err(SubjectError::Placeholder)
        );
        assert_eq!(SubjectTemplate::parse("a.*"), Err(SubjectError::Wildcard));
        assert_eq!(
            SubjectTemplate::parse("a..%s"),
            Err(SubjectError::EmptyToken)
        );
    }

    #[test]
    fn overlap() {
        assert!(filters_overlap("a.b", "a.b"));
        assert!(filters_overlap("a.*", "a.b"));
        assert!(filters_overlap("a.>", "a.b.c"));
        assert!(filters_overlap("registration.>", "registration.>"));
        assert!(!filters_overlap("a.b", "a.c"));
        assert!(!filters_overlap("a.b", "a.b.c"));
        assert!(!filters_overlap(
            "mcollective.broadcast.agent.registration",
            "registration.>"
        ));
    }
}
