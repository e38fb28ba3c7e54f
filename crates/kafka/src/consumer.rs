//! The consumer thread: polls the group consumer, hands each message to its partition's
//! worker, commits every `commit_interval_ms`, and on revocation drains, flushes and
//! commits before the partitions go, then releases their identities' state.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{BorrowedMessage, Message as _};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use nhid_engine::metrics::{Health, KafkaErrorKind, Metrics};
use nhid_engine::state::snapshot::SourceDone;
use nhid_engine::{ControlKind, Engine, Origin};

use crate::changelog::{Assigned, Changelog, Outcome};
use crate::config::KafkaConfig;
use crate::error::Error;
use crate::facts::Facts;
use crate::internal_events::{
    AssignmentFailed, CallFailed, ClientError, FlushTimedOut, KafkaErrorEvent as _, RebalanceFailed,
};
use crate::output::{Sender, now_ms};
use crate::partition::{Input, Partition};
use crate::rekeyed::{self, SOURCE_IDLE};
use crate::worker::{Item, Message, Workers};

/// The partitions assigned here, by topic and number.
type Partitions = HashMap<(Arc<str>, i32), Arc<Partition>>;

/// Topics and partitions named by a revocation.
type Revoked = crate::worker::Named;

/// Messages read from one partition queue before choosing again.
const PACED_CHUNK: usize = 64;

/// How long the offset lookups at assignment may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything the consumer thread and its rebalance callback share.
pub(crate) struct Shared {
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    output: Arc<Sender>,
    pub(crate) workers: Workers,
    partitions: Mutex<Partitions>,
    /// How long a drain may wait for the broker to acknowledge outputs.
    pub(crate) grace: Duration,
    rebuild: Duration,
    /// Consumed topics and their control kinds.
    inputs: Vec<(String, Option<ControlKind>)>,
    /// The re-keyed events' topic: its partitions' events are reordered.
    events_topic: String,
    /// The re-keying stage's: its partitions are read paced ([`consume_paced`]).
    paced: bool,
    /// The detection stage's state changelog, when `cfg` has one: opened at the first
    /// assignment (the brokers answer then; at start they may not, and a stop must not wait
    /// on them).
    changelog: Arc<OnceLock<Changelog>>,
    /// Every control topic's facts, read here whichever partitions are assigned (stopped
    /// with this).
    facts: Option<Facts>,
    cfg: KafkaConfig,
}

pub(crate) struct RuntimeContext(Arc<Shared>);

pub(crate) type GroupConsumer = BaseConsumer<RuntimeContext>;

impl ClientContext for RuntimeContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let event = ClientError { error: &error, reason };
        if event.brokers_down() {
            self.0.health.brokers_down.store(true, Ordering::Relaxed);
        }
        event.emit(&self.0.metrics);
    }

    /// librdkafka's periodic statistics (`statistics.interval.ms`): the consumer lag per
    /// assigned partition.
    fn stats(&self, statistics: rdkafka::Statistics) {
        let lag = &self.0.metrics.consumer_lag;
        lag.reset();
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    lag.with_label_values(&[topic.as_str(), &partition.to_string()]).set(p.consumer_lag);
                }
                if self.0.paced && *partition >= 0 {
                    self.0.ends_at(topic, *partition, p.lo_offset, p.hi_offset);
                }
            }
        }
    }
}

impl ConsumerContext for RuntimeContext {
    /// An asynchronous commit that failed (the group rebalancing, a coordinator moving) is
    /// sent again at the next interval, even if its offset has not moved since.
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        let Err(error) = result else { return };
        CallFailed {
            kind: KafkaErrorKind::Commit,
            error: &error,
            then: "offset commit failed; retrying at the next interval",
        }
        .emit(&self.0.metrics);
        let partitions = self.0.partitions.lock().unwrap_or_else(PoisonError::into_inner);
        for e in offsets.elements() {
            if let Some(p) = partitions.get(&(Arc::from(e.topic()), e.partition())) {
                *p.committed() = None;
            }
        }
    }

    /// Replaces librdkafka's default assignment so that revoked partitions are drained and
    /// committed before they go, and assigned ones start early enough to rebuild state.
    fn rebalance(&self, consumer: &GroupConsumer, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.0.assigned(consumer, tpl);
                // Each worker knows its partitions before it reads their messages.
                self.0.workers.flush_batches();
                for e in tpl.elements() {
                    self.0.workers.forward(consumer, e.topic(), e.partition());
                }
                if cooperative { consumer.incremental_assign(tpl) } else { consumer.assign(tpl) }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let revoked: Revoked = tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect();
                tracing::info!(partitions = revoked.len(), "partitions revoked: draining, flushing and committing");
                self.0.drain(consumer, Some(&revoked), Instant::now() + self.0.grace);
                if cooperative { consumer.incremental_unassign(tpl) } else { consumer.unassign() }
            }
            other => {
                RebalanceFailed { error: other }.emit(&self.0.metrics);
                consumer.unassign()
            }
        };
        if let Err(error) = result {
            AssignmentFailed { error: &error }.emit(&self.0.metrics);
        }
    }
}

/// Creates the group consumer and subscribes it to every input topic.
pub(crate) fn subscribe(cfg: &KafkaConfig, shared: Arc<Shared>) -> Result<GroupConsumer, Error> {
    let consumer: GroupConsumer = cfg
        .consumer_config(shared.paced)
        .create_with_context(RuntimeContext(shared))
        .map_err(|source| Error::create_client("consumer", &source))?;
    let topics: Vec<&str> = cfg.inputs().into_iter().map(|(t, _)| t).collect();
    consumer.subscribe(&topics).map_err(Error::Subscribe)?;
    Ok(consumer)
}

/// The re-keying stage's [`consume`], paced. Detection holds each source's events until every
/// other source has reached their time, so the sources must advance together in event time. The
/// broker serves them by bytes, and one partition of an unkeyed topic holds more of the stream
/// than another (a producer's partitioner picks at random): read as fetched, one source lagged
/// 23 minutes of event time on a backlog, and detection held 50,000 events for it. So the
/// re-keying consumer reads each partition from its own queue, the one furthest behind first;
/// the others' queues fill to `queued.min.messages` and their fetching stops until they are
/// read (no pause and resume, which re-fetch mid-batch: Tansu 0.6 answers such a fetch with the
/// next batch, losing the rest of this one). A partition with nothing queued is read around at
/// once when it is at the end the broker last reported, otherwise after [`SOURCE_IDLE`]
/// (a fetch in flight).
pub(crate) fn consume_paced(consumer: &Arc<GroupConsumer>, shared: &Shared, stop: &AtomicBool, interval: Duration) {
    let mut queues: Vec<Paced> = Vec::new();
    let mut last = Last::default();
    let mut next_commit = Instant::now() + interval;
    while !stop.load(Ordering::Relaxed) {
        // Callbacks (rebalances) are served here, and a partition's messages fetched before
        // its queue was split come here: all of them before any from its queue.
        let split = shared.split_new(consumer, &mut queues);
        while let Some(polled) = consumer.poll(Duration::ZERO) {
            shared.polled(polled, &mut last);
            if !split {
                break;
            }
        }
        queues.retain(|(p, _)| !p.revoked.load(Ordering::Relaxed));
        let now = now_ms();
        let mut read = 0;
        for (p, queue) in furthest_behind_first(&queues, |(p, _)| p.latest.load(Ordering::Relaxed)) {
            while read < PACED_CHUNK
                && let Some(polled) = queue.poll(Duration::ZERO)
            {
                shared.polled(polled, &mut last);
                read += 1;
            }
            if read > 0 {
                p.empty_since.store(i64::MAX, Ordering::Relaxed);
                break;
            }
            // Found empty: since when, unless it already was (a queue not read because slower
            // ones were is full, not empty). At its end, there is nothing to wait for (a quiet
            // source, read around at once rather than after each of its messages); short of
            // it, a fetch may be in flight, waited for a while.
            let since = p.empty_since.fetch_min(now, Ordering::Relaxed).min(now);
            if !p.at_end() && now - since < SOURCE_IDLE {
                break;
            }
        }
        if read == 0 {
            shared.workers.flush_batches();
            // Nothing to read now: wait on the group consumer's queue (callbacks) briefly.
            if let Some(polled) = consumer.poll(Duration::from_millis(5)) {
                shared.polled(polled, &mut last);
            }
        }
        if Instant::now() >= next_commit {
            shared.commit(consumer, CommitMode::Async, None);
            next_commit = Instant::now() + interval;
        }
    }
}

/// The partition of the message before. Messages come in runs of one partition (a fetched
/// batch), so most find theirs here, without the map's lock and a key made for the lookup.
type Last = Option<Arc<Partition>>;

/// A re-keyed partition and its queue.
type Paced = (Arc<Partition>, PartitionQueue<RuntimeContext>);

/// `queues` by the latest event time of each, earliest first, each time read once: the
/// workers move them on meanwhile, and a sort that reads a key twice can see it change,
/// which `sort` may answer with a panic (the comparison is not a total order). That panic
/// stopped the re-keying stage under `perf` in `cargo bench --bench kafka`.
fn furthest_behind_first<T>(queues: &[T], latest: impl Fn(&T) -> i64) -> Vec<&T> {
    let mut by_latest: Vec<(i64, &T)> = queues.iter().map(|q| (latest(q), q)).collect();
    by_latest.sort_by_key(|&(time, _)| time);
    by_latest.into_iter().map(|(_, q)| q).collect()
}

/// Hands fetched messages to the workers, and commits every `interval`, until `stop` is set.
pub(crate) fn consume(consumer: &GroupConsumer, shared: &Shared, stop: &AtomicBool, interval: Duration) {
    let mut next_commit = Instant::now() + interval;
    let mut waiting = false;
    let mut last = Last::default();
    while !stop.load(Ordering::Relaxed) {
        // Poll without blocking while messages wait to be handed over, so a quiet stream
        // still moves at once.
        match consumer.poll(if waiting { Duration::ZERO } else { Duration::from_millis(100) }) {
            Some(Ok(m)) => {
                shared.received(&m, &mut last);
                waiting = true;
            }
            Some(Err(error)) => CallFailed { kind: KafkaErrorKind::Consume, error: &error, then: "consumer error" }
                .emit(&shared.metrics),
            None => {
                shared.workers.flush_batches();
                waiting = false;
            }
        }
        if Instant::now() >= next_commit {
            shared.commit(consumer, CommitMode::Async, None);
            next_commit = Instant::now() + interval;
        }
    }
}

impl Shared {
    /// What a poll gave: a message for its worker, or an error to count.
    fn polled(&self, polled: KafkaResult<BorrowedMessage<'_>>, last: &mut Last) {
        match polled {
            Ok(m) => self.received(&m, last),
            Err(error) => {
                CallFailed { kind: KafkaErrorKind::Consume, error: &error, then: "consumer error" }.emit(&self.metrics);
            }
        }
    }

    /// Gives each newly assigned partition a queue of its own; whether any was new.
    fn split_new(&self, consumer: &Arc<GroupConsumer>, queues: &mut Vec<Paced>) -> bool {
        let assigned: Vec<Arc<Partition>> =
            self.partitions.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect();
        let mut split = false;
        for p in assigned {
            if queues.iter().any(|(q, _)| Arc::ptr_eq(q, &p)) {
                continue;
            }
            if let Some(queue) = consumer.split_partition_queue(&p.topic, p.partition) {
                queues.push((p, queue));
                split = true;
            }
        }
        split
    }

    pub(crate) fn new(
        cfg: &KafkaConfig,
        engine: Arc<Engine>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        output: Arc<Sender>,
        workers: Workers,
        facts: Option<Facts>,
    ) -> Shared {
        if cfg.changelog() {
            engine.track_changes();
        }
        Shared {
            // The re-keying stage's producer is the one that sends to the events topic.
            paced: output.rekeys(),
            changelog: workers.changelog.clone(),
            engine,
            metrics,
            health,
            output,
            workers,
            partitions: Mutex::default(),
            grace: Duration::from_secs(cfg.shutdown_grace_secs),
            rebuild: Duration::from_secs(cfg.rebuild_secs),
            inputs: cfg.inputs().into_iter().map(|(t, c)| (t.to_string(), c)).collect(),
            events_topic: cfg.events_topic.clone(),
            facts,
            cfg: cfg.clone(),
        }
    }

    /// Re-keying: where a partition ends, by librdkafka's statistics (the high watermark of
    /// its last fetch; a log that holds nothing ends wherever reading is).
    fn ends_at(&self, topic: &str, partition: i32, low: i64, high: i64) {
        let found =
            self.partitions.lock().unwrap_or_else(PoisonError::into_inner).get(&(topic.into(), partition)).cloned();
        let Some(p) = found else { return };
        let end = match (low, high) {
            (_, high) if high < 0 => i64::MAX,
            (low, high) if low >= high => i64::MIN,
            (_, high) => high,
        };
        p.end.store(end, Ordering::Relaxed);
    }

    /// A fetched message, on its way to its partition's worker.
    fn received(&self, m: &BorrowedMessage<'_>, last: &mut Last) {
        // A message is proof that a broker is back.
        if self.health.brokers_down.load(Ordering::Relaxed) {
            self.health.brokers_down.store(false, Ordering::Relaxed);
        }
        let partition = match last {
            Some(p) if p.partition == m.partition() && *p.topic == *m.topic() && !p.revoked.load(Ordering::Relaxed) => {
                p.clone()
            }
            _ => last.insert(self.partition(m.topic(), m.partition())).clone(),
        };
        if self.paced {
            partition.empty_since.store(i64::MAX, Ordering::Relaxed);
        }
        // Its queue split, librdkafka could deliver there what it had already delivered to the
        // group consumer's queue.
        if self.paced && m.offset() < partition.next_offset.fetch_max(m.offset() + 1, Ordering::Relaxed) {
            return;
        }
        let payload = m.payload().unwrap_or_default();
        let message = Message::new(partition, m.offset(), m.timestamp().to_millis(), m.key(), || {
            rekeyed::read(m.headers(), payload)
        });
        self.workers.dispatch(Item::Message(message), payload);
    }

    /// Registers newly assigned partitions and sets where each starts: `rebuild` before its
    /// committed offset (the earliest offset at or after that timestamp), so the messages in
    /// between rebuild state without producing outputs again.
    fn assigned(&self, consumer: &GroupConsumer, tpl: &mut TopicPartitionList) {
        let committed = consumer.committed_offsets(tpl.clone(), LOOKUP_TIMEOUT).unwrap_or_else(|error| {
            let fallback = "reading committed offsets failed; starting where the group left off";
            CallFailed { kind: KafkaErrorKind::OffsetLookup, error: &error, then: fallback }.emit(&self.metrics);
            tpl.clone()
        });
        // Every fact kept before an audit event is judged: a use after a revocation must see it.
        if let Some(facts) = &self.facts {
            facts.wait_read(crate::facts::READ_TIMEOUT);
        }
        let now = now_ms();
        let mut resumed = self.restore(&committed);
        let restored: HashSet<(String, i32)> = resumed.keys().cloned().collect();
        let starts = self.rebuild_starts(consumer, &committed, now, &restored);
        for e in committed.elements() {
            let since = self.rebuild_since(e.topic(), now).unwrap_or(now);
            let Offset::Offset(until) = e.offset() else {
                // Nothing committed: a new group starts by `auto.offset.reset`, with nothing to rebuild.
                self.insert_partition(e.topic(), e.partition(), 0, since, Vec::new());
                continue;
            };
            let key = (e.topic().to_string(), e.partition());
            let start = match starts.get(&key) {
                _ if restored.contains(&key) || self.rebuild_since(e.topic(), now).is_none() => Offset::Offset(until),
                Some(Offset::Offset(o)) => Offset::Offset((*o).min(until)),
                _ => Offset::Beginning,
            };
            let _ = tpl.set_partition_offset(e.topic(), e.partition(), start);
            let sources = resumed.remove(&key).unwrap_or_default();
            self.insert_partition(e.topic(), e.partition(), until, since, sources);
            if start != Offset::Offset(until) {
                tracing::info!(topic = e.topic(), partition = e.partition(), from = ?start, until, "rebuilding state");
            }
        }
        self.count_assigned();
        tracing::info!(partitions = tpl.count(), "partitions assigned");
    }

    /// The changelog, opened (found or created) on first use; `None` without one, or while
    /// it cannot be opened (assigned partitions then rebuild by re-reading, and commits are
    /// not held for it: a restore finds its marks behind and rebuilds too).
    fn changelog(&self) -> Option<&Changelog> {
        if !self.cfg.changelog() {
            return None;
        }
        if let Some(c) = self.changelog.get() {
            return Some(c);
        }
        match Changelog::open(&self.cfg, &self.output, &self.cfg.topics) {
            Ok(c) => Some(self.changelog.get_or_init(|| c)),
            Err(error) => {
                tracing::error!(%error, "the state changelog is unavailable; rebuilding state by re-reading");
                None
            }
        }
    }

    /// Restores the state of the newly assigned partitions that hold state from the
    /// changelog; which were restored, with how far each source's events are in the state
    /// of an events partition (the rest rebuild by re-reading).
    fn restore(&self, committed: &TopicPartitionList) -> HashMap<(String, i32), Vec<SourceDone>> {
        let Some(changelog) = self.changelog() else { return HashMap::new() };
        let assigned: Vec<Assigned> = committed
            .elements()
            .into_iter()
            .filter(|e| self.input_of(e.topic()).holds_state())
            .filter_map(|e| match e.offset() {
                Offset::Offset(committed) => Some(Assigned {
                    topic: e.topic().to_string(),
                    partition: e.partition(),
                    home: Origin { source: e.topic(), partition: e.partition(), offset: 0 }.home(),
                    committed,
                }),
                _ => None,
            })
            .collect();
        if assigned.is_empty() {
            return HashMap::new();
        }
        self.health.restoring.store(true, Ordering::Relaxed);
        let mut outcomes = changelog.restore(&self.cfg, &self.engine, &self.metrics, &assigned);
        self.health.restoring.store(false, Ordering::Relaxed);
        assigned
            .into_iter()
            .filter_map(|a| match outcomes.remove(&a.home) {
                Some(Outcome::Restored(sources)) => Some(((a.topic, a.partition), sources)),
                _ => None,
            })
            .collect()
    }

    /// Where rebuilding starts: the first offset at or after `since` by timestamp, for the
    /// partitions with a committed offset and not `restored`. Brokers that cannot answer
    /// (librdkafka's mock cluster says `End`) start at the beginning, and the workers skip
    /// messages older than `since` unread.
    fn rebuild_starts(
        &self,
        consumer: &GroupConsumer,
        committed: &TopicPartitionList,
        now: i64,
        restored: &HashSet<(String, i32)>,
    ) -> HashMap<(String, i32), Offset> {
        let mut starts = HashMap::new();
        let mut query = TopicPartitionList::new();
        for e in committed.elements() {
            if restored.contains(&(e.topic().to_string(), e.partition())) {
                continue;
            }
            if let (Offset::Offset(_), Some(since)) = (e.offset(), self.rebuild_since(e.topic(), now)) {
                let _ = query.add_partition_offset(e.topic(), e.partition(), Offset::Offset(since));
            }
        }
        if query.count() == 0 {
            return starts;
        }
        match consumer.offsets_for_times(query, LOOKUP_TIMEOUT) {
            Ok(found) => {
                for e in found.elements() {
                    starts.insert((e.topic().to_string(), e.partition()), e.offset());
                }
            }
            Err(error) => {
                let fallback = "looking up rebuild offsets failed; rebuilding from the start";
                CallFailed { kind: KafkaErrorKind::OffsetLookup, error: &error, then: fallback }.emit(&self.metrics);
            }
        }
        starts
    }

    /// From what message timestamp a partition of `topic` is re-read up to its committed
    /// offset on assignment; `None` for none. Audit topics: `rebuild_secs` (when not restored
    /// from the changelog). Control topics: never; their facts are read by every instance
    /// ([`Facts`]), and what else they give is sent once, from the committed offset on.
    fn rebuild_since(&self, topic: &str, now: i64) -> Option<i64> {
        match self.input_of(topic) {
            Input::Control(_) => None,
            _ if self.rebuild.is_zero() => None,
            _ => Some(now - self.rebuild.as_millis() as i64),
        }
    }

    fn count_assigned(&self) {
        let n = self.partitions.lock().unwrap_or_else(PoisonError::into_inner).len();
        self.health.assigned_partitions.store(n, Ordering::Relaxed);
    }

    /// What a topic's messages are.
    fn input_of(&self, topic: &str) -> Input {
        match self.inputs.iter().find(|(t, _)| *t == topic).and_then(|(_, c)| *c) {
            Some(kind) => Input::Control(kind),
            None if topic == self.events_topic => Input::Events,
            None if self.paced => Input::Rekeyed,
            None => Input::Keyed,
        }
    }

    /// Registers an assigned partition and hands it to its worker; `resumed`: how far each
    /// source's events are in the restored state of an events partition.
    fn insert_partition(
        &self,
        topic: &str,
        partition: i32,
        rebuild_until: i64,
        rebuild_since: i64,
        resumed: Vec<SourceDone>,
    ) -> Arc<Partition> {
        let input = self.input_of(topic);
        let topic: Arc<str> = topic.into();
        let p = Partition::new(topic.clone(), partition, rebuild_until, rebuild_since, input, &self.metrics);
        *p.resumed.lock().unwrap_or_else(PoisonError::into_inner) = resumed;
        let p = Arc::new(p);
        self.partitions.lock().unwrap_or_else(PoisonError::into_inner).insert((topic, partition), p.clone());
        self.workers.dispatch(Item::Assigned(p.clone()), &[]);
        p
    }

    /// The partition a fetched message belongs to (registered at assignment).
    fn partition(&self, topic: &str, partition: i32) -> Arc<Partition> {
        let found =
            self.partitions.lock().unwrap_or_else(PoisonError::into_inner).get(&(topic.into(), partition)).cloned();
        found.unwrap_or_else(|| self.insert_partition(topic, partition, 0, 0, Vec::new()))
    }

    /// Drains the given partitions (all when `None`): processes what was fetched, waits for
    /// the broker to acknowledge the outputs until `deadline`, commits synchronously, and,
    /// for a revocation, forgets the partitions and their identities.
    pub(crate) fn drain(&self, consumer: &GroupConsumer, only: Option<&Revoked>, deadline: Instant) {
        self.output.give_up_at(Some(deadline));
        self.workers.flush_batches();
        self.workers.barrier(only);
        let mut flushed = self.output.flush(deadline);
        if flushed.is_ok() && self.changelog.get().is_some() {
            // After the outputs: an events partition's snapshot waits for those of the
            // events it applied (`Reorder::point`).
            self.workers.snapshot(only);
            flushed = self.output.flush(deadline);
        }
        if let Err(error) = flushed {
            FlushTimedOut { error: &error, unacknowledged: self.output.in_flight() }.emit(&self.metrics);
        }
        self.output.give_up_at(None);
        self.commit(consumer, CommitMode::Sync, only);
        if let Some(revoked) = only {
            self.release(revoked);
        }
    }

    /// Forgets revoked partitions and the state of their identities.
    fn release(&self, revoked: &Revoked) {
        let homes: HashSet<u32> = {
            let mut map = self.partitions.lock().unwrap_or_else(PoisonError::into_inner);
            let gone: Vec<_> = map.keys().filter(|(t, p)| revoked.contains(&(t.to_string(), *p))).cloned().collect();
            gone.iter()
                .filter_map(|k| map.remove(k))
                .inspect(|p| p.revoked.store(true, Ordering::Relaxed))
                .map(|p| p.home)
                .collect()
        };
        self.count_assigned();
        let released = self.engine.release(&homes);
        tracing::info!(identities = released, "released the state of revoked partitions");
    }

    /// Commits every partition whose committable offset moved (restricted to `only`): never
    /// past what the changelog holds.
    fn commit(&self, consumer: &GroupConsumer, mode: CommitMode, only: Option<&Revoked>) {
        let mut tpl = TopicPartitionList::new();
        let mut moved = Vec::new();
        for p in self.partitions.lock().unwrap_or_else(PoisonError::into_inner).values() {
            if only.is_some_and(|o| !o.contains(&(p.topic.to_string(), p.partition))) {
                continue;
            }
            let Some(mut offset) = p.progress().committable() else { continue };
            if self.changelog.get().is_some() && p.holds_state {
                match p.snapshot_through.load(Ordering::Relaxed) {
                    // Nothing in the changelog yet: its first write comes with its first messages.
                    i64::MIN => continue,
                    through => offset = offset.min(through),
                }
            }
            let mut committed = p.committed();
            // A drain's commit goes whatever was sent before: an asynchronous commit may have
            // failed without its callback having been served yet.
            if *committed != Some(offset) || matches!(mode, CommitMode::Sync) {
                let _ = tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(offset));
                moved.push(p.clone());
                *committed = Some(offset);
            }
        }
        if tpl.count() == 0 {
            return;
        }
        if let Err(error) = consumer.commit(&tpl, mode) {
            CallFailed {
                kind: KafkaErrorKind::Commit,
                error: &error,
                then: "offset commit failed; retrying at the next interval",
            }
            .emit(&self.metrics);
            // Forgetting what was sent makes the next interval send it again.
            for p in moved {
                *p.committed() = None;
            }
        }
    }

    /// Identities restored from the changelog in this run.
    pub(crate) fn restored(&self) -> u64 {
        self.changelog.get().map_or(0, |c| c.restored.load(Ordering::Relaxed))
    }

    /// The offsets committed last, per topic and partition.
    pub(crate) fn committed(&self) -> BTreeMap<(String, i32), i64> {
        self.partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter_map(|p| p.committed().map(|c| ((p.topic.to_string(), p.partition), c)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::furthest_behind_first;

    /// Times that change while they are sorted (as the workers move them) neither panic the
    /// sort nor lose a queue: each is read once.
    #[test]
    fn queues_are_ordered_by_one_reading_of_each_time() {
        let queues: Vec<i64> = (0..40).map(|i| (i * 7919) % 101).collect();
        let reads = Cell::new(0);
        // Every reading later than the one before, as a busy partition's would be.
        let ordered = furthest_behind_first(&queues, |&t| {
            reads.set(reads.get() + 1);
            t * 1_000 + reads.get()
        });
        assert_eq!(reads.get(), queues.len() as i64);
        let times: Vec<i64> = ordered.iter().map(|&&t| t).collect();
        let mut sorted = queues.clone();
        sorted.sort();
        assert_eq!(times, sorted);
    }
}
