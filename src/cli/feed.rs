//! Files through the engine, on every core, with the outputs of one message after another.
//!
//! A reader thread splits the files into messages ([`super::input`]) and hands them out in
//! numbered batches. Each worker prepares a batch ([`Engine::prepare`]: decoding, checks,
//! content rule matching, most of the cost and touching no state), then waits for its turn
//! and commits it ([`Engine::commit`]: state, detectors, policy, outputs) in input order.
//! Since only the commit touches state, and commits run one batch after another in file
//! order, the outputs are those of a single thread, alert for alert, whatever the number of
//! workers: no partitioning by principal is needed to keep each identity's events in order,
//! and what spans identities (a credential presented by two principals, a correlation rule
//! counting across them, the watermark) sees the input's order too.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};

use super::input::{Input, Line};
use nhid_engine::{ControlKind, Engine, Origin, Original, Outputs};

/// Messages per batch, at most: enough that handing a batch over costs nothing per message,
/// few enough that a worker waiting for its turn holds little.
const BATCH_MESSAGES: usize = 1024;
/// Bytes per batch, at most (a batch holds at least one message, whatever its size).
const BATCH_BYTES: usize = 1 << 20;

/// Threads that prepare batches by default: every core the process may use.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Feeds the control files (lifecycle events, verdicts), then the audit files, through the
/// engine in file order, one
/// record one message. For every batch of messages `each` is given the function that commits
/// them into an `Outputs`: the caller chooses which, drains it after, and holds what it must
/// meanwhile (`replay` writes the outputs out under its progress lock, `eval` keeps the
/// alerts and actions it scores). `each` is called one batch at a time, in input order.
/// Streams: at most a few batches in memory, and at most `max_event_bytes` of a message,
/// whatever the file sizes.
pub fn feed(
    engine: &Engine,
    control: &[(ControlKind, PathBuf)],
    files: &[PathBuf],
    threads: usize,
    mut each: impl FnMut(&mut dyn FnMut(&mut Outputs)) -> anyhow::Result<()> + Send,
) -> anyhow::Result<()> {
    let cap = line_cap(engine.max_event_bytes());
    // Control messages are few and cheap: one by one.
    for (kind, path) in control {
        each_line(
            path,
            cap,
            |line, origin| {
                each(&mut |out| match line {
                    Line::Whole(message) => engine.control(*kind, message, origin, out),
                    Line::TooLong(original) => engine.refuse_too_large(original, origin, out),
                })
            },
            |_| Ok(()),
        )?;
    }
    if files.is_empty() {
        return Ok(());
    }
    let threads = threads.max(1);
    let (tx, rx) = sync_channel::<Batch>(2 * threads);
    let rx = Mutex::new(rx);
    // Committed batches go back to the reader, to be filled again: a batch's buffers grown
    // anew each time cost a copy of every message and fresh pages.
    let (spare_tx, spare) = sync_channel::<Batch>(2 * threads);
    let turn = Turn { state: Mutex::new((0, each, None)), next: Condvar::new() };
    let failed = AtomicBool::new(false);
    let read = std::thread::scope(|s| {
        let workers: Vec<_> =
            (0..threads).map(|_| s.spawn(|| work(engine, &rx, &turn, &failed, spare_tx.clone()))).collect();
        // Reading is the lightest stage: the scope's own thread does it.
        let read = read(files, cap, &failed, &spare, |batch| tx.send(batch).is_ok());
        drop(tx);
        for w in workers {
            if let Err(panic) = w.join() {
                std::panic::resume_unwind(panic);
            }
        }
        read
    });
    let (_, _, error) = turn.state.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    // The first failure: a batch's outputs not taken, else the input not read.
    error.map_or(read, Err)
}

/// The batch to commit next, the caller's `each`, and the first error it returned.
struct Turn<F> {
    state: Mutex<(u64, F, Option<anyhow::Error>)>,
    next: Condvar,
}

/// Messages of one file, copied out of the reader's buffer, numbered in input order.
struct Batch {
    number: u64,
    file: Arc<str>,
    bytes: Vec<u8>,
    messages: Vec<Message>,
}

struct Message {
    /// The line (or record) number in its file: the dead letters' offset.
    offset: i64,
    /// Where the message, or the head of one too long to hold, is in the batch's bytes.
    at: std::ops::Range<usize>,
    /// For a message too long to hold: its length and hash.
    too_long: Option<(usize, u128)>,
}

fn work<F>(engine: &Engine, rx: &Mutex<Receiver<Batch>>, turn: &Turn<F>, failed: &AtomicBool, spare: SyncSender<Batch>)
where
    F: FnMut(&mut dyn FnMut(&mut Outputs)) -> anyhow::Result<()>,
{
    loop {
        let Ok(mut batch) = rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner).recv() else { return };
        if failed.load(Ordering::Relaxed) {
            // Drained, so that the reader never waits on a full channel.
            continue;
        }
        let _pass_on = PassOn { turn, failed, number: batch.number };
        let prepared: Vec<_> = batch
            .messages
            .iter()
            .map(|m| m.too_long.is_none().then(|| engine.prepare(&batch.bytes[m.at.clone()], &batch.file, None)))
            .collect();
        let mut state = turn.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while state.0 != batch.number {
            state = turn.next.wait(state).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        let (next, each, error) = &mut *state;
        if error.is_none() {
            let mut prepared = prepared.into_iter();
            let result = each(&mut |out| {
                for (m, p) in batch.messages.iter().zip(prepared.by_ref()) {
                    let origin = Origin { source: &batch.file, partition: 0, offset: m.offset };
                    match (p, m.too_long) {
                        (Some(p), _) => {
                            engine.commit(p, origin, out);
                        }
                        (None, Some((len, xxh3))) => {
                            let original = Original { head: &batch.bytes[m.at.clone()], len, xxh3 };
                            engine.refuse_too_large(original, origin, out)
                        }
                        (None, None) => unreachable!("prepared unless too long"),
                    }
                }
            });
            if let Err(e) = result {
                *error = Some(e);
                failed.store(true, Ordering::Relaxed);
            }
        }
        *next += 1;
        turn.next.notify_all();
        drop(state);
        batch.bytes.clear();
        batch.messages.clear();
        // Dropped when the reader has enough.
        let _ = spare.try_send(batch);
    }
}

/// Passes the turn on when a worker panics with a batch: every later batch would wait for it.
/// Its panic ends the feed when the worker is joined.
struct PassOn<'a, F> {
    turn: &'a Turn<F>,
    failed: &'a AtomicBool,
    number: u64,
}

impl<F> Drop for PassOn<'_, F> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        self.failed.store(true, Ordering::Relaxed);
        let mut state = self.turn.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while state.0 < self.number {
            state = self.turn.next.wait(state).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        if state.0 == self.number {
            state.0 += 1;
            state.2.get_or_insert_with(|| anyhow::anyhow!("a message panicked"));
        }
        self.turn.next.notify_all();
    }
}

/// Splits the files into batches, in order, and gives each to `send` (false: nobody takes
/// them any more). Stops early when a worker failed.
fn read(
    files: &[PathBuf],
    cap: usize,
    failed: &AtomicBool,
    spare: &Receiver<Batch>,
    mut send: impl FnMut(Batch) -> bool,
) -> anyhow::Result<()> {
    let stopped = || anyhow::anyhow!("stopped: a batch before failed");
    let mut number = 0;
    for path in files {
        let file: Arc<str> = path.display().to_string().into();
        let new_batch = |number| match spare.try_recv() {
            Ok(batch) => Batch { number, file: file.clone(), ..batch },
            Err(_) => Batch {
                number,
                file: file.clone(),
                bytes: Vec::with_capacity(BATCH_BYTES),
                messages: Vec::with_capacity(BATCH_MESSAGES),
            },
        };
        let batch = RefCell::new(new_batch(number));
        // Hands the batch over, if it holds any message, and starts the next.
        let mut hand_over = || {
            if batch.borrow().messages.is_empty() {
                return Ok(());
            }
            number += 1;
            let full = batch.replace(new_batch(number));
            match send(full) && !failed.load(Ordering::Relaxed) {
                true => Ok(()),
                false => Err(stopped()),
            }
        };
        let read = each_line(
            path,
            cap,
            |line, origin| {
                let mut batch = batch.borrow_mut();
                let start = batch.bytes.len();
                let too_long = match line {
                    Line::Whole(text) => {
                        batch.bytes.extend_from_slice(text);
                        None
                    }
                    Line::TooLong(original) => {
                        batch.bytes.extend_from_slice(original.head);
                        Some((original.len, original.xxh3))
                    }
                };
                let at = start..batch.bytes.len();
                batch.messages.push(Message { offset: origin.offset, at, too_long });
                Ok(())
            },
            // When full, or when the next read may wait (a pipe): a message read is processed
            // without waiting for the ones after it.
            |buffered| {
                let full = {
                    let b = batch.borrow();
                    b.messages.len() >= BATCH_MESSAGES || b.bytes.len() >= BATCH_BYTES
                };
                if full || !buffered { hand_over() } else { Ok(()) }
            },
        );
        // What was read before an error is processed too.
        let handed = hand_over();
        match read.and(handed) {
            _ if failed.load(Ordering::Relaxed) => return Ok(()),
            r => r?,
        }
    }
    Ok(())
}

/// The longest line held whole: a message of `max_event_bytes` and the `\r` of a CRLF line.
/// A line up to this long goes to the engine, which trims it and refuses it whole if it is
/// still too large; a longer one is refused as it streams past.
fn line_cap(max_event_bytes: usize) -> usize {
    max_event_bytes.saturating_add(1)
}

/// Calls `f` with every non-blank message of a file and where it came from (line numbers,
/// or record numbers in an exported layout, as offsets), and `after` each with whether more
/// input is buffered ([`Input::buffered`]).
fn each_line(
    path: &Path,
    cap: usize,
    mut f: impl FnMut(Line<'_>, Origin<'_>) -> anyhow::Result<()>,
    mut after: impl FnMut(bool) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let name = path.display().to_string();
    let mut input = Input::open(path, cap)?;
    let mut number = 0i64;
    while let Some(line) = input.next().map_err(|e| anyhow::anyhow!("{name}: {e}"))? {
        number += 1;
        let origin = Origin { source: &name, partition: 0, offset: number };
        let line = match line {
            Line::Whole(text) if text.trim_ascii().is_empty() => continue,
            Line::Whole(text) => Line::Whole(text.trim_ascii()),
            too_long => too_long,
        };
        f(line, origin)?;
        after(input.buffered())?;
    }
    Ok(())
}
