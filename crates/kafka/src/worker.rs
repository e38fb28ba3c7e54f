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

use nhid_engine::metrics::Metrics;
use nhid_engine::{Engine, Origin, Outputs, Stats};
use nhid_model::time::Millis;

use crate::changelog::Changelog;
use crate::error::Error;
use crate::output::{Sender, now_ms};
use crate::partition::Partition;
use crate::rekeyed::{self, Marks, Rekeyed};
use crate::reorder::Reorder;

/// Messages handed to a worker at once: fewer channel operations without delaying a quiet
/// stream (a batch also goes as soon as the consumer has nothing more to give).
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
    /// Its own: held by the reorder past its batch.
    Owned(Vec<u8>),
}

impl Message {
    fn bytes<'a>(&'a self, batch: &'a [u8]) -> &'a [u8] {
        match &self.payload {
            Payload::Batched(range) => &batch[range.clone()],
            Payload::Owned(bytes) => bytes,
        }
    }

    /// This message with bytes of its own, to outlive `batch`.
    fn owned(mut self, batch: &[u8]) -> Message {
        if let Payload::Batched(range) = &self.payload {
            self.payload = Payload::Owned(batch[range.clone()].to_vec());
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
    /// Answered once every message queued before it is processed.
    Barrier(SyncSender<()>),
    /// Snapshot the partitions named (all when `None`) now, then answer.
    Snapshot(SyncSender<()>, Option<Arc<Named>>),
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

/// The consumer thread's side of the workers: their queues, and the batches being filled.
/// Dropping it closes the queues, and the workers end.
pub(crate) struct Workers {
    queues: Vec<SyncSender<Job>>,
    filling: Mutex<Filling>,
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
    let mut queues = Vec::with_capacity(n);
    let mut handles = Vec::with_capacity(n);
    let (done, spare) = mpsc::channel();
    for i in 0..n {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        queues.push(tx);
        let (engine, output, metrics) = (engine.clone(), output.clone(), metrics.clone());
        let (changelog, done) = (changelog.clone(), done.clone());
        let handle = thread::Builder::new()
            .name(format!("nhid-worker-{i}"))
            .spawn({
                let role = role();
                move || work(&engine, &output, &metrics, &changelog, role, rx, &done)
            })
            .map_err(Error::SpawnWorker)?;
        handles.push(handle);
    }
    let filling = Mutex::new(Filling { batches: (0..n).map(|_| Batch::default()).collect(), spare });
    Ok((Workers { queues, filling, changelog }, handles))
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
    fn worker_of(&self, p: &Partition) -> usize {
        // Partitions of one topic spread round-robin; topics are offset by their hash.
        let h = xxhash_rust::xxh3::xxh3_64(p.topic.as_bytes()) as usize;
        (h.wrapping_add(p.partition as usize)) % self.queues.len()
    }

    /// Adds an item to its partition's worker's batch (a message's `payload` copied into the
    /// batch's buffer), and sends the batch when it is full.
    pub(crate) fn dispatch(&self, mut item: Item, payload: &[u8]) {
        let w = self.worker_of(match &item {
            Item::Message(m) => &m.partition,
            Item::Assigned(p) => p,
        });
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
            let _ = self.queues[w].send(Job::Items(batch));
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
                let _ = self.queues[w].send(Job::Items(batch));
            }
        }
    }

    /// Waits until every worker has processed what was handed to it.
    pub(crate) fn barrier(&self) {
        self.each(Job::Barrier);
    }

    /// Has every worker snapshot the partitions named (all when `None`) to the changelog now,
    /// and waits until they have.
    pub(crate) fn snapshot(&self, only: Option<&Named>) {
        let only = only.map(|o| Arc::new(o.clone()));
        self.each(|done| Job::Snapshot(done, only.clone()));
    }

    /// Sends every worker the job `job` makes, and waits for their answers.
    fn each(&self, job: impl Fn(SyncSender<()>) -> Job) {
        let acks: Vec<Receiver<()>> = self
            .queues
            .iter()
            .filter_map(|w| {
                let (tx, rx) = mpsc::sync_channel(1);
                w.send(job(tx)).ok().map(|_| rx)
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

/// A worker: processes its partitions' messages in order, sends the outputs, and writes
/// their state to the changelog.
fn work(
    engine: &Engine,
    output: &Sender,
    metrics: &Metrics,
    changelog: &OnceLock<Changelog>,
    mut role: Role,
    jobs: Receiver<Job>,
    done: &mpsc::Sender<Batch>,
) -> Tally {
    let mut owned: Vec<Arc<Partition>> = Vec::new();
    let snapshots = |owned: &[Arc<Partition>], role: &Role, when: When<'_>| {
        changelog.get().and_then(|c| snapshot(engine, output, metrics, c, owned, role, when))
    };
    let mut out = Outputs::default();
    let mut total = Stats::default();
    let mut rebuilt = 0;
    // Observed here and added to the shared histogram once a batch: the workers updating
    // its counters for every message would pass their cache line back and forth.
    let processing = metrics.processing.local();
    let run = |m: Message, payloads: &[u8], held: bool, role: &mut Role, out: &mut Outputs| {
        let started = Instant::now();
        let (processed, latest) = process(engine, output, metrics, &m, m.bytes(payloads), out, held);
        if let (Role::Rekey(marks), Some(time)) = (role, latest) {
            marks.advanced(&m.partition, time);
        }
        processing.observe(started.elapsed().as_secs_f64());
        processed == Processed::Rebuilt
    };
    // Set while something is to be done later (a watermark to send, a source waited for).
    let mut retry: Option<Duration> = None;
    loop {
        let job = match retry {
            None => jobs.recv().ok(),
            Some(after) => match jobs.recv_timeout(after) {
                Ok(job) => Some(job),
                Err(mpsc::RecvTimeoutError::Timeout) => Some(Job::Items(Batch::default())),
                Err(mpsc::RecvTimeoutError::Disconnected) => None,
            },
        };
        let mut batch = match job {
            None => break,
            Some(Job::Items(batch)) => batch,
            Some(Job::Barrier(done)) => {
                // A commit follows: the detection stage should not wait for what was sent.
                if let Role::Rekey(marks) = &mut role {
                    marks.flush(output);
                }
                let _ = done.send(());
                continue;
            }
            Some(Job::Snapshot(done, only)) => {
                snapshots(&owned, &role, When::Now(only.as_deref()));
                let _ = done.send(());
                continue;
            }
        };
        let Batch { items, payloads } = &mut batch;
        for item in items.drain(..) {
            let m = match item {
                Item::Message(m) => m,
                Item::Assigned(p) => {
                    match &mut role {
                        Role::Rekey(marks) => marks.assigned(&p),
                        Role::Detect(reorder) if p.reordered => reorder.assigned(&p),
                        Role::Detect(_) => {}
                    }
                    owned.retain(|p| !p.revoked.load(Ordering::Relaxed));
                    owned.push(p);
                    continue;
                }
            };
            let p = &m.partition;
            p.received.inc();
            // Tansu 0.6, fetched from the middle of a batch (a committed offset, where a
            // restore starts), can answer with messages before one already processed.
            if p.progress().processed_next().is_some_and(|next| m.offset < next) {
                tracing::debug!(topic = %p.topic, partition = p.partition, offset = m.offset, "skipped a message received again");
                continue;
            }
            // Outside the rebuild window: marked done unread, and not timed either.
            if m.offset < p.rebuild_until && m.timestamp.is_some_and(|t| t < p.rebuild_since) {
                p.progress().processed(m.offset, 0);
                continue;
            }
            let m = match &mut role {
                // It may be held past its batch.
                Role::Detect(reorder) if p.reordered => match reorder.push(m.owned(payloads)) {
                    Some(m) => m,
                    None => continue,
                },
                Role::Rekey(marks) => {
                    marks.announce(output);
                    m
                }
                Role::Detect(_) => m,
            };
            rebuilt += u64::from(run(m, payloads, false, &mut role, &mut out));
        }
        if payloads.capacity() <= KEPT_BYTES {
            payloads.clear();
            let _ = done.send(batch);
        }
        let mut ready = Vec::new();
        retry = match &mut role {
            Role::Rekey(marks) => marks.due(output),
            Role::Detect(reorder) => reorder.release(metrics, |m| ready.push(m)),
        };
        for m in ready {
            rebuilt += u64::from(run(m, &[], true, &mut role, &mut out));
        }
        if let Some(due) = snapshots(&owned, &role, When::Due) {
            retry = Some(retry.map_or(due, |r| r.min(due)));
        }
        processing.flush();
        metrics.absorb(&out.stats);
        total.merge(&out.stats);
        out.stats = Stats::default();
    }
    (total, rebuilt)
}

/// What became of a message.
#[derive(PartialEq)]
enum Processed {
    /// Re-read to rebuild state; its outputs, acknowledged before, were not sent again.
    Rebuilt,
    Live,
}

/// One message through the engine, its outputs sent; `held` when the reorder held it (it
/// is registered in its partition's progress already). Also returns the latest time of the
/// events it normalized (the re-keying stage's).
fn process(
    engine: &Engine,
    output: &Sender,
    metrics: &Metrics,
    m: &Message,
    payload: &[u8],
    out: &mut Outputs,
    held: bool,
) -> (Processed, Option<Millis>) {
    let p = &m.partition;
    let rebuilding = m.offset < p.rebuild_until;
    let origin = Origin { source: &p.topic, partition: p.partition, offset: m.offset };
    match p.control {
        None => {
            let decoded = engine.process(payload, origin, m.timestamp, out);
            if let Some(f) = decoded.format {
                p.events_received[f.index()].inc_by(decoded.events);
            }
            p.check_key(m.key, &decoded);
        }
        Some(kind) => engine.control(kind, payload, origin, out),
    }
    if rebuilding {
        out.clear();
    }
    let latest = output.rekeys().then(|| rekeyed::order_times(&mut out.normalized, m.timestamp, metrics)).flatten();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::Input;

    /// Workers whose one queue the test reads instead of a worker thread.
    fn workers() -> (Workers, Receiver<Job>) {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let (_, spare) = mpsc::channel();
        let filling = Mutex::new(Filling { batches: vec![Batch::default()], spare });
        (Workers { queues: vec![tx], filling, changelog: Arc::default() }, rx)
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
