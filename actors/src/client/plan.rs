//! [`PublishPlan`]: the NATS publications one request turns into.
//!
//! | addressing | unfederated                         | federated (clusters c1..cn)                        |
//! |------------|-------------------------------------|----------------------------------------------------|
//! | broadcast  | 1 × `<coll>.broadcast.agent.<a>`    | n × `choria.federation.<c>.federation`, target = [broadcast subject] |
//! | direct     | k × `<coll>.node.<id>` (same bytes) | ⌈k/200⌉ × n, target = the chunk's node subjects   |
//!
//! Every transport carries `reply-to` (the client's reply subject), `mc_sender` and one
//! `seen-by` hop for the client; federated ones also carry
//! `federation = {req, reply-to, target}`.

use bytes::Bytes;

use super::ClientError;
use super::ClientOptions;
use crate::protocol::{
    subject, FederationHeader, Request, SecureRequest, SeenByHop, Transport, TransportHeaders,
};

/// Targets per federated request (what Go and Ruby Choria clients use).
pub const FEDERATION_CHUNK: usize = 200;

/// How a request reaches its nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addressing {
    /// One publish to `<collective>.broadcast.agent.<agent>`; the filter selects the nodes.
    Broadcast,
    /// One publish per node subject `<collective>.node.<identity>`.
    Direct(Vec<String>),
}

/// One NATS publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    /// The subject.
    pub subject: String,
    /// The encoded transport.
    pub payload: Bytes,
}

/// Everything one request publishes.
#[derive(Debug, Clone)]
pub struct PublishPlan {
    /// The client's reply subject (subscribe it before publishing).
    pub reply_to: String,
    /// The publications, in order.
    pub publications: Vec<Publication>,
}

impl PublishPlan {
    /// Plans `request` for `addressing` with `options` (collective of the subjects,
    /// federation clusters, sender, signer). A signed request is signed once: every
    /// publication carries the same secure request, only the transport headers differ.
    pub fn new(
        request: &Request,
        options: &ClientOptions,
        addressing: &Addressing,
    ) -> Result<Self, ClientError> {
        let env = &request.envelope;
        let reply_to = subject::reply(&env.collective, &env.callerid, &env.requestid);
        let mut headers = TransportHeaders::for_request(reply_to.clone(), &options.senderid);
        headers.push_seen_by(SeenByHop::new(
            &options.server_url,
            &options.senderid,
            &options.server_url,
        ));
        let targets: Vec<String> = match addressing {
            Addressing::Broadcast => vec![subject::broadcast_agent(&env.collective, &env.agent)],
            Addressing::Direct(nodes) => nodes
                .iter()
                .map(|n| subject::node(&env.collective, n))
                .collect(),
        };
        let secure = match &options.signer {
            Some(signer) => signer.sign_request(request)?,
            None => SecureRequest::insecure(request.to_json()?),
        }
        .to_vec()?;
        let encode = |headers: TransportHeaders| -> Result<Bytes, ClientError> {
            Ok(Bytes::from(Transport::new(&secure, headers).to_vec()?))
        };
        let mut publications = Vec::new();
        if options.federation.is_empty() {
            let payload = encode(headers)?;
            publications.extend(targets.into_iter().map(|subject| Publication {
                subject,
                payload: payload.clone(),
            }));
        } else {
            for chunk in targets.chunks(FEDERATION_CHUNK) {
                let mut h = headers.clone();
                h.federation = Some(FederationHeader {
                    req: env.requestid.clone(),
                    reply_to: reply_to.clone(),
                    target: chunk.to_vec(),
                });
                let payload = encode(h)?;
                publications.extend(options.federation.iter().map(|cluster| Publication {
                    subject: subject::federation_requests(cluster),
                    payload: payload.clone(),
                }));
            }
        }
        Ok(Self {
            reply_to,
            publications,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{decode_request_unchecked_ttl, Filter, NewRequest};

    fn request() -> Request {
        NewRequest {
            message: r#"{"agent":"emulated0","action":"generate","data":{"size":1}}"#.into(),
            senderid: "me".into(),
            callerid: "choria=rip.mcollective".into(),
            collective: "mcollective".into(),
            agent: "emulated0".into(),
            filter: Filter::with_agent("emulated0"),
            ..NewRequest::default()
        }
        .build()
        .unwrap()
    }

    fn options(federation: &[&str]) -> ClientOptions {
        let mut o = ClientOptions::new("mcollective", "nats://127.0.0.1:4222");
        o.senderid = "me".into();
        o.federation = federation.iter().map(|s| s.to_string()).collect();
        o
    }

    #[test]
    fn broadcast() {
        let r = request();
        let plan = PublishPlan::new(&r, &options(&[]), &Addressing::Broadcast).unwrap();
        assert_eq!(plan.publications.len(), 1);
        assert_eq!(
            plan.publications[0].subject,
            "mcollective.broadcast.agent.emulated0"
        );
        assert!(plan
            .reply_to
            .starts_with("mcollective.reply.37bdf08389145a56c13096c178802d3b."));
        assert!(plan.reply_to.ends_with(&r.envelope.requestid));
        let d = decode_request_unchecked_ttl(&plan.publications[0].payload).unwrap();
        assert_eq!(d.reply_to(), Some(plan.reply_to.as_str()));
        assert_eq!(d.transport.headers.mc_sender.as_deref(), Some("me"));
        assert_eq!(d.transport.headers.seen_by.len(), 1);
        assert!(d.transport.headers.federation.is_none());
        assert_eq!(d.request, r);
    }

    #[test]
    fn direct_one_per_node() {
        let nodes: Vec<String> = (0..3).map(|i| format!("n{i}")).collect();
        let plan = PublishPlan::new(&request(), &options(&[]), &Addressing::Direct(nodes)).unwrap();
        let subjects: Vec<&str> = plan
            .publications
            .iter()
            .map(|p| p.subject.as_str())
            .collect();
        assert_eq!(
            subjects,
            [
                "mcollective.node.n0",
                "mcollective.node.n1",
                "mcollective.node.n2"
            ]
        );
    }

    #[test]
    fn federated_broadcast_to_every_cluster() {
        let r = request();
        let plan =
            PublishPlan::new(&r, &options(&["london", "paris"]), &Addressing::Broadcast).unwrap();
        let subjects: Vec<&str> = plan
            .publications
            .iter()
            .map(|p| p.subject.as_str())
            .collect();
        assert_eq!(
            subjects,
            [
                "choria.federation.london.federation",
                "choria.federation.paris.federation"
            ]
        );
        let d = decode_request_unchecked_ttl(&plan.publications[0].payload).unwrap();
        let fed = d.transport.headers.federation.unwrap();
        assert_eq!(fed.req, r.envelope.requestid);
        assert_eq!(fed.target, ["mcollective.broadcast.agent.emulated0"]);
        assert_eq!(fed.reply_to, plan.reply_to);
        assert_eq!(
            d.transport.headers.reply_to.as_deref(),
            Some(plan.reply_to.as_str())
        );
    }

    #[test]
    fn federated_direct_in_chunks_of_200() {
        let nodes: Vec<String> = (0..450).map(|i| format!("n{i}")).collect();
        let plan = PublishPlan::new(
            &request(),
            &options(&["london", "paris"]),
            &Addressing::Direct(nodes),
        )
        .unwrap();
        assert_eq!(plan.publications.len(), 6);
        let sizes: Vec<usize> = plan
            .publications
            .iter()
            .map(|p| {
                let d = decode_request_unchecked_ttl(&p.payload).unwrap();
                d.transport.headers.federation.unwrap().target.len()
            })
            .collect();
        assert_eq!(sizes, [200, 200, 200, 200, 50, 50]);
        let d = decode_request_unchecked_ttl(&plan.publications[5].payload).unwrap();
        let fed = d.transport.headers.federation.unwrap();
        assert_eq!(fed.target[0], "mcollective.node.n400");
        assert_eq!(
            plan.publications[5].subject,
            "choria.federation.paris.federation"
        );
    }
}
