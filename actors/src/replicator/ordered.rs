//! The ordered copy loop: one worker, pipelined, in order, exactly once.
//!
//! Every source message becomes one entry of a pipeline of at most `window` entries: a target
//! publish awaiting its ack on the session's ack inbox ([`super::acks`]), or an already-settled
//! skip (sampled out, too old). Entries settle in source order. On an interest or work-queue
//! source the source is acknowledged in order (AckAll in batches, or each message on a work
//! queue) only after the target acked; on a limits-retention source the consumer takes no
//! acks at all ([`setup::ordered_consumer`]), because the resume point comes from the target.
//!
//! Each copy carries `Nats-Expected-Last-Sequence`: it lands only directly after its
//! predecessor, so a lost publish can never let a later one overtake it. Any failure ends the
//! *session*: the loop resumes from the last source sequence the target holds (read from the
//! provenance header of the target's last message), the consumer's ack floor (acked consumers
//! only), or what this worker saw confirmed, whichever is furthest, by re-creating the durable
//! consumer there. A
//! target that is down is retried forever with backoff; a message the target rejects is retried
//! `max_rejections` times and then dead-lettered.
//!
//! Because every copy must land right after its predecessor, no copy can land twice, however
//! long choir or a server was down: the `Nats-Msg-Id` duplicate window is not needed here and
//! is sent only with `msg_id = true`.
//!
//! The same chain makes most target acks unnecessary: a copy that was stored proves that every
//! copy before it in the session was stored, in order. So when every message is copied (no
//! sampling, no `max_age`), a copy asks the target for an ack only every `window / 4` copies
//! (at most 64), when no further message is ready right away (the tail must settle), when it
//! fills the window (by count or by `window_bytes`: nothing more goes until one settles), and for
//! every copy up to a sequence that failed in the previous session (so the copy that really
//! failed is the one that reports it). An unanswered publish costs the target server and
//! choir about half of an answered one.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream::consumer::AckPolicy;
use async_nats::jetstream::{self, Context as JetStream, ContextBuilder};
use futures::{FutureExt, StreamExt};
use tracing::{debug, error, info, warn};

use super::acks::{AckInbox, AckOutcome};
use super::envelope::{from_unix_nanos, target_headers};
use super::failure::{classify_send, dead_letter, Failure};
use super::gate::Verdict;
use super::setup::{self, SetupError};
use super::worker::WorkerContext;
use crate::connection::backoff;

/// Where one entry of the pipeline stands.
enum State {
    /// Published, waiting for the target's ack.
    Pending,
    /// The target stored it (or dropped it as a duplicate).
    Stored { duplicate: bool },
    /// Not copied (sampled out, too old); acked on the source in order.
    Skipped,
    /// The publish failed.
    Failed(Failure),
}

/// One source message in the pipeline, in source order.
struct Entry {
    /// Its place in this session's pipeline; the reply subject of its publish ends with it.
    token: u64,
    seq: u64,
    message: jetstream::Message,
    published: SystemTime,
    sent: Instant,
    state: State,
}

/// A session with no message and no completion for this long, while the source reports
/// pending messages, is considered stalled and resumes from the target's position.
const STALL_AFTER: Duration = Duration::from_secs(10);

/// A publish the target has not answered for this long ends the session (the connection
/// dropped it, or the target is stuck): the next session resumes from the target's position.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// The source is acked (AckAll) at least every this many settled messages.
const ACK_EVERY: usize = 64;

/// Most copies in a row published without asking the target for an ack.
const MAX_UNANSWERED_RUN: usize = 64;

/// What the source consumer yields.
type Next = Option<Result<jetstream::Message, jetstream::consumer::pull::MessagesError>>;

/// Why a session ended.
enum End {
    /// Resume from the target's position (after a rejection, an out-of-order refusal, a
    /// duplicate, or the source stream ending).
    Resync,
    /// Something is down: back off, then resume.
    Trouble(String),
}

struct Session<'a> {
    w: &'a WorkerContext,
    source_js: &'a JetStream,
    target_js: &'a JetStream,
    confirmed: &'a AtomicU64,
    rejections: &'a mut HashMap<u64, usize>,
    /// Copies up to this source sequence ask for their own ack (a failure was seen there).
    careful_through: &'a mut u64,
    progressed: bool,
}

/// Runs the ordered copy loop forever.
pub async fn run(w: Arc<WorkerContext>, confirmed: Arc<AtomicU64>) {
    let window = w.settings.window.get();
    let source_js = jetstream::new(w.source.clone());
    let target_js = ContextBuilder::new()
        .max_ack_inflight(window.saturating_mul(2))
        .build(w.target.clone());
    let mut rejections = HashMap::new();
    let mut careful_through = 0u64;
    let mut streak: u32 = 0;
    loop {
        let mut session = Session {
            w: &w,
            source_js: &source_js,
            target_js: &target_js,
            confirmed: &confirmed,
            rejections: &mut rejections,
            careful_through: &mut careful_through,
            progressed: false,
        };
        let end = match session.prepare().await {
            Ok((messages, ack_policy, resume)) => session.copy(messages, ack_policy, resume).await,
            Err(e) => End::Trouble(e.to_string()),
        };
        let progressed = session.progressed;
        w.stats.resyncs.inc();
        match end {
            End::Resync => {
                if progressed {
                    streak = 0;
                } else {
                    streak = streak.saturating_add(1);
                }
            }
            End::Trouble(reason) => {
                if streak == 0 {
                    warn!(replicator = %w.settings.name, %reason, "Ordered replication interrupted; resuming from the target's position.");
                } else {
                    debug!(replicator = %w.settings.name, %reason, streak, "Ordered replication still interrupted.");
                }
                streak = if progressed {
                    1
                } else {
                    streak.saturating_add(1)
                };
            }
        }
        if streak > 0 {
            actix_rt::time::sleep(backoff(
                streak - 1,
                Duration::from_millis(50),
                Duration::from_secs(2),
            ))
            .await;
        }
    }
}

impl Session<'_> {
    async fn prepare(
        &mut self,
    ) -> Result<(jetstream::consumer::pull::Stream, AckPolicy, u64), SetupError> {
        let s = &self.w.settings;
        if let Some(bound) = setup::queued_leftovers(self.source_js, s).await? {
            info!(replicator = %s.name, through = bound, "A queued run left copies unacknowledged; finishing them before ordered copying starts.");
            super::queued::drain(self.w, bound)
                .await
                .map_err(|message| SetupError::Handover {
                    stream: s.source_stream.clone(),
                    message,
                })?;
            info!(replicator = %s.name, through = bound, "Queued run finished; ordered copying starts.");
        }
        let from_target = setup::target_resume_point(self.target_js, s).await?;
        let floor = setup::consumer_floor(self.source_js, s)
            .await?
            .filter(|f| *f > 0);
        let local = Some(self.confirmed.load(Ordering::Acquire)).filter(|c| *c > 0);
        let resume = [from_target, floor, local].into_iter().flatten().max();
        let setup::OrderedConsumer {
            consumer,
            ack_policy,
        } = setup::ordered_consumer(self.source_js, s, resume).await?;
        debug!(replicator = %s.name, ?resume, ?from_target, ?floor, ?ack_policy, "Ordered session starts.");
        let messages = consumer
            .stream()
            .max_messages_per_batch(s.window.get())
            .max_bytes_per_batch(self.w.pull_max_bytes())
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(|e| SetupError::Consumer {
                stream: s.source_stream.clone(),
                consumer: s.durable_name(),
                message: e.to_string(),
            })?;
        // The target holds everything up to the resume point.
        let resume = resume.unwrap_or(0);
        self.confirmed.fetch_max(resume, Ordering::AcqRel);
        Ok((messages, ack_policy, resume))
    }

    async fn copy(
        &mut self,
        mut messages: jetstream::consumer::pull::Stream,
        ack_policy: AckPolicy,
        resume: u64,
    ) -> End {
        let w = self.w;
        let s = &w.settings;
        let window = s.window.get();
        let mut expected_last = match setup::target_last_sequence(self.target_js, s).await {
            Ok(last) => last,
            Err(e) => return End::Trouble(e.to_string()),
        };
        let mut inbox = match AckInbox::open(&w.target).await {
            Ok(inbox) => inbox,
            Err(e) => return End::Trouble(e.to_string()),
        };
        let mut dispatched = self.confirmed.load(Ordering::Acquire);
        let mut pipeline: VecDeque<Entry> = VecDeque::with_capacity(window);
        // Payload bytes held by the pipeline (bounded by `window_bytes`).
        let mut held_bytes = 0usize;
        let mut next_token: u64 = 0;
        let mut source_acks = SourceAcks::new(ack_policy);
        let mut last_activity = Instant::now();
        let mut stale = 0usize;
        // Unanswered copies need a later answered one; only possible when nothing is skipped.
        let mut answers = AnswerPolicy::new(w.gate.copies_everything(), window);
        let mut peeked: Option<Next> = None;
        let mut tick = actix_rt::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        let end = 'session: loop {
            // Settle what finished at the front, in source order.
            while pipeline
                .front()
                .is_some_and(|e| !matches!(e.state, State::Pending))
            {
                let Some(entry) = pipeline.pop_front() else {
                    break;
                };
                held_bytes = held_bytes.saturating_sub(entry.message.payload.len());
                let Entry {
                    seq,
                    message,
                    published,
                    sent,
                    state,
                    ..
                } = entry;
                match state {
                    State::Stored { duplicate } => {
                        w.copied(message.payload.len(), sent, published);
                        self.confirmed.store(seq, Ordering::Release);
                        self.rejections.remove(&seq);
                        self.progressed = true;
                        source_acks.settled(message).await;
                        if duplicate {
                            break 'session End::Resync;
                        }
                    }
                    State::Skipped => {
                        self.confirmed.store(seq, Ordering::Release);
                        source_acks.settled(message).await;
                    }
                    State::Failed(failure) => {
                        break 'session self
                            .failed(seq, message, published, failure, &mut source_acks)
                            .await;
                    }
                    State::Pending => {}
                }
                source_acks.flush_due().await;
            }

            tokio::select! {
                biased;
                ack = inbox.next() => {
                    let Some((token, outcome)) = ack else {
                        break End::Trouble("the target ack inbox closed".to_owned());
                    };
                    w.stats.target_acks.inc();
                    last_activity = Instant::now();
                    let index = pipeline
                        .front()
                        .and_then(|front| token.checked_sub(front.token))
                        .and_then(|i| usize::try_from(i).ok());
                    let Some(index) = index.filter(|i| *i < pipeline.len()) else {
                        continue;
                    };
                    let earlier_unknown = pipeline.iter().take(index).any(|e| matches!(e.state, State::Pending));
                    let Some(entry) = pipeline.get_mut(index) else { continue };
                    if !matches!(entry.state, State::Pending) {
                        continue;
                    }
                    match outcome {
                        AckOutcome::Stored { duplicate: true } if earlier_unknown => {
                            // A duplicate (msg_id = true) is dropped before the sequence
                            // check, so it vouches for nothing before it.
                            *self.careful_through = (*self.careful_through).max(entry.seq);
                            break End::Resync;
                        }
                        AckOutcome::Stored { duplicate } => {
                            entry.state = State::Stored { duplicate };
                            // The chain: everything before a stored copy is stored.
                            for earlier in pipeline.iter_mut().take(index) {
                                if matches!(earlier.state, State::Pending) {
                                    earlier.state = State::Stored { duplicate: false };
                                }
                            }
                        }
                        AckOutcome::Failed(failure) if earlier_unknown => {
                            // An unanswered copy before it may be the one that failed: resume
                            // from the target, every copy through this one answered.
                            *self.careful_through = (*self.careful_through).max(entry.seq);
                            match failure {
                                Failure::Transient(reason) => {
                                    w.stats.failed_transient.inc();
                                    break End::Trouble(format!("target publish: {reason}"));
                                }
                                Failure::OutOfOrder => {
                                    w.stats.failed_out_of_order.inc();
                                    break End::Resync;
                                }
                                Failure::Rejected(_) => {
                                    w.stats.failed_rejected.inc();
                                    break End::Resync;
                                }
                            }
                        }
                        AckOutcome::Failed(failure) => entry.state = State::Failed(failure),
                    }
                }
                next = next_message(&mut peeked, &mut messages), if pipeline.len() < window && held_bytes < s.window_bytes.get() => {
                    last_activity = Instant::now();
                    let message = match next {
                        None => break End::Resync,
                        Some(Err(e)) => break End::Trouble(format!("source consumer: {e}")),
                        Some(Ok(m)) => m,
                    };
                    let (seq, published) = match message.info() {
                        Ok(info) => (info.stream_sequence, from_unix_nanos(info.published.unix_timestamp_nanos())),
                        Err(e) => break End::Trouble(format!("source message without JetStream info: {e}")),
                    };
                    if seq <= dispatched {
                        // A redelivery (the source lost our ack, or ack_wait passed while the
                        // target was slow). In flight: a later AckAll covers it. Already
                        // confirmed: ack it now, or the consumer stalls at max_ack_pending.
                        // A work queue delivers from its first unacked message, so a session
                        // first sees what the target got but the source never heard about.
                        if seq <= self.confirmed.load(Ordering::Acquire) {
                            if let Err(e) = message.ack().await {
                                debug!(error = %e, seq, "Ack of a redelivered message failed.");
                            }
                            if seq <= resume {
                                continue;
                            }
                            // A source that lost its consumer state (a crash) may keep
                            // redelivering what is already copied: start a clean consumer.
                            stale += 1;
                            if stale > window {
                                break End::Trouble("the source keeps redelivering copied messages".to_owned());
                            }
                        }
                        continue;
                    }
                    dispatched = seq;
                    w.stats.received.inc();
                    let token = next_token;
                    next_token += 1;
                    let sent = Instant::now();
                    let raw = &message.message;
                    let state = match w.gate.decide(raw.subject.as_str(), raw.headers.as_ref(), &raw.payload, seq, published) {
                        Verdict::Copy => {
                            let headers = target_headers(raw.headers.as_ref(), &s.name, &s.source_stream, seq, published, Some(expected_last), s.msg_id);
                            let subject = s.subject_map.map(raw.subject.as_str());
                            expected_last += 1;
                            let fills_window = pipeline.len() + 1 >= window
                                || held_bytes.saturating_add(raw.payload.len()) >= s.window_bytes.get();
                            let answered = answers.must_answer(seq, *self.careful_through, fills_window)
                                || {
                                    // Unanswered only if another message is ready right now.
                                    peeked = messages.next().now_or_never();
                                    !matches!(peeked, Some(Some(Ok(_))))
                                };
                            answers.published(answered);
                            let result = if answered {
                                w.target.publish_with_reply_and_headers(subject, inbox.reply(token), headers, raw.payload.clone()).await
                            } else {
                                w.target.publish_with_headers(subject, headers, raw.payload.clone()).await
                            };
                            match result {
                                Ok(()) => State::Pending,
                                Err(e) => State::Failed(classify_send(&e)),
                            }
                        }
                        Verdict::Sampled | Verdict::TooOld => State::Skipped,
                    };
                    held_bytes = held_bytes.saturating_add(message.payload.len());
                    pipeline.push_back(Entry { token, seq, message, published, sent, state });
                }
                _ = tick.tick() => {
                    source_acks.flush().await;
                    if pipeline.front().is_some_and(|e| matches!(e.state, State::Pending) && e.sent.elapsed() > ACK_TIMEOUT) {
                        w.stats.failed_transient.inc();
                        break End::Trouble(format!("the target did not answer a publish within {}", humantime::format_duration(ACK_TIMEOUT)));
                    }
                    // Stall detector: nothing moved for a while although the source has
                    // messages for us (e.g. a source server lost consumer state in a crash).
                    if last_activity.elapsed() > STALL_AFTER {
                        last_activity = Instant::now();
                        if setup::consumer_lag(self.source_js, s).await.is_some_and(|lag| lag > 0) {
                            break End::Trouble("no progress although the source has pending messages".to_owned());
                        }
                    }
                }
            }
        };
        source_acks.flush().await;
        end
    }

    async fn failed(
        &mut self,
        seq: u64,
        message: jetstream::Message,
        published: SystemTime,
        failure: Failure,
        source_acks: &mut SourceAcks,
    ) -> End {
        let w = self.w;
        let s = &w.settings;
        match failure {
            Failure::OutOfOrder => {
                w.stats.failed_out_of_order.inc();
                End::Resync
            }
            Failure::Transient(reason) => {
                w.stats.failed_transient.inc();
                End::Trouble(format!("target publish: {reason}"))
            }
            Failure::Rejected(reason) => {
                w.stats.failed_rejected.inc();
                let tries = self.rejections.entry(seq).or_insert(0);
                *tries += 1;
                if *tries < s.max_rejections.get() {
                    warn!(replicator = %s.name, seq, tries = *tries, %reason, "Target rejected a message; retrying.");
                    return End::Resync;
                }
                let headers = target_headers(
                    message.headers.as_ref(),
                    &s.name,
                    &s.source_stream,
                    seq,
                    published,
                    None,
                    s.msg_id,
                );
                let sent = dead_letter(
                    &w.target,
                    &s.dead_letter,
                    headers,
                    message.payload.clone(),
                    &reason,
                )
                .await;
                w.stats.dead_lettered.inc();
                error!(
                    replicator = %s.name, seq, %reason, subject = %s.dead_letter, dead_letter_sent = sent,
                    "Target rejected a message for good; it was not copied and went to the dead-letter subject."
                );
                self.rejections.remove(&seq);
                self.confirmed.store(seq, Ordering::Release);
                self.progressed = true;
                source_acks.settled(message).await;
                End::Resync
            }
        }
    }
}

/// Which copies ask the target for an ack (see the module docs).
struct AnswerPolicy {
    /// Whether a copy may go unanswered at all (only when no message can be skipped).
    sparse: bool,
    /// At most this many copies in a row go unanswered.
    every: usize,
    /// Copies published unanswered since the last answered one.
    unanswered: usize,
}

impl AnswerPolicy {
    fn new(sparse: bool, window: usize) -> Self {
        Self {
            sparse,
            every: (window / 4).clamp(1, MAX_UNANSWERED_RUN),
            unanswered: 0,
        }
    }

    /// Whether the copy of source sequence `seq` must ask for an ack whatever follows it;
    /// `fills_window` when no further copy fits in the window (by count or by bytes) until
    /// one settles. When false, it asks only if no further message is ready right away.
    fn must_answer(&self, seq: u64, careful_through: u64, fills_window: bool) -> bool {
        !self.sparse || fills_window || seq <= careful_through || self.unanswered + 1 >= self.every
    }

    /// Records whether the copy just published asked for an ack.
    fn published(&mut self, answered: bool) {
        if answered {
            self.unanswered = 0;
        } else {
            self.unanswered += 1;
        }
    }
}

/// In-order source acks: AckAll in batches, every message for explicit acks, nothing for an
/// AckNone consumer.
struct SourceAcks {
    policy: AckPolicy,
    /// AckAll: the last settled message, whose ack covers every earlier one.
    candidate: Option<jetstream::Message>,
    /// AckAll: settled messages not acked yet.
    unacked: usize,
}

impl SourceAcks {
    fn new(policy: AckPolicy) -> Self {
        Self {
            policy,
            candidate: None,
            unacked: 0,
        }
    }

    /// `message` and every message before it are settled (copied, skipped or dead-lettered).
    async fn settled(&mut self, message: jetstream::Message) {
        match self.policy {
            AckPolicy::None => {}
            AckPolicy::All => {
                self.candidate = Some(message);
                self.unacked += 1;
            }
            AckPolicy::Explicit => ack(&message).await,
        }
    }

    /// Acks everything settled when a batch is full.
    async fn flush_due(&mut self) {
        if self.unacked >= ACK_EVERY {
            self.flush().await;
        }
    }

    /// Acks everything settled so far.
    async fn flush(&mut self) {
        if let Some(message) = self.candidate.take() {
            ack(&message).await;
        }
        self.unacked = 0;
    }
}

/// The looked-ahead message if there is one, else the consumer's next.
async fn next_message(
    peeked: &mut Option<Next>,
    messages: &mut jetstream::consumer::pull::Stream,
) -> Next {
    match peeked.take() {
        Some(next) => next,
        None => messages.next().await,
    }
}

async fn ack(message: &jetstream::Message) {
    if let Err(e) = message.ack().await {
        debug!(error = %e, "Source ack failed; the message is redelivered or the next session resumes from the target's position.");
    }
}

#[cfg(test)]
mod tests {
    use super::AnswerPolicy;

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
