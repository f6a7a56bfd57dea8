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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream::consumer::AckPolicy;
use async_nats::jetstream::{self, Context as JetStream, ContextBuilder};
use futures::{FutureExt, StreamExt};
use tracing::{debug, error, info, warn};

use super::acks::AckInbox;
use super::choria::source_header;
use super::context::WorkerContext;
use super::envelope::{from_unix_nanos, target_headers};
use super::failure::{classify_send, dead_letter, Failure};
use super::gate::GateVerdict;
use super::setup::{self, SetupError};
use crate::supervision::Backoff;

mod window;

use window::{resume_point, Ack, Interrupt, Memory, Rejection, Settle, Settled, Window};

/// What the loop keeps with each entry of the window.
struct Held {
    message: jetstream::Message,
    published: SystemTime,
    sent: Instant,
}

/// A session with no message and no completion for this long, while the source reports
/// pending messages, is considered stalled and resumes from the target's position.
const STALL_AFTER: Duration = Duration::from_secs(10);

/// A publish the target has not answered for this long ends the session (the connection
/// dropped it, or the target is stuck): the next session resumes from the target's position.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// The source is acked (AckAll) at least every this many settled messages.
const ACK_EVERY: usize = 64;

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
    memory: &'a mut Memory,
    progressed: bool,
}

/// Runs the ordered copy loop forever.
pub async fn run(w: Arc<WorkerContext>, confirmed: Arc<AtomicU64>) {
    let window = w.settings.window.get();
    let source_js = jetstream::new(w.source.clone());
    let target_js = ContextBuilder::new()
        .max_ack_inflight(window.saturating_mul(2))
        .build(w.target.clone());
    let mut memory = Memory::default();
    let mut streak: u32 = 0;
    loop {
        let mut session = Session {
            w: &w,
            source_js: &source_js,
            target_js: &target_js,
            confirmed: &confirmed,
            memory: &mut memory,
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
            actix_rt::time::sleep(Backoff::RESUME.delay(streak - 1)).await;
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
        let floor = setup::consumer_floor(self.source_js, s).await?;
        let resume = resume_point(from_target, floor, self.confirmed.load(Ordering::Acquire));
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
        let target_last = match setup::target_last_sequence(self.target_js, s).await {
            Ok(last) => last,
            Err(e) => return End::Trouble(e.to_string()),
        };
        let mut inbox = match AckInbox::open(&w.target).await {
            Ok(inbox) => inbox,
            Err(e) => return End::Trouble(e.to_string()),
        };
        let mut dispatched = self.confirmed.load(Ordering::Acquire);
        let mut window: Window<Held> = Window::new(
            s.window.get(),
            s.window_bytes.get(),
            target_last,
            w.gate.copies_everything(),
        );
        let mut source_acks = SourceAcks::new(ack_policy);
        let mut last_activity = Instant::now();
        let mut stale = 0usize;
        let mut peeked: Option<Next> = None;
        let mut tick = actix_rt::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        let end = 'session: loop {
            // Settle what finished at the front, in source order.
            while let Some(settled) = window.settle() {
                let Settled {
                    seq,
                    item:
                        Held {
                            message,
                            published,
                            sent,
                        },
                    outcome,
                    ..
                } = settled;
                match outcome {
                    Settle::Stored { duplicate } => {
                        w.copied(message.payload.len(), sent, published);
                        self.confirmed.store(seq, Ordering::Release);
                        self.memory.stored(seq);
                        self.progressed = true;
                        source_acks.settled(message).await;
                        if duplicate {
                            break 'session End::Resync;
                        }
                    }
                    Settle::Skipped => {
                        self.confirmed.store(seq, Ordering::Release);
                        source_acks.settled(message).await;
                    }
                    Settle::Failed(failure) => {
                        break 'session self
                            .failed(seq, message, published, failure, &mut source_acks)
                            .await;
                    }
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
                    match window.acked(token, outcome, self.memory) {
                        Ack::Ignored | Ack::Recorded => {}
                        Ack::Interrupted(Interrupt::Duplicate) => break End::Resync,
                        Ack::Interrupted(Interrupt::Failed(Failure::Transient(reason))) => {
                            w.stats.failed_transient.inc();
                            break End::Trouble(format!("target publish: {reason}"));
                        }
                        Ack::Interrupted(Interrupt::Failed(Failure::OutOfOrder)) => {
                            w.stats.failed_out_of_order.inc();
                            break End::Resync;
                        }
                        Ack::Interrupted(Interrupt::Failed(Failure::Rejected(_))) => {
                            w.stats.failed_rejected.inc();
                            break End::Resync;
                        }
                    }
                }
                next = next_message(&mut peeked, &mut messages), if window.has_room() => {
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
                            if stale > s.window.get() {
                                break End::Trouble("the source keeps redelivering copied messages".to_owned());
                            }
                        }
                        continue;
                    }
                    dispatched = seq;
                    let sent = Instant::now();
                    let raw = &message.message;
                    w.stats.record_received(seq, raw.payload.len());
                    let bytes = raw.payload.len();
                    match w.gate.decide(raw.subject.as_str(), raw.headers.as_ref(), &raw.payload, seq, published) {
                        GateVerdict::Copy => {
                            let link = window.link(bytes);
                            let mut headers = target_headers(raw.headers.as_ref(), &s.name, &s.source_stream, seq, published, Some(link.expected_last), s.msg_id);
                            source_header::add(&mut headers, s.choria.as_ref(), &s.name, &s.source_stream, seq, published);
                            let subject = s.subject_map.map(raw.subject.as_str());
                            let answered = window.must_answer(&link, seq, self.memory)
                                || {
                                    // Unanswered only if another message is ready right now.
                                    peeked = messages.next().now_or_never();
                                    !matches!(peeked, Some(Some(Ok(_))))
                                };
                            let result = if answered {
                                w.target.publish_with_reply_and_headers(subject, inbox.reply(link.token), headers, raw.payload.clone()).await
                            } else {
                                w.target.publish_with_headers(subject, headers, raw.payload.clone()).await
                            };
                            let result = result.map_err(|e| classify_send(&e));
                            window.published(link, seq, bytes, Held { message, published, sent }, answered, result);
                        }
                        GateVerdict::Sampled | GateVerdict::TooOld => {
                            window.skipped(seq, bytes, Held { message, published, sent });
                        }
                    }
                }
                _ = tick.tick() => {
                    source_acks.flush().await;
                    if window.front_pending().is_some_and(|held| held.sent.elapsed() > ACK_TIMEOUT) {
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
                if let Rejection::Retry { tries } =
                    self.memory.rejected(seq, s.max_rejections.get())
                {
                    warn!(replicator = %s.name, seq, tries, %reason, "Target rejected a message; retrying.");
                    return End::Resync;
                }
                let mut headers = target_headers(
                    message.headers.as_ref(),
                    &s.name,
                    &s.source_stream,
                    seq,
                    published,
                    None,
                    s.msg_id,
                );
                source_header::add(
                    &mut headers,
                    s.choria.as_ref(),
                    &s.name,
                    &s.source_stream,
                    seq,
                    published,
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
                self.confirmed.store(seq, Ordering::Release);
                self.progressed = true;
                source_acks.settled(message).await;
                End::Resync
            }
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
