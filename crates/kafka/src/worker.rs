//! The workers: each runs [`Engine::process`] over its partitions' messages, in offset
//! order, and hands what it produced to the producer. A partition always goes to the same
//! worker, so its messages (and its identities' state) are never processed concurrently.
//! Re-keying adds a [`Role`] to each: see [`Marks`] and [`Reorder`].

use std::collections::HashSet;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nhid_engine::metrics::{KafkaErrorKind, Metrics};
use nhid_engine::{Engine, Origin, Outputs, Stats};
use nhid_model::event::SourceFormat;
use nhid_model::time::Millis;

use crate::changelog::Changelog;
use crate::consumer::GroupConsumer;
use crate::error::Error;
use crate::internal_events::{CallFailed, KafkaErrorEvent as _};
use crate::output::{Sender, now_ms};
use crate::partition::Partition;
use crate::queue::{Fetched, WorkerQueue};
use crate::rekeyed::{self, Marks, Rekeyed};
use crate::reorder::Reorder;

/// Messages handed to a worker at once: fewer channel operations without delaying a quiet
/// stream (a batch also goes as soon as the consumer has nothing more to give).
/// Also what a worker reads from its own queue at once.
const BATCH: usize = 256;
/// Payload bytes past which a batch goes before it has [`BATCH`] messages: a queue of large
/// messages (up to `max_event_bytes`, 1 MiB by default) holds [`QUEUE`] batches of about this,
/// not of 256 such messages each.
const BATCH_BYTES: usize = 256 << 10;
/// Batches queued per worker before the consumer thread waits. While it waits for one
/// worker, the others get nothing: a broker answers a fetch with a run of each partition's
/// messages (a megabyte each), so a queue shorter than a run or two starves the other
/// workers. 16 left Tansu's runs waiting on one worker at a time (1.4 cores busy, 37 % of a
/// bare consumer); 64 keeps both busy (1.7, 42 %): 16,384 messages a worker at most, and
/// with [`BATCH_BYTES`] about 16 MiB of payloads (80 MiB of messages at the 1 MiB ceiling).
const QUEUE: usize = 64;
/// A batch whose payloads' buffer grew past this (a message near the ceiling) is not kept
/// for reuse: its memory goes back.
const KEPT_BYTES: usize = 4 << 20;
/// How long a snapshot of an events partition waits for its applied events' outputs to be
/// acknowledged (`Reorder::point`) before it is left to the next interval.
const QUIET_WAIT: Duration = Duration::from_secs(1);

/// Topics and partitions, as a revocation names them.
pub(crate) type Named = HashSet<(String, i32)>;

/// A message on its way to a worker.
pub(crate) struct Message {
    pub(crate) partition: Arc<Partition>,
    pub(crate) offset: i64,
    pub(crate) timestamp: Option<i64>,
    pub(crate) payload: Payload,
    /// What its headers say, for a partition of the events topic read by detection.
    pub(crate) rekeyed: Option<Rekeyed>,
    /// Its key, hashed, for a topic read as keyed by principal (see `Partition::check_key`).
    pub(crate) key: Option<u64>,
}

/// Where a message's bytes are.
pub(crate) enum Payload {
    /// In its batch's buffer, while the batch is processed.
    Batched(Range<usize>),
    /// Where librdkafka fetched it: read by its worker from its own queue.
    Fetched(Fetched),
    /// Its own: held by the reorder past its batch.
    Owned(Vec<u8>),
}

impl Message {
    /// A message as fetched, its bytes still to be placed (`payload`): its headers are read
    /// (`rekeyed`) for a partition of the events topic, its key hashed for a keyed one.
    pub(crate) fn new(
        partition: Arc<Partition>,
        offset: i64,
        timestamp: Option<i64>,
        key: Option<&[u8]>,
        rekeyed: impl FnOnce() -> Option<Rekeyed>,
    ) -> Message {
        Message {
            offset,
            timestamp,
            payload: Payload::Batched(0..0),
            rekeyed: if partition.reordered { rekeyed() } else { None },
            key: partition.keyed.as_ref().and(key).map(nhid_engine::principal_hash),
            partition,
        }
    }

    fn bytes<'a>(&'a self, batch: &'a [u8]) -> &'a [u8] {
        match &self.payload {
            Payload::Batched(range) => &batch[range.clone()],
            Payload::Fetched(fetched) => fetched.payload(),
            Payload::Owned(bytes) => bytes,
        }
    }

    /// This message with bytes of its own, to outlive `batch` (and librdkafka's message).
    fn owned(mut self, batch: &[u8]) -> Message {
        if !matches!(self.payload, Payload::Owned(_)) {
            self.payload = Payload::Owned(self.bytes(batch).to_vec());
        }
        self
    }
}

/// Items on their way to one worker, their messages' payloads one after another in one
/// buffer: an allocation a batch rather than one a message, freed by the thread that made it
/// (a message's own buffer, allocated by the consumer thread and freed by a worker, moved
/// memory between the two cores' allocators and caches). A processed batch goes back to the
/// consumer thread to be filled again.
#[derive(Default)]
pub(crate) struct Batch {
    items: Vec<Item>,
    payloads: Vec<u8>,
}

/// What the consumer thread hands a worker, in partition order.
pub(crate) enum Item {
    Message(Message),
    /// The partition was assigned here.
    Assigned(Arc<Partition>),
}

enum Job {
    Items(Batch),
    /// Answered once every message handed over or read before it is processed. The
    /// partitions named (all when `None`) are a drain's: their messages are not processed
    /// here after it (see `Partition::stopped`).
    Barrier(SyncSender<()>, Option<Arc<Named>>),
    /// Snapshot the partitions named (all when `None`) now, then answer.
    Snapshot(SyncSender<()>, Option<Arc<Named>>),
    /// Read the partitions' messages from this queue, where they are forwarded at assignment.
    Read(Arc<WorkerQueue>),
    /// Let go of the queue and every message read from it, then answer: the consumer goes.
    Detach(SyncSender<()>),
}

/// Which of a worker's partitions are snapshot.
#[derive(Clone, Copy)]
enum When<'a> {
    /// Those due: every `changelog_interval_ms`.
    Due,
    /// Those named (all when `None`), at once: a drain.
    Now(Option<&'a Named>),
}

/// Writes the changelog snapshots of the partitions of `owned` that hold state and
/// processed something since their last, `when` says. Taken here, between two messages, so
/// that the records and the mark agree. Returns how long until the next is due, if one is.
fn snapshot(
    engine: &Engine,
    output: &Sender,
    metrics: &Metrics,
    changelog: &Changelog,
    owned: &[Arc<Partition>],
    role: &Role,
    when: When<'_>,
) -> Option<Duration> {
    let now = now_ms();
    let mut due_in: Option<i64> = None;
    let mut due = |ms: i64| due_in = Some(due_in.map_or(ms, |d| d.min(ms)));
    for p in owned.iter().filter(|p| p.holds_state && !p.revoked.load(Ordering::Relaxed)) {
        let Some(next) = p.progress().processed_next() else { continue };
        if next == p.snapshot_through.load(Ordering::Relaxed) {
            continue;
        }
        match when {
            When::Now(Some(named)) if !named.contains(&(p.topic.to_string(), p.partition)) => continue,
            When::Now(_) => {}
            When::Due => {
                let at = p.snapshot_at.load(Ordering::Relaxed) + changelog.interval();
                if now < at {
                    due(at - now);
                    continue;
                }
            }
        }
        p.snapshot_at.store(now, Ordering::Relaxed);
        let point = match role {
            Role::Detect(reorder) if p.reordered => {
                let give_up = Instant::now() + QUIET_WAIT;
                loop {
                    match reorder.point(p) {
                        Some(point) => break Some(point),
                        None if Instant::now() >= give_up => break None,
                        None => thread::sleep(Duration::from_millis(1)),
                    }
                }
            }
            _ => Some((next, Vec::new())),
        };
        // Written unless an applied event's outputs stay unacknowledged or nothing was
        // applied since the last. A mark where this assignment started (an events partition
        // whose first message is held) is one too: with the offset committed, a successor
        // restores what was applied after it instead of sending its outputs again.
        if let Some((through, sources)) = point
            && through != p.snapshot_through.load(Ordering::Relaxed)
            && p.progress().first().is_some_and(|first| through >= first)
        {
            changelog.snapshot(engine, output, metrics, p, through, &sources);
        }
        // Held messages of an events partition: tried again at the next interval.
        if p.progress().processed_next() != Some(p.snapshot_through.load(Ordering::Relaxed)) {
            due(changelog.interval());
        }
    }
    due_in.map(|ms| Duration::from_millis(ms.max(1) as u64))
}

/// What a worker did: its counts, and how many messages only rebuilt state.
pub(crate) type Tally = (Stats, u64);

/// The consumer thread's side of the workers: their job queues, the batches being filled,
/// and each one's queue of fetched messages once they read their partitions themselves.
/// Dropping it closes the job queues, and the workers end.
pub(crate) struct Workers {
    jobs: Vec<SyncSender<Job>>,
    filling: Mutex<Filling>,
    /// One a worker, by index; empty while the consumer thread hands the messages over.
    readers: Mutex<Vec<Arc<WorkerQueue>>>,
    /// The state changelog the workers write their partitions' state to, once it is open.
    pub(crate) changelog: Arc<OnceLock<Changelog>>,
}

/// Each worker's batch being filled, and the processed batches the workers gave back.
struct Filling {
    batches: Vec<Batch>,
    spare: Receiver<Batch>,
}

/// Starts `n` workers, each in the role `role` makes.
pub(crate) fn spawn(
    n: usize,
    role: impl Fn() -> Role,
    engine: &Arc<Engine>,
    output: &Arc<Sender>,
    metrics: &Arc<Metrics>,
) -> Result<(Workers, Vec<JoinHandle<Tally>>), Error> {
    let changelog: Arc<OnceLock<Changelog>> = Arc::default();
    let mut jobs = Vec::with_capacity(n);
    let mut handles = Vec::with_capacity(n);
    let (done, spare) = mpsc::channel();
    for i in 0..n {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        jobs.push(tx);
        let (engine, output, metrics) = (engine.clone(), output.clone(), metrics.clone());
        let (changelog, done) = (changelog.clone(), done.clone());
        let handle = thread::Builder::new()
            .name(format!("nhid-worker-{i}"))
            .spawn({
                let role = role();
                move || work(Worker::new(&engine, &output, &metrics, &changelog, role, &done), &rx)
            })
            .map_err(Error::SpawnWorker)?;
        handles.push(handle);
    }
    let filling = Mutex::new(Filling { batches: (0..n).map(|_| Batch::default()).collect(), spare });
    Ok((Workers { jobs, filling, readers: Mutex::default(), changelog }, handles))
}

/// Waits for the workers to end (their queues closed) and adds up what they did.
pub(crate) fn join(handles: Vec<JoinHandle<Tally>>) -> Result<Tally, Error> {
    let mut stats = Stats::default();
    let mut rebuilt = 0;
    for h in handles {
        let (s, r) = h.join().map_err(|_| Error::WorkerPanicked)?;
        stats.merge(&s);
        rebuilt += r;
    }
    Ok((stats, rebuilt))
}

impl Workers {
    fn worker_of(&self, topic: &str, partition: i32) -> usize {
        // Partitions of one topic spread round-robin; topics are offset by their hash.
        let h = xxhash_rust::xxh3::xxh3_64(topic.as_bytes()) as usize;
        (h.wrapping_add(partition as usize)) % self.jobs.len()
    }

    fn reader(&self, w: usize) -> Option<Arc<WorkerQueue>> {
        self.readers.lock().unwrap_or_else(PoisonError::into_inner).get(w).cloned()
    }

    /// Queues a job for worker `w`, and wakes it if it waits on its fetched messages.
    fn send(&self, w: usize, job: Job) -> bool {
        let sent = self.jobs[w].send(job).is_ok();
        if let Some(reader) = self.reader(w) {
            reader.wake();
        }
        sent
    }

    /// From now on, each worker reads its partitions' messages itself, from a queue of its
    /// own on `consumer` (see [`Workers::forward`]). Without one (librdkafka refused), the
    /// consumer thread goes on handing them over.
    pub(crate) fn read_from(&self, consumer: &GroupConsumer) {
        let readers: Option<Vec<_>> = self.jobs.iter().map(|_| WorkerQueue::new(consumer).map(Arc::new)).collect();
        let Some(readers) = readers else {
            tracing::warn!("librdkafka gave no queue for the workers; the consumer thread hands messages over");
            return;
        };
        for (jobs, reader) in self.jobs.iter().zip(&readers) {
            let _ = jobs.send(Job::Read(reader.clone()));
        }
        *self.readers.lock().unwrap_or_else(PoisonError::into_inner) = readers;
    }

    /// Forwards a partition's fetched messages to its worker's queue, when workers read
    /// their own: called at assignment, after [`Workers::flush_batches`] has sent the worker
    /// the partition (`Item::Assigned`), before fetching starts. A worker reads its jobs
    /// before the messages it read with them, so it knows the partition before its first
    /// message.
    pub(crate) fn forward(&self, consumer: &GroupConsumer, topic: &str, partition: i32) {
        if let Some(reader) = self.reader(self.worker_of(topic, partition))
            && !reader.forward(consumer, topic, partition)
        {
            tracing::warn!(
                topic,
                partition,
                "could not forward a partition to its worker; the consumer thread hands it over"
            );
        }
    }

    /// Has the workers let go of their queues and of every message read from them, and
    /// waits until they have: librdkafka's queues and messages must not outlive its consumer.
    pub(crate) fn detach(&self) {
        self.each(Job::Detach);
        self.readers.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    /// Adds an item to its partition's worker's batch (a message's `payload` copied into the
    /// batch's buffer), and sends the batch when it is full.
    pub(crate) fn dispatch(&self, mut item: Item, payload: &[u8]) {
        let w = match &item {
            Item::Message(m) => self.worker_of(&m.partition.topic, m.partition.partition),
            Item::Assigned(p) => self.worker_of(&p.topic, p.partition),
        };
        let full = {
            let mut filling = self.filling.lock().unwrap_or_else(PoisonError::into_inner);
            let Filling { batches, spare } = &mut *filling;
            let batch = &mut batches[w];
            if batch.items.capacity() == 0
                && let Ok(processed) = spare.try_recv()
            {
                *batch = processed;
            }
            if let Item::Message(m) = &mut item {
                let start = batch.payloads.len();
                batch.payloads.extend_from_slice(payload);
                m.payload = Payload::Batched(start..batch.payloads.len());
            }
            batch.items.push(item);
            (batch.items.len() >= BATCH || batch.payloads.len() >= BATCH_BYTES).then(|| std::mem::take(batch))
        };
        if let Some(batch) = full {
            self.send(w, Job::Items(batch));
        }
    }

    /// Hands every waiting message to its worker.
    pub(crate) fn flush_batches(&self) {
        let batches: Vec<_> = {
            let mut filling = self.filling.lock().unwrap_or_else(PoisonError::into_inner);
            filling.batches.iter_mut().map(std::mem::take).collect()
        };
        for (w, batch) in batches.into_iter().enumerate() {
            if !batch.items.is_empty() {
                self.send(w, Job::Items(batch));
            }
        }
    }

    /// Waits until every worker has processed what was handed to it or what it read; from
    /// then on, none processes a message of the partitions named (all when `None`).
    pub(crate) fn barrier(&self, only: Option<&Named>) {
        let only = only.map(|o| Arc::new(o.clone()));
        self.each(|done| Job::Barrier(done, only.clone()));
    }

    /// Has every worker snapshot the partitions named (all when `None`) to the changelog now,
    /// and waits until they have.
    pub(crate) fn snapshot(&self, only: Option<&Named>) {
        let only = only.map(|o| Arc::new(o.clone()));
        self.each(|done| Job::Snapshot(done, only.clone()));
    }

    /// Sends every worker the job `job` makes, and waits for their answers.
    fn each(&self, job: impl Fn(SyncSender<()>) -> Job) {
        let acks: Vec<Receiver<()>> = (0..self.jobs.len())
            .filter_map(|w| {
                let (tx, rx) = mpsc::sync_channel(1);
                self.send(w, job(tx)).then_some(rx)
            })
            .collect();
        for rx in acks {
            let _ = rx.recv();
        }
    }
}

/// What a worker does besides processing: the re-keying stage's workers tell the detection
/// stage how far each source has got; the detection stage's hold the re-keyed events back
/// until they may go in event-time order.
pub(crate) enum Role {
    Rekey(Marks),
    Detect(Reorder),
}

/// How long a worker reading its own queue waits for messages when nothing else is due.
/// Jobs wake it sooner ([`WorkerQueue::wake`]); this only bounds how late it sees its job
/// queue closed.
const IDLE_READ: Duration = Duration::from_millis(500);

/// A worker: processes its partitions' messages in order, sends the outputs, and writes
/// their state to the changelog. Its messages come handed over in batches (`Job::Items`), or,
/// once it has a queue of its own (`Job::Read`), read from there: then every job waiting
/// goes before the messages read with it (an assignment before its partition's messages, a
/// barrier before messages read after what it waits for).
fn work(mut worker: Worker<'_>, jobs: &Receiver<Job>) -> Tally {
    let mut reader: Option<Arc<WorkerQueue>> = None;
    let mut fetched: Vec<Fetched> = Vec::new();
    // Set while something is to be done later (a watermark to send, a source waited for).
    let mut retry: Option<Duration> = None;
    loop {
        let mut job = match (&reader, retry) {
            (Some(reader), _) => {
                reader.read(retry.unwrap_or(IDLE_READ), BATCH, &mut fetched);
                match jobs.try_recv() {
                    Ok(job) => Some(job),
                    Err(mpsc::TryRecvError::Empty) => None,
                    Err(mpsc::TryRecvError::Disconnected) => break,
                }
            }
            (None, None) => match jobs.recv() {
                Ok(job) => Some(job),
                Err(_) => break,
            },
            (None, Some(after)) => match jobs.recv_timeout(after) {
                Ok(job) => Some(job),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
        };
        while let Some(next) = job.take() {
            match next {
                Job::Items(batch) => worker.items(batch),
                Job::Barrier(done, only) => {
                    worker.stop(only.as_deref());
                    let _ = done.send(());
                }
                Job::Snapshot(done, only) => {
                    worker.snapshots(When::Now(only.as_deref()));
                    let _ = done.send(());
                }
                Job::Read(queue) => reader = Some(queue),
                Job::Detach(done) => {
                    fetched.clear();
                    reader = None;
                    let _ = done.send(());
                }
            }
            if reader.is_some() {
                job = jobs.try_recv().ok();
            }
        }
        for f in fetched.drain(..) {
            worker.fetched(f);
        }
        retry = worker.round();
    }
    (worker.total, worker.rebuilt)
}

/// A worker's own: what it needs to process a message, its partitions, and its counts.
struct Worker<'a> {
    engine: &'a Engine,
    output: &'a Sender,
    metrics: &'a Metrics,
    changelog: &'a OnceLock<Changelog>,
    role: Role,
    /// Processed batches go back to the consumer thread here, to be filled again.
    done: &'a mpsc::Sender<Batch>,
    owned: Vec<Arc<Partition>>,
    /// The partition of the message read before: messages come in runs of one partition (a
    /// fetched batch), so most find theirs here.
    last: Option<Arc<Partition>>,
    out: Outputs,
    received: Received,
    total: Stats,
    rebuilt: u64,
    /// Observed here and added to the shared histogram once a round: the workers updating
    /// its counters for every message would pass their cache line back and forth.
    processing: prometheus::local::LocalHistogram,
    /// When the message processed last this round ended: the next one's time starts there,
    /// so that the clock is read once a message rather than twice (two readings were 2 % of
    /// a worker's time). What comes between is that next message's own reading and lookup.
    ended: Option<Instant>,
}

impl<'a> Worker<'a> {
    fn new(
        engine: &'a Engine,
        output: &'a Sender,
        metrics: &'a Metrics,
        changelog: &'a OnceLock<Changelog>,
        role: Role,
        done: &'a mpsc::Sender<Batch>,
    ) -> Worker<'a> {
        Worker {
            engine,
            output,
            metrics,
            changelog,
            role,
            done,
            owned: Vec::new(),
            last: None,
            out: Outputs::default(),
            received: Received::default(),
            total: Stats::default(),
            rebuilt: 0,
            processing: metrics.processing.local(),
            ended: None,
        }
    }

    /// What the consumer thread handed over; the batch goes back to it to be filled again.
    fn items(&mut self, mut batch: Batch) {
        let Batch { items, payloads } = &mut batch;
        for item in items.drain(..) {
            match item {
                Item::Message(m) => self.message(m, payloads),
                Item::Assigned(p) => self.assigned(p),
            }
        }
        if payloads.capacity() <= KEPT_BYTES {
            payloads.clear();
            let _ = self.done.send(batch);
        }
    }

    fn assigned(&mut self, p: Arc<Partition>) {
        match &mut self.role {
            Role::Rekey(marks) => marks.assigned(&p),
            Role::Detect(reorder) if p.reordered => reorder.assigned(&p),
            Role::Detect(_) => {}
        }
        self.owned.retain(|p| !p.revoked.load(Ordering::Relaxed));
        self.owned.push(p);
    }

    /// A message (or an error) read from its own queue.
    fn fetched(&mut self, f: Fetched) {
        if let Some(error) = f.error() {
            CallFailed { kind: KafkaErrorKind::Consume, error: &error, then: "consumer error" }.emit(self.metrics);
            return;
        }
        let here = |p: &Arc<Partition>| {
            p.partition == f.partition() && p.topic.as_bytes() == f.topic() && !p.stopped.load(Ordering::Relaxed)
        };
        let partition = match &self.last {
            Some(p) if here(p) => p.clone(),
            _ => match self.owned.iter().rev().find(|p| here(p)) {
                Some(p) => self.last.insert(p.clone()).clone(),
                // Left over from a partition drained here: read again by its next owner.
                None => return,
            },
        };
        let mut m = Message::new(partition, f.offset(), f.timestamp(), f.key(), || {
            rekeyed::read(f.headers().as_ref(), f.payload())
        });
        m.payload = Payload::Fetched(f);
        self.message(m, &[]);
    }

    /// A message of one of its partitions, in offset order.
    fn message(&mut self, m: Message, payloads: &[u8]) {
        let p = &m.partition;
        if p.stopped.load(Ordering::Relaxed) {
            return;
        }
        self.received.of(p).messages += 1;
        // Tansu 0.6, fetched from the middle of a batch (a committed offset, where a
        // restore starts), can answer with messages before one already processed.
        if p.progress().processed_next().is_some_and(|next| m.offset < next) {
            tracing::debug!(topic = %p.topic, partition = p.partition, offset = m.offset, "skipped a message received again");
            return;
        }
        // Outside the rebuild window: marked done unread, and not timed either.
        if m.offset < p.rebuild_until && m.timestamp.is_some_and(|t| t < p.rebuild_since) {
            p.progress().processed(m.offset, 0);
            return;
        }
        let m = match &mut self.role {
            // It may be held past its batch.
            Role::Detect(reorder) if p.reordered => match reorder.push(m.owned(payloads)) {
                Some(m) => m,
                None => return,
            },
            Role::Rekey(marks) => {
                marks.announce(self.output);
                m
            }
            Role::Detect(_) => m,
        };
        self.run(m, payloads, false);
    }

    /// Processes a message (`held`: one the reorder held), unless its partition is stopped.
    fn run(&mut self, m: Message, payloads: &[u8], held: bool) {
        if m.partition.stopped.load(Ordering::Relaxed) {
            return;
        }
        let started = self.ended.take().unwrap_or_else(Instant::now);
        let (processed, latest) = self.process(&m, m.bytes(payloads), held);
        if let (Role::Rekey(marks), Some(time)) = (&mut self.role, latest) {
            marks.advanced(&m.partition, time);
        }
        let ended = Instant::now();
        self.processing.observe((ended - started).as_secs_f64());
        self.ended = Some(ended);
        self.rebuilt += u64::from(processed == Processed::Rebuilt);
    }

    /// One message through the engine, its outputs sent; `held` when the reorder held it (it
    /// is registered in its partition's progress already). Also returns the latest time of the
    /// events it normalized (the re-keying stage's).
    fn process(&mut self, m: &Message, payload: &[u8], held: bool) -> (Processed, Option<Millis>) {
        let (engine, output, out) = (self.engine, self.output, &mut self.out);
        let p = &m.partition;
        let rebuilding = m.offset < p.rebuild_until;
        let origin = Origin { source: &p.topic, partition: p.partition, offset: m.offset };
        match p.control {
            None => {
                let decoded = engine.process(payload, origin, m.timestamp, out);
                let received = self.received.of(p);
                if let Some(f) = decoded.format {
                    received.events[f.index()] += decoded.events;
                }
                received.not_keyed += u64::from(p.check_key(m.key, &decoded));
            }
            Some(kind) => engine.control(kind, payload, origin, out),
        }
        if rebuilding {
            out.clear();
        }
        let latest =
            output.rekeys().then(|| rekeyed::order_times(&mut out.normalized, m.timestamp, self.metrics)).flatten();
        // Registered before sending: a delivery report may arrive before `send` returns.
        let count = output.count(out);
        if held {
            p.progress().released(m.offset, count);
        } else {
            p.progress().processed(m.offset, count);
        }
        output.send_all(out, p, m.offset, m.timestamp, engine.detectors());
        (if rebuilding { Processed::Rebuilt } else { Processed::Live }, latest)
    }

    /// A drain's barrier: what it read or was handed before is processed. The partitions
    /// named (all when `None`) process nothing more here.
    fn stop(&mut self, only: Option<&Named>) {
        self.received.flush();
        // A commit follows: the detection stage should not wait for what was sent.
        if let Role::Rekey(marks) = &mut self.role {
            marks.flush(self.output);
        }
        for p in &self.owned {
            if only.is_none_or(|named| named.contains(&(p.topic.to_string(), p.partition))) {
                p.stopped.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Snapshots its partitions `when` says; how long until the next is due, if one is.
    fn snapshots(&self, when: When<'_>) -> Option<Duration> {
        let changelog = self.changelog.get()?;
        snapshot(self.engine, self.output, self.metrics, changelog, &self.owned, &self.role, when)
    }

    /// What follows each round of jobs and messages: held events that may go now, the
    /// re-keying stage's watermarks, snapshots due, counts. How long until more is due.
    fn round(&mut self) -> Option<Duration> {
        let mut ready = Vec::new();
        let mut retry = match &mut self.role {
            Role::Rekey(marks) => marks.due(self.output),
            Role::Detect(reorder) => reorder.release(self.metrics, |m| ready.push(m)),
        };
        for m in ready {
            self.run(m, &[], true);
        }
        if let Some(due) = self.snapshots(When::Due) {
            retry = Some(retry.map_or(due, |r| r.min(due)));
        }
        // What follows (a wait for messages, jobs) is no message's.
        self.ended = None;
        self.processing.flush();
        self.received.flush();
        self.metrics.absorb(&self.out.stats);
        self.total.merge(&self.out.stats);
        self.out.stats = Stats::default();
        retry
    }
}

/// Messages, events and messages not keyed by principal received on one partition (the one
/// a worker's last messages came from), not yet added to its topic's counters
/// ([`Partition::count_received`]).
#[derive(Default)]
struct Received {
    partition: Option<Arc<Partition>>,
    messages: u64,
    events: [u64; SourceFormat::ALL.len()],
    not_keyed: u64,
}

impl Received {
    /// The counts of `p`, those of another partition added to its topic's counters first.
    fn of(&mut self, p: &Arc<Partition>) -> &mut Received {
        if !self.partition.as_ref().is_some_and(|counted| Arc::ptr_eq(counted, p)) {
            self.flush();
            self.partition = Some(p.clone());
        }
        self
    }

    fn flush(&mut self) {
        let Some(p) = &self.partition else { return };
        let events = std::mem::take(&mut self.events);
        p.count_received(std::mem::take(&mut self.messages), &events, std::mem::take(&mut self.not_keyed));
    }
}

/// What became of a message.
#[derive(PartialEq)]
enum Processed {
    /// Re-read to rebuild state; its outputs, acknowledged before, were not sent again.
    Rebuilt,
    Live,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::Input;

    /// Workers whose one queue the test reads instead of a worker thread.
    fn workers() -> (Workers, Receiver<Job>) {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let (_, spare) = mpsc::channel();
        let filling = Mutex::new(Filling { batches: vec![Batch::default()], spare });
        (Workers { jobs: vec![tx], filling, readers: Mutex::default(), changelog: Arc::default() }, rx)
    }

    fn message(p: &Arc<Partition>, offset: i64) -> Item {
        let payload = Payload::Batched(0..0);
        Item::Message(Message { partition: p.clone(), offset, timestamp: None, payload, rekeyed: None, key: None })
    }

    /// What a queue holds is bounded in bytes as well as in messages: large messages go in
    /// batches of a few, each message's bytes where its range says.
    #[test]
    fn a_batch_goes_at_its_message_count_or_its_bytes() {
        let metrics = Metrics::default();
        let p = Arc::new(Partition::new("audit".into(), 0, 0, 0, Input::Keyed, &metrics));
        let (workers, rx) = workers();
        for offset in 0..BATCH as i64 {
            workers.dispatch(message(&p, offset), b"{}");
        }
        let Ok(Job::Items(batch)) = rx.try_recv() else { panic!("a batch of {BATCH} small messages goes") };
        assert_eq!((batch.items.len(), batch.payloads.len()), (BATCH, 2 * BATCH));

        let large = vec![b'x'; 100 << 10];
        for offset in 0..3 {
            assert!(rx.try_recv().is_err(), "sent early, at {offset} large messages");
            let mut bytes = large.clone();
            bytes[0] = b'0' + offset as u8;
            workers.dispatch(message(&p, offset), &bytes);
        }
        let Ok(Job::Items(batch)) = rx.try_recv() else { panic!("three messages of 100 KiB pass BATCH_BYTES") };
        assert_eq!(batch.items.len(), 3);
        for (i, item) in batch.items.iter().enumerate() {
            let Item::Message(m) = item else { panic!("a message") };
            assert_eq!(m.bytes(&batch.payloads)[0], b'0' + i as u8);
            assert_eq!(m.bytes(&batch.payloads).len(), 100 << 10);
        }
    }
}
