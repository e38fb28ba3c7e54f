//! `denied_burst`: many denied or failed calls in one minute, most of the minute's
//! calls: enumeration with a stolen key that does not know its own permissions.

use serde::Deserialize;

use super::{Check, Finding, PerType, round2};
use crate::state::Observation;
use nhid_model::event::{AuditEvent, Outcome, PrincipalType};
use nhid_model::time::MINUTE;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Denied or failed calls in one minute.
    pub min_count: u32,
    /// Share of the minute's calls that were denied or failed (0..1).
    pub min_ratio: f32,
}

pub struct DeniedBurst(pub PerType<Params>);

impl Check for DeniedBurst {
    fn check(&self, lane: PrincipalType, ev: &AuditEvent<'_>, obs: &Observation<'_>) -> Option<Finding> {
        let p = self.0.get(lane)?;
        if ev.outcome == Outcome::Success || obs.minute_denied < p.min_count {
            return None;
        }
        let ratio = obs.minute_denied as f32 / obs.minute_count.max(1) as f32;
        if ratio < p.min_ratio {
            return None;
        }
        Some(Finding {
            evidence: crate::evidence! {
                "denied_this_minute" => obs.minute_denied,
                "calls_this_minute" => obs.minute_count,
                "denied_ratio" => round2(ratio),
                "min_count" => p.min_count,
            },
            summary: format!(
                "{} had {} of {} calls denied or failed within one minute.",
                ev.principal.id, obs.minute_denied, obs.minute_count
            ),
            unit: ev.time.div_euclid(MINUTE),
        })
    }
}
