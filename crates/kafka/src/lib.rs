//! The Kafka runtime behind `nhid run` and `nhid demo`: audit topics in; alerts, actions,
//! dead letters (and optionally per-lane copies of the normalized events) out, at least once.
//!
//! # Threads
//!
//! - The **consumer thread** polls the group consumer and hands each partition's messages,
//!   in order, to one worker (a partition always goes to the same worker). It commits every
//!   `commit_interval_ms`, and on revocation it drains, flushes and commits before the
//!   partitions go, then releases their identities' state.
//! - **Workers** (one per core by default) run [`Engine::process`] and send what it
//!   produced through the producer.
//! - The **producer's thread** receives delivery reports and marks outputs acknowledged in
//!   their input partition's [`Progress`]; only then can that input offset be committed.
//!
//! Back-pressure runs backwards through bounded queues: a full producer queue blocks the
//! worker, a busy worker blocks the consumer thread, and librdkafka stops fetching.

mod output;
mod progress;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::message::Message as _;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use nhid_engine::metrics::Health;
use nhid_engine::metrics::Metrics;
use nhid_engine::{ControlKind, Engine, Origin, Outputs, Stats};
use nhid_model::event::SourceFormat;
pub use output::Latency;
use output::{Sender, now_ms};
pub use progress::Progress;

/// The `[kafka]` section of the configuration; the essentials also have flags on `nhid run`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port]`.
    pub brokers: String,
    /// Audit topics to consume.
    pub topics: Vec<String>,
    /// Consumer group; partitions (and the identities keyed to them) are shared across its members.
    pub group: String,
    /// Static group membership (`group.instance.id`): a stable id per nhid instance (a pod
    /// name, say). A restarted instance takes its partitions back at once, without a
    /// rebalance of the others or the wait for its old session to expire. (Tansu 0.6 never
    /// expires a crashed dynamic member, so there it is what makes a crash recoverable.)
    pub instance_id: Option<String>,
    pub alerts_topic: String,
    pub actions_topic: String,
    pub dead_letter_topic: String,
    /// Lifecycle events (`schemas/lifecycle.schema.json`): owners offboarded, credentials
    /// revoked, principals retired.
    pub lifecycle_topic: Option<String>,
    /// What the revocation service did with each action (`schemas/action-result.schema.json`).
    pub action_results_topic: Option<String>,
    /// Republish each normalized event to a topic per lane: keys are `machine`, `human` or a
    /// principal type (which wins over `machine`); lanes without a topic are not republished.
    pub lanes: BTreeMap<String, String>,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    pub commit_interval_ms: u64,
    /// How long SIGTERM may take to drain, flush and commit.
    pub shutdown_grace_secs: u64,
    /// On assignment, re-read this much of each partition before its committed offset
    /// (by message timestamp) to rebuild the identities' baselines, with outputs
    /// suppressed (they were acknowledged before the commit). A restart or a rebalance is
    /// then not a blind learning window. 0 starts at the committed offset with empty state.
    pub rebuild_secs: u64,
    /// librdkafka properties passed through to every client (TLS, SASL, timeouts...). Values
    /// are never logged: they hold passwords and keys.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "localhost:9092".into(),
            topics: vec!["audit".into()],
            group: "nhid".into(),
            instance_id: None,
            alerts_topic: "nhid.alerts".into(),
            actions_topic: "nhid.actions".into(),
            dead_letter_topic: "nhid.dead-letter".into(),
            lifecycle_topic: None,
            action_results_topic: None,
            lanes: BTreeMap::new(),
            workers: 0,
            commit_interval_ms: 1_000,
            shutdown_grace_secs: 10,
            rebuild_secs: 2 * 86_400,
            properties: BTreeMap::new(),
        }
    }
}

/// Properties nhid sets itself: overriding them would break the delivery guarantee.
const OWNED_PROPERTIES: &[&str] = &[
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.idempotence",
    "group.id",
    "group.instance.id",
    "bootstrap.servers",
];

impl KafkaConfig {
    pub fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.brokers.trim().is_empty() {
            errors.push("kafka.brokers: must name at least one broker".into());
        }
        if self.topics.is_empty() || self.topics.iter().any(|t| t.trim().is_empty()) {
            errors.push("kafka.topics: must name at least one topic, none empty".into());
        }
        if self.group.trim().is_empty() {
            errors.push("kafka.group: must not be empty".into());
        }
        for (name, topic) in [
            ("alerts_topic", &self.alerts_topic),
            ("actions_topic", &self.actions_topic),
            ("dead_letter_topic", &self.dead_letter_topic),
        ] {
            if topic.trim().is_empty() {
                errors.push(format!("kafka.{name}: must not be empty"));
            } else if self.topics.contains(topic) {
                errors.push(format!("kafka.{name}: {topic:?} is also an input topic (nhid would read its own output)"));
            }
        }
        let control = [&self.lifecycle_topic, &self.action_results_topic];
        for topic in control.into_iter().flatten() {
            if self.topics.contains(topic) || topic.trim().is_empty() {
                errors.push(format!("kafka: control topic {topic:?} must be non-empty and not an audit topic"));
            }
        }
        for lane in self.lanes.keys() {
            if lane != "machine" && nhid_model::event::PrincipalType::parse(lane).is_none() {
                errors.push(format!("kafka.lanes.{lane}: not `machine` or a principal type"));
            }
        }
        if self.commit_interval_ms == 0 {
            errors.push("kafka.commit_interval_ms: must be positive".into());
        }
        for key in self.properties.keys() {
            if OWNED_PROPERTIES.contains(&key.as_str()) {
                errors.push(format!("kafka.properties.{key}: set by nhid (use the kafka section's own fields)"));
            }
        }
        errors
    }

    /// The properties with secret-looking values masked, for logs.
    pub fn redacted_properties(&self) -> BTreeMap<&str, &str> {
        self.properties
            .iter()
            .map(|(k, v)| {
                let secret = ["password", "secret", "key", "token", "jaas", "credential"].iter().any(|s| k.contains(s));
                (k.as_str(), if secret { "<redacted>" } else { v.as_str() })
            })
            .collect()
    }

    /// A client configuration: nhid's `defaults`, then the passthrough properties over them.
    /// Callers set the properties nhid owns afterwards.
    fn client(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in defaults {
            c.set(*k, *v);
        }
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    /// Every topic consumed, with what its messages are.
    pub(crate) fn inputs(&self) -> Vec<(&str, Option<ControlKind>)> {
        let mut inputs: Vec<_> = self.topics.iter().map(|t| (t.as_str(), None)).collect();
        inputs.extend(self.lifecycle_topic.as_deref().map(|t| (t, Some(ControlKind::Lifecycle))));
        inputs.extend(self.action_results_topic.as_deref().map(|t| (t, Some(ControlKind::ActionResult))));
        inputs
    }

    fn worker_count(&self) -> usize {
        if self.workers > 0 { self.workers } else { thread::available_parallelism().map_or(2, |n| n.get()) }
    }
}

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

/// One input partition while it is assigned here.
pub(crate) struct Partition {
    topic: Arc<str>,
    partition: i32,
    /// Identities are tagged with it so their state can be released on revocation.
    home: u32,
    progress: Mutex<Progress>,
    /// The offset last sent in a commit, to skip commits that would change nothing.
    committed: Mutex<Option<i64>>,
    /// Messages below this offset were committed before this assignment: they are re-read
    /// only to rebuild state, and their outputs (already acknowledged) are not sent again.
    rebuild_until: i64,
    /// Message timestamp before which a rebuild skips messages unread (outside the window).
    rebuild_since: i64,
    /// A control topic's kind; `None` for audit events.
    control: Option<ControlKind>,
    /// `nhid_messages_received_total` of its topic, resolved once.
    received: prometheus::IntCounter,
    /// `nhid_events_received_total` of its topic by source format (`SourceFormat::index`);
    /// empty for a control topic.
    events_received: Box<[prometheus::IntCounter]>,
}

impl Partition {
    pub(crate) fn progress(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A message on its way to a worker.
struct Message {
    partition: Arc<Partition>,
    offset: i64,
    timestamp: Option<i64>,
    payload: Vec<u8>,
}

enum Job {
    Messages(Vec<Message>),
    /// Answered once every message queued before it is processed.
    Barrier(SyncSender<()>),
}

/// Messages handed to a worker at once: fewer channel operations without delaying a quiet
/// stream (a batch also goes as soon as the consumer has nothing more to give).
const BATCH: usize = 256;
/// Batches queued per worker before the consumer thread waits.
const QUEUE: usize = 16;

/// The partitions assigned here, by topic and number.
type Partitions = HashMap<(Arc<str>, i32), Arc<Partition>>;

/// Everything the consumer thread and its rebalance callback share.
struct Shared {
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    output: Arc<Sender>,
    workers: Vec<SyncSender<Job>>,
    partitions: Mutex<Partitions>,
    /// Messages waiting to be handed to each worker.
    batches: Mutex<Vec<Vec<Message>>>,
    grace: Duration,
    rebuild: Duration,
    /// Consumed topics and their control kinds.
    inputs: Vec<(String, Option<ControlKind>)>,
}

struct RuntimeContext(Arc<Shared>);

impl ClientContext for RuntimeContext {
    /// librdkafka's periodic statistics (`statistics.interval.ms`): the consumer lag per
    /// assigned partition.
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::AllBrokersDown) {
            self.0.health.brokers_down.store(true, Ordering::Relaxed);
        }
        tracing::warn!(error = %error, reason, "kafka client error");
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        let lag = &self.0.metrics.consumer_lag;
        lag.reset();
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    lag.with_label_values(&[topic.as_str(), &partition.to_string()]).set(p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for RuntimeContext {
    /// Replaces librdkafka's default assignment so that revoked partitions are drained and
    /// committed before they go, and assigned ones start early enough to rebuild state.
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.0.assigned(consumer, tpl);
                if cooperative { consumer.incremental_assign(tpl) } else { consumer.assign(tpl) }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let revoked: HashSet<(String, i32)> =
                    tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect();
                tracing::info!(partitions = revoked.len(), "partitions revoked: draining, flushing and committing");
                self.0.drain(consumer, Some(&revoked), Instant::now() + self.0.grace);
                if cooperative { consumer.incremental_unassign(tpl) } else { consumer.unassign() }
            }
            other => {
                tracing::warn!(error = ?other, "rebalance error");
                consumer.unassign()
            }
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "applying the new assignment failed");
        }
    }
}

impl Shared {
    /// Registers newly assigned partitions and sets where each starts: `rebuild` before its
    /// committed offset (the earliest offset at or after that timestamp), so the messages in
    /// between rebuild state without producing outputs again.
    fn assigned(&self, consumer: &BaseConsumer<RuntimeContext>, tpl: &mut TopicPartitionList) {
        const TIMEOUT: Duration = Duration::from_secs(10);
        let committed = consumer.committed_offsets(tpl.clone(), TIMEOUT).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading committed offsets failed; starting where the group left off");
            tpl.clone()
        });
        // Where rebuilding starts: the first offset at or after `since` by timestamp. Brokers
        // that cannot answer (librdkafka's mock cluster says `End`) start at the beginning,
        // and the workers skip messages older than `since` unread.
        let since = now_ms() - self.rebuild.as_millis() as i64;
        let mut starts = HashMap::new();
        if !self.rebuild.is_zero() {
            let mut query = TopicPartitionList::new();
            for e in committed.elements() {
                if let Offset::Offset(_) = e.offset() {
                    let _ = query.add_partition_offset(e.topic(), e.partition(), Offset::Offset(since));
                }
            }
            if query.count() > 0 {
                match consumer.offsets_for_times(query, TIMEOUT) {
                    Ok(found) => {
                        for e in found.elements() {
                            starts.insert((e.topic().to_string(), e.partition()), e.offset());
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "looking up rebuild offsets failed; rebuilding from the start")
                    }
                }
            }
        }
        for e in committed.elements() {
            let Offset::Offset(until) = e.offset() else {
                // Nothing committed: a new group starts by `auto.offset.reset`, with nothing to rebuild.
                self.insert_partition(e.topic(), e.partition(), 0, since);
                continue;
            };
            let start = if self.rebuild.is_zero() {
                Offset::Offset(until)
            } else {
                match starts.get(&(e.topic().to_string(), e.partition())) {
                    Some(Offset::Offset(o)) => Offset::Offset((*o).min(until)),
                    _ => Offset::Beginning,
                }
            };
            let _ = tpl.set_partition_offset(e.topic(), e.partition(), start);
            self.insert_partition(e.topic(), e.partition(), until, since);
            if start != Offset::Offset(until) {
                tracing::info!(topic = e.topic(), partition = e.partition(), from = ?start, until, "rebuilding state");
            }
        }
        self.count_assigned();
        tracing::info!(partitions = tpl.count(), "partitions assigned");
    }

    fn count_assigned(&self) {
        let n = self.partitions.lock().unwrap_or_else(PoisonError::into_inner).len();
        self.health.assigned_partitions.store(n, Ordering::Relaxed);
    }

    fn insert_partition(&self, topic: &str, partition: i32, rebuild_until: i64, rebuild_since: i64) -> Arc<Partition> {
        let topic: Arc<str> = topic.into();
        let control = self.inputs.iter().find(|(t, _)| **t == *topic).and_then(|(_, c)| *c);
        let p = Arc::new(Partition {
            topic: topic.clone(),
            partition,
            home: Origin { source: topic.as_ref(), partition, offset: 0 }.home(),
            progress: Mutex::default(),
            committed: Mutex::default(),
            rebuild_until,
            rebuild_since,
            control,
            received: self.metrics.messages_received.with_label_values(&[topic.as_ref()]),
            events_received: match control {
                Some(_) => Box::default(),
                None => SourceFormat::ALL
                    .iter()
                    .map(|f| self.metrics.events_received.with_label_values(&[topic.as_ref(), f.as_str()]))
                    .collect(),
            },
        });
        self.partitions.lock().unwrap_or_else(PoisonError::into_inner).insert((topic, partition), p.clone());
        p
    }

    /// The partition a fetched message belongs to (registered at assignment).
    fn partition(&self, topic: &str, partition: i32) -> Arc<Partition> {
        let found =
            self.partitions.lock().unwrap_or_else(PoisonError::into_inner).get(&(topic.into(), partition)).cloned();
        found.unwrap_or_else(|| self.insert_partition(topic, partition, 0, 0))
    }

    fn worker_of(&self, p: &Partition) -> usize {
        // Partitions of one topic spread round-robin; topics are offset by their hash.
        let h = xxhash_rust::xxh3::xxh3_64(p.topic.as_bytes()) as usize;
        (h.wrapping_add(p.partition as usize)) % self.workers.len()
    }

    fn dispatch(&self, m: Message) {
        let w = self.worker_of(&m.partition);
        let full = {
            let mut batches = self.batches.lock().unwrap_or_else(PoisonError::into_inner);
            batches[w].push(m);
            (batches[w].len() >= BATCH).then(|| std::mem::take(&mut batches[w]))
        };
        if let Some(batch) = full {
            let _ = self.workers[w].send(Job::Messages(batch));
        }
    }

    /// Hands every waiting message to its worker.
    fn flush_batches(&self) {
        let batches: Vec<_> = {
            let mut batches = self.batches.lock().unwrap_or_else(PoisonError::into_inner);
            batches.iter_mut().map(std::mem::take).collect()
        };
        for (w, batch) in batches.into_iter().enumerate() {
            if !batch.is_empty() {
                let _ = self.workers[w].send(Job::Messages(batch));
            }
        }
    }

    /// Waits until every worker has processed what was handed to it.
    fn barrier(&self) {
        let acks: Vec<Receiver<()>> = self
            .workers
            .iter()
            .filter_map(|w| {
                let (tx, rx) = mpsc::sync_channel(1);
                w.send(Job::Barrier(tx)).ok().map(|_| rx)
            })
            .collect();
        for rx in acks {
            let _ = rx.recv();
        }
    }

    /// Drains the given partitions (all when `None`): processes what was fetched, waits for
    /// the broker to acknowledge the outputs until `deadline`, commits synchronously, and,
    /// for a revocation, forgets the partitions and their identities.
    fn drain(&self, consumer: &BaseConsumer<RuntimeContext>, only: Option<&HashSet<(String, i32)>>, deadline: Instant) {
        self.output.give_up_at(Some(deadline));
        self.flush_batches();
        self.barrier();
        if let Err(e) = self.output.flush(deadline) {
            tracing::warn!(error = %e, "not every output was acknowledged in time; their inputs will be read again");
        }
        self.output.give_up_at(None);
        self.commit(consumer, CommitMode::Sync, only);
        if let Some(revoked) = only {
            let homes: HashSet<u32> = {
                let mut map = self.partitions.lock().unwrap_or_else(PoisonError::into_inner);
                let gone: Vec<_> =
                    map.keys().filter(|(t, p)| revoked.contains(&(t.to_string(), *p))).cloned().collect();
                gone.iter().filter_map(|k| map.remove(k)).map(|p| p.home).collect()
            };
            self.count_assigned();
            let released = self.engine.release(&homes);
            tracing::info!(identities = released, "released the state of revoked partitions");
        }
    }

    /// Commits every partition whose committable offset moved (restricted to `only`).
    fn commit(&self, consumer: &BaseConsumer<RuntimeContext>, mode: CommitMode, only: Option<&HashSet<(String, i32)>>) {
        let mut tpl = TopicPartitionList::new();
        let mut moved = Vec::new();
        for p in self.partitions.lock().unwrap_or_else(PoisonError::into_inner).values() {
            if only.is_some_and(|o| !o.contains(&(p.topic.to_string(), p.partition))) {
                continue;
            }
            let Some(offset) = p.progress().committable() else { continue };
            let mut committed = p.committed.lock().unwrap_or_else(PoisonError::into_inner);
            if *committed != Some(offset) {
                let _ = tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(offset));
                moved.push((p.clone(), offset));
                *committed = Some(offset);
            }
        }
        if tpl.count() == 0 {
            return;
        }
        if let Err(e) = consumer.commit(&tpl, mode) {
            tracing::warn!(error = %e, "offset commit failed; retrying at the next interval");
            for (p, _) in moved {
                *p.committed.lock().unwrap_or_else(PoisonError::into_inner) = None;
            }
        }
    }

    fn committed(&self) -> BTreeMap<(String, i32), i64> {
        self.partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter_map(|p| {
                let c = *p.committed.lock().unwrap_or_else(PoisonError::into_inner);
                c.map(|c| ((p.topic.to_string(), p.partition), c))
            })
            .collect()
    }
}

/// Runs until `stop` is set (or a delivery fails for good), then drains, flushes, commits
/// and reports. Connection losses are not errors: librdkafka reconnects and retries.
pub fn run(engine: Arc<Engine>, cfg: &KafkaConfig, stop: Arc<AtomicBool>) -> anyhow::Result<Report> {
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
) -> anyhow::Result<Report> {
    let errors = cfg.validate();
    anyhow::ensure!(errors.is_empty(), "invalid kafka configuration: {}", errors.join("; "));
    tracing::info!(
        brokers = %cfg.brokers,
        topics = ?cfg.topics,
        group = %cfg.group,
        properties = ?cfg.redacted_properties(),
        "starting the Kafka runtime"
    );
    metrics.expect(&engine, &cfg.inputs());
    let output = Arc::new(Sender::new(cfg, stop.clone(), metrics.clone())?);
    let n = cfg.worker_count();
    let mut senders = Vec::with_capacity(n);
    let mut handles: Vec<JoinHandle<(Stats, u64)>> = Vec::with_capacity(n);
    for i in 0..n {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        senders.push(tx);
        let (engine, output, metrics) = (engine.clone(), output.clone(), metrics.clone());
        handles.push(
            thread::Builder::new()
                .name(format!("nhid-worker-{i}"))
                .spawn(move || work(&engine, &output, &metrics, rx))
                .context("starting a worker thread")?,
        );
    }
    let shared = Arc::new(Shared {
        engine,
        metrics,
        health,
        output: output.clone(),
        workers: senders,
        partitions: Mutex::default(),
        batches: Mutex::new((0..n).map(|_| Vec::new()).collect()),
        grace: Duration::from_secs(cfg.shutdown_grace_secs),
        rebuild: Duration::from_secs(cfg.rebuild_secs),
        inputs: cfg.inputs().into_iter().map(|(t, c)| (t.to_string(), c)).collect(),
    });
    // Brokers without long polling (librdkafka's mock cluster, Tansu 0.6) answer a fetch
    // that found nothing only after the full `fetch.wait.max.ms`, which then makes most of
    // the event → alert latency: 50 ms gave a p99 of 65 ms on the mock and 119 ms on Tansu,
    // 10 ms gives 25 and 44 (`cargo bench --bench kafka`), for at most 100 empty fetches/s
    // per broker on a quiet topic. Kafka itself answers as soon as data arrives.
    //
    // Past `queued.min.messages` (100,000, shared by every partition of a group consumer)
    // librdkafka stops fetching for `fetch.queue.backoff.ms`, 1 s by default: catching up
    // on a backlog, the workers drained that queue in a fraction of it and then waited
    // (140,000 events/s instead of 330,000 on the mock cluster).
    let mut client = cfg.client(&[
        ("auto.offset.reset", "earliest"),
        ("fetch.wait.max.ms", "10"),
        ("fetch.queue.backoff.ms", "50"),
        ("statistics.interval.ms", "5000"),
    ]);
    client.set("group.id", &cfg.group).set("enable.auto.commit", "false").set("enable.auto.offset.store", "false");
    if let Some(id) = &cfg.instance_id {
        client.set("group.instance.id", id);
    }
    let consumer: BaseConsumer<RuntimeContext> =
        client.create_with_context(RuntimeContext(shared.clone())).context("creating the Kafka consumer")?;
    let topics: Vec<&str> = cfg.inputs().into_iter().map(|(t, _)| t).collect();
    consumer.subscribe(&topics).context("subscribing to the input topics")?;

    let interval = Duration::from_millis(cfg.commit_interval_ms);
    let mut next_commit = Instant::now() + interval;
    let mut waiting = false;
    while !stop.load(Ordering::Relaxed) {
        // Poll without blocking while messages wait to be handed over, so a quiet stream
        // still moves at once.
        match consumer.poll(if waiting { Duration::ZERO } else { Duration::from_millis(100) }) {
            Some(Ok(m)) => {
                if shared.health.brokers_down.load(Ordering::Relaxed) {
                    shared.health.brokers_down.store(false, Ordering::Relaxed);
                }
                let partition = shared.partition(m.topic(), m.partition());
                shared.dispatch(Message {
                    partition,
                    offset: m.offset(),
                    timestamp: m.timestamp().to_millis(),
                    payload: m.payload().unwrap_or_default().to_vec(),
                });
                waiting = true;
            }
            Some(Err(e)) => tracing::warn!(error = %e, "consumer error"),
            None => {
                shared.flush_batches();
                waiting = false;
            }
        }
        if Instant::now() >= next_commit {
            shared.commit(&consumer, CommitMode::Async, None);
            next_commit = Instant::now() + interval;
        }
    }

    tracing::info!("stopping: draining in-flight messages, flushing producers, committing");
    let deadline = Instant::now() + shared.grace;
    shared.drain(&consumer, None, deadline);
    let committed = shared.committed();
    let unacknowledged = output.in_flight();
    // Leaving the group runs the revocation callback once more; everything is already
    // drained and committed, so it commits nothing new.
    drop(consumer);
    let shared = Arc::into_inner(shared).context("the consumer context outlived the consumer")?;
    drop(shared.workers);
    let mut stats = Stats::default();
    let mut rebuilt = 0;
    for h in handles {
        let (s, r) = h.join().map_err(|_| anyhow::anyhow!("a worker panicked"))?;
        stats.merge(&s);
        rebuilt += r;
    }
    let latency = output.latency();
    if let Some(fatal) = output.fatal() {
        anyhow::bail!("stopped after a delivery failed for good: {fatal}");
    }
    Ok(Report { stats, unacknowledged, committed, rebuilt, latency })
}

/// A worker: processes its partitions' messages in order and sends the outputs.
fn work(engine: &Engine, output: &Sender, metrics: &Metrics, jobs: Receiver<Job>) -> (Stats, u64) {
    let mut out = Outputs::default();
    let mut total = Stats::default();
    let mut rebuilt = 0;
    for job in jobs {
        let batch = match job {
            Job::Messages(batch) => batch,
            Job::Barrier(done) => {
                let _ = done.send(());
                continue;
            }
        };
        for m in batch {
            let started = Instant::now();
            let p = &m.partition;
            p.received.inc();
            let rebuilding = m.offset < p.rebuild_until;
            if rebuilding && m.timestamp.is_some_and(|t| t < p.rebuild_since) {
                p.progress().processed(m.offset, 0);
                continue;
            }
            let origin = Origin { source: &p.topic, partition: p.partition, offset: m.offset };
            match p.control {
                None => {
                    let decoded = engine.process(&m.payload, origin, m.timestamp, &mut out);
                    if let Some(f) = decoded.format {
                        p.events_received[f.index()].inc_by(decoded.events);
                    }
                }
                Some(kind) => engine.control(kind, &m.payload, origin, &mut out),
            }
            if rebuilding {
                out.clear();
                rebuilt += 1;
            }
            // Registered before sending: a delivery report may arrive before `send` returns.
            p.progress().processed(m.offset, output.count(&out));
            output.send_all(&mut out, p, m.offset, m.timestamp);
            metrics.processing.observe(started.elapsed().as_secs_f64());
        }
        // Counters move once per batch, not per message.
        metrics.absorb(&out.stats);
        total.merge(&out.stats);
        out.stats = Stats::default();
    }
    (total, rebuilt)
}
