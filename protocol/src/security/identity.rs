//! [`SigningIdentity`]: a certificate and its RSA key, signing requests.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use rustls_pki_types::pem::SectionKind;
use rustls_pki_types::CertificateDer;
use webpki::EndEntityCert;

use super::pem::{found_instead, read_certificates, read_pem_file, sections};
use super::{callerid_for, CertificateNames, SecurityError};
use crate::{
    encode_base64, Request, SecureRequest, Transport, TransportHeaders, SECURE_REQUEST_PROTOCOL,
};

/// A certificate and its RSA private key: who signs requests.
#[derive(Clone)]
pub struct SigningIdentity {
    certname: String,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key: Arc<RsaKeyPair>,
    key_path: PathBuf,
    rng: SystemRandom,
}

impl std::fmt::Debug for SigningIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningIdentity")
            .field("certname", &self.certname)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

impl SigningIdentity {
    /// Loads the certificate `cert` (PEM; the first certificate is the signer's, any others
    /// its chain) and its RSA private key `key` (PEM, PKCS#8 `PRIVATE KEY` or PKCS#1
    /// `RSA PRIVATE KEY`). Fails, naming the file, when a file is missing or unreadable, holds
    /// no certificate or key, the certificate has no common name, or the key does not belong
    /// to the certificate.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, SecurityError> {
        let (cert_pem, certs) = read_certificates("certificate", cert)?;
        let cert_der = certs
            .into_iter()
            .next()
            .ok_or_else(|| SecurityError::NotPem {
                what: "certificate",
                path: cert.to_owned(),
                reason: "no certificate".to_owned(),
            })?;
        let names = CertificateNames::of_der(&cert_der).map_err(|reason| {
            SecurityError::BadCertificate {
                path: cert.to_owned(),
                reason,
            }
        })?;
        let certname = names
            .common_name
            .filter(|cn| !cn.is_empty())
            .ok_or_else(|| SecurityError::NoCommonName {
                path: cert.to_owned(),
            })?;
        let key_pair = load_key(key)?;
        let identity = Self {
            certname,
            cert_pem,
            cert_der,
            key: Arc::new(key_pair),
            key_path: key.to_owned(),
            rng: SystemRandom::new(),
        };
        identity.check_key_matches(cert)?;
        Ok(identity)
    }

    /// The certname: the certificate's common name.
    pub fn certname(&self) -> &str {
        &self.certname
    }

    /// The caller id requests signed by this identity carry: `choria=<certname>`.
    pub fn callerid(&self) -> String {
        callerid_for(&self.certname)
    }

    /// The certificate file's PEM text (what goes into `pubcert`).
    pub fn certificate_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Standard base64 of the RSA PKCS#1 v1.5 SHA-256 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> Result<String, SecurityError> {
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &self.rng, message, &mut signature)
            .map_err(|_| SecurityError::Sign {
                path: self.key_path.clone(),
            })?;
        Ok(encode_base64(&signature))
    }

    /// The signed secure request of `request`: its JSON text, the signature of exactly those
    /// bytes, and this identity's certificate.
    pub fn sign_request(&self, request: &Request) -> Result<SecureRequest, SecurityError> {
        let message = request.to_json()?;
        let signature = self.sign(message.as_bytes())?;
        Ok(SecureRequest {
            protocol: SECURE_REQUEST_PROTOCOL.to_owned(),
            message,
            signature,
            pubcert: self.cert_pem.clone(),
        })
    }

    /// `request` signed and wrapped in a transport with `headers`, as a NATS payload.
    pub fn encode_request(
        &self,
        request: &Request,
        headers: TransportHeaders,
    ) -> Result<Vec<u8>, SecurityError> {
        let secure = self.sign_request(request)?;
        Ok(Transport::new(&secure.to_vec()?, headers).to_vec()?)
    }

    /// Signs a probe with the key and checks it with the certificate's public key.
    fn check_key_matches(&self, cert: &Path) -> Result<(), SecurityError> {
        let mismatch = || SecurityError::KeyMismatch {
            cert: cert.to_owned(),
            key: self.key_path.clone(),
        };
        let probe = b"choir: does this key belong to this certificate";
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &self.rng, probe, &mut signature)
            .map_err(|_| SecurityError::Sign {
                path: self.key_path.clone(),
            })?;
        let end_entity =
            EndEntityCert::try_from(&self.cert_der).map_err(|e| SecurityError::BadCertificate {
                path: cert.to_owned(),
                reason: e.to_string(),
            })?;
        end_entity
            .verify_signature(webpki::ring::RSA_PKCS1_2048_8192_SHA256, probe, &signature)
            .map_err(|_| mismatch())
    }
}

/// The RSA key pair of PEM file `path`: the first `RSA PRIVATE KEY` (PKCS#1) or
/// `PRIVATE KEY` (PKCS#8) section.
fn load_key(path: &Path) -> Result<RsaKeyPair, SecurityError> {
    let bytes = read_pem_file("private key", path)?;
    let sections = sections(&bytes).map_err(|reason| SecurityError::NotPem {
        what: "private key",
        path: path.to_owned(),
        reason,
    })?;
    let bad = |e: ring::error::KeyRejected| SecurityError::BadKey {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    for (kind, der) in &sections {
        match kind {
            SectionKind::RsaPrivateKey => return RsaKeyPair::from_der(der).map_err(bad),
            SectionKind::PrivateKey => return RsaKeyPair::from_pkcs8(der).map_err(bad),
            _ => {}
        }
    }
    Err(SecurityError::NotPem {
        what: "private key",
        path: path.to_owned(),
        reason: found_instead(&sections),
    })
}

impl PartialEq for SigningIdentity {
    /// Two identities are equal when they load the same certificate from the same key file.
    fn eq(&self, other: &Self) -> bool {
        self.certname == other.certname
            && self.cert_pem == other.cert_pem
            && self.key_path == other.key_path
    }
}

impl Eq for SigningIdentity {}
