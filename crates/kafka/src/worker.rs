//! The workers: each runs [`Engine::process`] over its partitions' messages, in offset
//! order, and hands what it produced to the producer. A partition always goes to the same
//! worker, so its messages (and its identities' state) are never processed concurrently.

use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use nhid_engine::metrics::Metrics;
use nhid_engine::{Engine, Origin, Outputs, Stats};

use crate::error::Error;
use crate::output::Sender;
use crate::partition::Partition;

/// Messages handed to a worker at once: fewer channel operations without delaying a quiet
/// stream (a batch also goes as soon as the consumer has nothing more to give).
const BATCH: usize = 256;
/// Batches queued per worker before the consumer thread waits.
const QUEUE: usize = 16;

/// A message on its way to a worker.
pub(crate) struct Message {
    pub(crate) partition: Arc<Partition>,
    pub(crate) offset: i64,
    pub(crate) timestamp: Option<i64>,
    pub(crate) payload: Vec<u8>,
}

enum Job {
    Messages(Vec<Message>),
    /// Answered once every message queued before it is processed.
    Barrier(SyncSender<()>),
}

/// What a worker did: its counts, and how many messages only rebuilt state.
pub(crate) type Tally = (Stats, u64);

/// The consumer thread's side of the workers: their queues, and the batches being filled.
/// Dropping it closes the queues, and the workers end.
pub(crate) struct Workers {
    queues: Vec<SyncSender<Job>>,
    batches: Mutex<Vec<Vec<Message>>>,
}

/// Starts `n` workers.
pub(crate) fn spawn(
    n: usize,
    engine: &Arc<Engine>,
    output: &Arc<Sender>,
    metrics: &Arc<Metrics>,
) -> Result<(Workers, Vec<JoinHandle<Tally>>), Error> {
    let mut queues = Vec::with_capacity(n);
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        queues.push(tx);
        let (engine, output, metrics) = (engine.clone(), output.clone(), metrics.clone());
        let handle = thread::Builder::new()
            .name(format!("nhid-worker-{i}"))
            .spawn(move || work(&engine, &output, &metrics, rx))
            .map_err(Error::SpawnWorker)?;
        handles.push(handle);
    }
    Ok((Workers { queues, batches: Mutex::new((0..n).map(|_| Vec::new()).collect()) }, handles))
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

    /// Adds a message to its worker's batch, and sends the batch when it is full.
    pub(crate) fn dispatch(&self, m: Message) {
        let w = self.worker_of(&m.partition);
        let full = {
            let mut batches = self.batches.lock().unwrap_or_else(PoisonError::into_inner);
            batches[w].push(m);
            (batches[w].len() >= BATCH).then(|| std::mem::take(&mut batches[w]))
        };
        if let Some(batch) = full {
            let _ = self.queues[w].send(Job::Messages(batch));
        }
    }

    /// Hands every waiting message to its worker.
    pub(crate) fn flush_batches(&self) {
        let batches: Vec<_> = {
            let mut batches = self.batches.lock().unwrap_or_else(PoisonError::into_inner);
            batches.iter_mut().map(std::mem::take).collect()
        };
        for (w, batch) in batches.into_iter().enumerate() {
            if !batch.is_empty() {
                let _ = self.queues[w].send(Job::Messages(batch));
            }
        }
    }

    /// Waits until every worker has processed what was handed to it.
    pub(crate) fn barrier(&self) {
        let acks: Vec<Receiver<()>> = self
            .queues
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
}

/// A worker: processes its partitions' messages in order and sends the outputs.
fn work(engine: &Engine, output: &Sender, metrics: &Metrics, jobs: Receiver<Job>) -> Tally {
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
            match process(engine, output, &m, &mut out) {
                // Outside the rebuild window: not processed, so not timed either.
                Processed::Skipped => continue,
                Processed::Rebuilt => rebuilt += 1,
                Processed::Live => {}
            }
            metrics.processing.observe(started.elapsed().as_secs_f64());
        }
        // Counters move once per batch, not per message.
        metrics.absorb(&out.stats);
        total.merge(&out.stats);
        out.stats = Stats::default();
    }
    (total, rebuilt)
}

/// What became of a message.
enum Processed {
    /// Before the rebuild window: marked done unread.
    Skipped,
    /// Re-read to rebuild state; its outputs, acknowledged before, were not sent again.
    Rebuilt,
    Live,
}

/// One message through the engine, its outputs sent.
fn process(engine: &Engine, output: &Sender, m: &Message, out: &mut Outputs) -> Processed {
    let p = &m.partition;
    p.received.inc();
    let rebuilding = m.offset < p.rebuild_until;
    if rebuilding && m.timestamp.is_some_and(|t| t < p.rebuild_since) {
        p.progress().processed(m.offset, 0);
        return Processed::Skipped;
    }
    let origin = Origin { source: &p.topic, partition: p.partition, offset: m.offset };
    match p.control {
        None => {
            let decoded = engine.process(&m.payload, origin, m.timestamp, out);
            if let Some(f) = decoded.format {
                p.events_received[f.index()].inc_by(decoded.events);
            }
        }
        Some(kind) => engine.control(kind, &m.payload, origin, out),
    }
    if rebuilding {
        out.clear();
    }
    // Registered before sending: a delivery report may arrive before `send` returns.
    p.progress().processed(m.offset, output.count(out));
    output.send_all(out, p, m.offset, m.timestamp);
    if rebuilding { Processed::Rebuilt } else { Processed::Live }
}
