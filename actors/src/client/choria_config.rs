//! A Choria client configuration file (`client.cfg`): the keys choir understands, so an
//! operator can point choir at the config they already have.
//!
//! The format is Choria's: one `key = value` per line, `#` starts a comment line. Read keys:
//!
//! | key | meaning |
//! |---|---|
//! | `plugin.choria.middleware_hosts` | NATS servers, `host:port[,host:port]` |
//! | `identity` | the sender id (`senderid`, `mc_sender`) |
//! | `main_collective`, `collectives` | the collective requests go to (`main_collective`, else the first of `collectives`) |
//! | `plugin.security.provider` | `file` or `puppet` |
//! | `plugin.security.file.certificate` / `.key` / `.ca` | the `file` provider's PEM files |
//! | `plugin.choria.ssldir` | the `puppet` provider's directory (`certs/<certname>.pem`, `private_keys/<certname>.pem`, `certs/ca.pem`) |
//! | `plugin.security.certname` | the certname (the `puppet` provider's file names) |
//! | `plugin.nats.user`, `plugin.nats.pass`, `plugin.nats.credentials` | NATS credentials |
//! | `plugin.choria.security.certname_whitelist`, `plugin.choria.security.privileged_users` | what a verifier accepts |
//!
//! Other keys are ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::protocol::security::{NamePatterns, SecurityError, SecurityPolicy, SigningIdentity};

/// The `file` provider's certificate key.
pub const FILE_CERTIFICATE: &str = "plugin.security.file.certificate";
/// The `file` provider's private key key.
pub const FILE_KEY: &str = "plugin.security.file.key";
/// The `file` provider's CA key.
pub const FILE_CA: &str = "plugin.security.file.ca";
/// The security provider key.
pub const PROVIDER: &str = "plugin.security.provider";
/// The `puppet` provider's directory key.
pub const SSLDIR: &str = "plugin.choria.ssldir";
/// The certname key.
pub const CERTNAME: &str = "plugin.security.certname";
/// The allowlist key.
pub const ALLOWLIST: &str = "plugin.choria.security.certname_whitelist";
/// The privileged users key.
pub const PRIVILEGED: &str = "plugin.choria.security.privileged_users";

/// Problems with a Choria config file; each names the file and, where there is one, the key.
#[derive(Debug, thiserror::Error)]
pub enum ChoriaConfigError {
    /// The file could not be read.
    #[error("cannot read Choria config {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A line that is neither a comment nor `key = value`.
    #[error("{}:{line}: expected `key = value`, got {text:?}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The line number (1-based).
        line: usize,
        /// The line.
        text: String,
    },
    /// A key with a value choir cannot use.
    #[error("{}: {key} = {value:?}: {message}", path.display())]
    Value {
        /// The file.
        path: PathBuf,
        /// The key.
        key: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        message: String,
    },
    /// Security material named by a key could not be loaded.
    #[error("{}: {key}", path.display())]
    Security {
        /// The file.
        path: PathBuf,
        /// The key whose file is at fault.
        key: &'static str,
        /// The problem.
        #[source]
        source: SecurityError,
    },
}

/// The certificate, key and CA files a config names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityFiles {
    /// The certificate (PEM).
    pub certificate: PathBuf,
    /// The private key (PEM).
    pub key: PathBuf,
    /// The CA (PEM), when named.
    pub ca: Option<PathBuf>,
}

/// A parsed Choria config file.
#[derive(Debug, Clone)]
pub struct ChoriaConfig {
    path: PathBuf,
    entries: BTreeMap<String, String>,
}

impl ChoriaConfig {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, ChoriaConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ChoriaConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses `text`, read from `path`. A later line overrides an earlier one.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ChoriaConfigError> {
        let mut entries = BTreeMap::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            match line.split_once('=') {
                Some((key, value)) if !key.trim().is_empty() => {
                    entries.insert(key.trim().to_owned(), value.trim().to_owned());
                }
                _ => {
                    return Err(ChoriaConfigError::Syntax {
                        path: path.to_owned(),
                        line: index + 1,
                        text: line.to_owned(),
                    })
                }
            }
        }
        Ok(Self {
            path: path.to_owned(),
            entries,
        })
    }

    /// The file this config came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The value of `key`, if set and not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn list(&self, key: &str) -> Vec<String> {
        self.get(key)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `identity`.
    pub fn identity(&self) -> Option<&str> {
        self.get("identity")
    }

    /// The collective requests go to: `main_collective`, else the first of `collectives`.
    pub fn main_collective(&self) -> Option<String> {
        self.get("main_collective")
            .map(str::to_owned)
            .or_else(|| self.list("collectives").into_iter().next())
    }

    /// `plugin.choria.middleware_hosts` as URLs (`host:port` becomes `nats://host:port`).
    pub fn middleware_urls(&self) -> Vec<String> {
        self.list("plugin.choria.middleware_hosts")
            .into_iter()
            .map(|h| {
                if h.contains("://") {
                    h
                } else {
                    format!("nats://{h}")
                }
            })
            .collect()
    }

    /// `plugin.nats.user` and `plugin.nats.pass`, when a user is set.
    pub fn nats_user(&self) -> Option<(String, String)> {
        let user = self.get("plugin.nats.user")?;
        Some((
            user.to_owned(),
            self.get("plugin.nats.pass").unwrap_or_default().to_owned(),
        ))
    }

    /// `plugin.nats.credentials`.
    pub fn nats_credentials(&self) -> Option<PathBuf> {
        self.get("plugin.nats.credentials").map(PathBuf::from)
    }

    /// The certificate, key and CA of the security provider: the `file` provider's three
    /// keys, or the `puppet` provider's files under `plugin.choria.ssldir` for the certname.
    /// `None` when the config names no security files.
    pub fn security_files(&self) -> Result<Option<SecurityFiles>, ChoriaConfigError> {
        let provider = self.get(PROVIDER);
        match provider {
            Some("puppet") => {
                let Some(ssldir) = self.get(SSLDIR) else {
                    return Ok(None);
                };
                let certname = self
                    .get(CERTNAME)
                    .or_else(|| self.identity())
                    .ok_or_else(|| ChoriaConfigError::Value {
                        path: self.path.clone(),
                        key: CERTNAME,
                        value: String::new(),
                        message: "the puppet provider needs a certname (or identity)".to_owned(),
                    })?;
                let dir = Path::new(ssldir);
                Ok(Some(SecurityFiles {
                    certificate: dir.join("certs").join(format!("{certname}.pem")),
                    key: dir.join("private_keys").join(format!("{certname}.pem")),
                    ca: Some(dir.join("certs").join("ca.pem")),
                }))
            }
            None | Some("file") => {
                let certificate = self.get(FILE_CERTIFICATE);
                let key = self.get(FILE_KEY);
                match (certificate, key) {
                    (Some(certificate), Some(key)) => Ok(Some(SecurityFiles {
                        certificate: PathBuf::from(certificate),
                        key: PathBuf::from(key),
                        ca: self.get(FILE_CA).map(PathBuf::from),
                    })),
                    (None, None) if provider.is_none() => Ok(None),
                    (c, _) => Err(ChoriaConfigError::Value {
                        path: self.path.clone(),
                        key: if c.is_none() {
                            FILE_CERTIFICATE
                        } else {
                            FILE_KEY
                        },
                        value: String::new(),
                        message: "the file provider needs a certificate and a key".to_owned(),
                    }),
                }
            }
            Some(other) => Err(ChoriaConfigError::Value {
                path: self.path.clone(),
                key: PROVIDER,
                value: other.to_owned(),
                message: "choir supports the file and puppet providers".to_owned(),
            }),
        }
    }

    /// The signing identity of the security files, loaded; errors name this file and the
    /// key whose file is at fault.
    pub fn signing_identity(&self) -> Result<Option<SigningIdentity>, ChoriaConfigError> {
        let Some(files) = self.security_files()? else {
            return Ok(None);
        };
        SigningIdentity::load(&files.certificate, &files.key)
            .map(Some)
            .map_err(|source| ChoriaConfigError::Security {
                path: self.path.clone(),
                key: key_at_fault(&source),
                source,
            })
    }

    /// The verifier policy: the CA of the security files and the allowlist and privileged
    /// users (Choria's defaults when unset). `None` without a CA.
    pub fn security_policy(&self) -> Result<Option<SecurityPolicy>, ChoriaConfigError> {
        let Some(ca) = self.security_files()?.and_then(|f| f.ca) else {
            return Ok(None);
        };
        let patterns = |key: &'static str, default: NamePatterns| match self.get(key) {
            Some(list) => {
                NamePatterns::parse(key, list).map_err(|source| ChoriaConfigError::Security {
                    path: self.path.clone(),
                    key,
                    source,
                })
            }
            None => Ok(default),
        };
        Ok(Some(SecurityPolicy {
            ca,
            allowlist: patterns(ALLOWLIST, NamePatterns::default_allowlist())?,
            privileged: patterns(PRIVILEGED, NamePatterns::default_privileged())?,
        }))
    }
}

/// Which config key names the file a loading error is about.
fn key_at_fault(error: &SecurityError) -> &'static str {
    match error {
        SecurityError::Read { what, .. } | SecurityError::NotPem { what, .. } => match *what {
            "private key" => FILE_KEY,
            "CA" => FILE_CA,
            _ => FILE_CERTIFICATE,
        },
        SecurityError::BadKey { .. }
        | SecurityError::KeyMismatch { .. }
        | SecurityError::Sign { .. } => FILE_KEY,
        SecurityError::BadCa { .. } => FILE_CA,
        _ => FILE_CERTIFICATE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ChoriaConfig {
        ChoriaConfig::parse(Path::new("client.cfg"), text).unwrap()
    }

    #[test]
    fn reads_the_keys_choria_clients_use() {
        let c = parse(
            "# a comment\n\
             identity = me.example.net\n\
             collectives = mcollective, other\n\
             plugin.choria.middleware_hosts = a:4222, tls://b:4223\n\
             plugin.security.provider = file\n\
             plugin.security.file.certificate = /etc/c.pem\n\
             plugin.security.file.key = /etc/k.pem\n\
             plugin.security.file.ca = /etc/ca.pem\n\
             plugin.nats.user = u\n\
             plugin.nats.pass = p=q\n",
        );
        assert_eq!(c.identity(), Some("me.example.net"));
        assert_eq!(c.main_collective().as_deref(), Some("mcollective"));
        assert_eq!(c.middleware_urls(), ["nats://a:4222", "tls://b:4223"]);
        assert_eq!(c.nats_user(), Some(("u".into(), "p=q".into())));
        assert_eq!(
            c.security_files().unwrap(),
            Some(SecurityFiles {
                certificate: "/etc/c.pem".into(),
                key: "/etc/k.pem".into(),
                ca: Some("/etc/ca.pem".into()),
            })
        );
    }

    #[test]
    fn puppet_provider_derives_files_from_ssldir() {
        let c = parse(
            "plugin.security.provider = puppet\nplugin.choria.ssldir = /ssl\n\
             plugin.security.certname = rip.mcollective\nmain_collective = x\n",
        );
        assert_eq!(c.main_collective().as_deref(), Some("x"));
        let f = c.security_files().unwrap().unwrap();
        assert_eq!(f.certificate, Path::new("/ssl/certs/rip.mcollective.pem"));
        assert_eq!(f.key, Path::new("/ssl/private_keys/rip.mcollective.pem"));
        assert_eq!(f.ca.as_deref(), Some(Path::new("/ssl/certs/ca.pem")));
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = ChoriaConfig::parse(Path::new("client.cfg"), "a = b\nnonsense\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "client.cfg:2: expected `key = value`, got \"nonsense\""
        );
        let e = parse("plugin.security.provider = pkcs11\n")
            .security_files()
            .unwrap_err();
        assert!(e.to_string().contains("plugin.security.provider"), "{e}");
        let e = parse("plugin.security.provider = file\nplugin.security.file.certificate = c\n")
            .security_files()
            .unwrap_err();
        assert!(e.to_string().contains(FILE_KEY), "{e}");
        let e = parse("plugin.security.file.certificate = /nonexistent/c.pem\nplugin.security.file.key = /nonexistent/k.pem\n")
            .signing_identity()
            .unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("client.cfg") && m.contains(FILE_CERTIFICATE),
            "{m}"
        );
        let ChoriaConfigError::Security { source, .. } = e else {
            panic!("{e:?}")
        };
        assert!(source.to_string().contains("/nonexistent/c.pem"));
    }

    #[test]
    fn no_security_keys_means_insecure() {
        assert!(parse("identity = x\n").security_files().unwrap().is_none());
        assert!(parse("identity = x\n")
            .signing_identity()
            .unwrap()
            .is_none());
    }
}
