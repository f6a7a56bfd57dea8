//! Errors loading certificates, keys and name patterns.

use std::path::PathBuf;

/// What went wrong loading security material; every variant names the file (or the setting)
/// it came from.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// A file could not be read.
    #[error("cannot read {what} {}", path.display())]
    Read {
        /// `certificate`, `private key` or `CA`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file holds no PEM section of the expected kind.
    #[error("{} is not a PEM {what}: {reason}", path.display())]
    NotPem {
        /// `certificate`, `private key` or `CA`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// A PEM certificate that does not parse as X.509.
    #[error("{} holds a certificate that does not parse: {reason}", path.display())]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        reason: String,
    },
    /// A certificate without a common name (Choria's certname).
    #[error("certificate {} has no common name", path.display())]
    NoCommonName {
        /// The file.
        path: PathBuf,
    },
    /// A private key that is not an RSA key `ring` accepts.
    #[error("private key {} is not a usable RSA key: {reason}", path.display())]
    BadKey {
        /// The file.
        path: PathBuf,
        /// Why `ring` refused it.
        reason: String,
    },
    /// A private key that does not belong to the certificate.
    #[error("private key {} does not match certificate {}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// A CA certificate webpki cannot use as a trust anchor.
    #[error("CA {} holds a certificate that is not a usable trust anchor: {reason}", path.display())]
    BadCa {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A name pattern that is not a valid regular expression.
    #[error("{setting}: invalid pattern {pattern:?}")]
    Pattern {
        /// The setting it came from (config key or flag).
        setting: String,
        /// The offending pattern.
        pattern: String,
        /// The regex error.
        #[source]
        source: regex::Error,
    },
    /// Signing failed (ring refused; practically never).
    #[error("cannot sign with private key {}", path.display())]
    Sign {
        /// The key file.
        path: PathBuf,
    },
    /// A request that could not be encoded.
    #[error("cannot encode the request")]
    Encode(#[from] crate::ProtocolError),
}
