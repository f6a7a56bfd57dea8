//! Talking to JetStream about streams and consumers: the target stream, the durable source
//! consumer, and the resume point.

use std::time::Duration;

use async_nats::jetstream::consumer::pull::Config as PullConfig;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::stream::{Config as StreamConfig, RetentionPolicy};
use async_nats::jetstream::Context;

use super::choria::{SrSource, SR_SOURCE};
use super::envelope::{Provenance, PROVENANCE};
use super::settings::{ReplicatorSettings, StartPosition};

/// Errors of replicator setup.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The source stream is not there.
    #[error("source stream {stream}: {message}")]
    Source {
        /// The stream.
        stream: String,
        /// What went wrong.
        message: String,
    },
    /// The target stream is not there and may not be created, or creating it failed.
    #[error("target stream {stream}: {message}")]
    Target {
        /// The stream.
        stream: String,
        /// What went wrong.
        message: String,
    },
    /// A consumer call failed.
    #[error("consumer {consumer} on {stream}: {message}")]
    Consumer {
        /// The stream.
        stream: String,
        /// The consumer.
        consumer: String,
        /// What went wrong.
        message: String,
    },
    /// Finishing a queued run's unacknowledged copies before ordered copying failed.
    #[error("handover from queued to ordered on {stream}: {message}")]
    Handover {
        /// The source stream.
        stream: String,
        /// What went wrong.
        message: String,
    },
}

/// Ends the description of a queued pool's consumer (an ordered worker's ends in
/// [`ORDERED_TAG`]): a work-queue stream's consumer takes explicit acks in both modes.
const QUEUED_TAG: &str = "(queued)";
/// Ends the description of an ordered worker's consumer.
const ORDERED_TAG: &str = "(ordered)";

/// The source stream, or a `Source` error naming it.
async fn source_stream(
    source: &Context,
    settings: &ReplicatorSettings,
) -> Result<async_nats::jetstream::stream::Stream, SetupError> {
    source
        .get_stream(&settings.source_stream)
        .await
        .map_err(|e| SetupError::Source {
            stream: settings.source_stream.clone(),
            message: e.to_string(),
        })
}

/// The source stream's retention policy.
async fn retention(
    stream: &mut async_nats::jetstream::stream::Stream,
    settings: &ReplicatorSettings,
) -> Result<RetentionPolicy, SetupError> {
    let info = stream.info().await.map_err(|e| SetupError::Source {
        stream: settings.source_stream.clone(),
        message: e.to_string(),
    })?;
    Ok(info.config.retention)
}

/// Makes sure the target stream exists, creating it from the source stream's config (subjects
/// mapped, limits retention, no mirror or sources) when it is missing and allowed.
pub async fn ensure_target_stream(
    source: &Context,
    target: &Context,
    settings: &ReplicatorSettings,
) -> Result<(), SetupError> {
    let target_err = |message: String| SetupError::Target {
        stream: settings.target_stream.clone(),
        message,
    };
    match target.get_stream(&settings.target_stream).await {
        Ok(_) => return Ok(()),
        Err(e) if !settings.create_target => {
            return Err(target_err(format!("{e} (and create_target = false)")));
        }
        Err(_) => {}
    }
    let mut source_stream = source_stream(source, settings).await?;
    let info = source_stream.info().await.map_err(|e| SetupError::Source {
        stream: settings.source_stream.clone(),
        message: e.to_string(),
    })?;
    let source_config = info.config.clone();
    let mut subjects: Vec<String> = source_config
        .subjects
        .iter()
        .map(|s| settings.subject_map.map(s))
        .collect();
    if subjects.is_empty() {
        subjects.push(format!("{}.>", settings.target_stream));
    }
    let config = StreamConfig {
        name: settings.target_stream.clone(),
        subjects,
        retention: RetentionPolicy::Limits,
        storage: source_config.storage,
        max_messages: source_config.max_messages,
        max_bytes: source_config.max_bytes,
        max_age: source_config.max_age,
        max_message_size: source_config.max_message_size,
        max_messages_per_subject: source_config.max_messages_per_subject,
        discard: source_config.discard,
        duplicate_window: source_config.duplicate_window.max(Duration::from_secs(120)),
        num_replicas: 1,
        description: Some(format!(
            "choir replica of {} (replicator {})",
            settings.source_stream, settings.name
        )),
        ..Default::default()
    };
    // choir made this stream, so it may allow fast-ingest batches where the server has them.
    let batched = super::publish_path::server_features(&target.client())
        .await
        .fast_batch();
    if batched {
        super::publish_path::create_batched_stream(target, &config)
            .await
            .map_err(target_err)?;
    } else {
        target
            .create_stream(config)
            .await
            .map_err(|e| target_err(e.to_string()))?;
    }
    tracing::info!(
        replicator = %settings.name,
        stream = %settings.target_stream,
        allow_batched = batched,
        "Created the target stream from the source stream's config."
    );
    Ok(())
}

/// The last source sequence the target holds from this replicator, read from the provenance
/// header of the target stream's last message (with `compat = "choria"`, also from the
/// `Choria-SR-Source` header of a copy the Choria Stream Replicator made).
pub async fn target_resume_point(
    target: &Context,
    settings: &ReplicatorSettings,
) -> Result<Option<u64>, SetupError> {
    let err = |message: String| SetupError::Target {
        stream: settings.target_stream.clone(),
        message,
    };
    let mut stream = target
        .get_stream(&settings.target_stream)
        .await
        .map_err(|e| err(e.to_string()))?;
    let last = stream
        .info()
        .await
        .map_err(|e| err(e.to_string()))?
        .state
        .last_sequence;
    if last == 0 {
        return Ok(None);
    }
    let message = match stream.get_raw_message(last).await {
        Ok(m) => m,
        // Deleted or purged: nothing to resume from.
        Err(_) => return Ok(None),
    };
    let ours = message
        .headers
        .get(PROVENANCE)
        .and_then(|v| Provenance::parse(v.as_str()))
        .filter(|p| p.replicator == settings.name && p.stream == settings.source_stream)
        .map(|p| p.seq);
    if ours.is_some() || settings.choria.is_none() {
        return Ok(ours);
    }
    // Taking over from the Choria Stream Replicator: its last copy says where it stopped
    // (the per-stream name must be this replicator's, as `choir import` keeps it).
    Ok(message
        .headers
        .get(SR_SOURCE)
        .and_then(|v| SrSource::parse(v.as_str()))
        .filter(|p| p.name == settings.name && p.stream == settings.source_stream)
        .map(|p| p.seq))
}

/// The target stream's last sequence.
pub async fn target_last_sequence(
    target: &Context,
    settings: &ReplicatorSettings,
) -> Result<u64, SetupError> {
    let err = |message: String| SetupError::Target {
        stream: settings.target_stream.clone(),
        message,
    };
    let mut stream = target
        .get_stream(&settings.target_stream)
        .await
        .map_err(|e| err(e.to_string()))?;
    Ok(stream
        .info()
        .await
        .map_err(|e| err(e.to_string()))?
        .state
        .last_sequence)
}

fn deliver_policy(start: StartPosition) -> DeliverPolicy {
    match start {
        StartPosition::All => DeliverPolicy::All,
        StartPosition::New => DeliverPolicy::New,
        StartPosition::Sequence(start_sequence) => {
            DeliverPolicy::ByStartSequence { start_sequence }
        }
        StartPosition::Time(t) => {
            let nanos = t
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
                .unwrap_or(0);
            match time_from_nanos(nanos) {
                Some(start_time) => DeliverPolicy::ByStartTime { start_time },
                None => DeliverPolicy::All,
            }
        }
    }
}

fn time_from_nanos(nanos: i128) -> Option<async_nats::datetime::DateTime> {
    async_nats::datetime::from_nanos(nanos).ok()
}

fn consumer_err(settings: &ReplicatorSettings, e: impl std::fmt::Display) -> SetupError {
    SetupError::Consumer {
        stream: settings.source_stream.clone(),
        consumer: settings.durable_name(),
        message: e.to_string(),
    }
}

fn pull_config(
    settings: &ReplicatorSettings,
    ack_policy: AckPolicy,
    deliver: DeliverPolicy,
    max_ack_pending: i64,
    tag: &str,
) -> PullConfig {
    PullConfig {
        durable_name: Some(settings.durable_name()),
        description: Some(format!("choir replicator {} {tag}", settings.name)),
        ack_policy,
        deliver_policy: deliver,
        ack_wait: settings.ack_wait,
        max_ack_pending,
        max_deliver: -1,
        filter_subject: settings.filter_subject.clone().unwrap_or_default(),
        inactive_threshold: settings.ha_inactive_threshold().unwrap_or_default(),
        ..Default::default()
    }
}

/// What the source consumer proves the target holds (a stream sequence), if it exists:
/// - a consumer taking acks: its ack floor (acked only after the target stored the copy);
/// - an ordered worker's AckNone consumer: the sequence before the one it was created to
///   start at (it is only ever created just after a proven resume point, or at the
///   configured `start`). What it delivered since proves nothing.
pub async fn consumer_floor(
    source: &Context,
    settings: &ReplicatorSettings,
) -> Result<Option<u64>, SetupError> {
    let stream = source_stream(source, settings).await?;
    let Ok(info) = stream.consumer_info(settings.durable_name()).await else {
        return Ok(None);
    };
    Ok(proven_floor(&info))
}

/// See [`consumer_floor`].
fn proven_floor(info: &async_nats::jetstream::consumer::Info) -> Option<u64> {
    match (info.config.ack_policy, info.config.deliver_policy) {
        (AckPolicy::None, DeliverPolicy::ByStartSequence { start_sequence }) => {
            Some(start_sequence.saturating_sub(1))
        }
        (AckPolicy::None, _) => None,
        _ => Some(info.ack_floor.stream_sequence),
    }
}

/// When the durable consumer was left by a queued pool with copies unacknowledged (a crash,
/// or a stop, with copies in flight), the last stream sequence it delivered: queued copies
/// land in any order, so the target's last copy may sit above gaps, and an ordered worker
/// must first finish everything up to here ([`queued::drain`](super::queued::drain)).
pub async fn queued_leftovers(
    source: &Context,
    settings: &ReplicatorSettings,
) -> Result<Option<u64>, SetupError> {
    let mut stream = source_stream(source, settings).await?;
    let Ok(info) = stream.consumer_info(settings.durable_name()).await else {
        return Ok(None);
    };
    if info.config.ack_policy != AckPolicy::Explicit {
        return Ok(None);
    }
    let description = info.config.description.as_deref().unwrap_or_default();
    let queued = if description.ends_with(QUEUED_TAG) {
        true
    } else if description.ends_with(ORDERED_TAG) {
        false
    } else {
        // Untagged (an older choir): only a queued pool makes explicit-ack consumers on a
        // stream that is not a work queue.
        retention(&mut stream, settings).await? != RetentionPolicy::WorkQueue
    };
    let delivered = info.delivered.stream_sequence;
    Ok((queued && info.ack_floor.stream_sequence < delivered).then_some(delivered))
}

/// Whether the durable consumer's ack floor reached `bound` (every message up to it acked).
pub async fn ack_floor_reached(
    source: &Context,
    settings: &ReplicatorSettings,
    bound: u64,
) -> Result<bool, SetupError> {
    let stream = source_stream(source, settings).await?;
    let info = stream
        .consumer_info(settings.durable_name())
        .await
        .map_err(|e| consumer_err(settings, e))?;
    Ok(info.ack_floor.stream_sequence >= bound)
}

/// The ordered worker's durable consumer and how it is acked.
pub struct OrderedConsumer {
    /// The consumer.
    pub consumer: PullConsumer,
    /// `None` (nothing to ack), `All` (ack the last settled message now and then) or
    /// `Explicit` (ack every settled message).
    pub ack_policy: AckPolicy,
}

/// (Re)creates the ordered worker's durable consumer so that it delivers from just after
/// `resume` (or from the configured start when there is no resume point).
///
/// On a limits-retention stream the consumer takes no acks: the ordered worker resumes from
/// what the target holds, so the source needs no ack traffic and keeps no per-message pending
/// state (on this machine that cuts the source server's CPU per copied message by a sixth to
/// a quarter).
/// On an interest or work-queue stream an acked message may be deleted, so the source is
/// acked in order only after the target stored the copy: AckAll on an interest stream,
/// explicit acks on a work-queue stream (which refuses any other policy).
pub async fn ordered_consumer(
    source: &Context,
    settings: &ReplicatorSettings,
    resume: Option<u64>,
) -> Result<OrderedConsumer, SetupError> {
    let mut stream = source_stream(source, settings).await?;
    let retention = retention(&mut stream, settings).await?;
    let ack_policy = match retention {
        RetentionPolicy::Limits => AckPolicy::None,
        RetentionPolicy::Interest => AckPolicy::All,
        RetentionPolicy::WorkQueue => AckPolicy::Explicit,
    };
    let deliver = match resume {
        // A work queue holds only what is not acked yet and must deliver all of it.
        _ if retention == RetentionPolicy::WorkQueue => DeliverPolicy::All,
        Some(seq) => DeliverPolicy::ByStartSequence {
            start_sequence: seq.saturating_add(1),
        },
        None => deliver_policy(settings.start),
    };
    let window = i64::try_from(settings.window.get()).unwrap_or(i64::MAX);
    let config = pull_config(
        settings,
        ack_policy,
        deliver,
        window.saturating_mul(4).saturating_add(1024),
        ORDERED_TAG,
    );
    let consumer = replace_consumer(&mut stream, settings, retention, config).await?;
    Ok(OrderedConsumer {
        consumer,
        ack_policy,
    })
}

/// The queued workers' shared durable consumer (explicit acks), created when missing, and
/// re-created when it exists with another ack policy (a mode change): from its ack floor, or,
/// for the AckNone consumer of an ordered replicator, from what the target holds (ordered
/// copies land in order, so the last one marks everything before it). Queued copies land in
/// any order, so a missing consumer starts from `start` and the duplicate window drops what
/// the target already has.
pub async fn queued_consumer(
    source: &Context,
    target: &Context,
    settings: &ReplicatorSettings,
    workers: usize,
) -> Result<PullConsumer, SetupError> {
    let mut stream = source_stream(source, settings).await?;
    let retention = retention(&mut stream, settings).await?;
    let work_queue = retention == RetentionPolicy::WorkQueue;
    let name = settings.durable_name();
    // A work queue holds only what is not acked yet and must deliver all of it.
    let mut deliver = if work_queue {
        DeliverPolicy::All
    } else {
        deliver_policy(settings.start)
    };
    if let Ok(info) = stream.consumer_info(&name).await {
        if info.config.ack_policy == AckPolicy::Explicit {
            return stream
                .get_consumer(&name)
                .await
                .map_err(|e| consumer_err(settings, e));
        }
        let copied = match info.config.ack_policy {
            AckPolicy::None => target_resume_point(target, settings)
                .await?
                .max(proven_floor(&info)),
            _ => proven_floor(&info),
        };
        if let (Some(copied), false) = (copied, work_queue) {
            deliver = DeliverPolicy::ByStartSequence {
                start_sequence: copied.saturating_add(1),
            };
        }
    }
    let pending = settings
        .window
        .get()
        .saturating_mul(workers)
        .saturating_mul(2);
    let config = pull_config(
        settings,
        AckPolicy::Explicit,
        deliver,
        i64::try_from(pending).unwrap_or(i64::MAX),
        QUEUED_TAG,
    );
    replace_consumer(&mut stream, settings, retention, config).await
}

/// How long a stand-in consumer left behind by a crash mid-replacement keeps its interest.
const STAND_IN_INACTIVE: Duration = Duration::from_secs(600);

/// Deletes the durable consumer (when there is one) and creates `config` in its place.
///
/// An interest stream deletes a message as soon as no consumer is interested in it any more,
/// so deleting its only consumer would delete everything not yet copied. There a stand-in
/// consumer (`<durable>_stand_in`, delivering from where the new consumer will) holds the
/// interest while the durable consumer is replaced, and is deleted after. One left behind by a
/// crash is reused (it holds at least as much) and expires after 10 idle minutes anyway.
async fn replace_consumer(
    stream: &mut async_nats::jetstream::stream::Stream,
    settings: &ReplicatorSettings,
    retention: RetentionPolicy,
    config: PullConfig,
) -> Result<PullConsumer, SetupError> {
    let name = settings.durable_name();
    let stand_in = format!("{name}_stand_in");
    let holding = retention == RetentionPolicy::Interest;
    if holding && stream.consumer_info(&stand_in).await.is_err() {
        let keep = PullConfig {
            durable_name: Some(stand_in.clone()),
            description: Some(format!(
                "choir replicator {}: holds the interest while its consumer is replaced",
                settings.name
            )),
            ack_policy: AckPolicy::All,
            deliver_policy: config.deliver_policy,
            filter_subject: config.filter_subject.clone(),
            inactive_threshold: STAND_IN_INACTIVE,
            ..Default::default()
        };
        stream
            .create_consumer(keep)
            .await
            .map_err(|e| consumer_err(settings, e))?;
    }
    let _ = stream.delete_consumer(&name).await;
    let consumer = stream
        .create_consumer(config)
        .await
        .map_err(|e| consumer_err(settings, e))?;
    if holding {
        let _ = stream.delete_consumer(&stand_in).await;
    }
    Ok(consumer)
}

/// Source messages not yet acknowledged: pending plus ack pending.
pub async fn consumer_lag(source: &Context, settings: &ReplicatorSettings) -> Option<u64> {
    let stream = source.get_stream(&settings.source_stream).await.ok()?;
    let info = stream.consumer_info(settings.durable_name()).await.ok()?;
    Some(
        info.num_pending
            .saturating_add(u64::try_from(info.num_ack_pending).unwrap_or(0)),
    )
}
