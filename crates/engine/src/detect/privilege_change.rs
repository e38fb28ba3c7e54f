//! `privilege_change`: a machine identity creates keys, users, bindings or policies:
//! persistence and escalation, the step after a stolen key works.

use serde::Deserialize;

use super::{Finding, Kind, Operations};
use crate::state::Observation;
use crate::state::sets::fingerprint;
use nhid_model::event::{AuditEvent, PrincipalType};
use nhid_model::time::MINUTE;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivilegeChange {
    pub operations: Operations,
}

impl Kind for PrivilegeChange {
    fn check(&self, lane: PrincipalType, ev: &AuditEvent<'_>, _obs: &Observation<'_>) -> Option<Finding> {
        if !self.operations.matches(&ev.action) {
            return None;
        }
        Some(Finding {
            evidence: crate::evidence! {
                "action" => ev.action,
                "resource" => ev.resource,
                "outcome" => ev.outcome.as_str(),
            },
            summary: format!("{} ({lane}) performed {} ({}).", ev.principal.id, ev.action, ev.outcome),
            unit: ev.time.div_euclid(MINUTE),
            // The same operation from another source or credential is another finding: a
            // benign change and an attacker's in one hour must not share one alert.
            key: fingerprint(&ev.action)
                ^ ev.source.ip.as_deref().map_or(0, fingerprint).rotate_left(7)
                ^ ev.credential.id.as_deref().map_or(0, fingerprint).rotate_left(13),
            ..Default::default()
        })
    }
}
