//! `choir agent <config>`: a long-running Choria server for load-test rigs. It answers
//! discovery and `rpcutil` like any Choria server, and two management agents that start and
//! supervise real processes on its host: `emulator` (`choir emulate`) and `nats`
//! (`nats-server`), each `start`, `stop` and `status`. Playbooks in
//! `config/playbooks/loadtest/` drive one agent per host to build a test network, as the
//! Choria emulator's rig did with its mcollective agent.
//!
//! - [`config`]: the `[agent]` file;
//! - [`request`]: reading `start`'s inputs, refusals with a Choria status code;
//! - [`table`]: which processes run (at most one of each kind);
//! - [`process`]: starting (no shell, readiness probe) and stopping one process;
//! - [`actions`]: the `emulator` and `nats` agents;
//! - [`server`]: the actor answering requests.
//!
//! The processes stop with the agent (SIGINT or SIGTERM), and a process left by an agent that
//! was killed is killed by the next agent started on the same state directory.

pub mod actions;
pub mod config;
pub mod process;
pub mod request;
pub mod server;
pub mod table;

use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use actix::prelude::*;
use choir_actors::connection::dedicated::{connect_with_retry, Owner};
use choir_actors::emulator::{
    EmulatedNode, FleetSecurity, NodeProfile, RequestSecurity, SecurityMetrics,
};
use choir_actors::protocol::security::{NamePatterns, SecurityError, SecurityPolicy, Verifier};
use choir_actors::protocol::Facts;
use tracing::info;

pub use config::{AgentConfig, AgentConfigError};

/// Errors of `choir agent`.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The config is wrong.
    #[error(transparent)]
    Config(#[from] AgentConfigError),
    /// The security policy cannot be loaded.
    #[error("{key} {value:?}")]
    Security {
        /// The config key.
        key: &'static str,
        /// Its value.
        value: String,
        /// Why.
        source: SecurityError,
    },
    /// The state directory cannot be created.
    #[error("agent.state_dir {path:?}: cannot create")]
    StateDir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The agent cannot subscribe.
    #[error("cannot subscribe {subject}")]
    Subscribe {
        /// The subject.
        subject: String,
        /// Why.
        source: async_nats::SubscribeError,
    },
}

/// Runs the agent of config file `path` until SIGINT or SIGTERM.
pub fn run(path: &Path) -> Result<(), AgentError> {
    let config = config::load(path)?;
    let security = security(&config)?;
    std::fs::create_dir_all(&config.state_dir).map_err(|source| AgentError::StateDir {
        path: config.state_dir.display().to_string(),
        source,
    })?;
    let settings = config.network().map_err(|problems| {
        AgentError::Config(AgentConfigError::Invalid {
            path: path.to_owned(),
            problems,
        })
    })?;
    let mut agents = vec!["discovery".to_owned(), "rpcutil".to_owned()];
    agents.extend(actions::AGENTS.map(String::from));
    let profile = Arc::new(NodeProfile {
        agents,
        classes: Vec::new(),
        collectives: config.collectives.clone(),
        security,
    });
    let identity = config.identity.clone();
    let server: Arc<str> = Arc::from(config.servers.join(",").as_str());
    let node = EmulatedNode::new(identity.clone(), Facts::default(), profile, server);
    let system = actix_rt::System::new();
    system.block_on(async move {
        let manager = Rc::new(actions::Manager::new(config));
        let owner = Owner {
            kind: "agent",
            name: identity.clone(),
            suffix: "agent".to_owned(),
        };
        let client = tokio::select! {
            client = connect_with_retry(&settings, &owner) => client,
            _ = crate::signal::wait_for_signal() => return Ok(()),
        };
        let mut subscriptions = Vec::new();
        for subject in node.subjects() {
            let sub = client
                .subscribe(subject.clone())
                .await
                .map_err(|source| AgentError::Subscribe { subject, source })?;
            subscriptions.push(sub);
        }
        let _ = client.flush().await;
        let dropped = Arc::new(server::Dropped::default());
        let messages = futures::stream::select_all(subscriptions);
        let actor =
            server::AgentServer::new(node, client.clone(), manager.clone(), dropped.clone());
        let addr = server::AgentServer::create(move |ctx| {
            ctx.add_stream(messages);
            actor
        });
        info!(%identity, servers = %settings.urls.join(","), "Agent ready.");
        crate::signal::wait_for_signal().await;
        info!(%identity, dropped = dropped.get(), "Agent stopping; stopping its processes.");
        drop(addr);
        manager.shutdown().await;
        let _ = client.drain().await;
        Ok(())
    })
}

fn security(config: &AgentConfig) -> Result<Option<FleetSecurity>, AgentError> {
    let Some(section) = &config.security else {
        return Ok(None);
    };
    let patterns = |key: &'static str, list: &Option<String>, default: NamePatterns| {
        list.as_deref().map_or(Ok(default), |list| {
            NamePatterns::parse(key, list).map_err(|source| AgentError::Security {
                key,
                value: list.to_owned(),
                source,
            })
        })
    };
    let policy = SecurityPolicy {
        ca: section.ca.clone(),
        allowlist: patterns(
            "agent.security.certname_allowlist",
            &section.certname_allowlist,
            NamePatterns::default_allowlist(),
        )?,
        privileged: patterns(
            "agent.security.privileged_users",
            &section.privileged_users,
            NamePatterns::default_privileged(),
        )?,
    };
    let verifier = Verifier::new(&policy).map_err(|source| AgentError::Security {
        key: "agent.security.ca",
        value: section.ca.display().to_string(),
        source,
    })?;
    info!(ca = %section.ca.display(), "Agent verifies requests.");
    Ok(Some(FleetSecurity(Arc::new(RequestSecurity::new(
        verifier,
        SecurityMetrics::default(),
    )))))
}
