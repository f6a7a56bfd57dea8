//! Errors print each cause once: the message of an error that returns its cause as
//! `#[source]` does not repeat it, so `{error:#}` (anyhow, the CLI) and
//! [`choir_actors::error_chain::Chain`] (logs) show every cause exactly once, and none is lost.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::error::Error;
use std::io;

use choir_actors::connection::NetworkError;
use choir_actors::error_chain::Chain;
use choir_actors::protocol::{decode_request, ProtocolError};

/// Every cause's own text, top first.
fn causes(error: &(dyn Error + 'static)) -> Vec<String> {
    let mut out = vec![error.to_string()];
    let mut cause = error.source();
    while let Some(error) = cause {
        out.push(error.to_string());
        cause = error.source();
    }
    out
}

/// `{:#}` through anyhow and [`Chain`] both hold the innermost cause's text exactly once.
fn assert_each_cause_once(error: impl Error + Send + Sync + 'static) {
    let innermost = causes(&error).pop().unwrap();
    let chain = Chain(&error).to_string();
    let alternate = format!("{:#}", anyhow::Error::new(error));
    for printed in [&chain, &alternate] {
        assert_eq!(
            printed.matches(innermost.as_str()).count(),
            1,
            "{innermost:?} not printed exactly once in {printed:?}"
        );
    }
    assert_eq!(chain, alternate);
}

#[test]
fn a_network_error_prints_its_io_cause_once() {
    let error = NetworkError::Credentials {
        network: "n1".into(),
        path: "/etc/choir/n1.creds".into(),
        source: io::Error::new(io::ErrorKind::NotFound, "no such file or directory"),
    };
    assert_eq!(
        Chain(&error).to_string(),
        "network n1: cannot read credentials file /etc/choir/n1.creds: no such file or directory"
    );
    assert_each_cause_once(error);
}

#[test]
fn a_protocol_error_prints_its_json_cause_once() {
    let error = decode_request(b"{not json", 0).unwrap_err();
    assert!(matches!(error, ProtocolError::Json { .. }), "{error:?}");
    assert_each_cause_once(error);
}

#[test]
fn a_playbook_that_cannot_be_read_prints_the_io_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let error = choir_actors::playbook::load(&dir.path().join("missing.toml")).unwrap_err();
    assert!(
        Chain(&error).to_string().contains("missing.toml: "),
        "{}",
        Chain(&error)
    );
    assert_each_cause_once(error);
}
