//! What the re-keying stage writes to the events topic besides the canonical events, and
//! what the detection stage reads back: each event's source and time, and watermarks.
//!
//! - An event carries `nhid-source` (`topic:partition:offset:index`, the input message and
//!   the event's place in it) and `nhid-time` (the time it is ordered by, in milliseconds:
//!   its event time, but no later than its input message reached Kafka, [`order_times`]).
//! - A watermark message (header `nhid-watermarks`, one to every partition of the events
//!   topic) says, for each source partition a re-keying worker holds, the latest event time
//!   it has sent (`null`: none yet), and whether the source is idle: read to the end the
//!   broker last reported, everything sent ([`SOURCE_IDLE`]). A partition of the events
//!   topic receives one source's events in that source's order (one producer, idempotent),
//!   so what comes after a watermark from a time-ordered source is never earlier than it.
//!
//! Detection does not wait for an idle source; it waits for a silent one that was not said
//! idle (its re-keying instance died, or its broker stalls) up to `rekey_max_idle_ms`,
//! long enough for the group to hand the partition to another instance.
//!
//! Topic names hold only `[a-zA-Z0-9._-]`, so `:` separates unambiguously.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::message::{Header, Headers, OwnedHeaders};
use serde::{Deserialize, Serialize};

use nhid_engine::Normalized;
use nhid_engine::metrics::Metrics;
use nhid_model::time::Millis;

use crate::output::{Sender, now_ms};
use crate::partition::Partition;

/// How often a re-keying worker that has sent events sends its watermarks: how long the
/// detection stage may wait for a source whose events all went to other partitions.
const WATERMARK_EVERY: Duration = Duration::from_millis(100);

/// A source partition is idle once its queue was found empty at every read for this long,
/// it is at the end librdkafka last saw at the broker (its statistics, every second), and
/// everything handed over was sent. Events of other sources wait about this long once after
/// a source goes quiet. (Found empty, not merely not read: a queue not read because slower
/// ones were is full, not idle. At the end, not merely empty: under load a fetch can take
/// longer than this.)
pub(crate) const SOURCE_IDLE: Millis = 1_000;

/// How often a re-keying worker looks whether a source has gone idle or come back.
const IDLE_CHECK: Duration = Duration::from_millis(250);

/// How far after its input message's timestamp an event may be ordered: the source's and
/// the producer's clocks disagreeing by this much is ordinary.
pub(crate) const AHEAD_OF_DELIVERY: Millis = 1_000;

/// The times the events of one input message are ordered by, and the latest of them: their
/// own, but none after the message reached Kafka (`delivered`, its timestamp; now without
/// one) plus [`AHEAD_OF_DELIVERY`]. An event's time is its source's claim, and whoever
/// shapes it (a forged time, a clock ahead) may date it up to `decode.max_clock_skew_secs`
/// (15 minutes) ahead and still have it taken: ordered by that, it would hold every later
/// event of its source in its events partition back until every other source reached its
/// time, and a source that keeps sending is never passed over. Each event ordered earlier
/// than it claims is counted; detection still judges it by its own time.
pub(crate) fn order_times(events: &mut [Normalized], delivered: Option<i64>, metrics: &Metrics) -> Option<Millis> {
    let bound = delivered.unwrap_or_else(now_ms).saturating_add(AHEAD_OF_DELIVERY);
    let mut latest = None;
    for n in events {
        if n.time > bound {
            n.time = bound;
            metrics.rekey_times_ahead.inc();
        }
        latest = latest.max(Some(n.time));
    }
    latest
}

/// A partition of a re-keyed topic.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Source {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
}

/// A re-keying worker's watermarks: how far each of its source partitions has been sent
/// (`Partition::latest`) and whether it is idle, sent to the detection stage every
/// [`WATERMARK_EVERY`] while that changes, and as soon as a source is new.
#[derive(Default)]
pub(crate) struct Marks {
    /// Each source, and whether the watermarks last sent said it was idle.
    sources: Vec<(Arc<Partition>, bool)>,
    /// Events were sent since the watermarks were last sent.
    changed: bool,
    /// A source is new: the detection stage must hear of it before its first event.
    fresh: bool,
    sent: Option<Instant>,
}

impl Marks {
    /// A partition assigned to this worker.
    pub(crate) fn assigned(&mut self, p: &Arc<Partition>) {
        self.sources.push((p.clone(), false));
        self.fresh = true;
    }

    /// Before a message is processed: a new source is announced first.
    pub(crate) fn announce(&mut self, output: &Sender) {
        if self.fresh {
            self.send(output);
        }
    }

    /// Events up to `time` of `p` were sent.
    pub(crate) fn advanced(&mut self, p: &Partition, time: Millis) {
        p.latest.fetch_max(time, Ordering::Relaxed);
        self.changed = true;
    }

    /// Sends the watermarks if they are due; otherwise, how long until they may be.
    pub(crate) fn due(&mut self, output: &Sender) -> Option<Duration> {
        let now = now_ms();
        let flipped = self.sources.iter().any(|(p, said)| idle(p, now) != *said);
        if self.changed || self.fresh || flipped {
            let since = self.sent.map_or(WATERMARK_EVERY, |t| t.elapsed());
            if since < WATERMARK_EVERY {
                return Some(WATERMARK_EVERY - since);
            }
            self.send(output);
        }
        // A source may go idle without a message to wake this worker.
        self.sources.iter().any(|(_, said)| !said).then_some(IDLE_CHECK)
    }

    /// Sends the watermarks now if events were sent since the last.
    pub(crate) fn flush(&mut self, output: &Sender) {
        if self.changed || self.fresh {
            self.send(output);
        }
    }

    fn send(&mut self, output: &Sender) {
        self.sources.retain(|(p, _)| !p.revoked.load(Ordering::Relaxed));
        let now = now_ms();
        let marks: Vec<_> = self
            .sources
            .iter_mut()
            .map(|(p, said)| {
                *said = idle(p, now);
                let latest = p.latest.load(Ordering::Relaxed);
                let source = Source { topic: p.topic.clone(), partition: p.partition };
                Mark { source, time: (latest != Millis::MIN).then_some(latest), idle: *said }
            })
            .collect();
        if !marks.is_empty() {
            output.send_watermarks(&marks);
        }
        (self.changed, self.fresh, self.sent) = (false, false, Some(Instant::now()));
    }
}

/// Whether `p` is idle: found empty for [`SOURCE_IDLE`] and at its end (both kept by the
/// consumer thread), everything handed over sent.
fn idle(p: &Partition, now: Millis) -> bool {
    let handed = p.next_offset.load(Ordering::Relaxed);
    now.saturating_sub(p.empty_since.load(Ordering::Relaxed)) >= SOURCE_IDLE
        && p.at_end()
        && (handed == i64::MIN || p.progress().processed_next().is_some_and(|next| next >= handed))
}

/// What the headers of a message of the events topic say of it.
#[derive(Debug, PartialEq)]
pub(crate) enum Rekeyed {
    /// A canonical event, the `index`th of the input message at `offset` of `source`.
    Event { source: Source, offset: i64, index: u32, time: Millis },
    /// How far each source has been re-keyed, and which are idle.
    Watermarks(Vec<Mark>),
}

/// A re-keyed event's headers.
pub(crate) fn event_headers(source: &Source, offset: i64, index: u32, time: Millis) -> OwnedHeaders {
    let at = format!("{}:{}:{offset}:{index}", source.topic, source.partition);
    OwnedHeaders::new()
        .insert(Header { key: "nhid-source", value: Some(&at) })
        .insert(Header { key: "nhid-time", value: Some(&time.to_string()) })
}

/// What a watermark says of one source.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Mark {
    pub(crate) source: Source,
    /// The latest event time sent from it, if any.
    pub(crate) time: Option<Millis>,
    /// Idle ([`SOURCE_IDLE`]): not to be waited for until it sends again.
    pub(crate) idle: bool,
}

#[derive(Serialize, Deserialize)]
struct WireMark<'a> {
    topic: &'a str,
    partition: i32,
    time: Option<Millis>,
    /// Absent in an older nhid's watermarks: not idle, waited for as before.
    #[serde(default)]
    idle: bool,
}

/// A watermark message's headers and payload.
pub(crate) fn watermarks(sources: &[Mark]) -> (OwnedHeaders, Vec<u8>) {
    let marks: Vec<WireMark<'_>> = sources
        .iter()
        .map(|m| WireMark { topic: &m.source.topic, partition: m.source.partition, time: m.time, idle: m.idle })
        .collect();
    let headers = OwnedHeaders::new().insert(Header { key: "nhid-watermarks", value: Some("1") });
    (headers, serde_json::to_vec(&marks).expect("watermarks serialize"))
}

/// What a message of the events topic is, from its headers (and a watermark's payload);
/// `None` for a message the re-keying stage did not write that way (a canonical event
/// produced there by something else), which is processed as it comes.
pub(crate) fn read(headers: Option<&impl Headers>, payload: &[u8]) -> Option<Rekeyed> {
    let headers = headers?;
    let (mut source, mut time) = (None, None);
    for h in headers.iter() {
        match h.key {
            "nhid-watermarks" => {
                let marks: Vec<WireMark<'_>> = serde_json::from_slice(payload).ok()?;
                let marks = marks.into_iter().map(|m| Mark {
                    source: Source { topic: m.topic.into(), partition: m.partition },
                    time: m.time,
                    idle: m.idle,
                });
                return Some(Rekeyed::Watermarks(marks.collect()));
            }
            "nhid-source" => source = h.value.and_then(|v| std::str::from_utf8(v).ok()),
            "nhid-time" => time = h.value.and_then(|v| std::str::from_utf8(v).ok()?.parse().ok()),
            _ => {}
        }
    }
    let mut fields = source?.rsplitn(4, ':');
    let index = fields.next()?.parse().ok()?;
    let offset = fields.next()?.parse().ok()?;
    let partition = fields.next()?.parse().ok()?;
    let topic = fields.next()?.into();
    Some(Rekeyed::Event { source: Source { topic, partition }, offset, index, time: time? })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nhid_model::event::PrincipalType;

    fn source(topic: &str, partition: i32) -> Source {
        Source { topic: topic.into(), partition }
    }

    #[test]
    fn an_event_s_source_and_time_read_back() {
        let headers = event_headers(&source("audit.cloudtrail-1", 7), 1_234, 2, 1_700_000_000_123);
        let read = read(Some(&headers), b"{}");
        let expected = Rekeyed::Event {
            source: source("audit.cloudtrail-1", 7),
            offset: 1_234,
            index: 2,
            time: 1_700_000_000_123,
        };
        assert_eq!(read, Some(expected));
    }

    #[test]
    fn events_are_ordered_no_later_than_their_message_reached_kafka() {
        let metrics = Metrics::new();
        let event =
            |time| Normalized { lane: PrincipalType::ServiceAccount, principal_id: "k".into(), time, json: vec![] };
        let delivered = 1_700_000_000_000;
        // Late (delivery lag), slightly ahead (clocks), ten minutes ahead (forged).
        let mut events = [event(delivered - 300_000), event(delivered + 400), event(delivered + 600_000)];
        let latest = order_times(&mut events, Some(delivered), &metrics);
        let times: Vec<_> = events.iter().map(|n| n.time).collect();
        assert_eq!(times, [delivered - 300_000, delivered + 400, delivered + AHEAD_OF_DELIVERY]);
        assert_eq!(latest, Some(delivered + AHEAD_OF_DELIVERY));
        assert_eq!(metrics.rekey_times_ahead.get(), 1);
        // Without a timestamp, by the wall clock.
        let mut forged = [event(now_ms() + 600_000)];
        let latest = order_times(&mut forged, None, &metrics).unwrap();
        assert!(latest <= now_ms() + AHEAD_OF_DELIVERY);
        assert_eq!(metrics.rekey_times_ahead.get(), 2);
    }

    #[test]
    fn watermarks_read_back() {
        let marks = vec![
            Mark { source: source("audit", 0), time: Some(5), idle: false },
            Mark { source: source("audit", 1), time: None, idle: true },
        ];
        let (headers, payload) = watermarks(&marks);
        assert_eq!(read(Some(&headers), &payload), Some(Rekeyed::Watermarks(marks)));
        let older = br#"[{"topic":"audit","partition":0,"time":5}]"#;
        let not_idle = Mark { source: source("audit", 0), time: Some(5), idle: false };
        assert_eq!(read(Some(&headers), older), Some(Rekeyed::Watermarks(vec![not_idle])), "an older nhid's");
    }

    #[test]
    fn anything_else_is_an_event_as_it_comes() {
        let partial = OwnedHeaders::new().insert(Header { key: "nhid-source", value: Some("audit:0:1:0") });
        let wrong = OwnedHeaders::new()
            .insert(Header { key: "nhid-source", value: Some("audit:zero:1:0") })
            .insert(Header { key: "nhid-time", value: Some("5") });
        let garbled = OwnedHeaders::new().insert(Header { key: "nhid-watermarks", value: Some("1") });
        assert_eq!(read(None::<&OwnedHeaders>, b"{}"), None);
        assert_eq!(read(Some(&partial), b"{}"), None, "no time");
        assert_eq!(read(Some(&wrong), b"{}"), None);
        assert_eq!(read(Some(&garbled), b"not json"), None);
    }
}
