//! Per-minute event-rate baselines: robust EWMAs on a short and a long horizon plus an
//! hour-of-day profile, fed by closed minute buckets.
//!
//! Robustness: a closed bucket far above the baseline is clamped to `mean + CLAMP_SIGMAS·σ`
//! before it updates anything, so neither a spike nor a slow ramp (each step of which is
//! clamped against the long horizon) can teach the baseline to accept exfiltration.

use super::seasonal::{self, DailyPeaks};
use nhid_model::time::{MINUTE, Millis, hour_of_day};

/// Bucket values above this many standard deviations are clamped before learning.
pub const CLAMP_SIGMAS: f32 = 3.0;
/// Short horizon: about 15 minutes; follows legitimate changes within the hour.
const SHORT_ALPHA: f32 = 1.0 / 15.0;
/// Long horizon: about one day of minutes.
const LONG_ALPHA: f32 = 1.0 / 1_440.0;
/// Hour-of-day profile: each hour gets 60 samples a day; remembers about three days.
const PROFILE_ALPHA: f32 = 1.0 / 180.0;
/// Longest idle gap replayed minute by minute; longer gaps restart the open bucket only.
const MAX_GAP_MINUTES: i64 = 1_440;
/// The windows counts are tested over, in minutes: a burst shows in one minute, a slow
/// exfiltration below any per-minute bar in a quarter or a whole hour.
pub const WINDOWS: [i64; 4] = [1, 5, 15, 60];

/// A peak after one more closed bucket of `w` minutes holding `count`.
fn decayed_peak(peak: f32, count: f32, w: i64) -> f32 {
    (peak * 0.5f32.powf((w * MINUTE) as f32 / PEAK_HALF_LIFE as f32)).max(count)
}

/// Calls in the open and the previous aligned bucket of each window longer than a minute:
/// the count over the last `w` minutes is estimated as the open bucket plus the previous
/// one's share that still lies inside them (a sliding-window counter, 8 bytes a window).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Windows([[u32; 2]; WINDOWS.len() - 1]);

impl Windows {
    /// Moves from minute `from` to the later minute `to`; `closed` is called with each
    /// window's index and the count of every bucket that closed (idle ones as 0, a day's
    /// worth at most).
    fn roll(&mut self, from: i64, to: i64, mut closed: impl FnMut(usize, f32)) {
        for (i, (b, &w)) in self.0.iter_mut().zip(&WINDOWS[1..]).enumerate() {
            let passed = to.div_euclid(w) - from.div_euclid(w);
            if passed >= 1 {
                closed(i, b[0] as f32);
                for _ in 1..passed.min(MAX_GAP_MINUTES / w) {
                    closed(i, 0.0);
                }
            }
            match passed {
                0 => {}
                1 => *b = [0, b[0]],
                _ => *b = [0, 0],
            }
        }
    }

    /// The count of the open bucket of the longest window: calls in the open UTC hour (its
    /// buckets are aligned on whole hours of the minute index, and it is reset exactly when
    /// an event opens a later hour).
    pub fn open_hour(&self) -> u32 {
        const { assert!(WINDOWS[WINDOWS.len() - 1] == 60, "the longest window is the hour") };
        self.0[WINDOWS.len() - 2][0]
    }

    fn add(&mut self) {
        for b in &mut self.0 {
            b[0] = b[0].saturating_add(1);
        }
    }

    /// The counts over the last 1, 5, 15 and 60 minutes at `minute` (the open one),
    /// given the open minute's own count.
    pub fn counts(&self, minute: i64, open: u32) -> [u32; WINDOWS.len()] {
        let mut out = [open; WINDOWS.len()];
        for ((o, b), &w) in out[1..].iter_mut().zip(&self.0).zip(&WINDOWS[1..]) {
            let elapsed = minute.rem_euclid(w) + 1;
            *o = b[0].saturating_add((u64::from(b[1]) * (w - elapsed) as u64 / w as u64) as u32);
        }
        out
    }
}

/// Exponentially weighted mean and variance. While the identity is learning, the first
/// samples are averaged (`alpha = 1/(n+1)`, bias-free) until that is smaller than the
/// horizon's alpha; once learned, only the horizon's alpha applies, so nothing unseen
/// during learning can be taught quickly afterwards.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Ewma {
    pub mean: f32,
    pub var: f32,
    /// Samples taken, saturating; only used for the warm start.
    n: u16,
}

impl Ewma {
    pub fn with_prior(mean: f32, var: f32) -> Self {
        Ewma { mean, var, n: 0 }
    }

    pub fn update(&mut self, x: f32, alpha: f32, learning: bool, clamp: f32) {
        ewma_step(&mut self.mean, &mut self.var, u32::from(self.n), x, alpha, learning, clamp);
        self.n = self.n.saturating_add(1);
    }

    pub fn sd(&self) -> f32 {
        self.var.max(0.0).sqrt()
    }
}

/// An [`Ewma`] without its own sample count, for series that are all updated together
/// with one count kept beside them: the short and long horizons and the denials model are
/// each updated once per closed minute, so their counts always equalled
/// [`RateBaseline::minutes`] (saturated as `Ewma`'s `u16` saturates). 8 bytes where an
/// `Ewma` takes 12, its count and padding, on every identity.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Moments {
    pub mean: f32,
    pub var: f32,
}

impl Moments {
    pub fn with_prior(mean: f32, var: f32) -> Self {
        Moments { mean, var }
    }

    /// As [`Ewma::update`] for a series that has taken `n` samples.
    fn update(&mut self, n: u32, x: f32, alpha: f32, learning: bool, clamp: f32) {
        ewma_step(&mut self.mean, &mut self.var, n, x, alpha, learning, clamp);
    }

    pub fn sd(&self) -> f32 {
        self.var.max(0.0).sqrt()
    }
}

/// Folds one sample `x` into an EWMA mean and variance that has taken `n` samples.
/// `clamp`, once learned, is the most a sample may count for: above it the sample is
/// anomalous, moves the mean only up to the clamp, and adds to the variance no more than
/// one deviation — otherwise sustained abuse would widen the variance, which widens the
/// clamp, which widens the variance, exponentially.
fn ewma_step(mean: &mut f32, var: &mut f32, n: u32, x: f32, alpha: f32, learning: bool, clamp: f32) {
    let a = if learning { alpha.max(1.0 / (n as f32 + 1.0)) } else { alpha };
    let (x, anomalous) = if !learning && x > clamp { (clamp, true) } else { (x, false) };
    let d = x - *mean;
    let dv = if anomalous { d.min(var.max(0.0).sqrt()) } else { d };
    *mean += a * d;
    *var = (1.0 - a) * (*var + a * dv * dv);
}

/// Mean and variance of events per minute for each UTC hour of day, as parallel arrays
/// (a third smaller than 24 `Ewma`s; this is most of an identity's memory).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HourProfile {
    pub mean: [f32; 24],
    pub var: [f32; 24],
    /// Samples per hour, saturating; the warm start needs at most 1/alpha of them.
    n: [u8; 24],
}

impl HourProfile {
    fn new(mean: f32, var: f32) -> Self {
        HourProfile { mean: [mean; 24], var: [var; 24], n: [0; 24] }
    }

    fn update(&mut self, h: usize, x: f32, learning: bool, clamp: f32) {
        ewma_step(&mut self.mean[h], &mut self.var[h], u32::from(self.n[h]), x, PROFILE_ALPHA, learning, clamp);
        self.n[h] = self.n[h].saturating_add(1);
    }

    fn sd(&self, h: usize) -> f32 {
        self.var[h].max(0.0).sqrt()
    }
}

/// What the rate baseline expects for a minute, and how much it varies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Expectation {
    pub mean: f32,
    pub sd: f32,
    /// The count model's variance per minute: what the identity's minutes actually vary
    /// by, and at least the mean (a Poisson process); no floor of one call, which `sd`
    /// keeps for the clamp.
    pub var: f32,
    /// The slow parts alone (long horizon and hour profile): what windows longer than a
    /// minute are judged by, as the short horizon follows the very change they look for.
    pub slow_mean: f32,
    pub slow_var: f32,
    /// The busiest minute that recurred around this time of day on the previous days
    /// (a nightly batch), 0 if none: see [`seasonal`].
    pub recurring: f32,
}

impl Expectation {
    /// Smallest count that is `z` deviations and `ratio` times above the expectation, and
    /// [`seasonal::MARGIN`] times above a recurring daily peak.
    pub fn threshold(&self, z: f32, ratio: f32) -> f32 {
        (self.mean + z * self.sd).max(ratio * self.mean).max(seasonal::MARGIN * self.recurring)
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RateBaseline {
    /// Minute index (`time / MINUTE`) of the open bucket.
    pub minute: i64,
    /// Events and denied/failed events in the open minute.
    pub count: u32,
    pub denied: u32,
    pub short: Moments,
    pub long: Moments,
    /// Mean and variance of events per minute for each UTC hour of day, so that diurnal
    /// and nightly-batch identities are compared with the same hour, not the daily average.
    /// The variance matters: a batch filling half its hour makes that hour's minutes
    /// bimodal, and its mean alone would make every batch minute look like a spike.
    pub profile: HourProfile,
    /// Closed minutes fed into the baseline (saturating).
    pub minutes: u32,
    /// Per-minute peaks of the last three days by time of day, unclamped: seasonality.
    pub peaks: DailyPeaks,
    /// Denied or failed calls per minute: the count model of `denied_burst`.
    pub denials: Moments,
    /// Sliding counts of calls and of denials over the longer windows.
    pub calls_in: Windows,
    pub denied_in: Windows,
    /// Calls per closed 5-, 15- and 60-minute bucket, learned as the minutes are: their
    /// variance is what a window's count varies by, which bursts spanning minutes make far
    /// more than `w` times a minute's.
    pub per_window: [Ewma; WINDOWS.len() - 1],
    /// The busiest closed bucket of each window of [`WINDOWS`] lately (halving over
    /// [`PEAK_HALF_LIFE`]), unclamped: the identity's own bursts at any time of day (a
    /// function's traffic surges, a backlog drained); a count needs [`seasonal::MARGIN`]
    /// times it to be a finding, as a daily recurring peak does.
    pub bursts: [f32; WINDOWS.len()],
}

/// How fast a burst is forgotten: two days.
const PEAK_HALF_LIFE: Millis = 2 * nhid_model::time::DAY;

impl RateBaseline {
    pub fn new(time: Millis, prior_mean: f32) -> Self {
        RateBaseline {
            minute: time.div_euclid(MINUTE),
            count: 0,
            denied: 0,
            short: Moments::with_prior(prior_mean, prior_mean.max(1.0)),
            long: Moments::with_prior(prior_mean, prior_mean.max(1.0)),
            profile: HourProfile::new(prior_mean, prior_mean.max(1.0)),
            minutes: 0,
            peaks: DailyPeaks::default(),
            denials: Moments::default(),
            calls_in: Windows::default(),
            denied_in: Windows::default(),
            bursts: [0.0; WINDOWS.len()],
            per_window: std::array::from_fn(|i| {
                let w = WINDOWS[i + 1] as f32;
                Ewma::with_prior(w * prior_mean, w * prior_mean.max(1.0))
            }),
        }
    }

    /// Counts one event, first closing the open minute (and idle minutes) when `time` is in a
    /// later minute. An event from an earlier minute than the open one counts in the open one:
    /// lateness is tolerated, never re-opens a closed bucket. `learning` disables clamping,
    /// so the identity's real level is learned first.
    pub fn record(&mut self, time: Millis, denied: bool, learning: bool) {
        let minute = time.div_euclid(MINUTE);
        if minute > self.minute {
            let count = self.count as f32;
            self.close(self.minute, count, self.denied as f32, learning);
            let gap = minute - self.minute - 1;
            for m in (self.minute + 1..minute).skip((gap - MAX_GAP_MINUTES).max(0) as usize) {
                self.close(m, 0.0, 0.0, learning);
            }
            let (per_window, bursts) = (&mut self.per_window, &mut self.bursts);
            bursts[0] = decayed_peak(bursts[0], count, 1);
            self.calls_in.roll(self.minute, minute, |i, count| {
                let e = per_window[i];
                let alpha = WINDOWS[i + 1] as f32 * LONG_ALPHA;
                per_window[i].update(count, alpha, learning, e.mean + CLAMP_SIGMAS * e.sd().max(1.0));
                bursts[i + 1] = decayed_peak(bursts[i + 1], count, WINDOWS[i + 1]);
            });
            self.denied_in.roll(self.minute, minute, |_, _| {});
            self.minute = minute;
            self.count = 0;
            self.denied = 0;
        }
        self.count = self.count.saturating_add(1);
        self.calls_in.add();
        if denied {
            self.denied = self.denied.saturating_add(1);
            self.denied_in.add();
        }
    }

    /// What a minute at `time` is expected to hold: the highest of the short horizon, the
    /// long horizon and the hour profile around that hour (±1 h absorbs batch-start jitter).
    /// The deviation is at least Poisson (`√mean`) and at least one event.
    /// `born` is the identity's first event: days before it are not days a pattern could
    /// have recurred on.
    pub fn expectation(&self, time: Millis, born: Millis) -> Expectation {
        Expectation { recurring: self.peaks.recurring(time, born), ..self.expectation_without_seasonality(time) }
    }

    /// [`RateBaseline::expectation`] without the recurring peak, which only a minute above
    /// the mean needs (no threshold lies below it): the per-event path fills it in then.
    pub fn expectation_without_seasonality(&self, time: Millis) -> Expectation {
        let slow = self.slow_expectation(time);
        let mean = slow.mean.max(self.short.mean);
        let sd = slow.sd.max(self.short.sd()).max(mean.sqrt());
        let var = slow.var.max(self.short.var).max(mean);
        Expectation { mean, sd, var, slow_mean: slow.mean, slow_var: slow.var, recurring: 0.0 }
    }

    /// The expectation of the slow parts only (long horizon and hour profile). Clamping is
    /// measured against it: were the short horizon included, sustained abuse could ratchet
    /// the bound up by 3σ every few minutes.
    pub fn slow_expectation(&self, time: Millis) -> Expectation {
        let h = hour_of_day(time);
        let around = [(h + 23) % 24, h, (h + 1) % 24];
        let profile = around.iter().map(|&i| self.profile.mean[i]).fold(0.0, f32::max);
        let profile_sd = around.iter().map(|&i| self.profile.sd(i)).fold(0.0, f32::max);
        let mean = self.long.mean.max(profile);
        let sd = self.long.sd().max(profile_sd).max(mean.sqrt()).max(1.0);
        let var = self.long.var.max(profile_sd * profile_sd).max(mean);
        Expectation { mean, sd, var, slow_mean: mean, slow_var: var, recurring: 0.0 }
    }

    /// Events per minute on the short horizon as of `time`: the open minute and the idle
    /// minutes since then folded in as the next event would fold them (clamping and the
    /// learning warm start aside), without changing the state. An identity that went quiet
    /// an hour ago reads near zero, not at the level of its last busy minute.
    pub fn recent_at(&self, time: Millis) -> f32 {
        let idle = time.div_euclid(MINUTE) - self.minute;
        if idle <= 0 {
            return self.short.mean;
        }
        let closed = self.short.mean + SHORT_ALPHA * (self.count as f32 - self.short.mean);
        closed * (1.0 - SHORT_ALPHA).powi((idle - 1).min(100_000) as i32)
    }

    /// The count model of each window of [`WINDOWS`] as of `e` (this minute's
    /// expectation): mean and variance. The minute is `e`'s own; a longer window expects
    /// `w` times the slow baseline's minute (the hour's level) and varies by what its own
    /// buckets varied by, at least `w` times a minute's.
    pub fn window_models(&self, e: &Expectation) -> [(f32, f32); WINDOWS.len()] {
        let mut out = [(e.mean, e.var); WINDOWS.len()];
        for ((o, m), &w) in out[1..].iter_mut().zip(&self.per_window).zip(&WINDOWS[1..]) {
            let w = w as f32;
            *o = ((w * e.slow_mean).max(m.mean), (w * e.slow_var).max(m.var));
        }
        out
    }

    /// What the denials model expects of a minute: its mean and variance (at least
    /// Poisson).
    pub fn denials_expected(&self) -> (f32, f32) {
        (self.denials.mean, self.denials.var.max(self.denials.mean))
    }

    fn close(&mut self, minute: i64, count: f32, denied: f32, learning: bool) {
        let time = minute * MINUTE;
        // The samples each of the three minute series has taken: one per closed minute.
        let n = self.minutes.min(u32::from(u16::MAX));
        let d = self.denials;
        self.denials.update(n, denied, LONG_ALPHA, learning, d.mean + CLAMP_SIGMAS * d.sd().max(1.0));
        let e = self.slow_expectation(time);
        let clamp = e.mean + CLAMP_SIGMAS * e.sd;
        self.short.update(n, count, SHORT_ALPHA, learning, clamp);
        self.long.update(n, count, LONG_ALPHA, learning, clamp);
        self.profile.update(hour_of_day(time), count, learning, clamp);
        self.peaks.record(time, count);
        self.minutes = self.minutes.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nhid_model::time::HOUR;
    use proptest::prelude::*;

    #[test]
    fn the_recent_rate_decays_while_the_identity_is_idle() {
        let mut b = RateBaseline::new(0, 2.0);
        feed(&mut b, 0, &[30; 60], true);
        let busy = b.recent_at(59 * MINUTE);
        assert!(busy > 25.0, "{busy}");
        // The open minute (59) closes at 60 as the next event would close it.
        assert!((b.recent_at(60 * MINUTE) - (busy + SHORT_ALPHA * (30.0 - busy))).abs() < 1e-3);
        let later = b.recent_at(120 * MINUTE);
        assert!(later < busy * 0.05, "an hour idle: {later}");
    }

    fn feed(b: &mut RateBaseline, start_minute: i64, counts: &[u32], learning: bool) {
        for (i, &c) in counts.iter().enumerate() {
            let t = (start_minute + i as i64) * MINUTE;
            for k in 0..c {
                b.record(t + i64::from(k) % MINUTE, false, learning);
            }
        }
    }

    #[test]
    fn learns_a_steady_rate() {
        let mut b = RateBaseline::new(0, 0.0);
        feed(&mut b, 0, &[10; 600], true);
        let e = b.expectation(600 * MINUTE, 0);
        assert!((e.mean - 10.0).abs() < 0.5, "{e:?}");
        assert!(e.threshold(6.0, 4.0) >= 40.0);
    }

    #[test]
    fn a_slow_ramp_does_not_teach_the_baseline_to_accept_a_spike() {
        let mut b = RateBaseline::new(0, 0.0);
        feed(&mut b, 0, &[10; 1_440], true);
        // Three hours ramping from 10 to 30 per minute, then a spike of 300.
        let ramp: Vec<u32> = (0..180).map(|i| 10 + i * 20 / 180).collect();
        feed(&mut b, 1_440, &ramp, false);
        let e = b.expectation((1_440 + 180) * MINUTE, 0);
        assert!(e.threshold(6.0, 4.0) < 300.0, "spike would be accepted: {e:?}");
        // Without clamping the long horizon would have followed; with it, it barely moved.
        assert!(b.long.mean < 12.0, "{:?}", b.long);
    }

    #[test]
    fn a_spike_is_clamped_before_it_updates_the_baseline() {
        let mut b = RateBaseline::new(0, 0.0);
        feed(&mut b, 0, &[5; 1_440], true);
        let before = b.long.mean;
        feed(&mut b, 1_440, &[500; 10], false);
        assert!(b.long.mean < before + 0.2, "{} -> {}", before, b.long.mean);
    }

    #[test]
    fn idle_minutes_count_as_zero_and_the_hour_profile_remembers_a_nightly_batch() {
        let mut b = RateBaseline::new(0, 0.0);
        for day in 0..2 {
            // One event an hour all day, and 50 a minute for 40 minutes at 02:20.
            for h in 0..24 {
                let t = day * 1_440 + h * 60;
                if h == 2 {
                    feed(&mut b, t + 20, &[50; 40], true);
                } else {
                    feed(&mut b, t, &[1], true);
                }
            }
        }
        let night = b.expectation(2 * 24 * HOUR + 2 * HOUR + 30 * MINUTE, 0);
        let noon = b.expectation(2 * 24 * HOUR + 12 * HOUR, 0);
        assert!(night.threshold(6.0, 4.0) > 60.0, "batch would page: {night:?}");
        assert!(noon.mean < night.mean / 3.0, "{noon:?} vs {night:?}");
    }

    #[test]
    fn a_nightly_batch_new_after_learning_pages_twice_then_is_the_identity_s_own() {
        let mut b = RateBaseline::new(0, 0.0);
        feed(&mut b, 0, &[2; 1_440], true);
        let mut pages = Vec::new();
        for night in 1..=4 {
            // Two a minute all day, and 60 a minute for ten minutes at 03:00 every night.
            let day = night * 1_440;
            feed(&mut b, day, &[2; 180], false);
            let e = b.expectation((day + 180) * MINUTE, 0);
            if 60.0 >= e.threshold(6.0, 4.0) {
                pages.push(night);
            }
            feed(&mut b, day + 180, &[60; 10], false);
            feed(&mut b, day + 190, &[2; 1_440 - 190], false);
        }
        assert_eq!(pages, [1, 2], "new on nights 1 and 2, recurring from night 3");
        // An attacker at twice the batch's peak in the batch's hour still pages.
        let e = b.expectation((5 * 1_440 + 180) * MINUTE, 0);
        assert!(e.threshold(6.0, 4.0) < 140.0, "{e:?}");
    }

    proptest! {
        #[test]
        fn ewma_stays_finite_and_within_the_range_of_its_samples(xs in proptest::collection::vec(0f32..1e6, 1..300), alpha in 0.0001f32..1.0) {
            let mut e = Ewma::default();
            for &x in &xs { e.update(x, alpha, true, f32::INFINITY); }
            let lo = xs.iter().cloned().fold(f32::INFINITY, f32::min);
            let hi = xs.iter().cloned().fold(0f32, f32::max);
            prop_assert!(e.mean.is_finite() && e.var.is_finite() && e.var >= 0.0);
            prop_assert!(e.mean >= lo - hi * 1e-3 && e.mean <= hi * (1.0 + 1e-3));
        }

        #[test]
        fn clamped_baseline_never_exceeds_what_was_learned_by_more_than_the_clamp(
            level in 1u32..50, spikes in proptest::collection::vec(0u32..5_000, 1..120)) {
            let mut b = RateBaseline::new(0, 0.0);
            feed(&mut b, 0, &vec![level; 600], true);
            let e0 = b.expectation(600 * MINUTE, 0);
            feed(&mut b, 600, &spikes, false);
            // However the post-learning minutes look, no horizon is taught past the clamp
            // bound of the slow baseline it had when learning ended (two hours of abuse move
            // the long horizon by a fraction of it).
            let cap = e0.mean + CLAMP_SIGMAS * e0.sd;
            prop_assert!(b.long.mean <= cap + 0.01, "{} > {}", b.long.mean, cap);
            prop_assert!(b.short.mean <= cap * 1.2 + 1.0, "{} > {}", b.short.mean, cap);
        }
    }
}
