//! Signing and verification against a throwaway PKI made with `openssl`, which also checks
//! choir's signatures as an independent oracle.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use super::test_pki::{CertSpec, Issued, KeyFormat, TestCa};
use super::*;
use crate::{
    decode_base64, decode_request, unix_now, NewRequest, Reply, Request, SecureReply,
    SecureRequest, Transport, TransportHeaders,
};

/// Everything the tests need, made once per test binary.
struct Fixture {
    dir: PathBuf,
    ca: TestCa,
    allowed: Issued,
    allowed_pkcs8: Issued,
    not_allowed: Issued,
    privileged: Issued,
    other_ca: Issued,
    expired: Issued,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let ca = TestCa::new(&dir, "ca");
        let other = TestCa::new(&dir, "other-ca");
        Fixture {
            allowed: ca.issue(&CertSpec::client("rip.mcollective")),
            allowed_pkcs8: ca.issue(&CertSpec {
                key: KeyFormat::Pkcs8,
                ..CertSpec::client("eight.choria")
            }),
            not_allowed: ca.issue(&CertSpec::client("bob.example.net")),
            privileged: ca.issue(&CertSpec::client("admin.privileged.mcollective")),
            other_ca: other.issue(&CertSpec::client("rip.mcollective")),
            expired: ca.issue(&CertSpec {
                expired: true,
                ..CertSpec::client("old.mcollective")
            }),
            dir,
            ca,
        }
    })
}

fn verifier() -> Verifier {
    Verifier::new(&SecurityPolicy::with_defaults(&fixture().ca.cert)).unwrap()
}

fn identity(issued: &Issued) -> SigningIdentity {
    SigningIdentity::load(&issued.cert, &issued.key).unwrap()
}

fn request(callerid: &str) -> Request {
    NewRequest {
        message: r#"{"agent":"rpcutil","action":"ping","caller":"x","data":{}}"#.into(),
        senderid: "client.example.net".into(),
        callerid: callerid.into(),
        collective: "mcollective".into(),
        agent: "rpcutil".into(),
        ..NewRequest::default()
    }
    .build()
    .unwrap()
}

/// Signs a request as `issued` with its own caller id and verifies it.
fn verdict_for(issued: &Issued) -> Verdict {
    let id = identity(issued);
    let secure = id.sign_request(&request(&id.callerid())).unwrap();
    verifier().verify(&secure, &id.callerid())
}

#[test]
fn allowed_client_request_is_trusted() {
    let id = identity(&fixture().allowed);
    assert_eq!(id.certname(), "rip.mcollective");
    assert_eq!(id.callerid(), "choria=rip.mcollective");
    assert_eq!(
        verdict_for(&fixture().allowed),
        Verdict::Trusted {
            certname: "rip.mcollective".into(),
            privileged: false
        }
    );
}

#[test]
fn pkcs8_key_signs_too() {
    let pem = std::fs::read_to_string(&fixture().allowed_pkcs8.key).unwrap();
    assert!(pem.contains("BEGIN PRIVATE KEY"));
    let pem = std::fs::read_to_string(&fixture().allowed.key).unwrap();
    assert!(pem.contains("BEGIN RSA PRIVATE KEY"));
    assert!(verdict_for(&fixture().allowed_pkcs8).is_trusted());
}

#[test]
fn signed_request_travels_through_the_onion_and_verifies() {
    let id = identity(&fixture().allowed);
    let req = request(&id.callerid());
    let bytes = id
        .encode_request(&req, TransportHeaders::default())
        .unwrap();
    let decoded = decode_request(&bytes, unix_now()).unwrap();
    assert_eq!(decoded.request, req);
    assert_eq!(decoded.secure.pubcert, id.certificate_pem());
    let verdict = verifier().verify(&decoded.secure, &decoded.request.envelope.callerid);
    assert!(verdict.is_trusted(), "{verdict:?}");
}

#[test]
fn openssl_verifies_a_signature_choir_made() {
    let f = fixture();
    let id = identity(&f.allowed);
    let secure = id.sign_request(&request(&id.callerid())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let msg = dir.path().join("message.json");
    let sig = dir.path().join("message.sig");
    let public = dir.path().join("public.pem");
    std::fs::write(&msg, secure.message.as_bytes()).unwrap();
    std::fs::write(&sig, decode_base64(&secure.signature).unwrap()).unwrap();
    let out = Command::new("openssl")
        .args(["x509", "-pubkey", "-noout", "-in"])
        .arg(&f.allowed.cert)
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(&public, out.stdout).unwrap();
    let verify = |message: &Path| {
        Command::new("openssl")
            .args(["dgst", "-sha256", "-verify"])
            .arg(&public)
            .arg("-signature")
            .arg(&sig)
            .arg(message)
            .output()
            .unwrap()
    };
    let out = verify(&msg);
    assert!(
        out.status.success(),
        "openssl refused choir's signature: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Verified OK"));
    // The oracle is not vacuous: one changed byte fails.
    let tampered = dir.path().join("tampered.json");
    std::fs::write(&tampered, secure.message.replace("ping", "pong")).unwrap();
    assert!(!verify(&tampered).status.success());
}

#[test]
fn certname_not_on_allowlist_is_refused() {
    assert_eq!(
        verdict_for(&fixture().not_allowed),
        Verdict::Refused(Rejection::NotAllowed("bob.example.net".into()))
    );
    // … and allowed once the allowlist names it.
    let policy = SecurityPolicy {
        allowlist: NamePatterns::parse("test", r"/^bob\.example\.net$/").unwrap(),
        ..SecurityPolicy::with_defaults(&fixture().ca.cert)
    };
    let id = identity(&fixture().not_allowed);
    let secure = id.sign_request(&request(&id.callerid())).unwrap();
    assert!(Verifier::new(&policy)
        .unwrap()
        .verify(&secure, &id.callerid())
        .is_trusted());
}

#[test]
fn certificate_from_another_ca_is_refused() {
    let verdict = verdict_for(&fixture().other_ca);
    assert!(
        matches!(verdict, Verdict::Refused(Rejection::Untrusted(_))),
        "{verdict:?}"
    );
    assert_eq!(
        verdict.rejection().unwrap().reason(),
        "untrusted_certificate"
    );
}

#[test]
fn expired_certificate_is_refused() {
    assert_eq!(
        verdict_for(&fixture().expired),
        Verdict::Refused(Rejection::Expired)
    );
}

#[test]
fn tampered_message_is_refused() {
    let id = identity(&fixture().allowed);
    let mut secure = id.sign_request(&request(&id.callerid())).unwrap();
    let tampered = secure.message.replace("ping", "pong");
    assert_ne!(tampered, secure.message);
    secure.message = tampered;
    let verdict = verifier().verify(&secure, &id.callerid());
    assert!(
        matches!(verdict, Verdict::Refused(Rejection::BadSignature(_))),
        "{verdict:?}"
    );
    // A signature that is not even base64.
    secure.signature = "not base64!".into();
    assert_eq!(
        verifier()
            .verify(&secure, &id.callerid())
            .rejection()
            .map(Rejection::reason),
        Some("invalid_signature")
    );
}

#[test]
fn wrong_callerid_is_refused() {
    let id = identity(&fixture().allowed);
    let callerid = "choria=someone.mcollective";
    let secure = id.sign_request(&request(callerid)).unwrap();
    assert_eq!(
        verifier().verify(&secure, callerid),
        Verdict::Refused(Rejection::CallerMismatch {
            certname: "someone.mcollective".into(),
            names: vec!["rip.mcollective".into(), "rip.mcollective".into()],
        })
    );
    assert_eq!(
        verifier().verify(&secure, "no-equals-sign"),
        Verdict::Refused(Rejection::InvalidCallerid("no-equals-sign".into()))
    );
}

#[test]
fn privileged_certificate_may_act_as_another_caller() {
    let id = identity(&fixture().privileged);
    let callerid = "choria=someone.mcollective";
    let secure = id.sign_request(&request(callerid)).unwrap();
    assert_eq!(
        verifier().verify(&secure, callerid),
        Verdict::Trusted {
            certname: "someone.mcollective".into(),
            privileged: true
        }
    );
}

#[test]
fn insecure_request_to_a_secure_verifier_is_refused() {
    let secure = SecureRequest::insecure(request("choria=rip.mcollective").to_json().unwrap());
    assert_eq!(
        verifier().verify(&secure, "choria=rip.mcollective"),
        Verdict::Refused(Rejection::Insecure)
    );
}

#[test]
fn garbage_pubcert_is_refused() {
    let id = identity(&fixture().allowed);
    let mut secure = id.sign_request(&request(&id.callerid())).unwrap();
    secure.pubcert = std::fs::read_to_string(&fixture().allowed.key).unwrap();
    assert_eq!(
        verifier()
            .verify(&secure, &id.callerid())
            .rejection()
            .map(Rejection::reason),
        Some("invalid_certificate")
    );
}

#[test]
fn rejection_reasons_are_distinct_labels() {
    let mut reasons = Rejection::REASONS.to_vec();
    reasons.sort_unstable();
    reasons.dedup();
    assert_eq!(reasons.len(), Rejection::REASONS.len());
}

#[test]
fn missing_key_file_is_named() {
    let f = fixture();
    let missing = f.dir.join("nope.key");
    let e = SigningIdentity::load(&f.allowed.cert, &missing).unwrap_err();
    assert!(
        matches!(
            e,
            SecurityError::Read {
                what: "private key",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("nope.key"), "{e}");
}

#[test]
fn certificate_not_matching_its_key_is_refused() {
    let f = fixture();
    let e = SigningIdentity::load(&f.allowed.cert, &f.not_allowed.key).unwrap_err();
    assert!(matches!(e, SecurityError::KeyMismatch { .. }), "{e:?}");
    let m = e.to_string();
    assert!(m.contains(&f.allowed.cert.display().to_string()), "{m}");
    assert!(m.contains(&f.not_allowed.key.display().to_string()), "{m}");
}

#[test]
fn pem_that_is_not_a_certificate_is_refused() {
    let f = fixture();
    // A private key given as the certificate.
    let e = SigningIdentity::load(&f.allowed.key, &f.allowed.key).unwrap_err();
    assert!(
        matches!(
            e,
            SecurityError::NotPem {
                what: "certificate",
                ..
            }
        ),
        "{e:?}"
    );
    let m = e.to_string();
    assert!(m.contains(&f.allowed.key.display().to_string()), "{m}");
    assert!(m.contains("RsaPrivateKey"), "{m}");
    // A certificate given as the key.
    let e = SigningIdentity::load(&f.allowed.cert, &f.allowed.cert).unwrap_err();
    assert!(
        matches!(
            e,
            SecurityError::NotPem {
                what: "private key",
                ..
            }
        ),
        "{e:?}"
    );
    // A CA file that is not PEM at all.
    let junk = f.dir.join("junk.pem");
    std::fs::write(&junk, "hello").unwrap();
    let e = Verifier::new(&SecurityPolicy::with_defaults(&junk)).unwrap_err();
    assert!(
        matches!(e, SecurityError::NotPem { what: "CA", .. }),
        "{e:?}"
    );
}

#[test]
fn signed_request_and_reply_validate_against_the_v1_schemas() {
    let dir = crate::schema_tests::schema_dir();
    let id = identity(&fixture().allowed);
    let req = request(&id.callerid());
    let bytes = id
        .encode_request(&req, TransportHeaders::default())
        .unwrap();
    let transport = Transport::from_slice(&bytes).unwrap();
    let secure: Value = serde_json::from_slice(&transport.payload().unwrap()).unwrap();
    let inner: Value = serde_json::from_str(secure["message"].as_str().unwrap()).unwrap();
    let reply = Reply::for_request(&req, "n1", "pong".into());
    let secure_reply: Value =
        serde_json::from_slice(&SecureReply::new(reply.to_json().unwrap()).to_vec().unwrap())
            .unwrap();
    assert_ne!(secure["signature"], "insecure");
    assert!(secure["pubcert"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    for (schema, instance) in [
        ("secure_request.json", &secure),
        ("request.json", &inner),
        ("transport.json", &serde_json::from_slice(&bytes).unwrap()),
        ("secure_reply.json", &secure_reply),
    ] {
        let text = std::fs::read_to_string(dir.join(schema)).unwrap();
        let schema_value: Value = serde_json::from_str(&text).unwrap();
        let validator = jsonschema::draft4::new(&schema_value).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{schema}: {errors:?}");
    }
}
