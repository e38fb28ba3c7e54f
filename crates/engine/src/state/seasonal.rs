//! Seasonality: what recurs at the same time every day is not an anomaly.
//!
//! The rate baseline's hour profile learns slowly, and after learning it clamps what is far
//! above it, so that a slow ramp cannot teach it to accept exfiltration. A nightly batch
//! that starts after learning would then alert every night for ever. [`DailyPeaks`] keeps,
//! per two-hour slot of the UTC day, the peak of a per-window metric (calls in a minute,
//! distinct targets in a window) of today, yesterday and the day before, unclamped. A peak
//! that recurred on each of the previous two days (or every previous day of a younger
//! identity) is the identity's own pattern: detectors ask for [`MARGIN`] times it before
//! they fire. So a new batch alerts on its first two nights and is quiet from the third (the
//! rate kinds' burst floor, `baseline::RateBaseline::bursts`, quiets it from the second),
//! while an attacker at twice the batch's peak, or at any other time of day, still is not.

use nhid_model::time::{DAY, HOUR, Millis};

/// Two-hour slots: a batch whose start wanders by tens of minutes stays in one slot or
/// its neighbour, and the state stays small (36 bytes a metric).
const SLOT: Millis = 2 * HOUR;
const SLOTS: usize = (DAY / SLOT) as usize;
/// Days remembered: today and the two before it.
const DAYS: usize = 3;
/// How far above a recurring peak a value must be to count as an anomaly: day-to-day
/// variation of a batch (±20 %) and the noise of its busiest minute stay well within it.
pub const MARGIN: f32 = 2.0;
/// Quantization: eight steps per doubling, about 9 % apart; 255 steps reach past 10⁹.
const STEPS_PER_DOUBLING: f32 = 8.0;

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DailyPeaks {
    /// Day index (`time / DAY`) of row 0.
    day: i32,
    /// Row 0 is `day`, row 1 the day before, row 2 the day before that; log-quantized.
    peaks: [[u8; SLOTS]; DAYS],
}

fn quantize(x: f32) -> u8 {
    // Rounded up: a recorded peak is never below the value it records.
    ((1.0 + x.max(0.0)).log2() * STEPS_PER_DOUBLING).ceil().min(255.0) as u8
}

fn dequantize(q: u8) -> f32 {
    (f32::from(q) / STEPS_PER_DOUBLING).exp2() - 1.0
}

fn slot_of(t: Millis) -> usize {
    (t.rem_euclid(DAY) / SLOT) as usize
}

impl DailyPeaks {
    /// Records `value`, measured in the window ending at or containing `t`.
    pub fn record(&mut self, t: Millis, value: f32) {
        let day = t.div_euclid(DAY) as i32;
        if day > self.day {
            let shift = (day - self.day) as usize;
            for row in (0..DAYS).rev() {
                self.peaks[row] = if row >= shift { self.peaks[row - shift] } else { [0; SLOTS] };
            }
            self.day = day;
        } else if day < self.day {
            // Late data from a day already rotated out of row 0: only its own row takes it.
            let row = (self.day - day) as usize;
            if row < DAYS {
                let q = &mut self.peaks[row][slot_of(t)];
                *q = (*q).max(quantize(value));
            }
            return;
        }
        let q = &mut self.peaks[0][slot_of(t)];
        *q = (*q).max(quantize(value));
    }

    /// The peak that recurred around `t`'s time of day on each previous day the identity
    /// existed at that time (`born`: its first event), the last two at most; 0 when there
    /// is no such day or it did not recur. The slots either side are included: a batch
    /// crossing a slot boundary one night and not the next is the same batch.
    pub fn recurring(&self, t: Millis, born: Millis) -> f32 {
        let day = t.div_euclid(DAY);
        let slot = slot_of(t);
        let mut best = 0u8;
        for s in [(slot + SLOTS - 1) % SLOTS, slot, (slot + 1) % SLOTS] {
            // The neighbour of the first slot is the previous day's last one, and so on:
            // the same clock time, the day it belongs to.
            let shift = match (slot, s) {
                (0, s) if s == SLOTS - 1 => -1,
                (last, 0) if last == SLOTS - 1 => 1,
                _ => 0,
            };
            let mut least: Option<u8> = None;
            for back in 1..=2i64 {
                let d = day - back + shift;
                if d * DAY + s as Millis * SLOT + SLOT <= born {
                    break; // the identity did not exist yet then: not a day it could repeat on
                }
                let row = i64::from(self.day) - d;
                let q = if (0..DAYS as i64).contains(&row) { self.peaks[row as usize][s] } else { 0 };
                least = Some(least.map_or(q, |l| l.min(q)));
            }
            best = best.max(least.unwrap_or(0));
        }
        if best == 0 { 0.0 } else { dequantize(best) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nhid_model::time::MINUTE;

    const D: Millis = 1_000 * DAY;

    #[test]
    fn quantization_rounds_up_within_ten_percent() {
        for x in [1.0f32, 7.0, 30.0, 150.0, 4_000.0] {
            let back = dequantize(quantize(x));
            assert!(back >= x && back <= x * 1.1, "{x} -> {back}");
        }
        assert_eq!(dequantize(quantize(0.0)), 0.0);
    }

    #[test]
    fn a_batch_recurs_once_seen_on_the_two_previous_days() {
        let mut p = DailyPeaks::default();
        let batch = |day: i64| D + day * DAY + 2 * HOUR + 20 * MINUTE;
        let born = D - 10 * DAY;
        p.record(batch(0) - 5 * HOUR, 3.0); // an ordinary evening before the first batch
        p.record(batch(0), 150.0);
        assert_eq!(p.recurring(batch(1), born), 0.0, "seen once: the day before did not have it");
        p.record(batch(1), 140.0);
        let r = p.recurring(batch(2), born);
        assert!((140.0..155.0).contains(&r), "{r}: the lesser of the two nights");
        // At another time of day nothing recurs.
        assert_eq!(p.recurring(batch(2) + 8 * HOUR, born), 0.0);
        // A night off breaks the pattern.
        p.record(batch(3) + 12 * HOUR, 2.0);
        assert_eq!(p.recurring(batch(4), born), 0.0);
    }

    #[test]
    fn a_young_identity_needs_only_the_days_it_lived() {
        let mut p = DailyPeaks::default();
        let born = D + 2 * HOUR; // first seen in the middle of the night's batch
        p.record(born, 80.0);
        assert!(p.recurring(born + DAY, born) >= 80.0);
        // Before it was born, its first day's slot is not one it could repeat on.
        assert_eq!(p.recurring(D + DAY + 12 * HOUR, born), 0.0);
    }

    #[test]
    fn neighbouring_slots_and_midnight_count_as_the_same_time() {
        let mut p = DailyPeaks::default();
        let born = D - 10 * DAY;
        // A batch from 23:50 to past midnight, two nights running; asked on the third
        // night at 00:10 (slot 0 of the next day), twenty minutes into that night's batch.
        for night in 0..3 {
            p.record(D + night * DAY + 23 * HOUR + 50 * MINUTE, 60.0);
        }
        assert!(p.recurring(D + 3 * DAY + 10 * MINUTE, born) >= 60.0);
        // On the second night only one earlier night had it.
        let mut q = DailyPeaks::default();
        q.record(D + 23 * HOUR + 50 * MINUTE, 60.0);
        q.record(D + DAY + 23 * HOUR + 50 * MINUTE, 60.0);
        assert_eq!(q.recurring(D + 2 * DAY + 10 * MINUTE, born), 0.0);
    }

    #[test]
    fn long_gaps_forget_everything() {
        let mut p = DailyPeaks::default();
        let born = D - 10 * DAY;
        p.record(D, 50.0);
        p.record(D + DAY, 50.0);
        p.record(D + 10 * DAY + 5 * HOUR, 1.0);
        assert_eq!(p.recurring(D + 11 * DAY, born), 0.0);
    }
}
