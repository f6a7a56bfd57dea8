//! [`ChoriaClient`]: a connected client that discovers nodes and calls agents.

use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;
use tracing::debug;

use super::{
    Addressing, ArrivalWindow, ClientError, ClientOptions, Collected, Expectation, PublishPlan,
    RequestActor,
};
use crate::protocol::{Filter, NewRequest, Request, RpcRequest};

/// The discovery agent's payload: base64 of `ping`, as Go Choria sends it.
const DISCOVERY_PING: &str = "cGluZw==";

/// Extra time the caller waits for a request actor past the request's own timeout.
const GRACE: Duration = Duration::from_secs(2);

/// A broadcast discovery.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    /// Which nodes (agent, identity, fact, class filters).
    pub filter: Filter,
    /// How long to wait for `pong`s.
    pub timeout: Duration,
    /// Finish as soon as this many nodes answered.
    pub expect: Option<usize>,
    /// Keep each reply's body and `seen-by` path (for `ping --trace`).
    pub keep_bodies: bool,
}

/// An RPC request to an agent action.
#[derive(Debug, Clone)]
pub struct RpcCall {
    /// The agent.
    pub agent: String,
    /// The action.
    pub action: String,
    /// The action's input (a JSON object).
    pub data: serde_json::Value,
    /// The filter (the agent is added to it for broadcasts).
    pub filter: Filter,
    /// Broadcast or one publish per node.
    pub addressing: Addressing,
    /// Who should answer.
    pub expectation: Expectation,
    /// How long to wait for replies.
    pub timeout: Duration,
    /// Keep each reply's statusmsg, data and `seen-by` path.
    pub keep_bodies: bool,
}

/// A connected Choria client.
#[derive(Debug, Clone)]
pub struct ChoriaClient {
    nats: async_nats::Client,
    options: ClientOptions,
}

impl ChoriaClient {
    /// A client on an established connection.
    pub fn new(nats: async_nats::Client, options: ClientOptions) -> Self {
        Self { nats, options }
    }

    /// Connects to `urls` (see [`super::connect`]).
    pub async fn connect(
        urls: &[String],
        options: ClientOptions,
        subscription_capacity: usize,
    ) -> Result<Self, ClientError> {
        let nats = super::connect(urls, subscription_capacity, Duration::from_secs(5)).await?;
        Ok(Self::new(nats, options))
    }

    /// Connects as `settings` say (servers, credentials, TLS; see [`super::connect_with`]).
    pub async fn connect_with(
        settings: &crate::connection::NetworkSettings,
        options: ClientOptions,
        subscription_capacity: usize,
    ) -> Result<Self, ClientError> {
        let nats = super::connect_with(settings, subscription_capacity).await?;
        Ok(Self::new(nats, options))
    }

    /// The options.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// The NATS connection.
    pub fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    fn build(&self, agent: &str, message: String, filter: Filter) -> Result<Request, ClientError> {
        Ok(NewRequest {
            message,
            senderid: self.options.senderid.clone(),
            callerid: self.options.callerid.clone(),
            collective: self.options.collective.clone(),
            agent: agent.to_owned(),
            filter,
            ttl: Some(self.options.ttl),
            ..NewRequest::default()
        }
        .build()?)
    }

    /// Broadcast discovery: the `discovery` agent's `ping` to every node matching the filter.
    pub async fn discover(&self, discovery: &Discovery) -> Result<Collected, ClientError> {
        let request = self.build(
            "discovery",
            DISCOVERY_PING.to_owned(),
            discovery.filter.clone(),
        )?;
        let expectation = discovery
            .expect
            .map_or(Expectation::Unknown, Expectation::Count);
        // Told how many nodes to expect, it keeps waiting while replies still arrive.
        let window = discovery
            .expect
            .map(|_| ArrivalWindow::new(discovery.timeout));
        self.request_within(
            request,
            &Addressing::Broadcast,
            expectation,
            discovery.timeout,
            window,
            (false, discovery.keep_bodies),
        )
        .await
    }

    /// Calls `call.agent#call.action` with `call.data`.
    pub async fn rpc(&self, call: &RpcCall) -> Result<Collected, ClientError> {
        if !call.data.is_object() {
            return Err(ClientError::BadData(call.data.to_string()));
        }
        let body = RpcRequest {
            agent: call.agent.clone(),
            action: call.action.clone(),
            caller: None,
            data: call.data.clone(),
        };
        let message = body
            .to_json()
            .map_err(|e| ClientError::BadData(e.to_string()))?;
        let mut filter = call.filter.clone();
        if !filter.agent.contains(&call.agent) {
            filter.agent.push(call.agent.clone());
        }
        let request = self.build(&call.agent, message, filter)?;
        self.request(
            request,
            &call.addressing,
            call.expectation.clone(),
            call.timeout,
            true,
            call.keep_bodies,
        )
        .await
    }

    /// Publishes `request` as `addressing` says and collects replies until `expectation` is
    /// met or `timeout` passes (the reply subscription is in place before the first publish).
    pub async fn request(
        &self,
        request: Request,
        addressing: &Addressing,
        expectation: Expectation,
        timeout: Duration,
        mcorpc: bool,
        keep_bodies: bool,
    ) -> Result<Collected, ClientError> {
        self.request_within(
            request,
            addressing,
            expectation,
            timeout,
            None,
            (mcorpc, keep_bodies),
        )
        .await
    }

    /// [`Self::request`], extended past `timeout` by `window` when given.
    async fn request_within(
        &self,
        request: Request,
        addressing: &Addressing,
        expectation: Expectation,
        timeout: Duration,
        window: Option<ArrivalWindow>,
        (mcorpc, keep_bodies): (bool, bool),
    ) -> Result<Collected, ClientError> {
        let plan = PublishPlan::new(&request, &self.options, addressing)?;
        let subscriber = self
            .nats
            .subscribe(plan.reply_to.clone())
            .await
            .map_err(|e| ClientError::Subscribe {
                subject: plan.reply_to.clone(),
                message: e.to_string(),
            })?;
        let (tx, rx) = oneshot::channel();
        let started = Instant::now();
        let requestid = request.envelope.requestid.clone();
        let mut actor = RequestActor::new(
            requestid.clone(),
            expectation,
            started,
            timeout,
            mcorpc,
            keep_bodies,
            tx,
        );
        let mut longest = timeout;
        if let Some(window) = window {
            actor = actor.wait_while_arriving(window);
            longest = window.cap().max(timeout);
        }
        RequestActor::create(move |ctx| {
            ctx.add_stream(subscriber);
            actor
        });
        let publications = plan.publications.len();
        let publish = async {
            for p in plan.publications {
                let subject = p.subject;
                self.nats
                    .publish(subject.clone(), p.payload)
                    .await
                    .map_err(|e| ClientError::Publish {
                        subject,
                        message: e.to_string(),
                    })?;
            }
            self.nats.flush().await.map_err(|e| ClientError::Publish {
                subject: "flush".to_owned(),
                message: e.to_string(),
            })
        };
        match tokio::time::timeout(timeout, publish).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(ClientError::Publish {
                    subject: plan.reply_to,
                    message: format!("publishing took longer than {timeout:?}"),
                })
            }
        }
        let publish_duration = started.elapsed();
        debug!(
            requestid,
            publications,
            ?publish_duration,
            "Request published."
        );
        let mut collected = tokio::time::timeout(longest + GRACE, rx)
            .await
            .map_err(|_| ClientError::Lost)?
            .map_err(|_| ClientError::Lost)?;
        collected.publish_duration = publish_duration;
        Ok(collected)
    }
}
