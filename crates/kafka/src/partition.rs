//! One input partition while it is assigned here: what the consumer thread, the workers and
//! the producer's delivery reports share about it.

use std::sync::atomic::{AtomicBool, AtomicI64};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use nhid_engine::metrics::Metrics;
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
    /// A partition of the events topic read by detection: its events are reordered.
    pub(crate) reordered: bool,
    /// Re-keying: the latest event time sent to the events topic (`Millis::MIN`: none).
    pub(crate) latest: AtomicI64,
    /// Re-keying, the consumer thread's: when a message last came (wall clock, ms), and
    /// the offset after the last message handed over.
    pub(crate) received_at: AtomicI64,
    pub(crate) next_offset: AtomicI64,
}

impl Partition {
    pub(crate) fn new(
        topic: Arc<str>,
        partition: i32,
        rebuild_until: i64,
        rebuild_since: i64,
        control: Option<ControlKind>,
        reordered: bool,
        metrics: &Metrics,
    ) -> Partition {
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
            topic,
            partition,
            revoked: AtomicBool::new(false),
            reordered,
            latest: AtomicI64::new(Millis::MIN),
            received_at: AtomicI64::new(crate::output::now_ms()),
            next_offset: AtomicI64::new(i64::MIN),
        }
    }

    pub(crate) fn progress(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The offset last committed, `None` when none was or the last commit failed.
    pub(crate) fn committed(&self) -> MutexGuard<'_, Option<i64>> {
        self.committed.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
