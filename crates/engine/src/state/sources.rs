//! Which workloads hold a credential right now: the distinct (network, user agent) pairs
//! that used each credential within the last [`CONCURRENT`].
//!
//! One workload presents a credential from one place. The same key or token used at the
//! same time from more places than the identity usually uses it from has been copied:
//! attribution collapses, and one of the holders is probably not the owner.
//!
//! "Usually" is what the identity did while learning, or what it did on each of the two
//! previous days (a fleet that grew for good is accepted after two days, as seasonality
//! accepts a new nightly batch). A copy seen once teaches nothing: a second copy of a later
//! token fires again.

use nhid_model::time::{DAY, MINUTE, Millis};

/// Uses this close together count as concurrent.
pub const CONCURRENT: Millis = 10 * MINUTE;
/// Pairs remembered per identity; a credential used from more places at once than this
/// saturates the count (the detector then has nothing to compare against).
pub const SLOTS: usize = 4;

#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Use {
    credential: u32,
    source: u32,
    /// Event time in seconds (u32 holds them until 2106); 0 marks an empty slot.
    at: u32,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sources {
    uses: [Use; SLOTS],
    /// The most distinct sources one credential had at once while the identity learned.
    learned: u8,
    /// The most on each of the last three days, today first.
    days: [u8; 3],
    /// Day index (`time / DAY`) of `days[0]`.
    day: i32,
}

impl Sources {
    /// A credential of the identity moved between places while it learned: its workloads
    /// carry tokens around (two places per credential is its usual).
    pub fn learn_roaming(&mut self) {
        self.learned = self.learned.max(2);
    }

    /// Records that `credential` was used from `source` at `time`; returns how many distinct
    /// sources used it within [`CONCURRENT`] (this one included) and the usual most.
    pub fn record(&mut self, credential: u32, source: u32, time: Millis, learning: bool) -> (u8, u8) {
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
        let concurrent =
            self.uses.iter().filter(|u| u.credential == credential && u.at != 0 && u.at >= since).count() as u8;
        let day = time.div_euclid(DAY) as i32;
        if day > self.day {
            let shift = (day - self.day) as usize;
            self.days = std::array::from_fn(|i| if i >= shift { self.days[i - shift] } else { 0 });
            self.day = day;
        }
        let usual = self.learned.max(self.days[1].min(self.days[2]));
        if day == self.day {
            self.days[0] = self.days[0].max(concurrent);
        }
        if learning {
            self.learned = self.learned.max(concurrent);
        }
        (concurrent, usual)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Millis = 1_800_000_000_000 - 1_800_000_000_000 % DAY;

    #[test]
    fn counts_distinct_sources_of_one_credential_within_the_window() {
        let mut s = Sources::default();
        assert_eq!(s.record(1, 10, T, true), (1, 0));
        assert_eq!(s.record(1, 10, T + 1_000, true), (1, 1), "the same place again");
        assert_eq!(s.record(2, 20, T + 2_000, true), (1, 1), "another credential is counted apart");
        assert_eq!(s.record(1, 11, T + 3_000, false), (2, 1));
        // Eleven minutes later the first place has gone quiet: one at a time again.
        assert_eq!(s.record(1, 12, T + 11 * MINUTE, false).0, 1);
    }

    #[test]
    fn a_copy_teaches_nothing_a_lasting_change_is_accepted_after_two_days() {
        let mut s = Sources::default();
        s.record(1, 10, T, true);
        assert_eq!(s.record(1, 11, T + MINUTE, false), (2, 1), "a copy");
        assert_eq!(s.record(2, 10, T + 5 * HOUR_MS, false), (1, 1));
        assert_eq!(s.record(2, 11, T + 5 * HOUR_MS + 1_000, false), (2, 1), "a later token copied too: still unusual");
        // Two places every day from then on: on the third day it is the usual.
        for d in 1..=3 {
            let t = T + d * DAY + HOUR_MS;
            s.record(3, 10, t, false);
            let (n, usual) = s.record(3, 11, t + 1_000, false);
            assert_eq!((n, usual), (2, if d < 2 { 1 } else { 2 }), "day {d}");
        }
    }

    #[test]
    fn a_full_ring_forgets_the_least_recently_used() {
        let mut s = Sources::default();
        for i in 0..SLOTS as u32 + 2 {
            s.record(7, i, T + i64::from(i) * 1_000, true);
        }
        assert_eq!(s.learned as usize, SLOTS);
        assert_eq!(s.record(7, 0, T + 20_000, true).0 as usize, SLOTS, "re-entered, still saturated");
    }

    const HOUR_MS: Millis = 60 * MINUTE;
}
