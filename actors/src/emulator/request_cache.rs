//! [`RequestCache`]: decode each distinct request payload once per thread.
//!
//! A broadcast reaches every daemon of a process as the same bytes on thousands of
//! connections. The cache keeps the last few payloads with their [`Prepared`] form (or why
//! they cannot be decoded), so only the first daemon on a thread decodes a request and the
//! others share it; a payload is matched by its bytes, so nothing stale is ever reused.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;

use super::prepared::Prepared;
use super::DropReason;
use crate::protocol::ReplyEncoder;

/// How many distinct payloads a thread remembers (requests in flight at once).
const CAPACITY: usize = 8;

/// The last few request payloads seen on one thread and what they decoded to.
#[derive(Debug, Default)]
pub struct RequestCache {
    entries: VecDeque<(Bytes, Result<Arc<Prepared>, DropReason>)>,
    decodes: u64,
}

impl RequestCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The decoded form of `payload`, decoding it only if it is not one of the last few seen.
    pub fn prepare(&mut self, payload: &[u8]) -> Result<Arc<Prepared>, DropReason> {
        if let Some(i) = self.entries.iter().position(|(p, _)| p == payload) {
            if i > 0 {
                self.entries.swap(0, i);
            }
            if let Some((_, found)) = self.entries.front() {
                return found.clone();
            }
        }
        self.decodes += 1;
        let decoded = Prepared::decode(payload).map(Arc::new);
        if self.entries.len() >= CAPACITY {
            self.entries.pop_back();
        }
        self.entries
            .push_front((Bytes::copy_from_slice(payload), decoded.clone()));
        decoded
    }

    /// How many payloads were actually decoded.
    pub fn decodes(&self) -> u64 {
        self.decodes
    }
}

/// What the daemons of one arbiter thread share while answering: the request cache, the
/// reply encoder's buffers and (for [`WireDaemon`](super::wire_daemon)s) the buffers a socket
/// is read into and its answers are written from.
#[derive(Debug, Default)]
pub(super) struct ThreadScratch {
    pub(super) requests: RequestCache,
    pub(super) encoder: ReplyEncoder,
    pub(super) read_buf: Vec<u8>,
    pub(super) write_buf: Vec<u8>,
}

thread_local! {
    static SCRATCH: RefCell<ThreadScratch> = RefCell::default();
}

/// Runs `f` with this thread's [`ThreadScratch`] (never re-entered: `f` does not call back
/// into the actors).
pub(super) fn with_scratch<T>(f: impl FnOnce(&mut ThreadScratch) -> T) -> T {
    SCRATCH.with(|cell| f(&mut cell.borrow_mut()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{encode_request, NewRequest, TransportHeaders};

    fn payload(agent: &str) -> Vec<u8> {
        let request = NewRequest {
            message: "ping".into(),
            senderid: "client".into(),
            callerid: "choria=test".into(),
            collective: "mcollective".into(),
            agent: agent.into(),
            ..NewRequest::default()
        }
        .build()
        .unwrap();
        encode_request(&request, TransportHeaders::for_request("r.x", "client")).unwrap()
    }

    #[test]
    fn decodes_each_distinct_payload_once() {
        let mut cache = RequestCache::new();
        let a = payload("discovery");
        let b = payload("rpcutil");
        let first = cache.prepare(&a).unwrap();
        for _ in 0..100 {
            assert!(Arc::ptr_eq(&cache.prepare(&a.clone()).unwrap(), &first));
        }
        assert_eq!(cache.decodes(), 1);
        let other = cache.prepare(&b).unwrap();
        assert_eq!(other.decoded.request.envelope.agent, "rpcutil");
        assert!(Arc::ptr_eq(&cache.prepare(&a).unwrap(), &first));
        assert_eq!(cache.decodes(), 2);
        assert_eq!(cache.prepare(b"garbage").unwrap_err(), DropReason::Json);
        assert_eq!(cache.prepare(b"garbage").unwrap_err(), DropReason::Json);
        assert_eq!(cache.decodes(), 3);
    }

    #[test]
    fn forgets_the_oldest() {
        let mut cache = RequestCache::new();
        let payloads: Vec<Vec<u8>> = (0..CAPACITY + 1).map(|_| payload("discovery")).collect();
        for p in &payloads {
            cache.prepare(p).unwrap();
        }
        assert_eq!(cache.decodes(), CAPACITY as u64 + 1);
        cache.prepare(&payloads[CAPACITY]).unwrap();
        assert_eq!(cache.decodes(), CAPACITY as u64 + 1);
        cache.prepare(&payloads[0]).unwrap();
        assert_eq!(cache.decodes(), CAPACITY as u64 + 2);
    }
}
