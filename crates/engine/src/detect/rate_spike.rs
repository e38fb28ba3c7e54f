//! `rate_spike`: this minute's calls far above the identity's own baseline for the hour.
//! Evaluated on every event, so it fires inside the minute as soon as the count clears
//! the threshold, not when the minute ends.

use serde::Deserialize;

use super::{Finding, Kind, round2};
use crate::state::Observation;
use nhid_model::event::{AuditEvent, PrincipalType};
use nhid_model::time::MINUTE;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateSpike {
    /// Never fire below this many calls in a minute (quiet identities are noisy in ratio).
    pub min_count: u32,
    /// Calls must be at least this many times the expected rate...
    pub ratio: f32,
    /// ...and this many standard deviations above it.
    pub z: f32,
}

impl Kind for RateSpike {
    fn check(&self, _lane: PrincipalType, ev: &AuditEvent<'_>, obs: &Observation<'_>) -> Option<Finding> {
        if !obs.learned || obs.minute_count < self.min_count {
            return None;
        }
        let threshold = obs.expected.threshold(self.z, self.ratio);
        if (obs.minute_count as f32) < threshold {
            return None;
        }
        Some(Finding {
            evidence: crate::evidence! {
                "observed_per_minute" => obs.minute_count,
                "baseline_per_minute" => round2(obs.expected.mean),
                "baseline_sd" => round2(obs.expected.sd),
                "threshold_per_minute" => round2(threshold.max(self.min_count as f32)),
                "ratio" => round2(obs.minute_count as f32 / obs.expected.mean.max(0.01)),
            },
            summary: format!(
                "{} made {} calls in one minute against a baseline of {:.1} per minute.",
                ev.principal.id, obs.minute_count, obs.expected.mean
            ),
            unit: ev.time.div_euclid(MINUTE),
        })
    }
}
