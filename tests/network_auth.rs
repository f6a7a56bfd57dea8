//! `[networks.<name>]` logins against servers that require them: a token, a user and password,
//! an nkey, a `.creds` file (decentralised JWT auth: operator, account and user made here),
//! and TLS with the server verified against a CA and a client certificate the server
//! verifies. Each test runs the real `choir` binary with one network that logs in right and
//! one that gets it wrong on the same server: the first connects, the second keeps failing,
//! counted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::http::metric_value;
use common::nats::free_port;
use common::{poll_until, ChoirNode, NatsServer};

const WAIT: Duration = Duration::from_secs(30);

fn metric(node: &ChoirNode, name: &str, network: &str) -> f64 {
    let (_, text) = node.get("/metrics").unwrap_or_default();
    metric_value(&text, name, &[("network", network)]).unwrap_or(0.0)
}

/// Runs a node with networks `good` and `bad` (their TOML bodies after `urls`) on `server`,
/// and asserts `good` connects while `bad` fails at least twice and never connects.
fn assert_logs_in(url: &str, good: &str, bad: &str) {
    let node = ChoirNode::start(&format!(
        "[networks.good]\nurls = [\"{url}\"]\nmax_backoff = \"200ms\"\n{good}\n\n\
         [networks.bad]\nurls = [\"{url}\"]\nmax_backoff = \"200ms\"\n{bad}\n"
    ));
    assert!(
        poll_until(WAIT, || metric(&node, "choir_network_connected", "good")
            == 1.0
            && metric(&node, "choir_network_connect_failures_total", "bad")
                >= 2.0),
        "good connected {}, bad failures {}; log:\n{}",
        metric(&node, "choir_network_connected", "good"),
        metric(&node, "choir_network_connect_failures_total", "bad"),
        node.log()
    );
    assert_eq!(metric(&node, "choir_network_connected", "bad"), 0.0);
    let (_, health) = node.get("/healthz").unwrap();
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["networks"]["good"], "connected");
    assert_eq!(health["networks"]["bad"], "disconnected");
}

#[test]
fn a_network_logs_in_with_a_token() {
    let server = NatsServer::start_with(free_port(), &["--auth", "s3cret-token"]);
    assert_logs_in(
        &server.url(),
        "token = \"s3cret-token\"",
        "token = \"wrong-token\"",
    );
}

#[test]
fn a_network_logs_in_with_user_and_password() {
    let server = NatsServer::start_with(free_port(), &["--user", "choir", "--pass", "s3cret"]);
    assert_logs_in(
        &server.url(),
        "user = \"choir\"\npassword = \"s3cret\"",
        "user = \"choir\"\npassword = \"wrong\"",
    );
}

#[test]
fn a_network_logs_in_with_an_nkey() {
    let user = nkeys::KeyPair::new_user();
    let stranger = nkeys::KeyPair::new_user();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nkey.conf");
    std::fs::write(
        &conf,
        format!(
            "authorization {{ users = [ {{ nkey: \"{}\" }} ] }}\n",
            user.public_key()
        ),
    )
    .unwrap();
    let server = NatsServer::start_with(free_port(), &["-c", conf.to_str().unwrap()]);
    assert_logs_in(
        &server.url(),
        &format!("nkey_seed = \"{}\"", user.seed().unwrap()),
        &format!("nkey_seed = \"{}\"", stranger.seed().unwrap()),
    );
}

/// Base64url without padding, as JWTs use it.
fn b64url(bytes: &[u8]) -> String {
    choir::actors::protocol::encode_base64(bytes)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

/// A NATS JWT (v2) for `subject` with `nats` claims, issued and signed by `issuer`.
fn jwt(issuer: &nkeys::KeyPair, subject: &str, name: &str, nats: serde_json::Value) -> String {
    let header = b64url(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "jti": format!("{:X}", now ^ u64::from(name.len() as u32)),
        "iat": now,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let body = b64url(claims.to_string().as_bytes());
    let signed = format!("{header}.{body}");
    let signature = issuer.sign(signed.as_bytes()).unwrap();
    format!("{signed}.{}", b64url(&signature))
}

/// A `.creds` file for a user JWT and its seed.
fn creds(path: &Path, jwt: &str, seed: &str) {
    std::fs::write(
        path,
        format!(
            "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
             ************************* IMPORTANT *************************\n\
             NKEY Seed printed below can be used to sign and prove identity.\n\n\
             -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
        ),
    )
    .unwrap();
}

/// Decentralised auth: an operator and an account (preloaded into the server's memory
/// resolver) and a user JWT issued by the account, in a `.creds` file. The wrong `.creds`
/// holds a user issued by an account the server does not know.
#[test]
fn a_network_logs_in_with_a_creds_file() {
    let operator = nkeys::KeyPair::new_operator();
    let account = nkeys::KeyPair::new_account();
    let unknown_account = nkeys::KeyPair::new_account();
    let user = nkeys::KeyPair::new_user();
    let operator_jwt = jwt(
        &operator,
        &operator.public_key(),
        "test-operator",
        serde_json::json!({"type": "operator", "version": 2}),
    );
    let unlimited = serde_json::json!({
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
        "wildcards": true, "conn": -1, "leaf": -1,
    });
    let account_jwt = jwt(
        &operator,
        &account.public_key(),
        "test-account",
        serde_json::json!({"limits": unlimited, "type": "account", "version": 2}),
    );
    let user_claims = serde_json::json!({
        "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
        "type": "user", "version": 2,
    });
    let user_jwt = jwt(&account, &user.public_key(), "choir", user_claims.clone());
    let stranger_jwt = jwt(&unknown_account, &user.public_key(), "choir", user_claims);

    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("operator.conf");
    std::fs::write(
        &conf,
        format!(
            "operator: \"{operator_jwt}\"\nresolver: MEMORY\n\
             resolver_preload: {{\n  {}: \"{account_jwt}\"\n}}\n",
            account.public_key()
        ),
    )
    .unwrap();
    let (good, bad) = (dir.path().join("good.creds"), dir.path().join("bad.creds"));
    let seed = user.seed().unwrap();
    creds(&good, &user_jwt, &seed);
    creds(&bad, &stranger_jwt, &seed);
    // No JetStream here: the accounts carry no JetStream limits.
    let port = free_port();
    let server = OperatorServer::start(port, &conf);
    assert_logs_in(
        &format!("nats://127.0.0.1:{port}"),
        &format!("credentials = {:?}", good.display().to_string()),
        &format!("credentials = {:?}", bad.display().to_string()),
    );
    drop(server);
}

/// A nats-server in operator mode (no JetStream), killed on drop.
struct OperatorServer(std::process::Child);

impl OperatorServer {
    fn start(port: u16, conf: &Path) -> Self {
        let child = Command::new(common::nats::binary())
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-c"])
            .arg(conf)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let server = Self(child);
        assert!(
            poll_until(Duration::from_secs(10), || std::net::TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "operator-mode nats-server did not start"
        );
        server
    }
}

impl Drop for OperatorServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs openssl in `dir`, failing the test on an error.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A key and a certificate `<name>.pem` signed by `ca` (EC P-256) with extension `ext`.
fn signed_cert(dir: &Path, name: &str, ca: &str, ext: &str) -> (PathBuf, PathBuf) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let (key, csr, pem, cnf) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.cnf"),
    );
    let mut req = vec!["req", "-subj"];
    let subject = format!("/CN={name}");
    req.push(&subject);
    req.extend(ec);
    req.extend(["-keyout", &key, "-out", &csr]);
    openssl(dir, &req);
    std::fs::write(dir.join(&cnf), ext).unwrap();
    let ca_pem = format!("{ca}.pem");
    let ca_key = format!("{ca}.key");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-days",
            "1",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-extfile",
            &cnf,
            "-out",
            &pem,
        ],
    );
    (dir.join(pem), dir.join(key))
}

/// A self-signed CA `<name>.pem` / `<name>.key`.
fn ca(dir: &Path, name: &str) -> PathBuf {
    let subject = format!("/CN={name}");
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-days",
            "1",
            "-subj",
            &subject,
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &pem,
        ],
    );
    dir.join(pem)
}

/// Mutual TLS: the server's certificate is checked against `tls.ca`, and the server accepts
/// only a client certificate signed by its CA (`tls.cert`/`tls.key`). The wrong network has
/// the CA but a client certificate from another CA.
#[test]
fn a_network_connects_over_tls_verifying_the_server_and_presenting_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca_pem = ca(dir.path(), "ca");
    let other_ca = ca(dir.path(), "other-ca");
    let (server_pem, server_key) = signed_cert(
        dir.path(),
        "server",
        "ca",
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    );
    let client_ext = "extendedKeyUsage=clientAuth\n";
    let (client_pem, client_key) = signed_cert(dir.path(), "client", "ca", client_ext);
    let (rogue_pem, rogue_key) = signed_cert(dir.path(), "rogue", "other-ca", client_ext);
    assert!(other_ca.is_file());
    let server = NatsServer::start_with(
        free_port(),
        &[
            "--tlsverify",
            "--tlscert",
            server_pem.to_str().unwrap(),
            "--tlskey",
            server_key.to_str().unwrap(),
            "--tlscacert",
            ca_pem.to_str().unwrap(),
        ],
    );
    let tls = |cert: &Path, key: &Path| {
        format!(
            "\n[networks.{{name}}.tls]\nca = {:?}\ncert = {:?}\nkey = {:?}",
            ca_pem.display().to_string(),
            cert.display().to_string(),
            key.display().to_string()
        )
    };
    let url = format!("tls://127.0.0.1:{}", server.port);
    assert_logs_in(
        &url,
        &tls(&client_pem, &client_key).replace("{name}", "good"),
        &tls(&rogue_pem, &rogue_key).replace("{name}", "bad"),
    );
}
