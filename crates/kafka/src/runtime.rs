//! A run from start to stop: validate, start the producer, the workers and the consumer,
//! consume until told to stop, then drain, flush, commit and report.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nhid_engine::metrics::{Health, Metrics};
use nhid_engine::{Engine, Stats};

use crate::config::KafkaConfig;
use crate::consumer::{self, GroupConsumer, Shared};
use crate::error::Error;
use crate::output::{Latency, Sender};
use crate::worker::{self, Tally};

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
    /// Event (message timestamp) to alert-acknowledged latency.
    pub latency: Latency,
}

/// Runs until `stop` is set (or a delivery fails for good), then drains, flushes, commits
/// and reports. Connection losses are not errors: librdkafka reconnects and retries.
pub fn run(engine: Arc<Engine>, cfg: &KafkaConfig, stop: Arc<AtomicBool>) -> Result<Report, Error> {
    run_observed(engine, cfg, stop, Arc::default(), Arc::default())
}

/// [`run`], counting into `metrics` and reporting readiness in `health` (both served by the
/// HTTP endpoint).
pub fn run_observed(
    engine: Arc<Engine>,
    cfg: &KafkaConfig,
    stop: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) -> Result<Report, Error> {
    check(cfg)?;
    metrics.expect(&engine, &cfg.inputs());
    let output = Arc::new(Sender::new(cfg, stop.clone(), metrics.clone())?);
    let (workers, handles) = worker::spawn(cfg.worker_count(), &engine, &output, &metrics)?;
    let shared = Arc::new(Shared::new(cfg, engine, metrics, health, output.clone(), workers));
    let consumer = consumer::subscribe(cfg, shared.clone())?;
    consumer::consume(&consumer, &shared, &stop, Duration::from_millis(cfg.commit_interval_ms));
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
        group = %cfg.group,
        properties = ?cfg.redacted_properties(),
        "starting the Kafka runtime"
    );
    Ok(())
}

/// Drains what was fetched, flushes and commits within the grace period, leaves the group
/// and waits for the workers.
fn stop_and_report(
    consumer: GroupConsumer,
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<Tally>>,
    output: &Sender,
) -> Result<Report, Error> {
    tracing::info!("stopping: draining in-flight messages, flushing producers, committing");
    shared.drain(&consumer, None, Instant::now() + shared.grace);
    let committed = shared.committed();
    let unacknowledged = output.in_flight();
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
    Ok(Report { stats, unacknowledged, committed, rebuilt, latency })
}
