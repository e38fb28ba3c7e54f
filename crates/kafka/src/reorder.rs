//! The detection stage's side of re-keying: each partition of the events topic receives
//! one principal's events from every source partition of the re-keyed topics, through
//! re-keying workers that run at their own pace, in this process or in others. Taken as
//! they come, one identity's events would be out of order by as much as those workers
//! drift apart (hours of event time were measured on a backlog). So, as a stream processor
//! merges its inputs by watermark:
//!
//! - events are held per source, in the source's order;
//! - the earliest held event goes once every other source is known to be past its time:
//!   by the latest watermark or event from it;
//! - a source its re-keying worker said is idle (caught up) is not waited for until it
//!   sends again, as Flink's idle sources;
//! - a source that says nothing and was not said idle (its re-keying instance died, or its
//!   broker stalls) is waited for at most `max_idle` from when it is first needed (Kafka
//!   Streams' `max.task.idle.ms`), long enough for the group to hand it to another
//!   instance, then passed over until it speaks again: a dead source delays the others
//!   once, never stops them;
//! - past [`MAX_HELD`] messages the earliest goes regardless, so memory stays bounded;
//! - an event at or before one already processed from its source (the re-keying stage read
//!   its source again after a restart or a rebalance) is skipped as a duplicate.
//!
//! A held message is not committed past: it is registered in its partition's progress with
//! one output of its own, acknowledged when it is processed. A snapshot of the partition's
//! state ([`Reorder::point`]) says how far each source's events are in it, so that a
//! restore skips those when it reads them again ([`Reorder::assigned`]).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use nhid_engine::metrics::Metrics;
use nhid_engine::state::snapshot::SourceDone;
use nhid_model::time::Millis;

use crate::partition::Partition;
use crate::rekeyed::{Mark, Rekeyed, Source};
use crate::worker::Message;

/// Messages held by one worker before the earliest goes whether or not every source has
/// spoken.
pub(crate) const MAX_HELD: usize = 50_000;

pub(crate) struct Reorder {
    max_idle: Duration,
    /// Every partition of the re-keyed topics: each is waited for from the start.
    sources: Vec<Source>,
    parts: Vec<Part>,
    held: usize,
}

/// One partition of the events topic.
struct Part {
    partition: Arc<Partition>,
    /// By source, sorted.
    sources: Vec<Queue>,
    /// The latest event time processed: an earlier one after it is out of order.
    processed: Millis,
}

struct Queue {
    source: Source,
    held: VecDeque<Held>,
    /// The latest event time this source is known to have sent.
    watermark: Option<Millis>,
    /// Its re-keying worker said it is idle: not waited for until it sends again.
    idle: bool,
    /// The last event processed from it, as (offset, index): not again.
    done: Option<(i64, u32)>,
    /// Since when an event waits for it (it is behind and has nothing held).
    waited_since: Option<Instant>,
}

struct Held {
    time: Millis,
    at: (i64, u32),
    message: Message,
}

impl Reorder {
    pub(crate) fn new(max_idle: Duration, sources: Vec<Source>) -> Reorder {
        Reorder { max_idle, sources, parts: Vec::new(), held: 0 }
    }

    /// Takes a message of a partition of the events topic, in offset order: holds an event,
    /// applies a watermark, and gives back anything else, to be processed as it comes.
    pub(crate) fn push(&mut self, mut message: Message) -> Option<Message> {
        let p = message.partition.clone();
        match message.rekeyed.take() {
            None => Some(message),
            Some(Rekeyed::Watermarks(marks)) => {
                p.progress().processed(message.offset, 0);
                let part = self.part(&p);
                for Mark { source, time, idle } in marks {
                    let queue = part.queue(source);
                    queue.idle = idle;
                    if time > queue.watermark {
                        queue.watermark = time;
                        queue.waited_since = None;
                    }
                }
                None
            }
            Some(Rekeyed::Event { source, offset, index, time }) => {
                // One output of its own until it is processed: never committed past before.
                p.progress().processed(message.offset, 1);
                let queue = self.part(&p).queue(source);
                queue.watermark = queue.watermark.max(Some(time));
                (queue.idle, queue.waited_since) = (false, None);
                queue.held.push_back(Held { time, at: (offset, index), message });
                self.held += 1;
                None
            }
        }
    }

    /// Hands `process` every held message that may go now, in event-time order per
    /// partition. Returns how long until a source waited for is passed over, if one is.
    pub(crate) fn release(&mut self, metrics: &Metrics, mut process: impl FnMut(Message)) -> Option<Duration> {
        let held = &mut self.held;
        self.parts.retain(|part| {
            let revoked = part.partition.revoked.load(Ordering::Relaxed);
            if revoked {
                *held -= part.sources.iter().map(|q| q.held.len()).sum::<usize>();
            }
            !revoked
        });
        let now = Instant::now();
        let mut retry: Option<Duration> = None;
        for part in &mut self.parts {
            while let Some(i) = part.earliest() {
                let time = part.sources[i].held[0].time;
                if self.held <= MAX_HELD
                    && let Some(left) = part.waiting(i, time, now, self.max_idle)
                {
                    retry = Some(retry.map_or(left, |r| r.min(left)));
                    break;
                }
                let queue = &mut part.sources[i];
                let Held { time, at, message } = queue.held.pop_front().expect("the earliest is held");
                self.held -= 1;
                if queue.done.is_some_and(|done| at <= done) {
                    metrics.rekey_duplicates.inc();
                    message.partition.progress().acknowledged(message.offset);
                    continue;
                }
                queue.done = Some(at);
                if time < part.processed {
                    metrics.rekey_out_of_order.inc();
                }
                part.processed = part.processed.max(time);
                process(message);
            }
        }
        retry
    }

    /// A partition of the events topic assigned to this worker. Restored from the
    /// changelog, its state holds each source's events up to a place: those are skipped
    /// when they come again, as duplicates are.
    pub(crate) fn assigned(&mut self, p: &Arc<Partition>) {
        let resumed = std::mem::take(&mut *p.resumed.lock().unwrap_or_else(PoisonError::into_inner));
        let part = self.part(p);
        for done in resumed {
            let source = Source { topic: done.topic.into(), partition: done.partition };
            part.queue(source).done = Some((done.offset, done.index));
        }
    }

    /// Where a snapshot of `p`'s state may say it holds: every message before the first
    /// one held (or before the next to come, when none is), and of each source, its events
    /// up to the last applied. `None` while an applied event's outputs are not all
    /// acknowledged: a restore would not process it again, and they could be lost.
    pub(crate) fn point(&self, p: &Arc<Partition>) -> Option<(i64, Vec<SourceDone>)> {
        let progress = p.progress();
        let part = self.parts.iter().find(|part| Arc::ptr_eq(&part.partition, p));
        let held = part.map_or(0, |part| part.sources.iter().map(|q| q.held.len()).sum());
        // Held messages count one each; anything else unfinished is an applied event's.
        if progress.unfinished() != held {
            return None;
        }
        let through = progress.committable()?;
        let sources = part.map_or_else(Vec::new, |part| {
            part.sources
                .iter()
                .filter_map(|q| {
                    let (offset, index) = q.done?;
                    Some(SourceDone { topic: q.source.topic.to_string(), partition: q.source.partition, offset, index })
                })
                .collect()
        });
        Some((through, sources))
    }

    fn part(&mut self, partition: &Arc<Partition>) -> &mut Part {
        let at = match self.parts.iter().position(|p| Arc::ptr_eq(&p.partition, partition)) {
            Some(at) => at,
            None => {
                let mut part = Part { partition: partition.clone(), sources: Vec::new(), processed: Millis::MIN };
                for source in &self.sources {
                    part.queue(source.clone());
                }
                self.parts.push(part);
                self.parts.len() - 1
            }
        };
        &mut self.parts[at]
    }
}

impl Part {
    fn queue(&mut self, source: Source) -> &mut Queue {
        let at = match self.sources.binary_search_by(|q| q.source.cmp(&source)) {
            Ok(at) => at,
            Err(at) => {
                let queue = Queue {
                    source,
                    held: VecDeque::new(),
                    watermark: None,
                    idle: false,
                    done: None,
                    waited_since: None,
                };
                self.sources.insert(at, queue);
                at
            }
        };
        &mut self.sources[at]
    }

    /// The source whose first held event is the earliest (ties: the first source).
    fn earliest(&self) -> Option<usize> {
        (0..self.sources.len())
            .filter(|&i| !self.sources[i].held.is_empty())
            .min_by_key(|&i| self.sources[i].held[0].time)
    }

    /// How long an event at `time` of source `i` still waits for another source, if it does.
    fn waiting(&mut self, i: usize, time: Millis, now: Instant, max_idle: Duration) -> Option<Duration> {
        let mut left: Option<Duration> = None;
        for (j, queue) in self.sources.iter_mut().enumerate() {
            if j == i || queue.idle || queue.watermark.is_some_and(|w| w >= time) {
                continue;
            }
            let since = *queue.waited_since.get_or_insert(now);
            let remaining = max_idle.saturating_sub(now - since);
            if !remaining.is_zero() {
                left = Some(left.map_or(remaining, |l| l.min(remaining)));
            }
        }
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::Input;
    use crate::worker::Payload;

    fn partition(metrics: &Metrics) -> Arc<Partition> {
        Arc::new(Partition::new("nhid.events".into(), 0, 0, 0, Input::Events, metrics))
    }

    fn source(p: i32) -> Source {
        Source { topic: "audit".into(), partition: p }
    }

    fn event(p: &Arc<Partition>, offset: i64, from: i32, at: i64, time: Millis) -> Message {
        let rekeyed = Rekeyed::Event { source: source(from), offset: at, index: 0, time };
        Message {
            partition: p.clone(),
            offset,
            timestamp: None,
            payload: Payload::Owned(Vec::new()),
            rekeyed: Some(rekeyed),
            key: None,
        }
    }

    fn watermark(p: &Arc<Partition>, offset: i64, marks: &[(i32, Millis)]) -> Message {
        marked(p, offset, &marks.iter().map(|&(s, t)| (s, t, false)).collect::<Vec<_>>())
    }

    /// A watermark that says which sources are idle.
    fn marked(p: &Arc<Partition>, offset: i64, marks: &[(i32, Millis, bool)]) -> Message {
        let marks = marks.iter().map(|&(s, t, idle)| Mark { source: source(s), time: Some(t), idle }).collect();
        Message {
            partition: p.clone(),
            offset,
            timestamp: None,
            payload: Payload::Owned(Vec::new()),
            rekeyed: Some(Rekeyed::Watermarks(marks)),
            key: None,
        }
    }

    /// Pushes messages, then releases: the offsets processed, in order (each done, as the
    /// worker marks it).
    fn run(reorder: &mut Reorder, metrics: &Metrics, messages: Vec<Message>) -> Vec<i64> {
        for m in messages {
            assert!(reorder.push(m).is_none());
        }
        let mut times = Vec::new();
        reorder.release(metrics, |m| {
            assert!(m.rekeyed.is_none(), "taken at push");
            m.partition.progress().released(m.offset, 0);
            times.push(m.offset);
        });
        times
    }

    #[test]
    fn events_go_in_event_time_order_once_every_source_has_passed_them() {
        let metrics = Metrics::default();
        let p = partition(&metrics);
        let mut reorder = Reorder::new(Duration::from_secs(3600), vec![source(0), source(1)]);
        // Source 0 runs ahead: its events wait for source 1.
        assert_eq!(run(&mut reorder, &metrics, vec![event(&p, 0, 0, 10, 100), event(&p, 1, 0, 11, 300)]), [0i64; 0]);
        assert_eq!(p.progress().committable(), Some(0), "held: not committed past");
        assert_eq!(run(&mut reorder, &metrics, vec![event(&p, 2, 1, 50, 200)]), [0, 2], "source 1 passed 200");
        assert_eq!(p.progress().committable(), Some(1));
        // A watermark says source 1 has gone past 300, with events to other partitions.
        assert_eq!(run(&mut reorder, &metrics, vec![watermark(&p, 3, &[(1, 400)])]), [1]);
        assert_eq!(p.progress().committable(), Some(4));
        assert_eq!(metrics.rekey_out_of_order.get(), 0);
    }

    #[test]
    fn a_silent_source_is_waited_for_then_passed_over() {
        let metrics = Metrics::default();
        let p = partition(&metrics);
        let mut waiting = Reorder::new(Duration::from_secs(3600), vec![source(0), source(1)]);
        assert_eq!(run(&mut waiting, &metrics, vec![event(&p, 0, 0, 0, 100)]), [0i64; 0]);
        let retry = waiting.release(&metrics, |_| unreachable!("source 1 is waited for"));
        assert!(retry.is_some_and(|left| left <= Duration::from_secs(3600)), "told when to try again");

        let q = partition(&metrics);
        let mut passing = Reorder::new(Duration::ZERO, vec![source(0), source(1)]);
        assert_eq!(run(&mut passing, &metrics, vec![event(&q, 0, 0, 0, 100), event(&q, 1, 0, 1, 200)]), [0, 1]);
        // It speaks again, late: its event goes at once, counted out of order.
        assert_eq!(run(&mut passing, &metrics, vec![event(&q, 2, 1, 0, 150)]), [2]);
        assert_eq!(metrics.rekey_out_of_order.get(), 1);
        assert_eq!(q.progress().committable(), Some(3));
    }

    #[test]
    fn an_idle_source_is_not_waited_for_until_it_sends_again() {
        let metrics = Metrics::default();
        let p = partition(&metrics);
        let mut reorder = Reorder::new(Duration::from_secs(3600), vec![source(0), source(1)]);
        // Source 1 caught up at 150: source 0's later events go without waiting for it.
        let caught_up = vec![marked(&p, 0, &[(1, 150, true)]), event(&p, 1, 0, 10, 200), event(&p, 2, 0, 11, 300)];
        assert_eq!(run(&mut reorder, &metrics, caught_up), [1, 2]);
        // It sends again: waited for from then on.
        assert_eq!(run(&mut reorder, &metrics, vec![event(&p, 3, 1, 60, 350), event(&p, 4, 0, 12, 400)]), [3]);
        // Not idle and silent (its re-keying instance died): waited for, up to max_idle.
        assert_eq!(run(&mut reorder, &metrics, vec![marked(&p, 5, &[(1, 350, false)])]), [0i64; 0]);
        assert_eq!(run(&mut reorder, &metrics, vec![marked(&p, 6, &[(1, 380, true)])]), [4], "idle again");
        assert_eq!(metrics.rekey_out_of_order.get(), 0);
        assert_eq!(p.progress().committable(), Some(7));
    }

    #[test]
    fn a_snapshot_point_is_the_first_held_message_and_each_source_s_last_applied_event() {
        let metrics = Metrics::default();
        let p = partition(&metrics);
        let mut reorder = Reorder::new(Duration::from_secs(3600), vec![source(0), source(1)]);
        assert_eq!(reorder.point(&p), None, "nothing processed");
        // Source 1 lags: source 0's event at 300 is held, and source 1's, coming after it, go.
        let pushed = vec![event(&p, 0, 0, 10, 100), event(&p, 1, 0, 11, 300), event(&p, 2, 1, 50, 200)];
        for m in pushed {
            assert!(reorder.push(m).is_none());
        }
        let mut applied = Vec::new();
        reorder.release(&metrics, |m| applied.push(m.offset));
        assert_eq!(applied, [0, 2]);
        assert_eq!(reorder.point(&p), None, "applied events' outputs unacknowledged");
        p.progress().released(0, 0);
        p.progress().released(2, 1);
        assert_eq!(reorder.point(&p), None, "one output in flight");
        p.progress().acknowledged(2);
        let done = |partition, offset| SourceDone { topic: "audit".into(), partition, offset, index: 0 };
        assert_eq!(reorder.point(&p), Some((1, vec![done(0, 10), done(1, 50)])));

        // Restored from that point, the events topic read again from offset 1: offset 2 is
        // in the state already; offset 1, held, was not.
        let q = Arc::new(Partition::new("nhid.events".into(), 0, 0, 0, Input::Events, &metrics));
        *q.resumed.lock().unwrap() = vec![done(0, 10), done(1, 50)];
        let mut restored = Reorder::new(Duration::from_secs(3600), vec![source(0), source(1)]);
        restored.assigned(&q);
        let again = vec![event(&q, 1, 0, 11, 300), event(&q, 2, 1, 50, 200), watermark(&q, 3, &[(1, 400)])];
        assert_eq!(run(&mut restored, &metrics, again), [1]);
        assert_eq!(q.progress().committable(), Some(4));
    }

    #[test]
    fn an_event_re_keyed_twice_is_processed_once() {
        let metrics = Metrics::default();
        let p = partition(&metrics);
        let mut reorder = Reorder::new(Duration::ZERO, vec![source(0)]);
        // Re-keying read source offsets 7 and 8 again after a restart.
        let messages =
            vec![event(&p, 0, 0, 7, 100), event(&p, 1, 0, 8, 110), event(&p, 2, 0, 7, 100), event(&p, 3, 0, 8, 110)];
        assert_eq!(run(&mut reorder, &metrics, messages), [0, 1]);
        assert_eq!(metrics.rekey_duplicates.get(), 2);
        assert_eq!(p.progress().committable(), Some(4), "duplicates are done");
    }
}
