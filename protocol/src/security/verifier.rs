//! [`Verifier`]: checks secure requests as a Choria server does.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, KeyUsage};

use super::pem::{parse_certificates, read_certificates};
use super::{
    certname_of_callerid, CertificateNames, NamePatterns, Rejection, SecurityError, Verdict,
};
use crate::{decode_base64, SecureRequest, INSECURE};

/// Where a verifier's trust comes from.
#[derive(Debug, Clone)]
pub struct SecurityPolicy {
    /// The CA bundle (PEM) client certificates must chain to.
    pub ca: PathBuf,
    /// Certnames allowed to make requests (`plugin.choria.security.certname_whitelist`).
    pub allowlist: NamePatterns,
    /// Certnames allowed to act as any caller (`plugin.choria.security.privileged_users`).
    pub privileged: NamePatterns,
}

impl SecurityPolicy {
    /// A policy trusting `ca` with Choria's default allowlist and privileged users.
    pub fn with_defaults(ca: impl Into<PathBuf>) -> Self {
        Self {
            ca: ca.into(),
            allowlist: NamePatterns::default_allowlist(),
            privileged: NamePatterns::default_privileged(),
        }
    }
}

/// Checks secure requests against a trusted CA, an allowlist and privileged users.
#[derive(Debug, Clone)]
pub struct Verifier {
    anchors: Vec<TrustAnchor<'static>>,
    allowlist: NamePatterns,
    privileged: NamePatterns,
}

impl Verifier {
    /// A verifier for `policy`; fails, naming the file, when the CA cannot be read or holds
    /// no usable certificate.
    pub fn new(policy: &SecurityPolicy) -> Result<Self, SecurityError> {
        let (_, certs) = read_certificates("CA", &policy.ca)?;
        let anchors = anchors(&policy.ca, &certs)?;
        Ok(Self {
            anchors,
            allowlist: policy.allowlist.clone(),
            privileged: policy.privileged.clone(),
        })
    }

    /// The verdict on `secure`, whose inner request carries `callerid`, at the current time.
    pub fn verify(&self, secure: &SecureRequest, callerid: &str) -> Verdict {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.verify_at(secure, callerid, UnixTime::since_unix_epoch(now))
    }

    /// The verdict on `secure` (with inner `callerid`) at time `now`. The checks, in order:
    /// signed at all; a well-formed `callerid`; a parsable `pubcert` that chains to the CA
    /// and is valid at `now`; a privileged certificate, or a `callerid` certname that is one
    /// of the certificate's names and matches the allowlist; a valid signature over exactly
    /// the `message` bytes.
    pub fn verify_at(&self, secure: &SecureRequest, callerid: &str, now: UnixTime) -> Verdict {
        match self.check(secure, callerid, now) {
            Ok((certname, privileged)) => Verdict::Trusted {
                certname,
                privileged,
            },
            Err(rejection) => Verdict::Refused(rejection),
        }
    }

    fn check(
        &self,
        secure: &SecureRequest,
        callerid: &str,
        now: UnixTime,
    ) -> Result<(String, bool), Rejection> {
        if secure.signature == INSECURE || secure.pubcert == INSECURE {
            return Err(Rejection::Insecure);
        }
        let certname = certname_of_callerid(callerid)
            .ok_or_else(|| Rejection::InvalidCallerid(callerid.to_owned()))?;
        let certs =
            parse_certificates(secure.pubcert.as_bytes()).map_err(Rejection::InvalidCertificate)?;
        let (leaf, intermediates) = certs
            .split_first()
            .ok_or_else(|| Rejection::InvalidCertificate("no certificate".to_owned()))?;
        let end_entity = EndEntityCert::try_from(leaf)
            .map_err(|e| Rejection::InvalidCertificate(e.to_string()))?;
        end_entity
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &self.anchors,
                intermediates,
                now,
                KeyUsage::client_auth(),
                None,
                None,
            )
            .map_err(chain_rejection)?;
        let names = CertificateNames::of_der(leaf).map_err(Rejection::InvalidCertificate)?;
        let privileged = names.all().any(|name| self.privileged.matches(name));
        if !privileged {
            if !names.contains(certname) {
                return Err(Rejection::CallerMismatch {
                    certname: certname.to_owned(),
                    names: names.all().map(str::to_owned).collect(),
                });
            }
            if !self.allowlist.matches(certname) {
                return Err(Rejection::NotAllowed(certname.to_owned()));
            }
        }
        let signature = decode_base64(&secure.signature)
            .map_err(|e| Rejection::BadSignature(format!("not base64: {e}")))?;
        end_entity
            .verify_signature(
                webpki::ring::RSA_PKCS1_2048_8192_SHA256,
                secure.message.as_bytes(),
                &signature,
            )
            .map_err(|e| Rejection::BadSignature(e.to_string()))?;
        Ok((certname.to_owned(), privileged))
    }
}

/// The rejection for a failed chain verification.
fn chain_rejection(error: webpki::Error) -> Rejection {
    match error {
        webpki::Error::CertExpired { .. } => Rejection::Expired,
        webpki::Error::CertNotValidYet { .. } => Rejection::NotYetValid,
        other => Rejection::Untrusted(other.to_string()),
    }
}

/// Trust anchors from the CA file's certificates.
fn anchors(
    path: &Path,
    certs: &[CertificateDer<'static>],
) -> Result<Vec<TrustAnchor<'static>>, SecurityError> {
    certs
        .iter()
        .map(|cert| {
            webpki::anchor_from_trusted_cert(cert)
                .map(|anchor| anchor.to_owned())
                .map_err(|e| SecurityError::BadCa {
                    path: path.to_owned(),
                    reason: e.to_string(),
                })
        })
        .collect()
}
