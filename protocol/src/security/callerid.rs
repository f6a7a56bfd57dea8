//! Caller ids: `choria=<certname>`.

/// The caller id of certname `certname`: `choria=<certname>`.
pub fn callerid_for(certname: &str) -> String {
    format!("choria={certname}")
}

/// The certname in a caller id, as Choria extracts it: a lowercase prefix, `=`, then the
/// longest run of word characters, dots and dashes (`^[a-z]+=([\w.\-]+)`). `None` when the
/// caller id has no such shape.
pub fn certname_of_callerid(callerid: &str) -> Option<&str> {
    let (prefix, rest) = callerid.split_once('=')?;
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let end = rest
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-'))
        .map_or(rest.len(), |(i, _)| i);
    (end > 0).then(|| &rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certname_is_taken_as_choria_does() {
        assert_eq!(
            certname_of_callerid("choria=rip.mcollective"),
            Some("rip.mcollective")
        );
        assert_eq!(certname_of_callerid("cert=a-b_c.d"), Some("a-b_c.d"));
        // Go's regex is not anchored at the end: the name stops at the first other character.
        assert_eq!(certname_of_callerid("choria=a.b c"), Some("a.b"));
        assert_eq!(certname_of_callerid("choria="), None);
        assert_eq!(certname_of_callerid("Choria=a"), None);
        assert_eq!(certname_of_callerid("=a"), None);
        assert_eq!(certname_of_callerid("rip.mcollective"), None);
        assert_eq!(callerid_for("x.choria"), "choria=x.choria");
    }
}
