//! `denied_burst`: more denied or failed calls than the identity's own count of denials
//! allows, over the last 1, 5, 15 or 60 minutes, and most of the window's calls:
//! enumeration with a stolen key that does not know its own permissions. Real techniques
//! are a handful of calls, so the bar is the identity's own model (see `rate_spike`), not
//! a count floor: five denials from a key that is never denied are a finding.

use serde::Deserialize;

use super::{Finding, Kind, count_test, round_probability, round2};
use crate::state::Observation;
use crate::state::baseline::WINDOWS;
use nhid_model::event::{AuditEvent, Outcome, PrincipalType};
use nhid_model::time::MINUTE;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeniedBurst {
    /// Fire when the denials over some window are this improbable under the identity's model.
    pub max_probability: f64,
    /// Share of the window's calls that were denied or failed (0..1).
    pub min_ratio: f32,
}

/// Denials expected of an identity that has never been denied, per minute: nobody's calls
/// never fail (a race, an expired object), and a model of zero would make one denial a finding.
const DENIAL_PRIOR: f32 = 0.05;

impl Kind for DeniedBurst {
    fn check(&self, _lane: PrincipalType, ev: &AuditEvent<'_>, obs: &Observation<'_>) -> Option<Finding> {
        if ev.outcome == Outcome::Success || !obs.learned {
            return None;
        }
        let (mean, var) = obs.denials_expected;
        let (mean, var) = (mean.max(DENIAL_PRIOR), var.max(DENIAL_PRIOR));
        // Denials are judged window by window as `w` independent minutes.
        let models = std::array::from_fn(|i| (WINDOWS[i] as f32 * mean, WINDOWS[i] as f32 * var));
        let (i, _, p) = count_test(&obs.denied_in, &models, &[0.0; WINDOWS.len()], 2.0)?;
        let (w, denied, calls) = (WINDOWS[i], obs.denied_in[i], obs.calls_in[i]);
        let ratio = denied as f32 / calls.max(1) as f32;
        if p > self.max_probability || ratio < self.min_ratio {
            return None;
        }
        let over = if w == 1 { "within one minute".to_string() } else { format!("within {w} minutes") };
        Some(Finding {
            severity: None,
            response: None,
            evidence: crate::evidence! {
                "window_minutes" => w,
                "denied" => denied,
                "calls" => calls,
                "denied_ratio" => round2(ratio),
                "expected_denied" => round2(mean * w as f32),
                "probability" => round_probability(p),
            },
            summary: format!(
                "{} had {denied} of {calls} calls denied or failed {over}, against {:.1} denials expected (chance {p:.1e}).",
                ev.principal.id,
                mean * w as f32
            ),
            unit: ev.time.div_euclid(MINUTE),
            probability: Some(p),
            baseline: Some(format!("{mean:.2} denied calls per minute (variance {var:.2})")),
            // The count is the identity's, whichever credentials made it: one finding.
            key: 0,
            references: Vec::new(),
        })
    }
}
