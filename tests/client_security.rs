//! The client commands (`choir ping`, `choir rpc`, `choir measure`) on a secured Choria network: a TLS-only
//! nats-server that verifies client certificates (`tls { verify: true }`), requests signed
//! with the client certificate (checked here with choir's verifier), the same settings read
//! from a Choria client config (`--config client.cfg`), NATS user/password, `.creds` and
//! nkey flags, and bad certificate/key input named in the error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "client/cli.rs"]
mod cli;
mod common;
#[path = "../protocol/src/security/test_pki.rs"]
mod pki;

use std::path::Path;
use std::time::Duration;

use choir::actors::connection::{Auth, TlsSettings};
use choir::actors::emulator::{EmulatorMetrics, Fleet, FleetSpec};
use choir::actors::protocol::security::{SecurityPolicy, Verifier};
use choir::actors::protocol::{decode_request, unix_now};
use cli::choir;
use common::nats::free_port;
use common::NatsServer;
use futures::StreamExt as _;
use pki::{CertSpec, Issued, TestCa};

const N: usize = 5;
const WAIT: Duration = Duration::from_secs(60);

/// A CA, a server/daemon certificate, a client certificate (`rip.mcollective`) and a
/// nats-server on 127.0.0.1 that only takes TLS connections with a client certificate.
struct Secured {
    dir: tempfile::TempDir,
    ca: TestCa,
    server_cert: Issued,
    client: Issued,
    server: NatsServer,
}

fn secured() -> Secured {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca");
    let server_cert = ca.issue(&CertSpec::server("nats.choir.test"));
    let client = ca.issue(&CertSpec::client("rip.mcollective"));
    let conf = dir.path().join("tls.conf");
    std::fs::write(
        &conf,
        format!(
            "tls {{\n  cert_file: {:?}\n  key_file: {:?}\n  ca_file: {:?}\n  verify: true\n}}\n",
            server_cert.cert, server_cert.key, ca.cert
        ),
    )
    .unwrap();
    let server = NatsServer::start_with(free_port(), &["-c", conf.to_str().unwrap()]);
    Secured {
        dir,
        ca,
        server_cert,
        client,
        server,
    }
}

impl Secured {
    /// `N` emulated daemons connected with the server certificate as their client certificate.
    async fn fleet(&self, name: &str) -> Fleet {
        let mut spec = FleetSpec::new(name, N, vec![self.server.url()]);
        spec.arbiters = std::num::NonZeroUsize::new(1);
        spec.network.tls = Some(TlsSettings {
            ca: Some(self.ca.cert.clone()),
            cert: Some(self.server_cert.cert.clone()),
            key: Some(self.server_cert.key.clone()),
        });
        let fleet = Fleet::start(spec, EmulatorMetrics::unregistered()).unwrap();
        assert!(
            fleet.wait_started(WAIT, |_| {}).await,
            "daemons did not start: {:?}",
            fleet.progress()
        );
        fleet
    }

    /// A raw client (TLS with the client certificate) subscribed to `subject`.
    async fn spy(&self, subject: &str) -> async_nats::Subscriber {
        let nats = async_nats::ConnectOptions::new()
            .require_tls(true)
            .add_root_certificates(self.ca.cert.clone())
            .add_client_certificate(self.client.cert.clone(), self.client.key.clone())
            .connect(self.server.url())
            .await
            .unwrap();
        let sub = nats.subscribe(subject.to_owned()).await.unwrap();
        nats.flush().await.unwrap();
        sub
    }

    fn flags(&self) -> Vec<String> {
        vec![
            "-s".into(),
            self.server.url(),
            "--tls".into(),
            "--ca".into(),
            path(&self.ca.cert),
            "--cert".into(),
            path(&self.client.cert),
            "--key".into(),
            path(&self.client.key),
        ]
    }
}

fn path(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

fn run(args: Vec<String>) -> cli::Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    choir(&args, WAIT)
}

/// Asserts that `message` is a request signed by `rip.mcollective` that verifies.
fn assert_signed(secured: &Secured, message: &async_nats::Message) {
    let decoded = decode_request(&message.payload, unix_now()).unwrap();
    assert_eq!(decoded.request.envelope.callerid, "choria=rip.mcollective");
    assert_ne!(decoded.secure.signature, "insecure");
    let verifier = Verifier::new(&SecurityPolicy::with_defaults(&secured.ca.cert)).unwrap();
    let verdict = verifier.verify(&decoded.secure, &decoded.request.envelope.callerid);
    assert!(verdict.is_trusted(), "{verdict:?}");
}

#[actix_rt::test]
async fn ping_rpc_and_measure_work_against_a_tls_only_server_with_client_certificates() {
    let secured = secured();
    let fleet = secured.fleet("tls").await;
    let mut spy = secured.spy("mcollective.broadcast.agent.>").await;

    let mut args = vec!["ping".to_owned()];
    args.extend(secured.flags());
    args.extend(["--expect".into(), N.to_string(), "-t".into(), "20s".into()]);
    let out = run(args);
    assert!(out.status.success(), "ping failed: {}", out.stderr);
    for i in 0..N {
        assert!(out.stdout.contains(&format!("tls-{i}")), "{}", out.stdout);
    }
    let request = tokio::time::timeout(WAIT, spy.next())
        .await
        .unwrap()
        .unwrap();
    assert_signed(&secured, &request);

    let mut args = vec!["rpc".to_owned(), "rpcutil".into(), "ping".into()];
    args.extend(secured.flags());
    args.extend(["--expect".into(), N.to_string(), "--json".into()]);
    let out = run(args);
    assert!(out.status.success(), "rpc failed: {}", out.stderr);
    for i in 0..N {
        assert!(out.stdout.contains(&format!("tls-{i}")), "{}", out.stdout);
    }

    // choir measure 2 N: two signed RPCs, every reply counted, none failed.
    let report = secured.dir.path().join("report");
    let mut args = vec!["measure".to_owned(), "2".into(), N.to_string()];
    args.extend(secured.flags());
    args.extend(["--out".into(), path(&report)]);
    let out = run(args);
    assert!(out.status.success(), "measure failed: {}", out.stderr);
    let all_row = out
        .stdout
        .lines()
        .find(|l| l.starts_with("all "))
        .expect("summary row");
    let cells: Vec<&str> = all_row.split_whitespace().collect();
    assert_eq!(cells[1], (2 * N).to_string(), "{all_row}");
    assert_eq!(&cells[2..4], ["0", "0"], "{all_row}");
    fleet.stop();
}

#[actix_rt::test]
async fn ping_reads_a_choria_client_config() {
    let secured = secured();
    let fleet = secured.fleet("cfg").await;
    let mut spy = secured.spy("mcollective.broadcast.agent.>").await;
    let cfg = secured.dir.path().join("client.cfg");
    std::fs::write(
        &cfg,
        format!(
            "# a Choria client config\nidentity = admin.example.net\nmain_collective = mcollective\n\
             plugin.choria.middleware_hosts = 127.0.0.1:{}\nplugin.security.provider = file\n\
             plugin.security.file.certificate = {}\nplugin.security.file.key = {}\n\
             plugin.security.file.ca = {}\n",
            secured.server.port,
            path(&secured.client.cert),
            path(&secured.client.key),
            path(&secured.ca.cert)
        ),
    )
    .unwrap();
    let out = run(vec![
        "ping".into(),
        "--config".into(),
        path(&cfg),
        "--expect".into(),
        N.to_string(),
        "-t".into(),
        "20s".into(),
    ]);
    assert!(out.status.success(), "ping failed: {}", out.stderr);
    for i in 0..N {
        assert!(out.stdout.contains(&format!("cfg-{i}")), "{}", out.stdout);
    }
    let request = tokio::time::timeout(WAIT, spy.next())
        .await
        .unwrap()
        .unwrap();
    assert_signed(&secured, &request);
    let decoded = decode_request(&request.payload, unix_now()).unwrap();
    assert_eq!(decoded.request.envelope.senderid, "admin.example.net");
    fleet.stop();
}

#[test]
fn a_client_without_a_certificate_is_refused_by_a_verifying_server() {
    let secured = secured();
    let out = run(vec![
        "ping".into(),
        "-s".into(),
        secured.server.url(),
        "--ca".into(),
        path(&secured.ca.cert),
        "-t".into(),
        "1s".into(),
    ]);
    assert!(!out.status.success());
    assert!(out.stderr.contains("connect to"), "{}", out.stderr);
}

#[test]
fn bad_certificate_and_key_files_are_named() {
    let secured = secured();
    let missing = secured.dir.path().join("missing.key");
    let mut args = vec!["ping".to_owned()];
    args.extend(secured.flags());
    let at = args.iter().position(|a| a == "--key").unwrap();
    args[at + 1] = path(&missing);
    let out = run(args);
    assert!(!out.status.success());
    assert!(out.stderr.contains("missing.key"), "{}", out.stderr);

    // A key that does not belong to the certificate, named with the config key.
    let other = secured.ca.issue(&CertSpec::client("other.mcollective"));
    let cfg = secured.dir.path().join("client.cfg");
    std::fs::write(
        &cfg,
        format!(
            "plugin.choria.middleware_hosts = 127.0.0.1:{}\nplugin.security.provider = file\n\
             plugin.security.file.certificate = {}\nplugin.security.file.key = {}\n",
            secured.server.port,
            path(&secured.client.cert),
            path(&other.key)
        ),
    )
    .unwrap();
    let out = run(vec!["ping".into(), "--config".into(), path(&cfg)]);
    assert!(!out.status.success());
    assert!(out.stderr.contains("client.cfg"), "{}", out.stderr);
    assert!(
        out.stderr.contains("plugin.security.file.key"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("does not match"), "{}", out.stderr);

    // A PEM that is not a certificate.
    let mut args = vec!["ping".to_owned()];
    args.extend(secured.flags());
    let at = args.iter().position(|a| a == "--cert").unwrap();
    args[at + 1] = path(&secured.client.key);
    let out = run(args);
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("is not a PEM certificate"),
        "{}",
        out.stderr
    );
}

#[actix_rt::test]
async fn ping_logs_in_with_user_and_password_flags() {
    let server = NatsServer::start_with(free_port(), &["--user", "ops", "--pass", "s3cret"]);
    let mut spec = FleetSpec::new("auth", N, vec![server.url()]);
    spec.arbiters = std::num::NonZeroUsize::new(1);
    spec.network.auth = Auth::UserPassword {
        user: "ops".into(),
        password: "s3cret".into(),
    };
    let fleet = Fleet::start(spec, EmulatorMetrics::unregistered()).unwrap();
    assert!(fleet.wait_started(WAIT, |_| {}).await);
    let base = vec![
        "ping".to_owned(),
        "-s".into(),
        server.url(),
        "--expect".into(),
        N.to_string(),
        "-t".into(),
        "20s".into(),
    ];
    let mut args = base.clone();
    args.extend([
        "--user".into(),
        "ops".into(),
        "--password".into(),
        "s3cret".into(),
    ]);
    let out = run(args);
    assert!(out.status.success(), "ping failed: {}", out.stderr);
    assert!(out.stdout.contains("auth-0"), "{}", out.stdout);
    // Without the flags the server refuses the client.
    let out = run(base);
    assert!(!out.status.success());
    fleet.stop();
}

#[actix_rt::test]
async fn ping_logs_in_with_a_creds_file_and_with_an_nkey() {
    // A server in operator mode that only takes the user of a .creds file.
    let dir = tempfile::tempdir().unwrap();
    let (conf, creds) = common::creds::operator_setup(dir.path());
    let server = NatsServer::start_with(free_port(), &["-c", conf.to_str().unwrap()]);
    let mut spec = FleetSpec::new("creds", N, vec![server.url()]);
    spec.arbiters = std::num::NonZeroUsize::new(1);
    spec.network.auth = Auth::CredentialsFile(creds.clone());
    let fleet = Fleet::start(spec, EmulatorMetrics::unregistered()).unwrap();
    assert!(fleet.wait_started(WAIT, |_| {}).await);
    let base = vec![
        "ping".to_owned(),
        "-s".into(),
        server.url(),
        "--expect".into(),
        N.to_string(),
        "-t".into(),
        "20s".into(),
    ];
    let mut args = base.clone();
    args.extend(["--credentials".into(), path(&creds)]);
    let out = run(args);
    assert!(out.status.success(), "ping failed: {}", out.stderr);
    assert!(out.stdout.contains("creds-0"), "{}", out.stdout);
    let out = run(base);
    assert!(!out.status.success(), "an anonymous client got in");
    fleet.stop();

    // A server with an nkey user: --nkey names the seed file.
    let user = nkeys::KeyPair::new_user();
    let conf = dir.path().join("nkey.conf");
    std::fs::write(
        &conf,
        format!(
            "authorization {{ users = [ {{ nkey: \"{}\" }} ] }}\n",
            user.public_key()
        ),
    )
    .unwrap();
    let seed = dir.path().join("user.nk");
    std::fs::write(&seed, user.seed().unwrap()).unwrap();
    let server = NatsServer::start_with(free_port(), &["-c", conf.to_str().unwrap()]);
    let mut spec = FleetSpec::new("nkey", N, vec![server.url()]);
    spec.arbiters = std::num::NonZeroUsize::new(1);
    spec.network.auth = Auth::NkeySeed(user.seed().unwrap());
    let fleet = Fleet::start(spec, EmulatorMetrics::unregistered()).unwrap();
    assert!(fleet.wait_started(WAIT, |_| {}).await);
    let out = run(vec![
        "ping".into(),
        "-s".into(),
        server.url(),
        "--nkey".into(),
        path(&seed),
        "--expect".into(),
        N.to_string(),
        "-t".into(),
        "20s".into(),
    ]);
    assert!(out.status.success(), "ping failed: {}", out.stderr);
    assert!(out.stdout.contains("nkey-0"), "{}", out.stdout);
    fleet.stop();
}
