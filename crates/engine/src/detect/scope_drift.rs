//! `scope_drift`: a learned identity performs an action or reaches a service it never
//! used, where its own history says that is a surprise: an agent talked into new tools, a
//! stolen key probing what else it can do. A low-volume key still discovering its usual
//! long tail of actions has a high chance of showing a new one and is not flagged for it;
//! a key that repeated the same few actions thousands of times is.

use serde::Deserialize;

use super::{Finding, Kind, new_source::describe, round_probability};
use crate::state::Observation;
use crate::state::sets::fingerprint;
use nhid_model::event::{AuditEvent, PrincipalType};
use nhid_model::time::MINUTE;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeDrift {
    #[serde(default = "super::yes")]
    pub actions: bool,
    #[serde(default = "super::yes")]
    pub services: bool,
    /// Fire when the chance of a new action (service) from this identity is at most this.
    pub max_probability: f64,
}

impl Kind for ScopeDrift {
    fn check(&self, _lane: PrincipalType, ev: &AuditEvent<'_>, obs: &Observation<'_>) -> Option<Finding> {
        let within = |n: &&crate::state::Novel| f64::from(n.probability) <= self.max_probability;
        let new_service = obs.new_service.as_ref().filter(|_| self.services).filter(within);
        let new_action = obs.new_action.as_ref().filter(|_| self.actions).filter(within);
        // A new service is the stronger finding: judged by it when both are new.
        let novel = new_service.or(new_action)?;
        let what = if new_service.is_some() {
            format!("reached service {} for the first time ({})", ev.service, ev.action)
        } else {
            format!("performed {} for the first time", ev.action)
        };
        let p = f64::from(novel.probability);
        Some(Finding {
            evidence: crate::evidence! {
                "action" => ev.action,
                "service" => ev.service,
                "new_action" => obs.new_action.is_some(),
                "new_service" => new_service.is_some(),
                "known" => novel.known,
                "observations" => novel.observed,
                "probability" => round_probability(p),
            },
            summary: format!("{} {what} (chance {p:.1e}).", ev.principal.id),
            unit: ev.time.div_euclid(MINUTE),
            probability: Some(p),
            baseline: Some(describe(novel)),
            // Another service reached is new evidence; another action in a service already
            // alerted in the window is a repeat (a probe's burst of list calls is one alert
            // per service, not one per call).
            key: fingerprint(&ev.service),
        })
    }
}
