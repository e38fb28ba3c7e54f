//! One input partition while it is assigned here: what the consumer thread, the workers and
//! the producer's delivery reports share about it.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use nhid_engine::metrics::Metrics;
use nhid_engine::state::snapshot::SourceDone;
use nhid_engine::{ControlKind, Origin};
use nhid_model::event::SourceFormat;
use nhid_model::time::Millis;

use crate::progress::Progress;

pub(crate) struct Partition {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    /// Identities are tagged with it so their state can be released on revocation.
    pub(crate) home: u32,
    progress: Mutex<Progress>,
    /// The offset last sent in a commit, to skip commits that would change nothing.
    committed: Mutex<Option<i64>>,
    /// Messages below this offset were committed before this assignment: they are re-read
    /// only to rebuild state, and their outputs (already acknowledged) are not sent again.
    pub(crate) rebuild_until: i64,
    /// Message timestamp before which a rebuild skips messages unread (outside the window).
    pub(crate) rebuild_since: i64,
    /// A control topic's kind; `None` for audit events.
    pub(crate) control: Option<ControlKind>,
    /// `nhid_messages_received_total` of its topic, resolved once.
    pub(crate) received: prometheus::IntCounter,
    /// `nhid_events_received_total` of its topic by source format (`SourceFormat::index`);
    /// empty for a control topic.
    pub(crate) events_received: Box<[prometheus::IntCounter]>,
    /// Set when it is revoked, after its drain: a worker holding its messages forgets them.
    pub(crate) revoked: AtomicBool,
    /// Set by its worker at a drain's barrier (a revocation, or nhid stopping): its messages
    /// are no longer processed here. What was fetched and not processed is not committed, so
    /// whoever is assigned it next reads it again.
    pub(crate) stopped: AtomicBool,
    /// A partition of the events topic read by detection: its events are reordered.
    pub(crate) reordered: bool,
    /// An audit topic read as keyed by principal: its keys are checked (`check_key`), and
    /// `nhid_messages_not_keyed_by_principal_total` of its topic counts those that are not.
    pub(crate) keyed: Option<KeyCheck>,
    /// Re-keying: the latest event time sent to the events topic (`Millis::MIN`: none).
    pub(crate) latest: AtomicI64,
    /// Re-keying, the consumer thread's: since when its queue was found empty at every read
    /// (wall clock, ms; `i64::MAX`: it was not), where it ends by librdkafka's last
    /// statistics (`i64::MAX` before any; `i64::MIN` when it holds nothing), and the offset
    /// after the last message handed over.
    pub(crate) empty_since: AtomicI64,
    pub(crate) end: AtomicI64,
    pub(crate) next_offset: AtomicI64,
    /// Its messages change identity state (audit events read by detection): its state is
    /// kept in the changelog, when there is one, and restored from it.
    pub(crate) holds_state: bool,
    /// The changelog holds its state up to this offset (the next to read), once the records
    /// last sent are acknowledged; `i64::MIN` before the first. Commits never pass it.
    pub(crate) snapshot_through: AtomicI64,
    /// When its worker last took a snapshot of it (wall clock, ms).
    pub(crate) snapshot_at: AtomicI64,
    /// A partition of the events topic restored from the changelog: how far each source's
    /// events are in the restored state (its worker's reorder takes it, and skips them).
    pub(crate) resumed: Mutex<Vec<SourceDone>>,
}

/// How many of a keyed partition's messages were checked, and how many were not keyed by
/// their principal (the worker's, so relaxed atomics suffice).
pub(crate) struct KeyCheck {
    not_keyed: prometheus::IntCounter,
    checked: AtomicU64,
    wrong: AtomicU64,
}

/// Messages checked before a partition's keys are judged, and the share (one in this many)
/// not keyed by principal past which a warning says so.
const KEYS_JUDGED_AFTER: u64 = 1_000;
const KEYS_WRONG_ONE_IN: u64 = 10;

/// What a partition's messages are.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Input {
    /// Audit events keyed by principal.
    Keyed,
    /// Audit events of a topic re-keyed here.
    Rekeyed,
    /// The events topic, read by detection.
    Events,
    Control(ControlKind),
}

impl Input {
    /// Its messages change identity state (audit events read by detection).
    pub(crate) fn holds_state(self) -> bool {
        matches!(self, Input::Keyed | Input::Events)
    }
}

impl Partition {
    pub(crate) fn new(
        topic: Arc<str>,
        partition: i32,
        rebuild_until: i64,
        rebuild_since: i64,
        input: Input,
        metrics: &Metrics,
    ) -> Partition {
        let control = match input {
            Input::Control(kind) => Some(kind),
            _ => None,
        };
        Partition {
            home: Origin { source: topic.as_ref(), partition, offset: 0 }.home(),
            progress: Mutex::default(),
            committed: Mutex::default(),
            rebuild_until,
            rebuild_since,
            control,
            received: metrics.messages_received.with_label_values(&[topic.as_ref()]),
            events_received: match control {
                Some(_) => Box::default(),
                None => SourceFormat::ALL
                    .iter()
                    .map(|f| metrics.events_received.with_label_values(&[topic.as_ref(), f.as_str()]))
                    .collect(),
            },
            keyed: (input == Input::Keyed).then(|| KeyCheck {
                not_keyed: metrics.not_keyed.with_label_values(&[topic.as_ref()]),
                checked: AtomicU64::new(0),
                wrong: AtomicU64::new(0),
            }),
            topic,
            partition,
            revoked: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            reordered: input == Input::Events,
            latest: AtomicI64::new(Millis::MIN),
            empty_since: AtomicI64::new(i64::MAX),
            end: AtomicI64::new(i64::MAX),
            next_offset: AtomicI64::new(i64::MIN),
            holds_state: input.holds_state(),
            snapshot_through: AtomicI64::new(i64::MIN),
            // Its worker writes one at once: the mark says from where the state is known.
            snapshot_at: AtomicI64::new(i64::MIN / 2),
            resumed: Mutex::default(),
        }
    }

    /// Checks that a message of a topic read as keyed by principal is keyed by its events'
    /// principal (`key` and `decoded`'s, hashed): whether it is not, for its worker to count
    /// ([`Partition::count_received`]). Warns once when many are not: one identity's events
    /// are then spread over partitions and workers, out of order.
    pub(crate) fn check_key(&self, key: Option<u64>, decoded: &nhid_engine::Decoded) -> bool {
        let Some(check) = &self.keyed else { return false };
        if decoded.events == 0 {
            return false;
        }
        let not_keyed = decoded.principal.is_none() || key != decoded.principal;
        // The keys are judged once, on the first messages: past them, no shared count to add
        // to on every message.
        if check.checked.load(Ordering::Relaxed) >= KEYS_JUDGED_AFTER {
            return not_keyed;
        }
        let checked = check.checked.fetch_add(1, Ordering::Relaxed) + 1;
        let wrong = match not_keyed {
            true => check.wrong.fetch_add(1, Ordering::Relaxed) + 1,
            false => check.wrong.load(Ordering::Relaxed),
        };
        if checked == KEYS_JUDGED_AFTER && wrong * KEYS_WRONG_ONE_IN >= checked {
            tracing::warn!(
                topic = %self.topic,
                partition = self.partition,
                "{wrong} of the first {checked} messages are not keyed by their principal id: over several \
                 partitions, one identity's events are then detected apart and out of order; name the topic in \
                 kafka.rekey_topics"
            );
        }
        not_keyed
    }

    /// Adds a worker's counts of its messages, events (by `SourceFormat::index`) and messages
    /// not keyed by principal to its topic's counters. Those are shared by every worker reading
    /// the topic: adding to them for every message passed their cache line back and forth
    /// between the cores (some 3 % of a worker's time), so a worker adds its counts at once.
    pub(crate) fn count_received(&self, messages: u64, events: &[u64], not_keyed: u64) {
        if messages > 0 {
            self.received.inc_by(messages);
        }
        // A control topic's partition counts no events (and has no counters for them).
        for (counter, &n) in self.events_received.iter().zip(events) {
            if n > 0 {
                counter.inc_by(n);
            }
        }
        if let Some(check) = &self.keyed
            && not_keyed > 0
        {
            check.not_keyed.inc_by(not_keyed);
        }
    }

    /// Re-keying: whether everything it held at the broker, by librdkafka's last statistics,
    /// was handed over (or it holds nothing).
    pub(crate) fn at_end(&self) -> bool {
        let handed = match self.next_offset.load(Ordering::Relaxed) {
            // Nothing received since it was assigned: reading starts at its commit.
            i64::MIN => self.rebuild_until,
            next => next,
        };
        handed >= self.end.load(Ordering::Relaxed)
    }

    pub(crate) fn progress(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The offset last committed, `None` when none was or the last commit failed.
    pub(crate) fn committed(&self) -> MutexGuard<'_, Option<i64>> {
        self.committed.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use nhid_engine::{Decoded, principal_hash};

    use super::*;

    #[test]
    fn messages_not_keyed_by_their_principal_are_counted() {
        let metrics = Metrics::new();
        let p = Partition::new("audit".into(), 0, 0, 0, Input::Keyed, &metrics);
        let one = |id: &str| Decoded { format: None, events: 1, principal: Some(principal_hash(id.as_bytes())) };
        let mixed = Decoded { format: None, events: 2, principal: None };
        let not_keyed = [
            p.check_key(Some(principal_hash(b"svc-a")), &one("svc-a")),
            p.check_key(Some(principal_hash(b"svc-a")), &one("svc-b")),
            p.check_key(None, &one("svc-a")),
            p.check_key(Some(principal_hash(b"svc-a")), &mixed),
            p.check_key(None, &Decoded::default()),
        ];
        p.count_received(0, &[], not_keyed.iter().filter(|&&n| n).count() as u64);
        assert_eq!(metrics.not_keyed.with_label_values(&["audit"]).get(), 3, "another's key, none, several principals");
        let events = Partition::new("nhid.events".into(), 0, 0, 0, Input::Events, &metrics);
        assert!(events.keyed.is_none(), "the events topic is keyed by nhid itself");
    }
}
