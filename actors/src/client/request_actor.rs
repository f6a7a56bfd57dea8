//! [`RequestActor`]: one per request; owns the reply subscription, a [`ReplyCollector`] and
//! the deadline, and hands the [`Collected`] result back through a oneshot channel.

use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use tokio::sync::oneshot;

use super::decode::{statuscode, ReplyDecoder};
use super::waiting::{ArrivalWindow, DeadlineAction};
use super::{Collected, Expectation, ReplyCollector, ReplyRecord};
use crate::protocol::{RpcReply, STATUS_UNKNOWN_ERROR};

/// A message arrived on the reply subject at `at`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ReplyArrived {
    /// The NATS payload.
    pub payload: Bytes,
    /// When it was taken off the subscription.
    pub at: Instant,
}

/// Collects the replies of one request until every expected node answered or the timeout.
pub struct RequestActor {
    collector: Option<ReplyCollector>,
    decoder: ReplyDecoder,
    requestid: String,
    started: Instant,
    timeout: Duration,
    mcorpc: bool,
    keep_bodies: bool,
    done: Option<oneshot::Sender<Collected>>,
    window: Option<ArrivalWindow>,
    last_reply: Option<Instant>,
}

impl RequestActor {
    /// An actor for request `requestid` published from `started`: replies are mcorpc when
    /// `mcorpc` (statuscodes decoded), bodies and `seen-by` kept when `keep_bodies`; the
    /// result goes to `done` at completion or `timeout` after `started`.
    pub fn new(
        requestid: String,
        expectation: Expectation,
        started: Instant,
        timeout: Duration,
        mcorpc: bool,
        keep_bodies: bool,
        done: oneshot::Sender<Collected>,
    ) -> Self {
        Self {
            collector: Some(ReplyCollector::new(expectation)),
            decoder: ReplyDecoder::new(),
            requestid,
            started,
            timeout,
            mcorpc,
            keep_bodies,
            done: Some(done),
            window: None,
            last_reply: None,
        }
    }

    /// At the timeout, keeps waiting while replies still arrive, as `window` says (a
    /// discovery told how many nodes to expect).
    pub fn wait_while_arriving(mut self, window: ArrivalWindow) -> Self {
        self.window = Some(window);
        self
    }

    /// A deadline passed: finish, or look again later while replies still arrive.
    fn on_deadline(&mut self, ctx: &mut Context<Self>) {
        let Some(window) = self.window else {
            return self.finish(true, ctx);
        };
        let elapsed = self.started.elapsed();
        let last = self
            .last_reply
            .map(|at| at.saturating_duration_since(self.started));
        match window.verdict(elapsed, last) {
            DeadlineAction::Stop => self.finish(true, ctx),
            DeadlineAction::CheckAt(at) => {
                ctx.run_later(at.saturating_sub(elapsed), |act, ctx| act.on_deadline(ctx));
            }
        }
    }

    fn on_reply(&mut self, payload: &[u8], at: Instant, ctx: &mut Context<Self>) {
        let Some(collector) = self.collector.as_mut() else {
            return;
        };
        let decoded = match self.decoder.decode(payload, self.keep_bodies) {
            Some(d) if d.requestid == self.requestid.as_str() => d,
            _ => {
                collector.record_undecodable();
                return;
            }
        };
        let elapsed = at.saturating_duration_since(self.started);
        let mut record = ReplyRecord::new(decoded.sender, elapsed, None);
        if self.mcorpc && !self.keep_bodies {
            record.statuscode = Some(statuscode(decoded.body).unwrap_or(STATUS_UNKNOWN_ERROR));
        } else if self.mcorpc {
            match RpcReply::from_slice(decoded.body.as_bytes()) {
                Ok(rpc) => {
                    record.statuscode = Some(rpc.statuscode);
                    record.statusmsg = Some(rpc.statusmsg);
                    record.data = Some(rpc.data);
                }
                Err(e) => {
                    record.statuscode = Some(STATUS_UNKNOWN_ERROR);
                    record.statusmsg = Some(format!("invalid mcorpc reply: {e}"));
                }
            }
        } else if self.keep_bodies {
            record.statusmsg = Some(decoded.body.to_owned());
        }
        record.seen_by = decoded.seen_by;
        collector.record(record);
        self.last_reply = Some(at);
        if collector.is_complete() {
            self.finish(false, ctx);
        }
    }

    fn finish(&mut self, timed_out: bool, ctx: &mut Context<Self>) {
        if let Some(collector) = self.collector.take() {
            let result = collector.finish(Duration::ZERO, self.started.elapsed(), timed_out);
            if let Some(done) = self.done.take() {
                // The caller may have given up (its own bound): nothing to do then.
                let _ = done.send(result);
            }
        }
        ctx.stop();
    }
}

impl Actor for RequestActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let left = self.timeout.saturating_sub(self.started.elapsed());
        ctx.run_later(left, |act, ctx| act.on_deadline(ctx));
    }
}

impl Handler<ReplyArrived> for RequestActor {
    type Result = ();

    fn handle(&mut self, msg: ReplyArrived, ctx: &mut Self::Context) {
        self.on_reply(&msg.payload, msg.at, ctx);
    }
}

impl StreamHandler<async_nats::Message> for RequestActor {
    fn handle(&mut self, msg: async_nats::Message, ctx: &mut Self::Context) {
        self.on_reply(&msg.payload, Instant::now(), ctx);
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        // The subscription ended (connection closed): report what arrived.
        let timed_out = self.started.elapsed() >= self.timeout;
        self.finish(timed_out, ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{encode_reply, NewRequest, Reply, Request, RpcReply, TransportHeaders};
    use serde_json::json;

    fn request() -> Request {
        NewRequest {
            message: "x".into(),
            senderid: "me".into(),
            callerid: "choria=me".into(),
            collective: "mcollective".into(),
            agent: "emulated0".into(),
            ..NewRequest::default()
        }
        .build()
        .unwrap()
    }

    fn reply(req: &Request, sender: &str, status: u8) -> Bytes {
        let body = RpcReply {
            action: None,
            statuscode: status,
            statusmsg: "x".into(),
            data: json!({"message": "abc"}),
        };
        let r = Reply::for_request(req, sender, body.to_json().unwrap());
        Bytes::from(encode_reply(&r, TransportHeaders::default()).unwrap())
    }

    #[actix_rt::test]
    async fn finishes_when_all_expected_answered() {
        let req = request();
        let (tx, rx) = oneshot::channel();
        let nodes = ["a", "b"].map(String::from).into_iter().collect();
        let addr = RequestActor::new(
            req.envelope.requestid.clone(),
            Expectation::Nodes(nodes),
            Instant::now(),
            Duration::from_secs(30),
            true,
            true,
            tx,
        )
        .start();
        let now = Instant::now();
        for (sender, status) in [("a", 0), ("zz", 0), ("b", 4)] {
            addr.send(ReplyArrived {
                payload: reply(&req, sender, status),
                at: now,
            })
            .await
            .unwrap();
        }
        let other = request();
        let _ = addr
            .send(ReplyArrived {
                payload: reply(&other, "a", 0),
                at: now,
            })
            .await;
        let out = tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .unwrap()
            .unwrap();
        assert!(!out.timed_out);
        assert_eq!((out.ok(), out.failed()), (1, 1));
        assert_eq!(out.unexpected, ["zz"]);
        assert_eq!(out.replies[1].data, Some(json!({"message": "abc"})));
    }

    #[actix_rt::test]
    async fn times_out_reporting_missing_nodes() {
        let req = request();
        let (tx, rx) = oneshot::channel();
        let nodes = ["a", "b", "c"].map(String::from).into_iter().collect();
        let addr = RequestActor::new(
            req.envelope.requestid.clone(),
            Expectation::Nodes(nodes),
            Instant::now(),
            Duration::from_millis(200),
            true,
            false,
            tx,
        )
        .start();
        addr.send(ReplyArrived {
            payload: Bytes::from_static(b"garbage"),
            at: Instant::now(),
        })
        .await
        .unwrap();
        addr.send(ReplyArrived {
            payload: reply(&req, "b", 0),
            at: Instant::now(),
        })
        .await
        .unwrap();
        let out = tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .unwrap()
            .unwrap();
        assert!(out.timed_out);
        assert_eq!(out.no_responses, ["a", "c"]);
        assert_eq!(out.undecodable, 1);
        assert_eq!(out.replies[0].data, None);
    }
}
