//! The state changelog: each identity's state as a record in a compacted topic, so that a
//! restart or a rebalance restores it instead of re-reading days of input (Kafka Streams'
//! changelogged state stores, for nhid's identities).
//!
//! - **Where.** An identity's records go to the changelog partition numbered as its home
//!   input partition (modulo the changelog's count), keyed by a hash of its principal id
//!   (`snapshot::key_of`); each record names its home, so partitions of several input topics
//!   can share one changelog partition.
//! - **When.** Every `changelog_interval_ms`, each partition's worker, between two
//!   messages: the records of the identities changed since the last (`Engine::changes`),
//!   then a mark that the partition's state holds every message before an offset
//!   (`Record::Through`). They are outputs of the message before it, so no offset is ever
//!   committed past the last mark, nor up to it before the broker has the records.
//!   - Keyed input: the mark is the offset after the last message processed.
//!   - The events topic: its events are applied in event-time order across their sources,
//!     not in offset order, so the state holds some events after held ones. The mark is the
//!     first held message, and carries how far each source's events are in the state
//!     (`SourceDone`); after a restore the reorder skips those when it reads them again.
//!     It is written once every event applied has its outputs acknowledged (its worker
//!     waits for that), since those events are not processed again.
//! - **Restore.** On assignment, the partition's records are read from the start to the end
//!   (compaction keeps the latest per key; what it has not compacted yet is compacted here)
//!   and restored; the input is then read from the committed offset, with nothing to
//!   rebuild. A partition the changelog holds nothing for (a first run, a topic deleted), or
//!   a record of another format, falls back to re-reading `rebuild_secs`.
//!
//! Exact: a partition is restored only when its last mark is its committed offset and no
//! record of it comes after the mark. A crash between a write and the commit that reaches it
//! leaves the changelog ahead, and that partition is rebuilt instead of applying input twice.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};

use nhid_engine::metrics::Metrics;
use nhid_engine::state::snapshot::{self, SnapshotError, SourceDone};
use nhid_engine::{Engine, Restored};

use crate::config::KafkaConfig;
use crate::error::Error;
use crate::output::Sender;
use crate::partition::Partition;

/// How long reading the changelog at an assignment may take before the partitions not read
/// to their end are rebuilt instead.
const RESTORE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long to wait, once every partition reported its end, for records the broker has
/// acknowledged but not yet reports (Tansu 0.6 reports a high watermark behind them; 3 s
/// were seen not to do under load). Waited only when a committed partition has no mark.
const SETTLE: Duration = Duration::from_secs(10);
const CREATE_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct Changelog {
    topic: String,
    partitions: i32,
    interval: i64,
    /// Identities restored so far in this run.
    pub(crate) restored: AtomicU64,
}

/// An assigned input partition whose state is to be restored.
pub(crate) struct Assigned {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) home: u32,
    pub(crate) committed: i64,
}

/// What an assigned partition's restore came to.
#[derive(Debug, PartialEq)]
pub(crate) enum Outcome {
    /// Its state is back, as of its committed offset, and for an events partition, of
    /// each source up to the event named.
    Restored(Vec<SourceDone>),
    /// Rebuild by re-reading, for this reason (`nhid_restore_fallbacks_total{reason}`).
    Rebuild(&'static str),
}

impl Changelog {
    /// The changelog topic, created when missing: compacted, with as many partitions as the
    /// largest of `inputs`.
    pub(crate) fn open(cfg: &KafkaConfig, output: &Sender, inputs: &[String]) -> Result<Changelog, Error> {
        let topic = cfg.changelog_topic.clone();
        let fail = |detail: String| Error::CreateChangelog { topic: topic.clone(), detail };
        let admin: AdminClient<DefaultClientContext> = cfg.admin_config().create().map_err(|e| fail(e.to_string()))?;
        let partitions = match existing(&admin, &topic) {
            Some(n) => n,
            None => {
                let mut wanted = 1;
                for input in inputs {
                    wanted = wanted.max(output.partitions(input)?);
                }
                create(&admin, &topic, wanted).map_err(fail)?;
                tracing::info!(topic, partitions = wanted, "created the state changelog topic");
                existing(&admin, &topic).ok_or_else(|| fail("created, but not in the metadata".into()))?
            }
        };
        let interval = cfg.changelog_interval_ms as i64;
        Ok(Changelog { topic, partitions, interval, restored: AtomicU64::new(0) })
    }

    fn partition_of(&self, input_partition: i32) -> i32 {
        input_partition % self.partitions
    }

    /// How often a partition's state is written (`changelog_interval_ms`).
    pub(crate) fn interval(&self) -> i64 {
        self.interval
    }

    /// Writes the records of what changed in `p`'s identities since the last call, and the
    /// mark that its state holds every message before `through` (and, of an events
    /// partition, every event of `sources` up to its place), as outputs of the message
    /// before `through` when it was processed here; otherwise (`through` is where this
    /// assignment started) of none: a commit cannot pass `through` before the next write.
    /// Called by `p`'s worker, between messages: what the records hold and what the mark
    /// says are then the same.
    pub(crate) fn snapshot(
        &self,
        engine: &Engine,
        output: &Sender,
        metrics: &Metrics,
        p: &Arc<Partition>,
        through: i64,
        sources: &[SourceDone],
    ) {
        let mut changes = Vec::new();
        engine.changes(p.home, &mut changes);
        let mark = snapshot::through(p.home, through, sources);
        let count = changes.len() as u32 + 1;
        let of = {
            let mut progress = p.progress();
            let of = progress.was_processed(through - 1).then_some(through - 1);
            // Registered before sending: a delivery report may arrive before `send` returns.
            if let Some(of) = of {
                progress.sent(of, count);
            }
            of
        };
        let partition = self.partition_of(p.partition);
        for c in &changes {
            output.send_changelog(&self.topic, partition, c.key, c.value.as_deref(), p, of);
        }
        output.send_changelog(&self.topic, partition, snapshot::through_key(p.home), Some(&mark), p, of);
        metrics.changelog_records.inc_by(u64::from(count));
        p.snapshot_through.store(through, Ordering::Relaxed);
    }

    /// Restores the state of `assigned` input partitions from their changelog partitions;
    /// what each came to, by home.
    pub(crate) fn restore(
        &self,
        cfg: &KafkaConfig,
        engine: &Engine,
        metrics: &Metrics,
        assigned: &[Assigned],
    ) -> HashMap<u32, Outcome> {
        let started = Instant::now();
        let homes: HashMap<u32, i64> = assigned.iter().map(|a| (a.home, a.committed)).collect();
        let wanted: HashSet<i32> = assigned.iter().map(|a| self.partition_of(a.partition)).collect();
        let (records, complete) = match self.read(cfg, &wanted, &homes) {
            Ok(read) => read,
            Err(error) => {
                tracing::warn!(%error, topic = self.topic, "reading the state changelog failed; rebuilding instead");
                (HashMap::new(), HashSet::new())
            }
        };
        let mut through: HashMap<u32, (i64, Vec<SourceDone>)> = HashMap::new();
        let mut refused: HashMap<u32, SnapshotError> = HashMap::new();
        // A partition whose records go past its last mark (a write cut short by a crash) has
        // state newer than the mark says: it cannot be told which.
        let mut cut: HashSet<u32> = HashSet::new();
        for (partition, by_key) in &records {
            if !complete.contains(partition) {
                continue;
            }
            let marks: HashMap<u32, i64> =
                homes.keys().filter_map(|&h| by_key.get(&snapshot::through_key(h)).map(|(at, _)| (h, *at))).collect();
            for (at, value) in by_key.values() {
                if let Some(home) = value.as_deref().and_then(snapshot::home_of)
                    && marks.get(&home).is_some_and(|mark| at > mark)
                {
                    cut.insert(home);
                }
            }
            for value in by_key.values().filter_map(|(_, v)| v.as_ref()) {
                let Some(home) = snapshot::home_of(value).filter(|h| homes.contains_key(h)) else {
                    if value.first() != Some(&snapshot::VERSION) {
                        // Another format's record: whose it is cannot be read; any
                        // partition sharing this changelog partition may have lost state.
                        let version = SnapshotError::Version(value.first().copied().unwrap_or(0));
                        for a in assigned.iter().filter(|a| self.partition_of(a.partition) == *partition) {
                            refused.entry(a.home).or_insert(version.clone());
                        }
                    }
                    continue;
                };
                match engine.restore(value, home) {
                    Ok(Restored::Through { offset, sources }) => {
                        through.insert(home, (offset, sources));
                    }
                    Ok(Restored::Identity) => {
                        self.restored.fetch_add(1, Ordering::Relaxed);
                        metrics.restored.with_label_values(&["identity"]).inc();
                    }
                    Ok(Restored::Tombstone) => metrics.restored.with_label_values(&["tombstone"]).inc(),
                    Ok(Restored::Older) => metrics.restored.with_label_values(&["older"]).inc(),
                    Ok(Restored::Elsewhere) => {}
                    Err(e) => {
                        refused.entry(home).or_insert(e);
                    }
                }
            }
        }
        let mut outcomes = HashMap::new();
        for a in assigned {
            let (topic, partition, committed) = (&a.topic, a.partition, a.committed);
            let mark = through.remove(&a.home);
            let rebuild = match (refused.remove(&a.home), mark.as_ref().map(|(t, _)| *t)) {
                (None, Some(t)) if t == committed && !cut.contains(&a.home) => None,
                (Some(error), _) => Some(("refused", format!("a changelog record was refused ({error})"))),
                (None, Some(t)) if t < committed => {
                    Some(("behind", format!("the changelog holds less than was committed, through {t}")))
                }
                // Stopped by a crash between a write and the commit that reaches it: the input
                // after the committed offset is in the state already, and reading it again
                // would apply it twice.
                (None, Some(t)) => {
                    Some(("ahead", format!("the changelog holds more than was committed (a crash), through {t}")))
                }
                (None, None) => Some(("none", "the changelog holds no mark for it".to_string())),
            };
            let outcome = match rebuild {
                None => {
                    tracing::info!(topic, partition, committed, "restored the partition's state from the changelog");
                    Outcome::Restored(mark.map(|(_, sources)| sources).unwrap_or_default())
                }
                Some((reason, why)) => {
                    // Whatever was restored for it goes: the rebuild starts from nothing.
                    engine.release(&HashSet::from([a.home]));
                    metrics.restore_fallbacks.with_label_values(&[reason]).inc();
                    tracing::info!(
                        topic,
                        partition,
                        committed,
                        "{why}; rebuilding the partition's state by re-reading"
                    );
                    Outcome::Rebuild(reason)
                }
            };
            outcomes.insert(a.home, outcome);
        }
        metrics.restore_seconds.observe(started.elapsed().as_secs_f64());
        outcomes
    }

    /// The latest record per key of each of `wanted` partitions, and which were read to
    /// their end. The end is librdkafka's end-of-partition event; past it, a partition
    /// whose marks for `homes` are behind their committed offsets is waited on for
    /// [`SETTLE`] more.
    #[allow(clippy::type_complexity)]
    fn read(
        &self,
        cfg: &KafkaConfig,
        wanted: &HashSet<i32>,
        homes: &HashMap<u32, i64>,
    ) -> Result<(HashMap<i32, HashMap<u64, (i64, Option<Vec<u8>>)>>, HashSet<i32>), KafkaError> {
        let mut tpl = TopicPartitionList::new();
        for &partition in wanted {
            tpl.add_partition_offset(&self.topic, partition, Offset::Beginning)?;
        }
        let marks: HashMap<u64, u32> = homes.keys().map(|&h| (snapshot::through_key(h), h)).collect();
        let through: RefCell<HashMap<u32, i64>> = RefCell::default();
        let mut records: HashMap<i32, HashMap<u64, (i64, Option<Vec<u8>>)>> = HashMap::new();
        let read = |m: &BorrowedMessage<'_>| {
            let Some(key) = m.key().and_then(|k| <[u8; 8]>::try_from(k).ok()).map(u64::from_be_bytes) else {
                return;
            };
            let value = m.payload().map(<[u8]>::to_vec);
            if let (Some(&home), Some(v)) = (marks.get(&key), &value)
                && let Ok((_, snapshot::Record::Through { offset, .. })) = snapshot::decode(v)
            {
                through.borrow_mut().insert(home, offset);
            }
            records.entry(m.partition()).or_default().insert(key, (m.offset(), value));
        };
        // A partition committed past has a mark (commits never pass it): none read yet is
        // one the broker has not shown yet (Tansu 0.6 reports ends behind what it acknowledged).
        let behind = || homes.iter().any(|(h, committed)| through.borrow().get(h).is_none_or(|t| t < committed));
        let ended = read_to_end(cfg, &tpl, read, behind)?;
        Ok((records, ended.into_iter().map(|(_, p)| p).collect()))
    }
}

/// Reads the partitions of `tpl` (of one topic: librdkafka's end-of-partition event names
/// the partition only) from their offsets to their ends, giving `f` each message; past the
/// ends, reads on for [`SETTLE`] while `behind` says something is missing. Returns the
/// partitions read to their end within [`RESTORE_TIMEOUT`].
fn read_to_end(
    cfg: &KafkaConfig,
    tpl: &TopicPartitionList,
    mut f: impl FnMut(&BorrowedMessage<'_>),
    behind: impl Fn() -> bool,
) -> Result<HashSet<(String, i32)>, KafkaError> {
    let reader: BaseConsumer<Reader> = cfg.changelog_reader_config().create_with_context(Reader)?;
    reader.assign(tpl)?;
    let mut ended: HashSet<(String, i32)> = HashSet::new();
    let deadline = Instant::now() + RESTORE_TIMEOUT;
    let mut settle_until: Option<Instant> = None;
    while Instant::now() < deadline {
        match reader.poll(Duration::from_millis(50)) {
            Some(Ok(m)) => {
                f(&m);
                ended.remove(&(m.topic().to_string(), m.partition()));
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                if let Some(e) = tpl.elements().iter().find(|e| e.partition() == partition) {
                    ended.insert((e.topic().to_string(), partition));
                }
            }
            Some(Err(error)) => return Err(error),
            None => {}
        }
        if ended.len() == tpl.count() {
            let settle = *settle_until.get_or_insert_with(|| Instant::now() + SETTLE);
            if !behind() || Instant::now() >= settle {
                break;
            }
        }
    }
    Ok(ended)
}

/// The context of a reader assigned partitions by hand (the changelog's, the control
/// topics' facts'): the end of a partition, which it asks to be told of, is no error to log.
pub(crate) struct Reader;

impl rdkafka::ClientContext for Reader {
    fn error(&self, error: KafkaError, reason: &str) {
        if !matches!(error, KafkaError::PartitionEOF(_))
            && error.rdkafka_error_code() != Some(RDKafkaErrorCode::PartitionEOF)
        {
            tracing::warn!(%error, reason, "reading the state changelog or the control topics' facts");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for Reader {}

/// How many partitions `topic` has, `None` when it does not exist. Asked through the admin
/// client, which does not create topics by asking (a producer would, on brokers that do).
fn existing(admin: &AdminClient<DefaultClientContext>, topic: &str) -> Option<i32> {
    let metadata = admin.inner().fetch_metadata(Some(topic), CREATE_TIMEOUT).ok()?;
    let t = metadata.topics().first()?;
    (t.error().is_none() && !t.partitions().is_empty()).then(|| t.partitions().len() as i32)
}

/// Creates the changelog topic: compacted (the latest record per identity is all a restore
/// needs), `partitions` partitions, the broker's default replication.
fn create(admin: &AdminClient<DefaultClientContext>, topic: &str, partitions: i32) -> Result<(), String> {
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(-1)).set("cleanup.policy", "compact");
    let options = AdminOptions::new().operation_timeout(Some(CREATE_TIMEOUT)).request_timeout(Some(CREATE_TIMEOUT));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().map_err(|e| e.to_string())?;
    for result in runtime.block_on(admin.create_topics([&new], &options)).map_err(|e| e.to_string())? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(code.to_string()),
        }
    }
    Ok(())
}
