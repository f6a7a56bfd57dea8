//! The fast-ingest batch of a queued worker (nats-server 2.14+, `allow_batched` on the target
//! stream), as a plain core: which reply subject each copy is published with, and which copies
//! the target's answers settle.
//!
//! The wire facts (ADR-50 fast ingest, checked against nats-server 2.15.1): a copy is published
//! with the reply subject `<prefix>.<batch id>.<flow>.fail.<batch seq>.<op>.$FI`, `op` 0 for
//! the first copy of a batch, 1 for the others, 3 for the end of the batch (no message
//! stored; it takes the next batch sequence). The server answers on the reply subject of the
//! copy that triggered the answer:
//! - `{"type":"ack","seq":N,"msgs":F}`: every copy of the batch up to `N` is stored (gap mode
//!   `fail`: a lost copy ends the batch instead, so there is no hole below `N`); it acks again
//!   every `F` copies (2.15.1 caps `F` at 500) and only then: a ping (op 4) only repeats the
//!   last such ack, so the copies after it are settled by ending the batch; a duplicate
//!   `Nats-Msg-Id` counts as handled, stored before;
//! - `{"type":"err","seq":K,"error":{..}}`: copy `K` was refused; the batch ends;
//! - `{"type":"gap",..}`: a copy went missing; the batch ends;
//! - `{"stream":..,"seq":..,"count":C}`: the batch ended with its first `C` copies stored;
//! - `{"error":{..}}`: the batch is unknown (it ended, or timed out after 10 idle seconds) or
//!   the stream does not allow batches.
//!
//! The exactly-once argument stays the one of the per-message path: every copy still carries
//! its `Nats-Msg-Id`; a copy counts as stored (and its source message is acked) only when an
//! answer covers its batch sequence; every other copy of an ended batch is sent again in a new
//! batch, where the target's duplicate window drops any that had landed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use super::super::acks::{outcome, AckOutcome};
use super::super::failure::Failure;

/// Gap mode in the reply subject: a lost copy ends the batch, so an ack has no holes below it.
const GAP_MODE: &str = "fail";
/// A batch left idle this long is not used any more (the server forgets one after 10 s).
const IDLE_BATCH: Duration = Duration::from_secs(5);
/// A batch that ended (or was refused) but whose final answer did not come is given up after
/// this long: its unsettled copies are sent again in a new batch.
const ENDING_PATIENCE: Duration = Duration::from_secs(2);
/// Flow windows a worker may have unacked, as ADR-50 recommends.
const OUTSTANDING_ACKS: u64 = 2;
/// JetStream error code: the stream does not allow batched publishing.
const NOT_ENABLED: u64 = 10205;

/// What an answer settled.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Answer {
    /// Copies (by in-flight token) and what became of them.
    pub(crate) settled: Vec<(u64, AckOutcome)>,
    /// The target stream refused batches (its config changed): use the per-message path.
    pub(crate) not_enabled: bool,
}

/// One batch.
struct Batch {
    id: String,
    /// Batch sequence of the last copy sent.
    last: u64,
    /// Highest batch sequence the target acked.
    acked: u64,
    /// How often the target acks (its answer, else what we asked).
    flow: u64,
    /// Unsettled copies: batch sequence -> in-flight token.
    pending: BTreeMap<u64, u64>,
    /// The batch ended; its final answer is awaited since then.
    ending: Option<Instant>,
    /// Subject of its first copy (where a ping goes).
    first_subject: String,
    last_sent: Instant,
}

/// The fast-ingest batches of one queued worker session.
pub(crate) struct FastBatch {
    prefix: String,
    flow: u16,
    count: u64,
    current: Option<Batch>,
}

#[derive(Deserialize)]
struct Tagged {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    msgs: u64,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Final {
    #[serde(default)]
    count: Option<u64>,
    #[serde(default)]
    error: Option<Value>,
}

impl FastBatch {
    /// Batches answered on `<prefix>.>` (the caller subscribes), asking for an ack every
    /// `flow` copies. `prefix` must be unique to this session (an inbox): batch ids are made
    /// from its last token.
    pub(crate) fn new(prefix: String, flow: u16) -> Self {
        Self {
            prefix,
            flow: flow.max(1),
            count: 0,
            current: None,
        }
    }

    /// The subscription that receives the answers.
    pub(crate) fn subscription(&self) -> String {
        format!("{}.>", self.prefix)
    }

    /// Whether another copy may be sent now: the batch is not ending and has fewer than two
    /// flow windows unacked.
    pub(crate) fn has_room(&self) -> bool {
        match &self.current {
            None => true,
            Some(b) => b.ending.is_none() && b.last - b.acked < b.flow * OUTSTANDING_ACKS,
        }
    }

    /// Copies sent and not yet settled.
    #[cfg(test)]
    fn unsettled(&self) -> usize {
        self.current.as_ref().map_or(0, |b| b.pending.len())
    }

    /// The reply subject for the copy with in-flight `token`, published to `subject`; starts
    /// a new batch when there is none or the current one sat idle.
    pub(crate) fn reply(&mut self, token: u64, subject: &str, now: Instant) -> String {
        let stale = match &self.current {
            None => true,
            Some(b) => {
                b.ending.is_some()
                    || (b.pending.is_empty() && now.duration_since(b.last_sent) > IDLE_BATCH)
            }
        };
        if stale {
            self.count += 1;
            let session = self.prefix.rsplit('.').next().unwrap_or_default();
            self.current = Some(Batch {
                id: format!("{session}{}", self.count),
                last: 0,
                acked: 0,
                flow: u64::from(self.flow),
                pending: BTreeMap::new(),
                ending: None,
                first_subject: subject.to_owned(),
                last_sent: now,
            });
        }
        let Some(b) = self.current.as_mut() else {
            return String::new();
        };
        b.last += 1;
        b.last_sent = now;
        b.pending.insert(b.last, token);
        let (seq, op) = (b.last, if b.last == 1 { 0 } else { 1 });
        self.subject(seq, op)
    }

    fn subject(&self, seq: u64, op: u8) -> String {
        let id = self.current.as_ref().map_or("", |b| b.id.as_str());
        format!(
            "{}.{id}.{}.{GAP_MODE}.{seq}.{op}.$FI",
            self.prefix, self.flow
        )
    }

    /// Ends the current batch when it has unsettled copies and nothing was sent to it for
    /// `quiet`, or, with `quiet` zero, at once unless a flow ack is still due (a full flow
    /// window unacked): the (subject, reply) of the end-of-batch message to publish. The
    /// target answers with the count of copies stored, which settles the tail of a burst that
    /// did not fill a flow window (the target acks only per full window). The next copy starts
    /// a new batch.
    pub(crate) fn end(&mut self, now: Instant, quiet: Duration) -> Option<(String, String)> {
        let b = self.current.as_mut()?;
        if b.pending.is_empty() || b.ending.is_some() || now.duration_since(b.last_sent) < quiet {
            return None;
        }
        if quiet.is_zero() && b.last - b.acked >= b.flow {
            // The target acks at the next full window anyway.
            return None;
        }
        b.last += 1;
        b.ending = Some(now);
        let (subject, seq) = (b.first_subject.clone(), b.last);
        Some((subject, self.subject(seq, 3)))
    }

    /// Gives the current batch up: every unsettled copy fails as transient (to be sent again
    /// in a new batch).
    pub(crate) fn abandon(&mut self, reason: &str) -> Vec<(u64, AckOutcome)> {
        let Some(b) = self.current.take() else {
            return Vec::new();
        };
        b.pending
            .into_values()
            .map(|token| {
                (
                    token,
                    AckOutcome::Failed(Failure::Transient(reason.to_owned())),
                )
            })
            .collect()
    }

    /// Gives up a batch whose final answer has not come for a while.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<(u64, AckOutcome)> {
        let overdue = self
            .current
            .as_ref()
            .and_then(|b| b.ending)
            .is_some_and(|since| now.duration_since(since) >= ENDING_PATIENCE);
        if overdue {
            self.abandon("the target ended the fast batch without its final answer")
        } else {
            Vec::new()
        }
    }

    /// What an answer on `subject` (status 503 = no responders) with `payload` settles.
    pub(crate) fn on_answer(
        &mut self,
        subject: &str,
        no_responders: bool,
        payload: &[u8],
        now: Instant,
    ) -> Answer {
        let mut answer = Answer::default();
        let Some((id, _seq)) = parse_reply(&self.prefix, subject) else {
            return answer;
        };
        let Some(b) = self.current.as_mut() else {
            return answer;
        };
        if b.id != id {
            // An answer for a batch given up before: its copies were sent again.
            return answer;
        }
        if no_responders {
            answer
                .settled
                .extend(self.abandon("no stream on the target answers for this subject"));
            return answer;
        }
        if let Ok(tagged) = serde_json::from_slice::<Tagged>(payload) {
            match tagged.kind.as_str() {
                "ack" => {
                    if tagged.msgs > 0 {
                        b.flow = tagged.msgs;
                    }
                    b.acked = b.acked.max(tagged.seq);
                    settle_up_to(b, tagged.seq, &mut answer);
                }
                "err" => {
                    if let Some(token) = b.pending.remove(&tagged.seq) {
                        let error = serde_json::json!({ "error": tagged.error });
                        let bytes = serde_json::to_vec(&error).unwrap_or_default();
                        answer.settled.push((token, outcome(None, &bytes)));
                    }
                    b.ending.get_or_insert(now);
                }
                _ => {
                    // "gap" (or something newer): the batch ends, its final answer follows.
                    b.ending.get_or_insert(now);
                }
            }
            return answer;
        }
        match serde_json::from_slice::<Final>(payload) {
            Ok(Final {
                error: None,
                count: Some(count),
            }) => {
                settle_up_to(b, count, &mut answer);
                answer.settled.extend(
                    self.abandon("the fast batch ended before this copy (an earlier copy failed)"),
                );
            }
            Ok(Final {
                error: Some(error), ..
            }) => {
                let code = error.get("err_code").and_then(Value::as_u64).unwrap_or(0);
                answer.not_enabled = code == NOT_ENABLED;
                let description = error
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown error")
                    .to_owned();
                // The batch is gone (unknown, timed out, refused): every copy not yet
                // settled goes again, in a new batch or by the per-message path.
                answer.settled.extend(self.abandon(&format!(
                    "the target refused the fast batch: {description} (err_code {code})"
                )));
            }
            _ => {
                answer.settled.extend(
                    self.abandon("the target answered the fast batch with something unexpected"),
                );
            }
        }
        answer
    }
}

fn settle_up_to(b: &mut Batch, seq: u64, answer: &mut Answer) {
    let rest = b.pending.split_off(&(seq.saturating_add(1)));
    let done = std::mem::replace(&mut b.pending, rest);
    answer.settled.extend(
        done.into_values()
            .map(|token| (token, AckOutcome::Stored { duplicate: false })),
    );
}

/// The batch id and batch sequence of an answer on `<prefix>.<id>.<flow>.<gap>.<seq>.<op>.$FI`.
fn parse_reply<'a>(prefix: &str, subject: &'a str) -> Option<(&'a str, u64)> {
    let rest = subject.strip_prefix(prefix)?.strip_prefix('.')?;
    let rest = rest.strip_suffix(".$FI")?;
    let mut tokens = rest.split('.');
    let id = tokens.next()?;
    let _flow = tokens.next()?;
    let _gap = tokens.next()?;
    let seq = tokens.next()?.parse().ok()?;
    let _op = tokens.next()?;
    if tokens.next().is_some() {
        return None;
    }
    Some((id, seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(tokens: &[u64]) -> Vec<(u64, AckOutcome)> {
        tokens
            .iter()
            .map(|t| (*t, AckOutcome::Stored { duplicate: false }))
            .collect()
    }

    fn batch_of(n: u64) -> (FastBatch, Instant, Vec<String>) {
        let mut f = FastBatch::new("_INBOX.abc".to_owned(), 10);
        let now = Instant::now();
        let replies = (1..=n).map(|t| f.reply(100 + t, "t.x", now)).collect();
        (f, now, replies)
    }

    #[test]
    fn reply_subjects_follow_the_fast_ingest_layout() {
        let (_, _, replies) = batch_of(2);
        assert_eq!(replies[0], "_INBOX.abc.abc1.10.fail.1.0.$FI");
        assert_eq!(replies[1], "_INBOX.abc.abc1.10.fail.2.1.$FI");
        assert_eq!(parse_reply("_INBOX.abc", &replies[1]), Some(("abc1", 2)));
        assert_eq!(parse_reply("_INBOX.abc", "_INBOX.abc.7"), None);
    }

    #[test]
    fn a_flow_ack_settles_every_copy_up_to_its_sequence() {
        let (mut f, now, replies) = batch_of(5);
        let start = f.on_answer(
            &replies[0],
            false,
            br#"{"type":"ack","seq":0,"msgs":10}"#,
            now,
        );
        assert!(start.settled.is_empty());
        let a = f.on_answer(
            &replies[2],
            false,
            br#"{"type":"ack","seq":3,"msgs":10}"#,
            now,
        );
        assert_eq!(a.settled, stored(&[101, 102, 103]));
        assert_eq!(f.unsettled(), 2);
    }

    #[test]
    fn two_unacked_flow_windows_stall_the_worker() {
        let mut f = FastBatch::new("_INBOX.abc".to_owned(), 2);
        let now = Instant::now();
        for t in 1..=4 {
            assert!(f.has_room());
            f.reply(t, "t.x", now);
        }
        assert!(!f.has_room());
        let subject = "_INBOX.abc.abc1.2.fail.2.1.$FI";
        f.on_answer(subject, false, br#"{"type":"ack","seq":2,"msgs":2}"#, now);
        assert!(f.has_room());
    }

    #[test]
    fn a_refused_copy_ends_the_batch_and_the_rest_goes_again() {
        // As recorded from nats-server 2.15.1: copy 4 refused, final ack counts 3 stored.
        let (mut f, now, replies) = batch_of(6);
        let err = br#"{"type":"err","seq":4,"error":{"code":400,"err_code":10054,"description":"message size exceeds maximum allowed"}}"#;
        let a = f.on_answer(&replies[3], false, err, now);
        assert_eq!(a.settled.len(), 1);
        assert_eq!(a.settled[0].0, 104);
        assert!(matches!(
            a.settled[0].1,
            AckOutcome::Failed(Failure::Rejected(_))
        ));
        assert!(!f.has_room(), "no copy goes into an ending batch");
        let fin = f.on_answer(
            &replies[3],
            false,
            br#"{"stream":"T","seq":3,"batch":"abc1","count":3}"#,
            now,
        );
        assert_eq!(&fin.settled[..3], &stored(&[101, 102, 103])[..]);
        let again: Vec<u64> = fin.settled[3..].iter().map(|(t, _)| *t).collect();
        assert_eq!(again, vec![105, 106]);
        assert!(fin.settled[3..]
            .iter()
            .all(|(_, o)| matches!(o, AckOutcome::Failed(Failure::Transient(_)))));
        // The next copy starts a new batch.
        assert_eq!(f.reply(107, "t.x", now), "_INBOX.abc.abc2.10.fail.1.0.$FI");
    }

    #[test]
    fn an_unknown_batch_sends_every_unsettled_copy_again() {
        let (mut f, now, replies) = batch_of(3);
        let unknown = br#"{"error":{"code":400,"err_code":10208,"description":"batch publish ID unknown"},"stream":"T","seq":0}"#;
        let a = f.on_answer(&replies[2], false, unknown, now);
        assert_eq!(a.settled.len(), 3);
        assert!(!a.not_enabled);
        assert!(a
            .settled
            .iter()
            .all(|(_, o)| matches!(o, AckOutcome::Failed(Failure::Transient(_)))));
    }

    #[test]
    fn a_stream_without_batches_turns_the_fast_path_off() {
        let (mut f, now, replies) = batch_of(1);
        let off =
            br#"{"error":{"code":400,"err_code":10205,"description":"batch publish is disabled"}}"#;
        let a = f.on_answer(&replies[0], false, off, now);
        assert!(a.not_enabled);
        assert_eq!(a.settled.len(), 1);
    }

    #[test]
    fn answers_of_an_abandoned_batch_settle_nothing() {
        let (mut f, now, replies) = batch_of(2);
        assert_eq!(f.abandon("test").len(), 2);
        f.reply(9, "t.x", now);
        let late = f.on_answer(
            &replies[1],
            false,
            br#"{"type":"ack","seq":2,"msgs":10}"#,
            now,
        );
        assert!(late.settled.is_empty());
        assert_eq!(f.unsettled(), 1);
    }

    #[test]
    fn a_quiet_tail_ends_its_batch_and_the_final_count_settles_it() {
        let (mut f, now, _) = batch_of(2);
        let quiet = Duration::from_millis(50);
        assert!(f.end(now, quiet).is_none());
        let later = now + Duration::from_millis(60);
        let (subject, reply) = f.end(later, quiet).unwrap();
        assert_eq!(subject, "t.x");
        // The end of the batch takes the next batch sequence.
        assert_eq!(reply, "_INBOX.abc.abc1.10.fail.3.3.$FI");
        assert!(!f.has_room());
        assert!(f.end(later, quiet).is_none(), "ended once");
        let count = br#"{"stream":"T","seq":2,"batch":"abc1","count":2}"#;
        let fin = f.on_answer(&reply, false, count, later);
        assert_eq!(fin.settled, stored(&[101, 102]));
        assert!(f.has_room());
    }

    #[test]
    fn a_full_worker_ends_its_batch_at_once_unless_a_flow_ack_is_due() {
        // Flow 10: 12 copies unacked, so the ack for 10 is on its way; nothing to end.
        let (mut f, now, replies) = batch_of(12);
        assert!(f.end(now, Duration::ZERO).is_none());
        let ack = br#"{"type":"ack","seq":10,"msgs":10}"#;
        assert_eq!(f.on_answer(&replies[9], false, ack, now).settled.len(), 10);
        // Two left, below a window: only the end of the batch settles them.
        let (_, reply) = f.end(now, Duration::ZERO).unwrap();
        assert_eq!(reply, "_INBOX.abc.abc1.10.fail.13.3.$FI");
    }

    #[test]
    fn an_ending_batch_without_its_final_answer_expires() {
        let (mut f, now, replies) = batch_of(2);
        let gap = br#"{"type":"gap","last_seq":1,"seq":3}"#;
        f.on_answer(&replies[1], false, gap, now);
        assert!(f.expire(now).is_empty());
        assert_eq!(f.expire(now + ENDING_PATIENCE).len(), 2);
    }

    #[test]
    fn an_idle_batch_is_replaced() {
        let (mut f, now, replies) = batch_of(1);
        f.on_answer(
            &replies[0],
            false,
            br#"{"type":"ack","seq":1,"msgs":10}"#,
            now,
        );
        let reply = f.reply(2, "t.x", now + IDLE_BATCH + Duration::from_millis(1));
        assert_eq!(reply, "_INBOX.abc.abc2.10.fail.1.0.$FI");
    }
}
