//! The security of the playbook's client: `[client]` keys `config` (a Choria client config),
//! `credentials`, `user`/`password`, `token`, `nkey_seed`, `tls.{ca,cert,key}` and
//! `insecure`, the same model as `[networks.*]` and the client commands' flags. Problems are
//! collected with the key that caused them.

use super::client::ClientSettings;
use super::spec::ClientSpec;
use crate::client::choria_config::ChoriaConfig;
use crate::connection::{Auth, TlsSettings};
use crate::problems::Problems;
use crate::protocol::security::{SecurityError, SigningIdentity};

/// `error` and its causes, joined with `: `.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Fills `settings` with the security of `spec`: the Choria config first, then the keys of
/// `[client]` over it. Certificates and keys are loaded now, so a bad file is reported with
/// the playbook's other problems.
pub(super) fn apply(spec: &ClientSpec, settings: &mut ClientSettings, problems: &mut Problems) {
    if let Some(path) = &spec.config {
        match ChoriaConfig::load(path) {
            Err(e) => problems.value("client.config", path.display(), chain(&e)),
            Ok(config) => from_config(spec, &config, settings, problems),
        }
    }
    let chosen = [
        spec.credentials.is_some(),
        spec.user.is_some() || spec.password.is_some(),
        spec.token.is_some(),
        spec.nkey_seed.is_some(),
    ]
    .into_iter()
    .filter(|set| *set)
    .count();
    if chosen > 1 {
        problems.key(
            "client",
            "choose one of credentials, user/password, token or nkey_seed",
        );
    }
    if spec.user.is_some() != spec.password.is_some() {
        problems.key("client.user", "user and password go together");
    }
    if let Some(seed) = &spec.nkey_seed {
        if !seed.starts_with("SU") {
            problems.value("client.nkey_seed", "SU…", "a user nkey seed starts with SU");
        }
    }
    if let Some(path) = &spec.credentials {
        settings.auth = Auth::CredentialsFile(path.clone());
    } else if let (Some(user), Some(password)) = (&spec.user, &spec.password) {
        settings.auth = Auth::UserPassword {
            user: user.clone(),
            password: password.clone(),
        };
    } else if let Some(token) = &spec.token {
        settings.auth = Auth::Token(token.clone());
    } else if let Some(seed) = &spec.nkey_seed {
        settings.auth = Auth::NkeySeed(seed.clone());
    }
    let Some(tls) = &spec.tls else {
        if spec.insecure {
            settings.signer = None;
        }
        return;
    };
    if tls.cert.is_some() != tls.key.is_some() {
        problems.key("client.tls.cert", "cert and key go together");
    }
    let base = settings.tls.take().unwrap_or_default();
    settings.tls = Some(TlsSettings {
        ca: tls.ca.clone().or(base.ca),
        cert: tls.cert.clone().or(base.cert),
        key: tls.key.clone().or(base.key),
    });
    if spec.insecure {
        settings.signer = None;
    } else if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
        match SigningIdentity::load(cert, key) {
            Ok(signer) => settings.signer = Some(signer),
            Err(e) => {
                let (name, path) = match &e {
                    SecurityError::Read {
                        what: "private key",
                        ..
                    }
                    | SecurityError::NotPem {
                        what: "private key",
                        ..
                    }
                    | SecurityError::BadKey { .. }
                    | SecurityError::KeyMismatch { .. } => ("client.tls.key", key),
                    _ => ("client.tls.cert", cert),
                };
                problems.value(name, path.display(), chain(&e));
            }
        }
    }
}

fn from_config(
    spec: &ClientSpec,
    config: &ChoriaConfig,
    settings: &mut ClientSettings,
    problems: &mut Problems,
) {
    let path = config.path().display();
    if spec.servers.is_empty() {
        let urls = config.middleware_urls();
        if !urls.is_empty() {
            settings.servers = urls;
        }
    }
    if spec.collective.is_none() {
        if let Some(collective) = config.main_collective() {
            settings.collective = collective;
        }
    }
    settings.senderid = config.identity().map(str::to_owned);
    if let Some(creds) = config.nats_credentials() {
        settings.auth = Auth::CredentialsFile(creds);
    } else if let Some((user, password)) = config.nats_user() {
        settings.auth = Auth::UserPassword { user, password };
    }
    match config.security_files() {
        Err(e) => problems.value("client.config", &path, chain(&e)),
        Ok(None) => {}
        Ok(Some(files)) => {
            settings.tls = Some(TlsSettings {
                ca: files.ca,
                cert: Some(files.certificate),
                key: Some(files.key),
            });
            let overridden = spec.tls.as_ref().is_some_and(|t| t.cert.is_some());
            if !spec.insecure && !overridden {
                match config.signing_identity() {
                    Ok(signer) => settings.signer = signer,
                    Err(e) => problems.value("client.config", &path, chain(&e)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::protocol::security::test_pki::{CertSpec, TestCa};

    #[test]
    fn tls_cert_and_key_sign_and_bad_files_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new(dir.path(), "ca");
        let rip = ca.issue(&CertSpec::client("rip.mcollective"));
        let other = ca.issue(&CertSpec::client("other.mcollective"));
        let spec = ClientSpec {
            user: Some("u".into()),
            password: Some("p".into()),
            tls: Some(super::super::spec::ClientTlsSpec {
                ca: Some(ca.cert.clone()),
                cert: Some(rip.cert.clone()),
                key: Some(rip.key.clone()),
            }),
            ..ClientSpec::default()
        };
        let mut settings = ClientSettings::default();
        let mut problems = Problems::default();
        apply(&spec, &mut settings, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            settings.signer.as_ref().unwrap().certname(),
            "rip.mcollective"
        );
        assert_eq!(settings.options().callerid, "choria=rip.mcollective");
        assert_eq!(settings.network().tls.unwrap().ca, Some(ca.cert.clone()));
        assert!(matches!(settings.auth, Auth::UserPassword { .. }));

        let mut bad = spec.clone();
        bad.tls.as_mut().unwrap().key = Some(other.key.clone());
        let mut problems = Problems::default();
        apply(&bad, &mut ClientSettings::default(), &mut problems);
        let text = format!("{problems:?}");
        assert!(
            text.contains("client.tls.key") && text.contains("does not match"),
            "{text}"
        );

        let mut insecure = spec;
        insecure.insecure = true;
        let mut settings = ClientSettings::default();
        apply(&insecure, &mut settings, &mut Problems::default());
        assert!(settings.signer.is_none());
        assert!(settings.tls.is_some());
    }
}
