//! Choria x509 security (protocol v1): signing requests and verifying them as a Choria
//! server does. Plain Rust, no actix and no NATS.
//!
//! - A [`SigningIdentity`] is a certificate and its RSA private key (PKCS#8 or PKCS#1 PEM).
//!   It signs a request: the secure request's `message` is the request JSON text, its
//!   `signature` the standard base64 of an RSA PKCS#1 v1.5 signature over the SHA-256 of
//!   exactly those bytes, its `pubcert` the certificate PEM; the request's `callerid` is
//!   `choria=<certname>`, the certname being the certificate's common name.
//! - A [`Verifier`] holds the trusted CA, the certname allowlist and the privileged-user
//!   patterns, and gives a [`Verdict`] for a secure request: the certificate chains to the CA
//!   and is valid now; a privileged certificate may act as any caller, otherwise the certname
//!   in `callerid` must be the certificate's common name or one of its DNS names and must
//!   match the allowlist; the signature must be valid over the exact `message` bytes. Every
//!   refusal has its own [`Rejection`] with a metric label.
//!
//! All cryptography comes from `ring` (signing) and `rustls-webpki` (chains and signature
//! checks); certificate names are read with `x509-parser`.

mod callerid;
mod error;
mod identity;
mod names;
mod patterns;
mod pem;
mod verdict;
mod verifier;

#[cfg(any(test, feature = "test-support"))]
pub mod test_pki;

#[cfg(test)]
mod openssl_tests;

pub use callerid::{callerid_for, certname_of_callerid};
pub use error::SecurityError;
pub use identity::SigningIdentity;
pub use names::CertificateNames;
pub use patterns::{NamePatterns, DEFAULT_ALLOWLIST, DEFAULT_PRIVILEGED};
pub use pem::{read_certificates, read_pem_file};
pub use verdict::{Rejection, Verdict};
pub use verifier::{SecurityPolicy, Verifier};
