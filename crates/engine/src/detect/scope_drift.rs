//! `scope_drift`: a learned identity performs an action or reaches a service it never
//! used: an agent talked into new tools, a stolen key probing what else it can do.

use serde::Deserialize;

use super::{Finding, Kind};
use crate::state::Observation;
use nhid_model::event::{AuditEvent, PrincipalType};
use nhid_model::time::MINUTE;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeDrift {
    #[serde(default = "super::yes")]
    pub actions: bool,
    #[serde(default = "super::yes")]
    pub services: bool,
}

impl Kind for ScopeDrift {
    fn check(&self, _lane: PrincipalType, ev: &AuditEvent<'_>, obs: &Observation<'_>) -> Option<Finding> {
        let new_service = self.services && obs.new_service;
        let new_action = self.actions && obs.new_action;
        if !new_service && !new_action {
            return None;
        }
        let what = if new_service {
            format!("reached service {} for the first time ({})", ev.service, ev.action)
        } else {
            format!("performed {} for the first time", ev.action)
        };
        Some(Finding {
            evidence: crate::evidence! {
                "action" => ev.action,
                "service" => ev.service,
                "new_action" => new_action,
                "new_service" => new_service,
                "known_actions" => obs.known_actions,
            },
            summary: format!("{} {what}.", ev.principal.id),
            unit: ev.time.div_euclid(MINUTE),
        })
    }
}
