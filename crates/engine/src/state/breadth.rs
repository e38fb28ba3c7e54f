//! Reach: how many distinct targets (resources, or services and actions where an event
//! names no resource) an identity touches per window, against what it usually touches.
//!
//! A stolen key used for lateral movement touches many things it never touched, often at
//! an ordinary call rate: the rate baseline does not see it, the distinct count does. Each
//! window is a 256-bit linear-counting sketch (32 bytes whatever the count; about 5 %
//! error up to a few hundred targets, saturating near 1,400), closed into a robust EWMA
//! like the rate baseline's, and into [`DailyPeaks`] so a nightly batch's reach recurs.

use super::baseline::{CLAMP_SIGMAS, Ewma};
use super::seasonal::DailyPeaks;
use nhid_model::time::{MINUTE, Millis};

/// Windows are aligned on this much event time.
pub const WINDOW: Millis = 10 * MINUTE;
const BITS: usize = 256;
/// About one day of windows.
const ALPHA: f32 = 1.0 / 144.0;
/// Longest idle gap closed window by window (a day); longer gaps close the open one only.
const MAX_GAP_WINDOWS: i64 = 144;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Breadth {
    /// Window index (`time / WINDOW`) of the open sketch; i32 holds 40,000 years of
    /// ten-minute windows, and saves the state 8 bytes an identity.
    window: i32,
    /// In 32-bit words: the struct then aligns on 4 bytes, and takes 92 where 64-bit words
    /// padded it to 96 (the bits and their count are the same).
    sketch: [u32; BITS / 32],
    /// Distinct targets per closed window.
    pub baseline: Ewma,
    pub peaks: DailyPeaks,
    /// The widest closed window lately (halving over two days), at any time of day: the
    /// identity's own bursts (a deploy syncing a site, a function's surge).
    pub burst: f32,
}

/// What the breadth state expects of a window, for the detector.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reach {
    /// Estimated distinct targets in the open window, this event included.
    pub distinct: f32,
    pub mean: f32,
    pub sd: f32,
    /// The recurring daily peak around this time of day (0 if none).
    pub recurring: f32,
    /// The widest window lately ([`Breadth::burst`]).
    pub burst: f32,
}

impl Breadth {
    pub fn new(time: Millis) -> Self {
        Breadth {
            window: time.div_euclid(WINDOW) as i32,
            sketch: [0; BITS / 32],
            baseline: Ewma::with_prior(1.0, 1.0),
            peaks: DailyPeaks::default(),
            burst: 0.0,
        }
    }

    /// Counts one target (a fingerprint), first closing the open window when `time` is in a
    /// later one; returns the reach as of this event. Late events count in the open window.
    pub fn record(&mut self, time: Millis, target: u32, learning: bool, born: Millis) -> Reach {
        let window = time.div_euclid(WINDOW) as i32;
        if window > self.window {
            self.close(self.window, self.estimate(), learning);
            let gap = window - self.window - 1;
            for w in (self.window + 1..window).skip((i64::from(gap) - MAX_GAP_WINDOWS).max(0) as usize) {
                self.close(w, 0.0, learning);
            }
            self.window = window;
            self.sketch = [0; BITS / 32];
        }
        // The high bits: xxh3's low bits feed the fingerprint sets' comparisons already.
        let bit = (target >> 23) as usize % BITS;
        self.sketch[bit / 32] |= 1 << (bit % 32);
        let distinct = self.estimate();
        Reach {
            distinct,
            mean: self.baseline.mean,
            sd: self.baseline.sd().max(self.baseline.mean.sqrt()).max(1.0),
            // Only a window above the usual needs it: no threshold lies below the mean.
            recurring: if distinct > self.baseline.mean { self.peaks.recurring(time, born) } else { 0.0 },
            burst: self.burst,
        }
    }

    /// Linear counting: `-m ln(zero bits / m)`.
    fn estimate(&self) -> f32 {
        let set: u32 = self.sketch.iter().map(|w| w.count_ones()).sum();
        let zeros = (BITS as u32 - set).max(1) as f32;
        -(BITS as f32) * (zeros / BITS as f32).ln()
    }

    fn close(&mut self, window: i32, distinct: f32, learning: bool) {
        let sd = self.baseline.sd().max(self.baseline.mean.sqrt()).max(1.0);
        self.baseline.update(distinct, ALPHA, learning, self.baseline.mean + CLAMP_SIGMAS * sd);
        self.peaks.record(i64::from(window) * WINDOW, distinct);
        // 288 windows in two days: halved over them.
        self.burst = (self.burst * 0.5f32.powf(1.0 / 288.0)).max(distinct);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::sets::fingerprint;

    #[test]
    fn estimates_track_distinct_targets_not_calls() {
        let mut b = Breadth::new(0);
        let mut reach = None;
        for i in 0..1_000 {
            reach = Some(b.record(i, fingerprint(&format!("obj-{}", i % 7)), true, 0));
        }
        assert!((reach.unwrap().distinct - 7.0).abs() < 1.0, "{reach:?}");
        for i in 0..200 {
            reach = Some(b.record(1_000 + i, fingerprint(&format!("arn:aws:s3:::other/{i}")), true, 0));
        }
        let d = reach.unwrap().distinct;
        assert!((190.0..230.0).contains(&d), "{d}");
    }

    #[test]
    fn closed_windows_teach_the_mean_and_spikes_are_clamped_after_learning() {
        let mut b = Breadth::new(0);
        for w in 0..300 {
            for i in 0..10 {
                b.record(w * WINDOW + i, fingerprint(&format!("t{i}")), w < 150, 0);
            }
        }
        assert!((b.baseline.mean - 10.0).abs() < 1.0, "{:?}", b.baseline);
        let mean_before = b.baseline.mean;
        // One window touching 300 targets, then ordinary windows: clamped, barely moves.
        for i in 0..300 {
            b.record(300 * WINDOW + i, fingerprint(&format!("x{i}")), false, 0);
        }
        b.record(301 * WINDOW, fingerprint("t0"), false, 0);
        assert!(b.baseline.mean < mean_before + 1.0, "{:?}", b.baseline);
    }
}
