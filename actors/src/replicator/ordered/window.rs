//! The exactly-once core of the ordered copy loop, without any I/O.
//!
//! A [`Window`] holds the copies of one session in source order. It hands out the chain link
//! of each copy (`Nats-Expected-Last-Sequence`), decides which copies ask for an answer
//! ([`AnswerPolicy`]), records what the target answered, and settles the front in source
//! order. [`Memory`] is what outlives a session: the sequences that failed (their copies ask
//! for their own answers next time) and how often each was rejected. The copy loop in
//! [`super`] does the publishing, the acking and the resuming.

use std::collections::{HashMap, VecDeque};

use super::super::acks::AckOutcome;
use super::super::failure::Failure;

/// Most copies in a row published without asking the target for an ack.
const MAX_UNANSWERED_RUN: usize = 64;

/// Where one copy stands.
#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// Published, waiting for the target's ack (or for a later copy's ack to vouch for it).
    Pending,
    /// Done: ready to settle.
    Done(Settle),
}

/// How a copy ended, when it settles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settle {
    /// The target stored it (or dropped it as a duplicate).
    Stored {
        /// The target's duplicate window already held its message id.
        duplicate: bool,
    },
    /// Not copied (sampled out, too old): acked on the source in order.
    Skipped,
    /// The publish failed.
    Failed(Failure),
}

/// One source message in the window, in source order.
struct Entry<M> {
    /// Its place in this session; the reply subject of its publish ends with it.
    token: u64,
    seq: u64,
    bytes: usize,
    item: M,
    state: State,
}

/// A copy about to be published: its reply token and its link in the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    /// The token of its reply subject.
    pub token: u64,
    /// The target stream's last sequence it must land after (`Nats-Expected-Last-Sequence`).
    pub expected_last: u64,
    /// No further copy fits in the window (by count or by bytes) until one settles.
    pub fills_window: bool,
}

/// What an ack did to the window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ack {
    /// For no copy waiting in this window (late, or already vouched for): nothing changed.
    Ignored,
    /// Recorded; the front may now settle.
    Recorded,
    /// The session must end now: an ack that cannot vouch for the unanswered copies before it.
    /// [`Memory::careful_through`] was raised so that those copies ask for their own answers.
    Interrupted(Interrupt),
}

/// Why an ack ended the session before the front settled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Interrupt {
    /// A duplicate is dropped before the sequence check, so it vouches for nothing before it.
    Duplicate,
    /// A copy failed while an earlier one is unanswered: that one may be the real failure.
    Failed(Failure),
}

/// A copy that left the front of the window.
#[derive(Debug, PartialEq, Eq)]
pub struct Settled<M> {
    /// Its source sequence.
    pub seq: u64,
    /// Its payload size.
    pub bytes: usize,
    /// What the loop stored with it.
    pub item: M,
    /// How it ended.
    pub outcome: Settle,
}

/// The copies of one session, in source order.
pub struct Window<M> {
    entries: VecDeque<Entry<M>>,
    max_count: usize,
    max_bytes: usize,
    /// Payload bytes held (bounded by `max_bytes`).
    held_bytes: usize,
    next_token: u64,
    /// The target's last sequence after the copies handed out so far.
    expected_last: u64,
    answers: AnswerPolicy,
}

impl<M> Window<M> {
    /// An empty window of at most `max_count` copies and `max_bytes` payload bytes, chained to
    /// a target whose last sequence is `target_last`. `copies_everything` when no message can
    /// be skipped (only then may a copy go unanswered).
    pub fn new(
        max_count: usize,
        max_bytes: usize,
        target_last: u64,
        copies_everything: bool,
    ) -> Self {
        Self {
            entries: VecDeque::with_capacity(max_count),
            max_count,
            max_bytes,
            held_bytes: 0,
            next_token: 0,
            expected_last: target_last,
            answers: AnswerPolicy::new(copies_everything, max_count),
        }
    }

    /// Whether another message may enter.
    pub fn has_room(&self) -> bool {
        self.entries.len() < self.max_count && self.held_bytes < self.max_bytes
    }

    /// The next link of the chain, for a copy of `bytes` payload bytes. Publish it, then
    /// [`Window::published`] it before anything else enters.
    pub fn link(&mut self, bytes: usize) -> Link {
        let token = self.take_token();
        let expected_last = self.expected_last;
        self.expected_last += 1;
        Link {
            token,
            expected_last,
            fills_window: self.entries.len() + 1 >= self.max_count
                || self.held_bytes.saturating_add(bytes) >= self.max_bytes,
        }
    }

    /// Whether the copy of source sequence `seq` must ask for an ack whatever follows it.
    /// When false it asks only if no further message is ready right away.
    pub fn must_answer(&self, link: &Link, seq: u64, memory: &Memory) -> bool {
        self.answers
            .must_answer(seq, memory.careful_through, link.fills_window)
    }

    /// The copy of `link` was published (`sent` is what the client said), asking for an ack
    /// when `answered`.
    pub fn published(
        &mut self,
        link: Link,
        seq: u64,
        bytes: usize,
        item: M,
        answered: bool,
        sent: Result<(), Failure>,
    ) {
        self.answers.published(answered);
        let state = match sent {
            Ok(()) => State::Pending,
            Err(failure) => State::Done(Settle::Failed(failure)),
        };
        self.push(link.token, seq, bytes, item, state);
    }

    /// A message that is not copied (sampled out, too old); it settles in its turn.
    pub fn skipped(&mut self, seq: u64, bytes: usize, item: M) {
        let token = self.take_token();
        self.push(token, seq, bytes, item, State::Done(Settle::Skipped));
    }

    /// Records the target's answer to the copy with `token`.
    pub fn acked(&mut self, token: u64, outcome: AckOutcome, memory: &mut Memory) -> Ack {
        let index = self
            .entries
            .front()
            .and_then(|front| token.checked_sub(front.token))
            .and_then(|i| usize::try_from(i).ok());
        let Some(index) = index.filter(|i| *i < self.entries.len()) else {
            return Ack::Ignored;
        };
        let earlier_unknown = self
            .entries
            .iter()
            .take(index)
            .any(|e| e.state == State::Pending);
        let Some(entry) = self.entries.get_mut(index) else {
            return Ack::Ignored;
        };
        if entry.state != State::Pending {
            return Ack::Ignored;
        }
        match outcome {
            AckOutcome::Stored { duplicate: true } if earlier_unknown => {
                memory.careful_through = memory.careful_through.max(entry.seq);
                Ack::Interrupted(Interrupt::Duplicate)
            }
            AckOutcome::Stored { duplicate } => {
                entry.state = State::Done(Settle::Stored { duplicate });
                // The chain: everything before a stored copy is stored.
                for earlier in self.entries.iter_mut().take(index) {
                    if earlier.state == State::Pending {
                        earlier.state = State::Done(Settle::Stored { duplicate: false });
                    }
                }
                Ack::Recorded
            }
            AckOutcome::Failed(failure) if earlier_unknown => {
                memory.careful_through = memory.careful_through.max(entry.seq);
                Ack::Interrupted(Interrupt::Failed(failure))
            }
            AckOutcome::Failed(failure) => {
                entry.state = State::Done(Settle::Failed(failure));
                Ack::Recorded
            }
        }
    }

    /// Takes the front copy off when it is done; `None` while it waits (or the window is empty).
    pub fn settle(&mut self) -> Option<Settled<M>> {
        if !matches!(self.entries.front(), Some(e) if e.state != State::Pending) {
            return None;
        }
        let entry = self.entries.pop_front()?;
        self.held_bytes = self.held_bytes.saturating_sub(entry.bytes);
        let State::Done(outcome) = entry.state else {
            return None;
        };
        Some(Settled {
            seq: entry.seq,
            bytes: entry.bytes,
            item: entry.item,
            outcome,
        })
    }

    /// What the loop stored with the front copy, while it waits for the target.
    pub fn front_pending(&self) -> Option<&M> {
        self.entries
            .front()
            .filter(|e| e.state == State::Pending)
            .map(|e| &e.item)
    }

    fn take_token(&mut self) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        token
    }

    fn push(&mut self, token: u64, seq: u64, bytes: usize, item: M, state: State) {
        self.held_bytes = self.held_bytes.saturating_add(bytes);
        self.entries.push_back(Entry {
            token,
            seq,
            bytes,
            item,
            state,
        });
    }
}

/// What outlives a session.
#[derive(Debug, Default)]
pub struct Memory {
    /// Copies up to this source sequence ask for their own ack (a failure was seen there).
    pub careful_through: u64,
    /// How often the target rejected each sequence.
    rejections: HashMap<u64, usize>,
}

/// What to do with a message the target rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// Resume and try again; this was rejection number `tries`.
    Retry {
        /// Rejections of this sequence so far.
        tries: usize,
    },
    /// Rejected `max_rejections` times: dead-letter it and go on after it.
    DeadLetter,
}

impl Memory {
    /// `seq` is stored on the target.
    pub fn stored(&mut self, seq: u64) {
        self.rejections.remove(&seq);
    }

    /// The target rejected `seq`; after `max_rejections` rejections it is given up.
    pub fn rejected(&mut self, seq: u64, max_rejections: usize) -> Rejection {
        let tries = self.rejections.entry(seq).or_insert(0);
        *tries += 1;
        if *tries < max_rejections {
            return Rejection::Retry { tries: *tries };
        }
        self.rejections.remove(&seq);
        Rejection::DeadLetter
    }
}

/// Where a session resumes: after the last source sequence the target holds, the consumer's
/// ack floor, or what this worker saw confirmed, whichever is furthest.
pub fn resume_point(from_target: Option<u64>, floor: Option<u64>, confirmed: u64) -> Option<u64> {
    let floor = floor.filter(|f| *f > 0);
    let local = Some(confirmed).filter(|c| *c > 0);
    [from_target, floor, local].into_iter().flatten().max()
}

/// Which copies ask the target for an ack (see the docs of [`super`]).
pub struct AnswerPolicy {
    /// Whether a copy may go unanswered at all (only when no message can be skipped).
    sparse: bool,
    /// At most this many copies in a row go unanswered.
    every: usize,
    /// Copies published unanswered since the last answered one.
    unanswered: usize,
}

impl AnswerPolicy {
    /// The policy of a window of `window` copies.
    pub fn new(sparse: bool, window: usize) -> Self {
        Self {
            sparse,
            every: (window / 4).clamp(1, MAX_UNANSWERED_RUN),
            unanswered: 0,
        }
    }

    /// Whether the copy of source sequence `seq` must ask for an ack whatever follows it;
    /// `fills_window` when no further copy fits in the window (by count or by bytes) until
    /// one settles. When false, it asks only if no further message is ready right away.
    pub fn must_answer(&self, seq: u64, careful_through: u64, fills_window: bool) -> bool {
        !self.sparse || fills_window || seq <= careful_through || self.unanswered + 1 >= self.every
    }

    /// Records whether the copy just published asked for an ack.
    pub fn published(&mut self, answered: bool) {
        if answered {
            self.unanswered = 0;
        } else {
            self.unanswered += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_sampling_or_max_age_every_copy_is_answered() {
        let policy = AnswerPolicy::new(false, 256);
        assert!(policy.must_answer(1, 0, false));
    }

    #[test]
    fn at_most_a_quarter_window_capped_at_64_goes_unanswered_in_a_row() {
        let mut policy = AnswerPolicy::new(true, 256);
        for seq in 1..64 {
            assert!(!policy.must_answer(seq, 0, false), "copy {seq}");
            policy.published(false);
        }
        assert!(policy.must_answer(64, 0, false));
        policy.published(true);
        assert!(!policy.must_answer(65, 0, false));

        let mut small = AnswerPolicy::new(true, 8);
        assert!(!small.must_answer(1, 0, false));
        small.published(false);
        assert!(small.must_answer(2, 0, false));
        assert!(AnswerPolicy::new(true, 4).must_answer(1, 0, false));
        assert_eq!(AnswerPolicy::new(true, 100_000).every, 64);
    }

    #[test]
    fn a_copy_that_fills_the_window_is_answered() {
        // Nothing more is published until a copy in the window settles, so one must answer:
        // the window may be full by count, or by bytes long before a quarter of it.
        let mut policy = AnswerPolicy::new(true, 1024);
        assert!(policy.must_answer(1, 0, true));
        policy.published(true);
        assert!(!policy.must_answer(2, 0, false));
    }

    #[test]
    fn copies_up_to_a_failed_sequence_are_each_answered() {
        let policy = AnswerPolicy::new(true, 256);
        assert!(policy.must_answer(10, 12, false));
        assert!(policy.must_answer(12, 12, false));
        assert!(!policy.must_answer(13, 12, false));
    }
}
