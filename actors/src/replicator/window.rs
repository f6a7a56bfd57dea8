//! In-order acknowledgement bookkeeping for the ordered, pipelined replica worker.
//!
//! The ordered worker publishes several source messages to the target before the first target
//! ack comes back (a bounded window, DESIGN.md §4, research/replicator.md §6.1). The source may
//! only be acknowledged up to a sequence once that message *and every message dispatched before
//! it* were stored by the target, so the source is acked with AckAll semantics up to the
//! [`AckWindow::ackable_floor`]. When a publish fails the worker stops, [`AckWindow::rewind`]s
//! and resends from the first sequence the target has not acknowledged; the deterministic
//! `Nats-Msg-Id` lets the target drop the messages it already holds.
//!
//! Messages the sampler skips are never sent to the target but must still be acked on the
//! source in order: [`AckWindow::skip`] records them without using a window slot.

use std::collections::VecDeque;
use std::num::NonZeroUsize;

/// What went wrong when updating an [`AckWindow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// The window already holds `capacity` unacknowledged messages.
    #[error("ack window is full ({capacity} messages in flight)")]
    Full {
        /// The window's capacity.
        capacity: usize,
    },
    /// Sequences must be dispatched in increasing source order.
    #[error("sequence {seq} dispatched after sequence {last}")]
    NotIncreasing {
        /// The sequence that was refused.
        seq: u64,
        /// The highest sequence the window already accounts for.
        last: u64,
    },
    /// A publish failed and the worker must [`AckWindow::rewind`] before dispatching again.
    #[error("ack window must be rewound after a failed publish")]
    RewindPending,
    /// The sequence is not in the window: never dispatched, already acked on the source, or
    /// cleared by a rewind (a late target ack after a rewind is harmless and can be ignored).
    #[error("sequence {0} is not in the ack window")]
    Unknown(u64),
    /// The sequence was marked failed; it is resent after the rewind.
    #[error("sequence {0} already failed")]
    AlreadyFailed(u64),
}

/// Where one dispatched message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    /// Sent to the target, no answer yet.
    InFlight,
    /// The target stored it.
    Acked,
    /// The publish failed.
    Failed,
}

/// One dispatched message, plus the skipped messages that followed it.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Source stream sequence of the dispatched message.
    seq: u64,
    /// Highest source sequence this slot accounts for: `seq`, or the last skipped message
    /// recorded after it, which becomes ackable together with it.
    covers: u64,
    /// Target outcome of the dispatched message.
    state: SlotState,
}

/// Bounded, in-order acknowledgement window of one ordered replica worker.
///
/// All sequences are source stream sequences, given in the order the worker handles them
/// (strictly increasing; gaps are fine, e.g. from a subject filter).
#[derive(Debug, Clone)]
pub struct AckWindow {
    /// Most messages that may wait for a target ack at once.
    capacity: NonZeroUsize,
    /// Dispatched messages not yet released by [`AckWindow::ackable_floor`], oldest first.
    slots: VecDeque<Slot>,
    /// A floor reached by skipped messages while no slot was open, not yet returned.
    pending_floor: Option<u64>,
    /// Highest sequence the window accounts for (dispatched, skipped or released).
    high: Option<u64>,
    /// The floor last returned by [`AckWindow::ackable_floor`].
    released: Option<u64>,
    /// Whether a publish failed since the last rewind.
    failed: bool,
}

// === impl AckWindow ===

impl AckWindow {
    /// An empty window holding at most `capacity` messages in flight.
    pub fn new(capacity: NonZeroUsize) -> Self {
        Self {
            capacity,
            slots: VecDeque::with_capacity(capacity.get()),
            pending_floor: None,
            high: None,
            released: None,
            failed: false,
        }
    }

    /// The window's capacity.
    pub fn capacity(&self) -> NonZeroUsize {
        self.capacity
    }

    /// Number of dispatched messages held by the window: waiting for the target, or acked by
    /// the target but not yet released by [`AckWindow::ackable_floor`].
    pub fn in_flight(&self) -> usize {
        self.slots.len()
    }

    /// Whether [`AckWindow::dispatch`] would refuse another message for lack of room.
    pub fn is_full(&self) -> bool {
        self.slots.len() >= self.capacity.get()
    }

    /// Whether the window holds nothing: no message in flight and no floor to release.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty() && self.pending_floor.is_none()
    }

    /// Whether a publish failed and [`AckWindow::rewind`] has not been called since.
    pub fn has_failed(&self) -> bool {
        self.failed
    }

    /// Records that the message `seq` was sent to the target.
    pub fn dispatch(&mut self, seq: u64) -> Result<(), WindowError> {
        self.check_next(seq)?;
        if self.is_full() {
            return Err(WindowError::Full {
                capacity: self.capacity.get(),
            });
        }
        self.slots.push_back(Slot {
            seq,
            covers: seq,
            state: SlotState::InFlight,
        });
        self.high = Some(seq);
        Ok(())
    }

    /// Records that the message `seq` is not sent to the target (sampled out) but must be
    /// acked on the source in order. It takes no window slot: it becomes ackable together with
    /// the message dispatched before it, or at once when nothing is in flight.
    pub fn skip(&mut self, seq: u64) -> Result<(), WindowError> {
        self.check_next(seq)?;
        match self.slots.back_mut() {
            Some(last) => last.covers = seq,
            None => self.pending_floor = Some(seq),
        }
        self.high = Some(seq);
        Ok(())
    }

    /// Records that the target stored the message `seq`. Acking it twice is harmless.
    pub fn target_acked(&mut self, seq: u64) -> Result<(), WindowError> {
        let slot = self.slot_mut(seq)?;
        match slot.state {
            SlotState::InFlight | SlotState::Acked => {
                slot.state = SlotState::Acked;
                Ok(())
            }
            SlotState::Failed => Err(WindowError::AlreadyFailed(seq)),
        }
    }

    /// Records that publishing the message `seq` failed. Dispatching stops until
    /// [`AckWindow::rewind`]; the acks of earlier messages are still accepted.
    pub fn failed(&mut self, seq: u64) -> Result<(), WindowError> {
        let slot = self.slot_mut(seq)?;
        slot.state = SlotState::Failed;
        self.failed = true;
        Ok(())
    }

    /// Releases the messages acked by the target in dispatch order and returns the highest
    /// sequence the source can now be acked up to (AckAll), or `None` when the floor did not
    /// move since the last call.
    pub fn ackable_floor(&mut self) -> Option<u64> {
        let mut floor = self.pending_floor.take();
        while let Some(slot) = self.slots.front() {
            if slot.state != SlotState::Acked {
                break;
            }
            floor = Some(slot.covers);
            self.slots.pop_front();
        }
        if floor.is_some() {
            self.released = floor;
        }
        floor
    }

    /// Forgets every message after the acknowledged prefix and returns the first sequence the
    /// worker must resend from (`None` when everything dispatched was acked by the target).
    ///
    /// The acknowledged prefix is kept, so [`AckWindow::ackable_floor`] still releases it;
    /// target acks that arrive later for the forgotten messages return
    /// [`WindowError::Unknown`] and can be ignored. Clears the failure: dispatching resumes
    /// with the returned sequence.
    pub fn rewind(&mut self) -> Option<u64> {
        self.failed = false;
        let first_open = self
            .slots
            .iter()
            .position(|slot| slot.state != SlotState::Acked)?;
        let resend_from = self.slots.get(first_open).map(|slot| slot.seq);
        self.slots.truncate(first_open);
        // Everything from `resend_from` on is dispatched again, so the order check restarts
        // after what the window still accounts for: the kept prefix (with the skipped messages
        // folded into it, all below `resend_from`), else the floor not yet returned, else the
        // floor last returned.
        self.high = self
            .slots
            .back()
            .map(|last| last.covers)
            .or(self.pending_floor)
            .or(self.released);
        resend_from
    }

    /// Refuses sequences that do not follow the ones the window accounts for.
    fn check_next(&self, seq: u64) -> Result<(), WindowError> {
        if self.failed {
            return Err(WindowError::RewindPending);
        }
        match self.high {
            Some(last) if seq <= last => Err(WindowError::NotIncreasing { seq, last }),
            _ => Ok(()),
        }
    }

    /// The slot of `seq`, found by binary search (slots are sorted by sequence).
    fn slot_mut(&mut self, seq: u64) -> Result<&mut Slot, WindowError> {
        let index = self
            .slots
            .binary_search_by_key(&seq, |slot| slot.seq)
            .map_err(|_| WindowError::Unknown(seq))?;
        self.slots.get_mut(index).ok_or(WindowError::Unknown(seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn window(capacity: usize) -> AckWindow {
        AckWindow::new(NonZeroUsize::new(capacity).unwrap())
    }

    fn dispatch_all(window: &mut AckWindow, seqs: impl IntoIterator<Item = u64>) {
        for seq in seqs {
            window.dispatch(seq).unwrap();
        }
    }

    #[test]
    fn floor_is_none_until_the_first_message_is_acked() {
        let mut w = window(8);
        dispatch_all(&mut w, 1..=3);
        assert_eq!(w.ackable_floor(), None);
        w.target_acked(2).unwrap();
        w.target_acked(3).unwrap();
        assert_eq!(w.ackable_floor(), None);
        assert_eq!(w.in_flight(), 3);
    }

    #[test]
    fn out_of_order_acks_release_everything_once_the_gap_closes() {
        let mut w = window(8);
        dispatch_all(&mut w, [10, 11, 12, 13]);
        w.target_acked(12).unwrap();
        w.target_acked(13).unwrap();
        assert_eq!(w.ackable_floor(), None);
        w.target_acked(10).unwrap();
        assert_eq!(w.ackable_floor(), Some(10));
        w.target_acked(11).unwrap();
        assert_eq!(w.ackable_floor(), Some(13));
        assert_eq!(w.in_flight(), 0);
        assert!(w.is_empty());
    }

    #[test]
    fn floor_is_returned_once() {
        let mut w = window(4);
        w.dispatch(1).unwrap();
        w.target_acked(1).unwrap();
        assert_eq!(w.ackable_floor(), Some(1));
        assert_eq!(w.ackable_floor(), None);
    }

    #[test]
    fn acking_twice_is_harmless() {
        let mut w = window(4);
        w.dispatch(1).unwrap();
        w.target_acked(1).unwrap();
        w.target_acked(1).unwrap();
        assert_eq!(w.ackable_floor(), Some(1));
    }

    #[test]
    fn dispatch_is_refused_when_the_window_is_full() {
        let mut w = window(2);
        dispatch_all(&mut w, [1, 2]);
        assert!(w.is_full());
        assert_eq!(w.dispatch(3), Err(WindowError::Full { capacity: 2 }));
        w.target_acked(1).unwrap();
        // An acked message keeps its slot until the floor releases it.
        assert!(w.is_full());
        assert_eq!(w.ackable_floor(), Some(1));
        assert!(!w.is_full());
        w.dispatch(3).unwrap();
    }

    #[test]
    fn dispatch_requires_increasing_sequences() {
        let mut w = window(4);
        w.dispatch(5).unwrap();
        assert_eq!(
            w.dispatch(5),
            Err(WindowError::NotIncreasing { seq: 5, last: 5 })
        );
        assert_eq!(
            w.skip(3),
            Err(WindowError::NotIncreasing { seq: 3, last: 5 })
        );
        w.target_acked(5).unwrap();
        assert_eq!(w.ackable_floor(), Some(5));
        assert_eq!(
            w.dispatch(4),
            Err(WindowError::NotIncreasing { seq: 4, last: 5 })
        );
    }

    #[test]
    fn skipped_messages_with_nothing_in_flight_are_ackable_at_once() {
        let mut w = window(1);
        w.skip(1).unwrap();
        w.skip(2).unwrap();
        assert_eq!(w.in_flight(), 0);
        assert_eq!(w.ackable_floor(), Some(2));
        assert!(w.is_empty());
    }

    #[test]
    fn skipped_messages_become_ackable_with_the_message_before_them() {
        let mut w = window(1);
        w.dispatch(1).unwrap();
        // Skips take no slot, even in a full window.
        w.skip(2).unwrap();
        w.skip(3).unwrap();
        assert_eq!(w.ackable_floor(), None);
        w.target_acked(1).unwrap();
        assert_eq!(w.ackable_floor(), Some(3));
    }

    #[test]
    fn skips_before_the_first_dispatch_are_released_before_it() {
        let mut w = window(4);
        w.skip(1).unwrap();
        w.dispatch(2).unwrap();
        assert_eq!(w.ackable_floor(), Some(1));
        w.target_acked(2).unwrap();
        assert_eq!(w.ackable_floor(), Some(2));
    }

    #[test]
    fn failure_in_the_middle_rewinds_to_the_failed_sequence() {
        let mut w = window(8);
        dispatch_all(&mut w, 1..=5);
        w.target_acked(1).unwrap();
        w.target_acked(2).unwrap();
        w.failed(3).unwrap();
        w.target_acked(4).unwrap();
        w.target_acked(5).unwrap();
        assert!(w.has_failed());
        assert_eq!(w.ackable_floor(), Some(2));
        assert_eq!(w.rewind(), Some(3));
        assert!(!w.has_failed());
        assert_eq!(w.in_flight(), 0);
        // The resend restarts at the failed message; 4 and 5 go again (the target dedupes).
        dispatch_all(&mut w, 3..=5);
        for seq in 3..=5 {
            w.target_acked(seq).unwrap();
        }
        assert_eq!(w.ackable_floor(), Some(5));
    }

    #[test]
    fn rewind_keeps_the_acked_prefix_for_the_floor() {
        let mut w = window(8);
        dispatch_all(&mut w, 1..=4);
        w.target_acked(1).unwrap();
        w.target_acked(2).unwrap();
        w.failed(3).unwrap();
        assert_eq!(w.rewind(), Some(3));
        assert_eq!(w.in_flight(), 2);
        assert_eq!(w.ackable_floor(), Some(2));
        w.dispatch(3).unwrap();
    }

    #[test]
    fn rewind_resends_from_an_earlier_message_still_in_flight() {
        let mut w = window(8);
        dispatch_all(&mut w, 1..=4);
        w.target_acked(1).unwrap();
        w.failed(3).unwrap();
        // 2 has no answer yet: it is resent too.
        assert_eq!(w.rewind(), Some(2));
        assert_eq!(w.target_acked(2), Err(WindowError::Unknown(2)));
        assert_eq!(w.ackable_floor(), Some(1));
        w.dispatch(2).unwrap();
    }

    #[test]
    fn skips_folded_into_the_acked_prefix_survive_a_rewind() {
        let mut w = window(8);
        w.dispatch(1).unwrap();
        w.skip(2).unwrap();
        w.dispatch(3).unwrap();
        w.target_acked(1).unwrap();
        w.failed(3).unwrap();
        assert_eq!(w.rewind(), Some(3));
        assert_eq!(w.ackable_floor(), Some(2));
        w.dispatch(3).unwrap();
    }

    #[test]
    fn dispatch_is_refused_until_rewind_after_a_failure() {
        let mut w = window(8);
        dispatch_all(&mut w, [1, 2]);
        w.failed(2).unwrap();
        assert_eq!(w.dispatch(3), Err(WindowError::RewindPending));
        assert_eq!(w.skip(3), Err(WindowError::RewindPending));
        // Acks of earlier messages are still taken.
        w.target_acked(1).unwrap();
        assert_eq!(w.target_acked(2), Err(WindowError::AlreadyFailed(2)));
        assert_eq!(w.ackable_floor(), Some(1));
        assert_eq!(w.rewind(), Some(2));
        w.dispatch(2).unwrap();
    }

    #[test]
    fn rewind_with_everything_acked_has_nothing_to_resend() {
        let mut w = window(4);
        dispatch_all(&mut w, [1, 2]);
        w.target_acked(1).unwrap();
        w.target_acked(2).unwrap();
        assert_eq!(w.rewind(), None);
        assert_eq!(w.ackable_floor(), Some(2));
    }

    #[test]
    fn rewind_after_a_released_floor_accepts_the_resend() {
        let mut w = window(4);
        w.skip(1).unwrap();
        dispatch_all(&mut w, [2, 3]);
        assert_eq!(w.ackable_floor(), Some(1));
        w.failed(2).unwrap();
        assert_eq!(w.rewind(), Some(2));
        assert!(w.is_empty());
        w.dispatch(2).unwrap();
    }

    #[test]
    fn unknown_sequences_are_reported() {
        let mut w = window(4);
        w.dispatch(2).unwrap();
        assert_eq!(w.target_acked(1), Err(WindowError::Unknown(1)));
        assert_eq!(w.failed(3), Err(WindowError::Unknown(3)));
    }

    /// One step of a simulated worker: which message the target answers next.
    #[derive(Debug, Clone)]
    struct Plan {
        /// Per source message: true = dispatched, false = skipped by the sampler.
        dispatched: Vec<bool>,
        /// A permutation seed used to order the target acks.
        order: Vec<usize>,
        /// Index (into the dispatched messages) whose publish fails, if any.
        failure: Option<usize>,
    }

    fn plan() -> impl Strategy<Value = Plan> {
        (1usize..60)
            .prop_flat_map(|n| {
                (
                    proptest::collection::vec(prop::bool::weighted(0.7), n),
                    Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
                    proptest::option::of(0..n),
                )
            })
            .prop_map(|(dispatched, order, failure)| Plan {
                dispatched,
                order,
                failure,
            })
    }

    proptest! {
        #[test]
        fn random_ack_orders_never_yield_a_floor_past_an_unacked_message(p in plan()) {
            let mut w = window(64);
            // Source sequences with gaps: message i has sequence 3 * i + 1.
            let seq_of = |i: usize| 3 * i as u64 + 1;
            let mut sent = Vec::new();
            for (i, &dispatch) in p.dispatched.iter().enumerate() {
                if dispatch {
                    w.dispatch(seq_of(i)).unwrap();
                    sent.push(i);
                } else {
                    w.skip(seq_of(i)).unwrap();
                }
            }
            let mut acked = vec![false; p.dispatched.len()];
            let mut last_floor = 0;
            let failed = p.failure.and_then(|f| sent.get(f % sent.len().max(1)).copied());
            if let Some(f) = failed {
                w.failed(seq_of(f)).unwrap();
            }
            for &i in p.order.iter().filter(|i| sent.contains(i)) {
                if Some(i) == failed {
                    continue;
                }
                w.target_acked(seq_of(i)).unwrap();
                acked[i] = true;
                if let Some(floor) = w.ackable_floor() {
                    prop_assert!(floor > last_floor);
                    last_floor = floor;
                    // Every dispatched message at or below the floor was acked by the target.
                    for &j in &sent {
                        if seq_of(j) <= floor {
                            prop_assert!(acked[j], "floor {} passes unacked {}", floor, seq_of(j));
                        }
                    }
                }
            }
            match failed {
                None => {
                    let last = seq_of(p.dispatched.len() - 1);
                    prop_assert!(last_floor == last || w.ackable_floor() == Some(last));
                }
                Some(f) => {
                    let floor = w.ackable_floor().unwrap_or(last_floor).max(last_floor);
                    prop_assert!(floor < seq_of(f));
                    let resend = w.rewind();
                    prop_assert_eq!(resend, Some(seq_of(f)));
                    // The resend can be dispatched again, right after the released floor.
                    w.dispatch(seq_of(f)).unwrap();
                }
            }
        }
    }
}
