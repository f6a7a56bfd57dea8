//! Connection-security flags shared by the client commands (`ping`, `rpc`, `measure`) and
//! `choir emulate` (where only `--tls` turns TLS on, as in the original emulator): the
//! same model as `[networks.*]` (TLS, a creds file, an nkey, user/password, a token), turned
//! into [`NetworkSettings`] so every connection goes through one code path.

use std::path::PathBuf;

use choir_actors::connection::{Auth, NetworkSettings, TlsSettings};

/// A bad security flag: names the flag and its value.
#[derive(Debug, thiserror::Error)]
#[error("{flag} {value:?}: {message}")]
pub struct SecurityFlagError {
    /// The flag.
    pub flag: &'static str,
    /// Its value.
    pub value: String,
    /// What is wrong.
    pub message: String,
}

/// TLS and credentials flags.
// The field docs are clap help text: `<its common name>` is a placeholder there, not HTML.
#[allow(rustdoc::invalid_html_tags)]
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SecurityArgs {
    /// Connect with TLS (the client commands also turn it on with --ca or with a --config that
    /// names certificates; `choir emulate` only with --tls).
    #[arg(long)]
    pub tls: bool,
    /// CA bundle (PEM) that verifies the servers' TLS certificates.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM), with --key: the TLS client certificate, and for the client
    /// commands the certificate requests are signed with (callerid = choria=<its common name>).
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM, PKCS#8 or PKCS#1 "RSA PRIVATE KEY") of --cert.
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// NATS credentials file (.creds: JWT and nkey seed).
    #[arg(long, conflicts_with_all = ["nkey", "user", "token"])]
    pub credentials: Option<PathBuf>,
    /// File holding a NATS user nkey seed (SU…).
    #[arg(long, conflicts_with_all = ["user", "token"])]
    pub nkey: Option<PathBuf>,
    /// NATS user name, with --password.
    #[arg(long, requires = "password", conflicts_with = "token")]
    pub user: Option<String>,
    /// NATS password, with --user (or the CHOIR_NATS_PASSWORD environment variable).
    #[arg(
        long,
        env = "CHOIR_NATS_PASSWORD",
        hide_env_values = true,
        requires = "user"
    )]
    pub password: Option<String>,
    /// NATS bearer token (or the CHOIR_NATS_TOKEN environment variable).
    #[arg(long, env = "CHOIR_NATS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl SecurityArgs {
    /// Whether any credentials flag was given.
    pub fn has_auth(&self) -> bool {
        self.credentials.is_some()
            || self.nkey.is_some()
            || self.user.is_some()
            || self.token.is_some()
    }

    /// The credentials these flags give (`Auth::None` without any).
    pub fn auth(&self) -> Result<Auth, SecurityFlagError> {
        if let Some(path) = &self.credentials {
            return Ok(Auth::CredentialsFile(path.clone()));
        }
        if let Some(path) = &self.nkey {
            let flag_error = |message: String| SecurityFlagError {
                flag: "--nkey",
                value: path.display().to_string(),
                message,
            };
            let seed = std::fs::read_to_string(path)
                .map_err(|e| flag_error(format!("cannot read the seed file: {e}")))?;
            let seed = seed.trim();
            if !seed.starts_with("SU") {
                return Err(flag_error("a user nkey seed starts with SU".to_owned()));
            }
            return Ok(Auth::NkeySeed(seed.to_owned()));
        }
        if let (Some(user), Some(password)) = (&self.user, &self.password) {
            return Ok(Auth::UserPassword {
                user: user.clone(),
                password: password.clone(),
            });
        }
        if let Some(token) = &self.token {
            return Ok(Auth::Token(token.clone()));
        }
        Ok(Auth::None)
    }

    /// The TLS settings these flags give: `--tls`, or implied by `--ca`.
    pub fn tls(&self) -> Option<TlsSettings> {
        (self.tls || self.ca.is_some()).then(|| TlsSettings {
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
        })
    }

    /// Applies the flags to `settings`: given flags override what is there.
    pub fn apply(&self, settings: &mut NetworkSettings) -> Result<(), SecurityFlagError> {
        if self.has_auth() {
            settings.auth = self.auth()?;
        }
        if let Some(tls) = self.tls() {
            let base = settings.tls.take().unwrap_or_default();
            settings.tls = Some(TlsSettings {
                ca: tls.ca.or(base.ca),
                cert: tls.cert.or(base.cert),
                key: tls.key.or(base.key),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_network_settings() {
        let dir = tempfile::tempdir().unwrap();
        let seed = dir.path().join("user.nk");
        std::fs::write(&seed, "SUAEXAMPLE\n").unwrap();
        let args = SecurityArgs {
            nkey: Some(seed.clone()),
            ca: Some("ca.pem".into()),
            ..SecurityArgs::default()
        };
        let mut settings = NetworkSettings::new("client", vec!["nats://127.0.0.1:4222".into()]);
        args.apply(&mut settings).unwrap();
        assert_eq!(settings.auth, Auth::NkeySeed("SUAEXAMPLE".into()));
        assert_eq!(settings.tls.unwrap().ca, Some("ca.pem".into()));

        std::fs::write(&seed, "SAnotauser").unwrap();
        let e = args.auth().unwrap_err().to_string();
        assert!(e.contains("--nkey") && e.contains("user.nk"), "{e}");

        let args = SecurityArgs {
            user: Some("u".into()),
            password: Some("p".into()),
            ..SecurityArgs::default()
        };
        assert_eq!(
            args.auth().unwrap(),
            Auth::UserPassword {
                user: "u".into(),
                password: "p".into()
            }
        );
        assert!(args.tls().is_none());
    }
}
