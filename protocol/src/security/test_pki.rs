//! A throwaway PKI made with the `openssl` command, for tests (std only, so integration tests
//! can include this file too).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

/// How a private key file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFormat {
    /// `BEGIN RSA PRIVATE KEY` (what Puppet and Choria usually have).
    Pkcs1,
    /// `BEGIN PRIVATE KEY`.
    Pkcs8,
}

/// A certificate to issue.
#[derive(Debug, Clone)]
pub struct CertSpec<'a> {
    /// Subject common name.
    pub cn: &'a str,
    /// subjectAltName entries, e.g. `DNS:localhost`, `IP:127.0.0.1`.
    pub san: Vec<String>,
    /// extendedKeyUsage value.
    pub eku: &'a str,
    /// Key file format.
    pub key: KeyFormat,
    /// Issue an already expired certificate (January 2020).
    pub expired: bool,
}

impl<'a> CertSpec<'a> {
    /// A client certificate for `cn` (PKCS#1 key, valid 30 days).
    pub fn client(cn: &'a str) -> Self {
        Self {
            cn,
            san: vec![format!("DNS:{cn}")],
            eku: "clientAuth",
            key: KeyFormat::Pkcs1,
            expired: false,
        }
    }

    /// A server certificate for 127.0.0.1 / localhost.
    pub fn server(cn: &'a str) -> Self {
        Self {
            cn,
            san: vec!["DNS:localhost".into(), "IP:127.0.0.1".into()],
            eku: "serverAuth,clientAuth",
            key: KeyFormat::Pkcs8,
            expired: false,
        }
    }
}

/// An issued certificate and its key.
#[derive(Debug, Clone)]
pub struct Issued {
    /// PEM certificate.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// A CA in a directory.
#[derive(Debug, Clone)]
pub struct TestCa {
    dir: PathBuf,
    name: String,
    /// The CA certificate (PEM).
    pub cert: PathBuf,
    key: PathBuf,
}

static SERIAL: AtomicU64 = AtomicU64::new(0x1000);

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestCa {
    /// A new self-signed CA `name` with its files in `dir`.
    pub fn new(dir: &Path, name: &str) -> Self {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                key.to_str().unwrap(),
                "-out",
                cert.to_str().unwrap(),
                "-days",
                "30",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        Self {
            dir: dir.to_owned(),
            name: name.to_owned(),
            cert,
            key,
        }
    }

    /// Issues `spec`; files are named after the CA and the common name.
    pub fn issue(&self, spec: &CertSpec<'_>) -> Issued {
        let dir = &self.dir;
        let stem = format!(
            "{}-{}{}",
            self.name,
            spec.cn,
            if spec.expired { "-expired" } else { "" }
        );
        let key = dir.join(format!("{stem}.key"));
        let cert = dir.join(format!("{stem}.pem"));
        let csr = dir.join(format!("{stem}.csr"));
        let ext = dir.join(format!("{stem}.ext"));
        let k = key.to_str().unwrap();
        match spec.key {
            KeyFormat::Pkcs1 => openssl(dir, &["genrsa", "-traditional", "-out", k, "2048"]),
            KeyFormat::Pkcs8 => openssl(
                dir,
                &[
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                    "-out",
                    k,
                ],
            ),
        }
        openssl(
            dir,
            &[
                "req",
                "-new",
                "-key",
                k,
                "-subj",
                &format!("/CN={}", spec.cn),
                "-out",
                csr.to_str().unwrap(),
            ],
        );
        let mut ext_text = format!(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage={}\n",
            spec.eku
        );
        if !spec.san.is_empty() {
            ext_text.push_str(&format!("subjectAltName={}\n", spec.san.join(",")));
        }
        std::fs::write(&ext, ext_text).unwrap();
        let serial = format!("{:X}", SERIAL.fetch_add(1, Ordering::Relaxed));
        if spec.expired {
            let db = dir.join(format!("{stem}.index"));
            std::fs::write(&db, "").unwrap();
            let serial_file = dir.join(format!("{stem}.serial"));
            std::fs::write(&serial_file, format!("{serial}\n")).unwrap();
            let cnf = dir.join(format!("{stem}.cnf"));
            std::fs::write(
                &cnf,
                format!(
                    "[ca]\ndefault_ca = d\n[d]\ndatabase = {}\nnew_certs_dir = {}\nserial = {}\n\
                     default_md = sha256\npolicy = p\nunique_subject = no\n[p]\ncommonName = supplied\n",
                    db.display(),
                    dir.display(),
                    serial_file.display()
                ),
            )
            .unwrap();
            openssl(
                dir,
                &[
                    "ca",
                    "-batch",
                    "-notext",
                    "-config",
                    cnf.to_str().unwrap(),
                    "-cert",
                    self.cert.to_str().unwrap(),
                    "-keyfile",
                    self.key.to_str().unwrap(),
                    "-startdate",
                    "20200101000000Z",
                    "-enddate",
                    "20200201000000Z",
                    "-extfile",
                    ext.to_str().unwrap(),
                    "-in",
                    csr.to_str().unwrap(),
                    "-out",
                    cert.to_str().unwrap(),
                ],
            );
        } else {
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    csr.to_str().unwrap(),
                    "-CA",
                    self.cert.to_str().unwrap(),
                    "-CAkey",
                    self.key.to_str().unwrap(),
                    "-set_serial",
                    &format!("0x{serial}"),
                    "-days",
                    "30",
                    "-sha256",
                    "-extfile",
                    ext.to_str().unwrap(),
                    "-out",
                    cert.to_str().unwrap(),
                ],
            );
        }
        Issued { cert, key }
    }
}
