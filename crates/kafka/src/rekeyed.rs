//! What the re-keying stage writes to the events topic besides the canonical events, and
//! what the detection stage reads back: each event's source and time, and watermarks.
//!
//! - An event carries `nhid-source` (`topic:partition:offset:index`, the input message and
//!   the event's place in it) and `nhid-time` (its event time, in milliseconds).
//! - A watermark message (header `nhid-watermarks`, one to every partition of the events
//!   topic) says, for each source partition a re-keying worker holds, the latest event time
//!   it has sent (`null`: none yet). A partition of the events topic receives one source's
//!   events in that source's order (one producer, idempotent), so what comes after a
//!   watermark from a time-ordered source is never earlier than it.
//!
//! Topic names hold only `[a-zA-Z0-9._-]`, so `:` separates unambiguously.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::message::{Header, Headers, OwnedHeaders};
use serde::{Deserialize, Serialize};

use nhid_model::time::Millis;

use crate::output::Sender;
use crate::partition::Partition;

/// How often a re-keying worker that has sent events sends its watermarks: how long the
/// detection stage may wait for a source whose events all went to other partitions.
const WATERMARK_EVERY: Duration = Duration::from_millis(100);

/// A partition of a re-keyed topic.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Source {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
}

/// A re-keying worker's watermarks: how far each of its source partitions has been sent
/// (`Partition::latest`), sent to the detection stage every [`WATERMARK_EVERY`] while
/// events flow, and as soon as a source is new.
#[derive(Default)]
pub(crate) struct Marks {
    sources: Vec<Arc<Partition>>,
    /// Something changed since the watermarks were last sent.
    changed: bool,
    /// A source is new: the detection stage must hear of it before its first event.
    fresh: bool,
    sent: Option<Instant>,
}

impl Marks {
    /// A partition assigned to this worker.
    pub(crate) fn assigned(&mut self, p: &Arc<Partition>) {
        self.sources.push(p.clone());
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

    /// Sends the watermarks if they are due; otherwise, how long until they are.
    pub(crate) fn due(&mut self, output: &Sender) -> Option<Duration> {
        if !self.changed && !self.fresh {
            return None;
        }
        let since = self.sent.map_or(WATERMARK_EVERY, |t| t.elapsed());
        if since >= WATERMARK_EVERY {
            self.send(output);
            return None;
        }
        Some(WATERMARK_EVERY - since)
    }

    /// Sends the watermarks now if anything changed.
    pub(crate) fn flush(&mut self, output: &Sender) {
        if self.changed || self.fresh {
            self.send(output);
        }
    }

    fn send(&mut self, output: &Sender) {
        self.sources.retain(|p| !p.revoked.load(Ordering::Relaxed));
        let marks: Vec<_> = self
            .sources
            .iter()
            .map(|p| {
                let latest = p.latest.load(Ordering::Relaxed);
                (Source { topic: p.topic.clone(), partition: p.partition }, (latest != Millis::MIN).then_some(latest))
            })
            .collect();
        if !marks.is_empty() {
            output.send_watermarks(&marks);
        }
        (self.changed, self.fresh, self.sent) = (false, false, Some(Instant::now()));
    }
}

/// What the headers of a message of the events topic say of it.
#[derive(Debug, PartialEq)]
pub(crate) enum Rekeyed {
    /// A canonical event, the `index`th of the input message at `offset` of `source`.
    Event { source: Source, offset: i64, index: u32, time: Millis },
    /// How far each source has been re-keyed: the latest event time sent, if any.
    Watermarks(Vec<(Source, Option<Millis>)>),
}

/// A re-keyed event's headers.
pub(crate) fn event_headers(source: &Source, offset: i64, index: u32, time: Millis) -> OwnedHeaders {
    let at = format!("{}:{}:{offset}:{index}", source.topic, source.partition);
    OwnedHeaders::new()
        .insert(Header { key: "nhid-source", value: Some(&at) })
        .insert(Header { key: "nhid-time", value: Some(&time.to_string()) })
}

#[derive(Serialize, Deserialize)]
struct Mark<'a> {
    topic: &'a str,
    partition: i32,
    time: Option<Millis>,
}

/// A watermark message's headers and payload.
pub(crate) fn watermarks(sources: &[(Source, Option<Millis>)]) -> (OwnedHeaders, Vec<u8>) {
    let marks: Vec<Mark<'_>> =
        sources.iter().map(|(s, time)| Mark { topic: &s.topic, partition: s.partition, time: *time }).collect();
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
                let marks: Vec<Mark<'_>> = serde_json::from_slice(payload).ok()?;
                let marks =
                    marks.into_iter().map(|m| (Source { topic: m.topic.into(), partition: m.partition }, m.time));
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
    fn watermarks_read_back() {
        let marks = vec![(source("audit", 0), Some(5)), (source("audit", 1), None)];
        let (headers, payload) = watermarks(&marks);
        assert_eq!(read(Some(&headers), &payload), Some(Rekeyed::Watermarks(marks)));
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
