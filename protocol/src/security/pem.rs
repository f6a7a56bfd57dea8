//! Reading PEM files: certificates (one or a chain) and RSA private keys.

use std::path::Path;

use rustls_pki_types::pem::{PemObject as _, SectionKind};
use rustls_pki_types::CertificateDer;

use super::SecurityError;

/// The bytes of `path`, or [`SecurityError::Read`] naming the file as `what`.
pub fn read_pem_file(what: &'static str, path: &Path) -> Result<Vec<u8>, SecurityError> {
    std::fs::read(path).map_err(|source| SecurityError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

/// Every PEM section of `bytes`, in order.
pub(crate) fn sections(bytes: &[u8]) -> Result<Vec<(SectionKind, Vec<u8>)>, String> {
    <(SectionKind, Vec<u8>)>::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())
}

/// Says what PEM sections were found instead of the wanted ones.
pub(crate) fn found_instead(sections: &[(SectionKind, Vec<u8>)]) -> String {
    if sections.is_empty() {
        return "no PEM section found".to_owned();
    }
    let kinds: Vec<String> = sections
        .iter()
        .map(|(kind, _)| format!("{kind:?}"))
        .collect();
    format!("found {}", kinds.join(", "))
}

/// The certificates of PEM `bytes` (end entity first for a chain), ignoring other sections;
/// an error says what was found when there is no certificate.
pub(crate) fn parse_certificates(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let sections = sections(bytes)?;
    let certs: Vec<CertificateDer<'static>> = sections
        .iter()
        .filter(|(kind, _)| *kind == SectionKind::Certificate)
        .map(|(_, der)| CertificateDer::from(der.clone()))
        .collect();
    if certs.is_empty() {
        return Err(found_instead(&sections));
    }
    Ok(certs)
}

/// The file's text and its certificates; `what` names the file in errors (`certificate`,
/// `CA`).
pub fn read_certificates(
    what: &'static str,
    path: &Path,
) -> Result<(String, Vec<CertificateDer<'static>>), SecurityError> {
    let bytes = read_pem_file(what, path)?;
    let certs = parse_certificates(&bytes).map_err(|reason| SecurityError::NotPem {
        what,
        path: path.to_owned(),
        reason,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| SecurityError::NotPem {
        what,
        path: path.to_owned(),
        reason: "not UTF-8 text".to_owned(),
    })?;
    Ok((text, certs))
}
