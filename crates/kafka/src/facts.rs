//! Lifecycle facts on every instance. A control topic (lifecycle events, action results) is
//! consumed in the group like any input, so that what it gives (an alert on a failed action,
//! a dead letter, its counts) is sent once. But its facts (a credential revoked, an owner
//! offboarded, a principal retired) concern identities on every instance: a key's
//! revocation is keyed by whoever published it, and the key's own events are on another
//! partition, in another instance. So each instance also reads every partition of each
//! control topic, as Kafka Streams reads a global table: from as far back as facts are kept
//! ([`FACT_TTL`]) when it starts, then as they come, applying the facts only (a fact
//! recorded twice is recorded once). An assignment waits until those kept at the start are
//! read: an audit event judged before its revocation was read would pass.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};

use nhid_engine::state::lifecycle::FACT_TTL;
use nhid_engine::{ControlKind, Engine, Origin, Outputs};

use crate::changelog::Reader;
use crate::config::KafkaConfig;
use crate::error::Error;
use crate::output::now_ms;

/// How long looking up a control topic's partitions and where its facts start may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an assignment waits for the facts kept at the start before it goes on.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// The facts reader, stopped when dropped.
pub(crate) struct Facts {
    read: Arc<Read>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

/// Whether the facts kept when the reader started are read.
#[derive(Default)]
struct Read {
    done: Mutex<bool>,
    changed: Condvar,
}

impl Facts {
    /// Starts reading `cfg`'s control topics into `engine`; `None` without any. Facts are read
    /// from [`FACT_TTL`] ago when state is kept or rebuilt (a changelog, or `rebuild_secs`),
    /// otherwise from now on, as the control topics' own partitions are.
    pub(crate) fn spawn(cfg: &KafkaConfig, engine: Arc<Engine>) -> Result<Option<Facts>, Error> {
        let topics: Vec<(String, ControlKind)> =
            cfg.inputs().into_iter().filter_map(|(t, kind)| Some((t.to_string(), kind?))).collect();
        if topics.is_empty() {
            return Ok(None);
        }
        let reader: BaseConsumer<Reader> = cfg
            .changelog_reader_config()
            .create_with_context(Reader)
            .map_err(|source| Error::create_client("facts reader", &source))?;
        let since = (cfg.changelog() || cfg.rebuild_secs > 0).then(|| now_ms() - FACT_TTL);
        let (read, stop) = (Arc::new(Read::default()), Arc::new(AtomicBool::new(false)));
        let (done, stopped) = (read.clone(), stop.clone());
        let run = move || {
            let ends = start(&reader, &topics, since);
            done.tail(&reader, &topics, &engine, ends, &stopped);
        };
        let handle = thread::Builder::new().name("nhid-facts".into()).spawn(run).map_err(Error::SpawnWorker)?;
        Ok(Some(Facts { read, stop, handle: Some(handle) }))
    }

    /// Waits until the facts kept at the start are read, `timeout` at most.
    pub(crate) fn wait_read(&self, timeout: Duration) {
        let done = self.read.done.lock().unwrap_or_else(PoisonError::into_inner);
        let (done, _) =
            self.read.changed.wait_timeout_while(done, timeout, |done| !*done).unwrap_or_else(PoisonError::into_inner);
        if !*done {
            tracing::warn!(?timeout, "the control topics' facts were not read in time; going on without the rest");
        }
    }
}

impl Drop for Facts {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

impl Read {
    fn set(&self) {
        *self.done.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.changed.notify_all();
    }

    /// Applies every fact that comes until `stop`; says when every partition has reached the
    /// end it had at the start (`ends`).
    fn tail(
        &self,
        reader: &BaseConsumer<Reader>,
        topics: &[(String, ControlKind)],
        engine: &Engine,
        mut ends: HashMap<(String, i32), i64>,
        stop: &AtomicBool,
    ) {
        let mut out = Outputs::default();
        while !stop.load(Ordering::Relaxed) {
            if ends.is_empty() {
                self.set();
            }
            let m = match reader.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => m,
                Some(Err(KafkaError::PartitionEOF(_))) | None => continue,
                Some(Err(error)) => {
                    tracing::warn!(%error, "reading the control topics' facts");
                    continue;
                }
            };
            let Some((_, kind)) = topics.iter().find(|(t, _)| t == m.topic()) else { continue };
            let origin = Origin { source: m.topic(), partition: m.partition(), offset: m.offset() };
            engine.control(*kind, m.payload().unwrap_or_default(), origin, &mut out);
            // What a fact gives is sent by the instance its partition is assigned to.
            out.clear();
            let key = (m.topic().to_string(), m.partition());
            if ends.get(&key).is_some_and(|&end| m.offset() + 1 >= end) {
                ends.remove(&key);
            }
        }
        // A stop before they were read must not hold an assignment waiting.
        self.set();
    }
}

/// Assigns `reader` every partition of `topics`, from the first fact at or after `since`
/// (or from now on); returns the end each partition had (the high watermark) where there is
/// something to read before it. A topic it cannot look up is left out, with a warning.
fn start(
    reader: &BaseConsumer<Reader>,
    topics: &[(String, ControlKind)],
    since: Option<i64>,
) -> HashMap<(String, i32), i64> {
    let deadline = Instant::now() + LOOKUP_TIMEOUT;
    let mut query = TopicPartitionList::new();
    for (topic, _) in topics {
        let partitions = match reader.fetch_metadata(Some(topic), LOOKUP_TIMEOUT) {
            Ok(metadata) => metadata.topics().first().map_or(0, |t| t.partitions().len()),
            Err(error) => {
                tracing::warn!(%error, topic, "looking up the control topic failed; its facts reach this instance only from the partitions it is assigned");
                0
            }
        };
        for p in 0..partitions as i32 {
            let _ = query.add_partition_offset(topic, p, since.map_or(Offset::End, Offset::Offset));
        }
    }
    let mut starts = match since {
        Some(_) => reader.offsets_for_times(query.clone(), LOOKUP_TIMEOUT).unwrap_or_else(|error| {
            tracing::warn!(%error, "looking up where the control topics' facts start failed; reading them from the start");
            query.clone()
        }),
        None => query.clone(),
    };
    let mut ends = HashMap::new();
    for e in query.elements() {
        let (topic, partition) = (e.topic(), e.partition());
        let from = starts.find_partition(topic, partition).map(|s| s.offset());
        let from = match (since, from) {
            (Some(_), Some(Offset::Offset(o))) => Offset::Offset(o),
            // Nothing at or after `since` (Kafka answers `End`; librdkafka's mock cluster
            // answers `End` for everything): from the start, facts older than kept expire.
            (Some(_), _) => Offset::Beginning,
            (None, _) => Offset::End,
        };
        let _ = starts.set_partition_offset(topic, partition, from);
        // Waited for when there is something between where reading starts and the end.
        let first = match from {
            Offset::Offset(o) => o,
            Offset::Beginning => 0,
            _ => continue,
        };
        let timeout = deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(1));
        if let Ok((low, high)) = reader.fetch_watermarks(topic, partition, timeout)
            && high > low.max(first)
        {
            ends.insert((topic.to_string(), partition), high);
        }
    }
    if let Err(error) = reader.assign(&starts) {
        tracing::warn!(%error, "reading the control topics' facts failed; they reach this instance only from the partitions it is assigned");
        ends.clear();
    }
    ends
}
