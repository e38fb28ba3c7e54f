//! Which workloads hold a credential right now: the distinct (network, user agent) pairs
//! that used each credential within the last [`CONCURRENT`].
//!
//! One workload presents a credential from one place. The same key or token used at the
//! same time from more places than the identity ever used it from has been copied:
//! attribution collapses, and one of the holders is probably not the owner.

use crate::time::{MINUTE, Millis};

/// Uses this close together count as concurrent.
pub const CONCURRENT: Millis = 10 * MINUTE;
/// Pairs remembered per identity; a credential used from more places at once than this
/// saturates the count (the detector then has nothing to compare against).
pub const SLOTS: usize = 6;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Use {
    credential: u32,
    source: u32,
    /// Event time in seconds (u32 holds them until 2106); 0 marks an empty slot.
    at: u32,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sources {
    uses: [Use; SLOTS],
    /// The most distinct sources any one credential had at once so far.
    pub peak: u8,
}

impl Sources {
    /// Records that `credential` was used from `source` at `time`; returns how many distinct
    /// sources used it within [`CONCURRENT`] (this one included) and the peak before it.
    pub fn record(&mut self, credential: u32, source: u32, time: Millis) -> (u8, u8) {
        let at = (time / 1_000).clamp(1, i64::from(u32::MAX)) as u32;
        let since = at.saturating_sub((CONCURRENT / 1_000) as u32);
        match self.uses.iter_mut().find(|u| u.at != 0 && u.credential == credential && u.source == source) {
            Some(u) => u.at = u.at.max(at),
            None => {
                // The least recently used slot (empty ones first) takes it.
                if let Some(u) = self.uses.iter_mut().min_by_key(|u| u.at) {
                    *u = Use { credential, source, at };
                }
            }
        }
        let concurrent = self.uses.iter().filter(|u| u.credential == credential && u.at != 0 && u.at >= since).count();
        let before = self.peak;
        self.peak = self.peak.max(concurrent as u8);
        (concurrent as u8, before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Millis = 1_800_000_000_000;

    #[test]
    fn counts_distinct_sources_of_one_credential_within_the_window() {
        let mut s = Sources::default();
        assert_eq!(s.record(1, 10, T), (1, 0));
        assert_eq!(s.record(1, 10, T + 1_000), (1, 1), "the same place again");
        assert_eq!(s.record(2, 20, T + 2_000), (1, 1), "another credential is counted apart");
        assert_eq!(s.record(1, 11, T + 3_000), (2, 1));
        assert_eq!(s.peak, 2);
        // Eleven minutes later the first place has gone quiet: one at a time again.
        assert_eq!(s.record(1, 12, T + 11 * MINUTE), (1, 2));
    }

    #[test]
    fn a_full_ring_forgets_the_least_recently_used() {
        let mut s = Sources::default();
        for i in 0..SLOTS as u32 + 2 {
            s.record(7, i, T + i64::from(i) * 1_000);
        }
        assert_eq!(s.peak as usize, SLOTS);
        assert_eq!(s.record(7, 0, T + 20_000).0 as usize, SLOTS, "re-entered, still saturated");
    }
}
