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
pub(super) enum Settle {
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
pub(super) struct Link {
    /// The token of its reply subject.
    pub token: u64,
    /// The target stream's last sequence it must land after (`Nats-Expected-Last-Sequence`).
    pub expected_last: u64,
    /// No further copy fits in the window (by count or by bytes) until one settles.
    pub fills_window: bool,
}

/// What an ack did to the window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Ack {
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
pub(super) enum Interrupt {
    /// A duplicate is dropped before the sequence check, so it vouches for nothing before it.
    Duplicate,
    /// A copy failed while an earlier one is unanswered: that one may be the real failure.
    Failed(Failure),
}

/// A copy that left the front of the window.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Settled<M> {
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
pub(super) struct Window<M> {
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
    pub(super) fn new(
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
    pub(super) fn has_room(&self) -> bool {
        self.entries.len() < self.max_count && self.held_bytes < self.max_bytes
    }

    /// The next link of the chain, for a copy of `bytes` payload bytes. Publish it, then
    /// [`Window::published`] it before anything else enters.
    pub(super) fn link(&mut self, bytes: usize) -> Link {
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
    pub(super) fn must_answer(&self, link: &Link, seq: u64, memory: &Memory) -> bool {
        self.answers
            .must_answer(seq, memory.careful_through, link.fills_window)
    }

    /// The copy of `link` was published (`sent` is what the client said), asking for an ack
    /// when `answered`.
    pub(super) fn published(
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
    pub(super) fn skipped(&mut self, seq: u64, bytes: usize, item: M) {
        let token = self.take_token();
        self.push(token, seq, bytes, item, State::Done(Settle::Skipped));
    }

    /// Records the target's answer to the copy with `token`.
    pub(super) fn acked(&mut self, token: u64, outcome: AckOutcome, memory: &mut Memory) -> Ack {
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
    pub(super) fn settle(&mut self) -> Option<Settled<M>> {
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
    pub(super) fn front_pending(&self) -> Option<&M> {
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
pub(super) struct Memory {
    /// Copies up to this source sequence ask for their own ack (a failure was seen there).
    pub careful_through: u64,
    /// How often the target rejected each sequence.
    rejections: HashMap<u64, usize>,
}

/// What to do with a message the target rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Rejection {
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
    pub(super) fn stored(&mut self, seq: u64) {
        self.rejections.remove(&seq);
    }

    /// The target rejected `seq`; after `max_rejections` rejections it is given up.
    pub(super) fn rejected(&mut self, seq: u64, max_rejections: usize) -> Rejection {
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
pub(super) fn resume_point(
    from_target: Option<u64>,
    floor: Option<u64>,
    confirmed: u64,
) -> Option<u64> {
    let floor = floor.filter(|f| *f > 0);
    let local = Some(confirmed).filter(|c| *c > 0);
    [from_target, floor, local].into_iter().flatten().max()
}

/// Which copies ask the target for an ack (see the docs of [`super`]).
pub(super) struct AnswerPolicy {
    /// Whether a copy may go unanswered at all (only when no message can be skipped).
    sparse: bool,
    /// At most this many copies in a row go unanswered.
    every: usize,
    /// Copies published unanswered since the last answered one.
    unanswered: usize,
}

impl AnswerPolicy {
    /// The policy of a window of `window` copies.
    pub(super) fn new(sparse: bool, window: usize) -> Self {
        Self {
            sparse,
            every: (window / 4).clamp(1, MAX_UNANSWERED_RUN),
            unanswered: 0,
        }
    }

    /// Whether the copy of source sequence `seq` must ask for an ack whatever follows it;
    /// `fills_window` when no further copy fits in the window (by count or by bytes) until
    /// one settles. When false, it asks only if no further message is ready right away.
    pub(super) fn must_answer(&self, seq: u64, careful_through: u64, fills_window: bool) -> bool {
        !self.sparse || fills_window || seq <= careful_through || self.unanswered + 1 >= self.every
    }

    /// Records whether the copy just published asked for an ack.
    pub(super) fn published(&mut self, answered: bool) {
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

    use proptest::prelude::*;

    fn rejected() -> Failure {
        Failure::Rejected("too large".to_owned())
    }

    /// A window of `count` copies and plenty of bytes, chained to a target at `last`.
    fn window(count: usize, last: u64) -> Window<()> {
        Window::new(count, usize::MAX, last, true)
    }

    /// Publishes the copy of `seq`, answered or not; returns its link.
    fn copy(w: &mut Window<()>, seq: u64, answered: bool) -> Link {
        let link = w.link(10);
        w.published(link, seq, 10, (), answered, Ok(()));
        link
    }

    fn settle_all(w: &mut Window<()>) -> Vec<(u64, Settle)> {
        std::iter::from_fn(|| w.settle().map(|s| (s.seq, s.outcome))).collect()
    }

    const STORED: AckOutcome = AckOutcome::Stored { duplicate: false };

    #[test]
    fn each_copy_expects_the_target_sequence_after_its_predecessor() {
        let mut w = window(8, 41);
        assert_eq!(copy(&mut w, 7, true).expected_last, 41);
        w.skipped(8, 10, ());
        let link = copy(&mut w, 9, true);
        assert_eq!(link.expected_last, 42, "a skipped message takes no link");
        assert_eq!(link.token, 2, "every entry takes a token");
    }

    #[test]
    fn an_ack_overtaking_an_earlier_one_vouches_for_it_and_settles_in_order() {
        let mut memory = Memory::default();
        let mut w = window(8, 0);
        for seq in 1..=3 {
            copy(&mut w, seq, true);
        }
        assert_eq!(w.acked(2, STORED, &mut memory), Ack::Recorded);
        let stored = Settle::Stored { duplicate: false };
        assert_eq!(
            settle_all(&mut w),
            vec![(1, stored.clone()), (2, stored.clone()), (3, stored)]
        );
        // The overtaken acks arrive late: nothing waits for them any more.
        assert_eq!(w.acked(0, STORED, &mut memory), Ack::Ignored);
        assert_eq!(w.acked(1, STORED, &mut memory), Ack::Ignored);
        assert_eq!(memory.careful_through, 0);
    }

    #[test]
    fn a_done_copy_waits_behind_an_unanswered_front() {
        let mut memory = Memory::default();
        let mut w = window(8, 0);
        copy(&mut w, 1, true);
        w.skipped(2, 10, ());
        let third = copy(&mut w, 3, true);
        let fourth = w.link(10);
        w.published(fourth, 4, 10, (), true, Err(rejected()));
        assert_eq!(w.settle(), None, "the front is still pending");
        assert!(w.front_pending().is_some());
        assert_eq!(w.acked(0, STORED, &mut memory), Ack::Recorded);
        assert_eq!(
            settle_all(&mut w),
            vec![
                (1, Settle::Stored { duplicate: false }),
                (2, Settle::Skipped)
            ]
        );
        assert_eq!(w.acked(third.token, STORED, &mut memory), Ack::Recorded);
        assert_eq!(
            settle_all(&mut w),
            vec![
                (3, Settle::Stored { duplicate: false }),
                (4, Settle::Failed(rejected()))
            ]
        );
        assert!(w.front_pending().is_none());
    }

    #[test]
    fn a_rejection_behind_unanswered_copies_ends_the_session_and_makes_them_careful() {
        let mut memory = Memory::default();
        let mut w = window(8, 0);
        copy(&mut w, 5, false);
        copy(&mut w, 6, false);
        let answered = copy(&mut w, 7, true);
        assert_eq!(
            w.acked(answered.token, AckOutcome::Failed(rejected()), &mut memory),
            Ack::Interrupted(Interrupt::Failed(rejected()))
        );
        assert_eq!(w.settle(), None, "nothing behind an unknown copy settles");
        assert_eq!(memory.careful_through, 7);
        // Next session: every copy up to 7 asks for its own answer.
        let mut next = window(8, 4);
        for seq in 5..=7 {
            let link = next.link(10);
            assert!(next.must_answer(&link, seq, &memory), "copy {seq}");
            next.published(link, seq, 10, (), true, Ok(()));
        }
        let link = next.link(10);
        assert!(!next.must_answer(&link, 8, &memory));
    }

    #[test]
    fn a_rejection_of_the_front_settles_as_failed() {
        let mut memory = Memory::default();
        let mut w = window(8, 0);
        copy(&mut w, 1, true);
        copy(&mut w, 2, true);
        assert_eq!(
            w.acked(0, AckOutcome::Failed(rejected()), &mut memory),
            Ack::Recorded
        );
        assert_eq!(settle_all(&mut w), vec![(1, Settle::Failed(rejected()))]);
        assert_eq!(memory.careful_through, 0);
    }

    #[test]
    fn a_wrong_last_sequence_answer_is_out_of_order() {
        let mut memory = Memory::default();
        let mut w = window(8, 0);
        copy(&mut w, 1, true);
        copy(&mut w, 2, true);
        let out_of_order = AckOutcome::Failed(Failure::OutOfOrder);
        // Behind an unanswered copy it ends the session at once.
        assert_eq!(
            w.acked(1, out_of_order.clone(), &mut memory),
            Ack::Interrupted(Interrupt::Failed(Failure::OutOfOrder))
        );
        assert_eq!(memory.careful_through, 2);
        // At the front it settles as out of order.
        assert_eq!(w.acked(0, out_of_order, &mut memory), Ack::Recorded);
        assert_eq!(
            settle_all(&mut w),
            vec![(1, Settle::Failed(Failure::OutOfOrder))]
        );
    }

    #[test]
    fn a_duplicate_vouches_for_nothing_before_it() {
        let mut memory = Memory::default();
        let mut w = window(8, 0);
        copy(&mut w, 1, false);
        copy(&mut w, 2, true);
        let duplicate = AckOutcome::Stored { duplicate: true };
        assert_eq!(
            w.acked(1, duplicate.clone(), &mut memory),
            Ack::Interrupted(Interrupt::Duplicate)
        );
        assert_eq!(w.settle(), None);
        assert_eq!(memory.careful_through, 2);
        assert_eq!(w.acked(0, duplicate, &mut memory), Ack::Recorded);
        assert_eq!(
            settle_all(&mut w),
            vec![(1, Settle::Stored { duplicate: true })]
        );
    }

    #[test]
    fn the_window_is_full_by_count() {
        let mut memory = Memory::default();
        let mut w = window(3, 0);
        assert!(!copy(&mut w, 1, false).fills_window);
        assert!(!copy(&mut w, 2, false).fills_window);
        assert!(w.has_room());
        let last = w.link(10);
        assert!(last.fills_window);
        assert!(
            w.must_answer(&last, 3, &memory),
            "the copy that fills it is answered"
        );
        w.published(last, 3, 10, (), true, Ok(()));
        assert!(!w.has_room());
        assert_eq!(w.acked(last.token, STORED, &mut memory), Ack::Recorded);
        assert_eq!(settle_all(&mut w).len(), 3);
        assert!(w.has_room());
    }

    #[test]
    fn the_window_is_full_by_bytes() {
        let mut memory = Memory::default();
        let mut w: Window<()> = Window::new(1024, 100, 0, true);
        let first = w.link(60);
        assert!(!first.fills_window);
        w.published(first, 1, 60, (), false, Ok(()));
        assert!(w.has_room());
        let second = w.link(50);
        assert!(
            second.fills_window,
            "60 + 50 bytes reach the 100-byte window"
        );
        assert!(w.must_answer(&second, 2, &memory));
        w.published(second, 2, 50, (), true, Ok(()));
        assert!(!w.has_room());
        assert_eq!(w.acked(second.token, STORED, &mut memory), Ack::Recorded);
        assert_eq!(w.settle().map(|s| s.seq), Some(1));
        assert!(w.has_room(), "60 bytes freed, 50 held");
        assert_eq!(w.settle().map(|s| s.seq), Some(2));
        assert!(w.has_room());
    }

    #[test]
    fn after_a_reconnect_with_copies_in_flight_the_next_session_chains_onto_what_the_target_holds()
    {
        let mut memory = Memory::default();
        let mut w = window(8, 0);
        for seq in 1..=4 {
            copy(&mut w, seq, true);
        }
        // The connection drops: 1 and 2 were stored and answered, 3 and 4 were lost, and
        // the next publish fails to send.
        let link = w.link(10);
        w.published(
            link,
            5,
            10,
            (),
            true,
            Err(Failure::Transient("disconnected".to_owned())),
        );
        assert_eq!(w.acked(1, STORED, &mut memory), Ack::Recorded);
        assert_eq!(settle_all(&mut w).len(), 2);
        assert!(
            w.front_pending().is_some(),
            "3 waits; the loop times it out"
        );
        // The next session resumes after what the target holds and chains onto it.
        let resume = resume_point(Some(2), None, 2);
        assert_eq!(resume, Some(2));
        let mut next = window(8, 2);
        let link = next.link(10);
        assert_eq!((link.token, link.expected_last), (0, 2));
    }

    #[test]
    fn the_session_resumes_from_the_furthest_known_point() {
        assert_eq!(resume_point(None, None, 0), None);
        assert_eq!(resume_point(Some(5), Some(9), 7), Some(9));
        assert_eq!(resume_point(Some(5), Some(0), 7), Some(7));
        assert_eq!(resume_point(Some(8), None, 3), Some(8));
    }

    #[test]
    fn a_message_is_retried_until_max_rejections_then_dead_lettered() {
        let mut memory = Memory::default();
        assert_eq!(memory.rejected(4, 3), Rejection::Retry { tries: 1 });
        assert_eq!(memory.rejected(4, 3), Rejection::Retry { tries: 2 });
        assert_eq!(memory.rejected(4, 3), Rejection::DeadLetter);
        assert_eq!(memory.rejected(4, 3), Rejection::Retry { tries: 1 });
        memory.stored(4);
        assert_eq!(memory.rejected(4, 3), Rejection::Retry { tries: 1 });
    }

    /// A JetStream target stream, as far as the chain is concerned.
    #[derive(Default)]
    struct Target {
        /// The source sequences it stored, in its own order.
        stored: Vec<u64>,
    }

    impl Target {
        fn publish(&mut self, seq: u64, expected_last: u64, poison: bool) -> AckOutcome {
            if expected_last != self.stored.len() as u64 {
                AckOutcome::Failed(Failure::OutOfOrder)
            } else if poison {
                AckOutcome::Failed(rejected())
            } else {
                self.stored.push(seq);
                STORED
            }
        }
    }

    /// One step of the world around the copy loop.
    #[derive(Clone, Debug)]
    enum Step {
        /// The next source message arrives; `more` when another one is ready right after it.
        Pull { more: bool },
        /// One of the answers on the wire arrives (any of them: acks may overtake).
        Answer(usize),
        /// The next publish is lost on the wire.
        Lose,
        /// The next publish fails to send.
        SendFails,
        /// The connection drops or an ack times out: the session ends, its answers are lost.
        Reconnect,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => any::<bool>().prop_map(|more| Step::Pull { more }),
            4 => any::<usize>().prop_map(Step::Answer),
            1 => Just(Step::Lose),
            1 => Just(Step::SendFails),
            1 => Just(Step::Reconnect),
        ]
    }

    /// The copy loop's bookkeeping around a [`Window`], driven by [`Step`]s.
    struct Sim {
        messages: u64,
        skip_every: Option<u64>,
        poison_every: Option<u64>,
        max_count: usize,
        max_bytes: usize,
        max_rejections: usize,
        target: Target,
        memory: Memory,
        confirmed: u64,
        /// Source sequences acked on the source, in order.
        source_acked: Vec<u64>,
        skipped: Vec<u64>,
        dead: Vec<u64>,
        session: Option<Window<()>>,
        /// The last source sequence taken into the session.
        dispatched: u64,
        wire: Vec<(u64, AckOutcome)>,
        lose_next: bool,
        fail_next: bool,
    }

    impl Sim {
        fn bytes(seq: u64) -> usize {
            usize::try_from(seq % 7 + 1).unwrap_or(1) * 10
        }

        fn skips(&self, seq: u64) -> bool {
            self.skip_every.is_some_and(|n| seq.is_multiple_of(n))
        }

        fn poison(&self, seq: u64) -> bool {
            self.poison_every.is_some_and(|n| seq % n == 3)
        }

        fn end_session(&mut self) {
            self.session = None;
            self.wire.clear();
        }

        /// Starts a session as the loop's `prepare` does, when there is none.
        fn start(&mut self) {
            if self.session.is_some() {
                return;
            }
            let target_resume = self.target.stored.last().copied();
            let resume = resume_point(target_resume, None, self.confirmed).unwrap_or(0);
            self.confirmed = self.confirmed.max(resume);
            self.dispatched = resume;
            let target_last = self.target.stored.len() as u64;
            self.session = Some(Window::new(
                self.max_count,
                self.max_bytes,
                target_last,
                self.skip_every.is_none(),
            ));
        }

        /// Whether the loop would take another message now.
        fn can_pull(&mut self) -> bool {
            self.start();
            self.dispatched < self.messages && self.session.as_ref().is_some_and(Window::has_room)
        }

        fn step(&mut self, step: Step) -> Result<(), TestCaseError> {
            match step {
                Step::Pull { more } => self.pull(more),
                Step::Answer(i) => {
                    if !self.wire.is_empty() {
                        let (token, outcome) = self.wire.remove(i % self.wire.len());
                        self.answer(token, outcome)?;
                    }
                }
                Step::Lose => self.lose_next = true,
                Step::SendFails => self.fail_next = true,
                Step::Reconnect => self.end_session(),
            }
            self.settle()
        }

        fn pull(&mut self, more: bool) {
            if !self.can_pull() {
                return;
            }
            let seq = self.dispatched + 1;
            self.dispatched = seq;
            let bytes = Self::bytes(seq);
            let (skip, poison) = (self.skips(seq), self.poison(seq));
            let Some(window) = self.session.as_mut() else {
                return;
            };
            if skip {
                window.skipped(seq, bytes, ());
                return;
            }
            let link = window.link(bytes);
            let answered =
                window.must_answer(&link, seq, &self.memory) || !(more && seq < self.messages);
            let sent = if self.fail_next {
                self.fail_next = false;
                Err(Failure::Transient("send failed".to_owned()))
            } else {
                if self.lose_next {
                    self.lose_next = false;
                } else {
                    let outcome = self.target.publish(seq, link.expected_last, poison);
                    if answered {
                        self.wire.push((link.token, outcome));
                    }
                }
                Ok(())
            };
            window.published(link, seq, bytes, (), answered, sent);
        }

        fn answer(&mut self, token: u64, outcome: AckOutcome) -> Result<(), TestCaseError> {
            let Some(window) = self.session.as_mut() else {
                return Ok(());
            };
            if let Ack::Interrupted(_) = window.acked(token, outcome, &mut self.memory) {
                self.end_session();
            }
            Ok(())
        }

        /// Settles the front as the loop does, checking that the source is acked in order
        /// and only for what the target holds (or gave up, or skipped).
        fn settle(&mut self) -> Result<(), TestCaseError> {
            while let Some(settled) = self.session.as_mut().and_then(Window::settle) {
                let seq = settled.seq;
                let source_ack = |sim: &mut Sim| -> Result<(), TestCaseError> {
                    prop_assert!(
                        sim.source_acked.last().is_none_or(|last| *last < seq),
                        "source acked {seq} after {:?}",
                        sim.source_acked.last()
                    );
                    sim.source_acked.push(seq);
                    sim.confirmed = seq;
                    Ok(())
                };
                match settled.outcome {
                    Settle::Stored { duplicate } => {
                        prop_assert!(!duplicate);
                        prop_assert!(
                            self.target.stored.contains(&seq),
                            "source acked {seq}, which the target does not hold"
                        );
                        self.memory.stored(seq);
                        source_ack(self)?;
                    }
                    Settle::Skipped => {
                        prop_assert!(self.skips(seq));
                        self.skipped.push(seq);
                        source_ack(self)?;
                    }
                    Settle::Failed(Failure::Rejected(_)) => {
                        prop_assert!(self.poison(seq), "{seq} rejected but not poison");
                        if self.memory.rejected(seq, self.max_rejections) == Rejection::DeadLetter {
                            self.dead.push(seq);
                            source_ack(self)?;
                        }
                        self.end_session();
                    }
                    Settle::Failed(_) => self.end_session(),
                }
            }
            Ok(())
        }

        /// The target in source order, with no gap but what is skipped or dead-lettered,
        /// and no duplicate.
        fn check_target(&self) -> Result<(), TestCaseError> {
            let stored = &self.target.stored;
            prop_assert!(
                stored.windows(2).all(|p| p[0] < p[1]),
                "target out of order or duplicated: {stored:?}"
            );
            let top = stored.iter().chain(&self.dead).max().copied().unwrap_or(0);
            for seq in 1..=top {
                let on_target = stored.contains(&seq);
                let dead = self.dead.iter().filter(|d| **d == seq).count();
                if self.skips(seq) {
                    prop_assert!(!on_target && dead == 0, "skipped {seq} was copied");
                } else {
                    prop_assert!(
                        usize::from(on_target) + dead == 1,
                        "{seq}: on target {on_target}, dead-lettered {dead} times; target {stored:?}"
                    );
                }
            }
            Ok(())
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_interleaving_copies_in_order_without_gap_or_duplicate(
            steps in proptest::collection::vec(step(), 0..300),
            messages in 1u64..60,
            max_count in 1usize..10,
            max_bytes in 10usize..200,
            skip_every in proptest::option::of(2u64..6),
            poison_every in proptest::option::of(5u64..13),
        ) {
            let mut sim = Sim {
                messages,
                skip_every,
                poison_every,
                max_count,
                max_bytes,
                max_rejections: 2,
                target: Target::default(),
                memory: Memory::default(),
                confirmed: 0,
                source_acked: Vec::new(),
                skipped: Vec::new(),
                dead: Vec::new(),
                session: None,
                dispatched: 0,
                wire: Vec::new(),
                lose_next: false,
                fail_next: false,
            };
            for step in steps {
                sim.step(step)?;
                sim.check_target()?;
            }
            // Then the faults stop: every message gets through, answers in order.
            for _ in 0..100_000 {
                if sim.confirmed >= messages {
                    break;
                }
                if !sim.wire.is_empty() {
                    sim.step(Step::Answer(0))?;
                } else if sim.can_pull() {
                    sim.step(Step::Pull { more: false })?;
                } else {
                    // Nothing answers: the loop's ack timeout ends the session.
                    sim.step(Step::Reconnect)?;
                }
                sim.check_target()?;
            }
            prop_assert_eq!(sim.confirmed, messages, "stuck; target {:?}", sim.target.stored);
            sim.check_target()?;
            let last_on_target = sim.target.stored.last().copied().unwrap_or(0);
            prop_assert!(sim.source_acked.iter().all(|s| *s <= messages));
            prop_assert!(last_on_target <= messages);
        }
    }

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
