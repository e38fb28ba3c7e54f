//! A run from start to stop: validate, start the producer, the workers and the consumer,
//! consume until told to stop, then drain, flush, commit and report. With topics to
//! re-key, two such stages run side by side (or one, `kafka.stage`): re-keying (those
//! topics in, canonical events keyed by principal out) and detection (the keyed topics and
//! the re-keyed events in).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nhid_engine::metrics::{Health, Metrics};
use nhid_engine::{Engine, Stats};

use crate::config::{KafkaConfig, Stage};
use crate::consumer::{self, GroupConsumer, Shared};
use crate::error::Error;
use crate::facts::Facts;
use crate::output::{Latency, Sender};
use crate::rekeyed::{Marks, Source};
use crate::reorder::Reorder;
use crate::worker::{self, Role, Tally};

/// What a run did, for the exit summary, tests and benchmarks.
#[derive(Debug)]
pub struct Report {
    pub stats: Stats,
    /// Outputs never acknowledged (their inputs were not committed and will be read again).
    pub unacknowledged: u64,
    /// The offsets committed last, per topic and partition.
    pub committed: BTreeMap<(String, i32), i64>,
    /// Messages re-read to rebuild state (see [`KafkaConfig::rebuild_secs`]); their outputs
    /// were not sent again. Included in `stats`.
    pub rebuilt: u64,
    /// Identities restored from the state changelog (see [`KafkaConfig::changelog_topic`]).
    pub restored: u64,
    /// Event (message timestamp) to alert-acknowledged latency.
    pub latency: Latency,
}

/// Runs until `stop` is set (or a delivery fails for good), then drains, flushes, commits
/// and reports. Connection losses are not errors: librdkafka reconnects and retries.
pub fn run(engine: Arc<Engine>, cfg: &KafkaConfig, stop: Arc<AtomicBool>) -> Result<Report, Error> {
    run_observed(engine, cfg, stop, Arc::default(), Arc::default())
}

/// [`run`], counting into `metrics` and reporting readiness in `health` (both served by the
/// HTTP endpoint). The report adds up both stages' when topics are re-keyed.
pub fn run_observed(
    engine: Arc<Engine>,
    cfg: &KafkaConfig,
    stop: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) -> Result<Report, Error> {
    check(cfg)?;
    match (cfg.rekeys(), cfg.stage) {
        (false, _) => return run_stage(engine, cfg, None, stop, metrics, health),
        (true, Stage::Rekey) => {
            let events_topic = cfg.events_topic.clone();
            return run_stage(
                Arc::new(engine.rekeying()),
                &cfg.rekey_stage(),
                Some(&events_topic),
                stop,
                metrics,
                health,
            );
        }
        (true, Stage::Detect) => return run_stage(engine, &cfg.detect_stage(), None, stop, metrics, health),
        (true, Stage::Both) => {}
    }
    let rekeying = Arc::new(engine.rekeying());
    let rekey = {
        let (cfg, stop, metrics) = (cfg.rekey_stage(), stop.clone(), metrics.clone());
        let events_topic = cfg.events_topic.clone();
        // Its readiness is not served: detection's is the one that says nhid works.
        let run = move || run_stage(rekeying, &cfg, Some(&events_topic), stop, metrics, Arc::default());
        thread::Builder::new().name("nhid-rekey".into()).spawn(run).map_err(Error::SpawnWorker)?
    };
    let detected = run_stage(engine, &cfg.detect_stage(), None, stop.clone(), metrics, health);
    // Either stage ending ends the other.
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let rekeyed = rekey.join().map_err(|_| Error::WorkerPanicked)?;
    let (mut report, rekeyed) = (detected?, rekeyed?);
    report.stats.merge(&rekeyed.stats);
    report.unacknowledged += rekeyed.unacknowledged;
    report.committed.extend(rekeyed.committed);
    Ok(report)
}

/// One stage: `events_topic` for the re-keying stage, which sends every event there.
fn run_stage(
    engine: Arc<Engine>,
    cfg: &KafkaConfig,
    events_topic: Option<&str>,
    stop: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) -> Result<Report, Error> {
    metrics.expect(&engine, &cfg.inputs());
    let output = Arc::new(Sender::new(cfg, events_topic, stop.clone(), metrics.clone())?);
    let max_idle = Duration::from_millis(cfg.rekey_max_idle_ms);
    // Detection waits for every source partition from the start, not only those heard of.
    let mut sources = Vec::new();
    if events_topic.is_none() && cfg.topics.contains(&cfg.events_topic) {
        for topic in &cfg.rekey_topics {
            let n = output.partitions(topic)?;
            sources.extend((0..n).map(|partition| Source { topic: topic.as_str().into(), partition }));
        }
    }
    let role = || match events_topic {
        Some(_) => Role::Rekey(Marks::default()),
        None => Role::Detect(Reorder::new(max_idle, sources.clone())),
    };
    let (workers, handles) = worker::spawn(cfg.worker_count(), role, &engine, &output, &metrics)?;
    let paced = events_topic.is_some();
    let facts = Facts::spawn(cfg, engine.clone())?;
    let shared = Arc::new(Shared::new(cfg, engine, metrics, health, output.clone(), workers, facts));
    let consumer = Arc::new(consumer::subscribe(cfg, shared.clone())?);
    let interval = Duration::from_millis(cfg.commit_interval_ms);
    if paced {
        consumer::consume_paced(&consumer, &shared, &stop, interval);
    } else {
        // Each worker reads its partitions itself; the consumer thread serves the group.
        shared.workers.read_from(&consumer);
        consumer::consume(&consumer, &shared, &stop, interval);
    }
    stop_and_report(consumer, shared, handles, &output)
}

/// Refuses an invalid configuration before any client connects, and logs the one it runs.
fn check(cfg: &KafkaConfig) -> Result<(), Error> {
    let errors = cfg.validate();
    if !errors.is_empty() {
        return Err(Error::InvalidConfig(errors));
    }
    tracing::info!(
        brokers = %cfg.brokers,
        topics = ?cfg.topics,
        rekey_topics = ?cfg.rekey_topics,
        group = %cfg.group,
        properties = ?cfg.redacted_properties(),
        "starting the Kafka runtime"
    );
    Ok(())
}

/// Drains what was fetched, flushes and commits within the grace period, leaves the group
/// and waits for the workers.
fn stop_and_report(
    consumer: Arc<GroupConsumer>,
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<Tally>>,
    output: &Sender,
) -> Result<Report, Error> {
    tracing::info!("stopping: draining in-flight messages, flushing producers, committing");
    shared.drain(&consumer, None, Instant::now() + shared.grace);
    let committed = shared.committed();
    let restored = shared.restored();
    let unacknowledged = output.in_flight();
    shared.workers.detach();
    // Leaving the group runs the revocation callback once more; everything is already
    // drained and committed, so it commits nothing new.
    drop(consumer);
    // The workers' queues close with the last reference to them; only then do workers end.
    drop(Arc::into_inner(shared).ok_or(Error::ContextOutlivedConsumer)?);
    let (stats, rebuilt) = worker::join(handles)?;
    let latency = output.latency();
    if let Some(fatal) = output.fatal() {
        return Err(Error::DeliveryFailed(fatal));
    }
    Ok(Report { stats, unacknowledged, committed, rebuilt, restored, latency })
}
