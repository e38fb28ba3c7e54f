//! `denied_burst`: many denied or failed calls in one minute, most of the minute's
//! calls: enumeration with a stolen key that does not know its own permissions.

use serde::Deserialize;

use super::{Finding, Kind, round2};
use crate::state::Observation;
use nhid_model::event::{AuditEvent, Outcome, PrincipalType};
use nhid_model::time::MINUTE;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeniedBurst {
    /// Denied or failed calls in one minute.
    pub min_count: u32,
    /// Share of the minute's calls that were denied or failed (0..1).
    pub min_ratio: f32,
}

impl Kind for DeniedBurst {
    fn check(&self, _lane: PrincipalType, ev: &AuditEvent<'_>, obs: &Observation<'_>) -> Option<Finding> {
        if ev.outcome == Outcome::Success || obs.minute_denied < self.min_count {
            return None;
        }
        let ratio = obs.minute_denied as f32 / obs.minute_count.max(1) as f32;
        if ratio < self.min_ratio {
            return None;
        }
        Some(Finding {
            evidence: crate::evidence! {
                "denied_this_minute" => obs.minute_denied,
                "calls_this_minute" => obs.minute_count,
                "denied_ratio" => round2(ratio),
                "min_count" => self.min_count,
            },
            summary: format!(
                "{} had {} of {} calls denied or failed within one minute.",
                ev.principal.id, obs.minute_denied, obs.minute_count
            ),
            unit: ev.time.div_euclid(MINUTE),
        })
    }
}
