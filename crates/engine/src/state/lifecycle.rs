//! What the control topics told nhid, engine-wide: which credentials were revoked, which
//! principals retired and which owners offboarded, each since when.
//!
//! Kept apart from [`super::Identity`] on purpose: a revocation must hold for an identity
//! nhid has evicted or not seen yet, and for a credential the identity's short list of recent
//! credentials has dropped; and facts that almost no identity has would otherwise grow every
//! identity's state.

use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;
use foldhash::fast::RandomState;

use super::keep_newest;
use nhid_model::time::{DAY, Millis};

/// Facts older than this (event time) are forgotten at the engine's sweep. A revoked
/// credential, retired principal or orphaned principal still in use months later has alerted
/// once per aggregation window all along, and by then the platform's own denial (or the
/// owner's review) is the control. Without an end, a lifecycle topic that reports every
/// rotated token would grow the maps for as long as nhid runs.
pub const FACT_TTL: Millis = 90 * DAY;

/// Ceiling per kind of fact (about 100 bytes each); past it the oldest go first, down to
/// 90 %. Enforced as facts arrive, not at the sweep: the sweep runs on audit event time,
/// which a flood of control messages does not move.
pub const MAX_FACTS: usize = 1_000_000;

#[derive(Default)]
pub struct Lifecycle {
    /// Revoked credentials by credential id: from `credential_revoked` and from done revocations.
    pub credentials: Facts,
    /// Retired principals by principal id.
    pub principals: Facts,
    /// Offboarded owners by owner, spelled as the inventory and `principal.owner` spell it.
    pub owners: Facts,
}

impl Lifecycle {
    /// Forgets every fact that began before `cutoff`; returns how many.
    pub fn forget_before(&self, cutoff: Millis) -> usize {
        [&self.credentials, &self.principals, &self.owners].iter().map(|f| f.forget_before(cutoff)).sum()
    }
}

/// One kind of fact: key → the earliest time it was reported to hold.
pub struct Facts {
    map: DashMap<Box<str>, Millis, RandomState>,
    /// Live entries, read before every lookup: while nothing was reported (the usual case)
    /// an event pays one relaxed load, not a hash and a shard lock.
    len: AtomicUsize,
    max: usize,
}

impl Default for Facts {
    fn default() -> Self {
        Facts::with_capacity_limit(MAX_FACTS)
    }
}

impl Facts {
    fn with_capacity_limit(max: usize) -> Self {
        Facts { map: DashMap::with_hasher(RandomState::default()), len: AtomicUsize::new(0), max }
    }

    /// Records that `key` holds since `at`. The earliest report wins: a redelivered or late
    /// message does not move the time a credential was already known revoked.
    pub fn record(&self, key: &str, at: Millis) {
        let mut inserted = false;
        self.map.entry(key.into()).and_modify(|since| *since = (*since).min(at)).or_insert_with(|| {
            inserted = true;
            at
        });
        if inserted && self.len.fetch_add(1, Ordering::Relaxed) + 1 > self.max {
            self.shrink();
        }
    }

    /// When the fact about `key` began, if it held at `t` (began at or before it).
    pub fn since(&self, key: &str, t: Millis) -> Option<Millis> {
        if self.len.load(Ordering::Relaxed) == 0 {
            return None;
        }
        self.map.get(key).map(|since| *since).filter(|&since| since <= t)
    }

    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets the facts that began before `cutoff`; returns how many.
    pub fn forget_before(&self, cutoff: Millis) -> usize {
        if self.is_empty() {
            return 0;
        }
        self.remove_where(|since| since < cutoff)
    }

    fn shrink(&self) {
        let times: Vec<Millis> = self.map.iter().map(|e| *e.value()).collect();
        if times.len() > self.max {
            let cutoff = keep_newest(times, self.max * 9 / 10);
            self.remove_where(|since| since < cutoff);
        }
    }

    fn remove_where(&self, gone: impl Fn(Millis) -> bool) -> usize {
        let mut removed = 0;
        self.map.retain(|_, since| {
            let keep = !gone(*since);
            removed += usize::from(!keep);
            keep
        });
        self.len.fetch_sub(removed, Ordering::Relaxed);
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fact_holds_from_its_earliest_report_on() {
        let facts = Facts::default();
        assert_eq!(facts.since("AKIA1", 0), None);
        facts.record("AKIA1", 1_000);
        facts.record("AKIA1", 5_000);
        assert_eq!(facts.since("AKIA1", 999), None, "before it began");
        assert_eq!(facts.since("AKIA1", 1_000), Some(1_000));
        assert_eq!(facts.since("AKIA1", 9_000), Some(1_000), "a later report does not move it");
        facts.record("AKIA1", 500);
        assert_eq!(facts.since("AKIA1", 600), Some(500), "an earlier report does");
        assert_eq!(facts.since("AKIA2", 9_000), None);
        assert_eq!(facts.len(), 1);
    }

    #[test]
    fn old_facts_are_forgotten_and_the_count_follows() {
        let facts = Facts::default();
        for i in 0..10 {
            facts.record(&format!("k{i}"), i * DAY);
        }
        assert_eq!(facts.forget_before(4 * DAY), 4);
        assert_eq!(facts.len(), 6);
        assert_eq!(facts.since("k3", 20 * DAY), None);
        assert_eq!(facts.since("k4", 20 * DAY), Some(4 * DAY));
        assert_eq!(facts.forget_before(100 * DAY), 6);
        assert!(facts.is_empty());
    }

    #[test]
    fn past_the_ceiling_the_oldest_go_first() {
        let facts = Facts::with_capacity_limit(100);
        for i in 0..101 {
            facts.record(&format!("k{i}"), i);
        }
        assert_eq!(facts.len(), 90);
        assert_eq!(facts.since("k10", 1_000), None);
        assert_eq!(facts.since("k11", 1_000), Some(11));
        assert_eq!(facts.since("k100", 1_000), Some(100));
    }
}
