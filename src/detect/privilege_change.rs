//! `privilege_change`: a machine identity creates keys, users, bindings or policies:
//! persistence and escalation, the step after a stolen key works.

use std::collections::HashSet;

use serde::Deserialize;

use super::{Check, Finding, PerType};
use crate::event::{AuditEvent, PrincipalType};
use crate::state::Observation;
use crate::time::MINUTE;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Operation names (the part of `action` after the last `:`, `.` or `/`), any case.
    pub operations: Vec<String>,
}

pub struct PrivilegeChange(PerType<HashSet<String>>);

impl PrivilegeChange {
    pub fn new(p: PerType<Params>) -> Self {
        PrivilegeChange(PerType(
            p.0.map(|lane| lane.map(|p| p.operations.iter().map(|o| o.to_ascii_lowercase()).collect())),
        ))
    }
}

/// The operation part of an action (`iam:CreateAccessKey` → `CreateAccessKey`).
fn operation(action: &str) -> &str {
    action.rsplit([':', '.', '/']).next().unwrap_or(action)
}

impl Check for PrivilegeChange {
    fn check(&self, lane: PrincipalType, ev: &AuditEvent<'_>, _obs: &Observation<'_>) -> Option<Finding> {
        let ops = self.0.get(lane)?;
        let op = operation(&ev.action);
        // Lowercase into a stack buffer: no allocation on the per-event path.
        let mut buf = [0u8; 64];
        let lower = buf.get_mut(..op.len())?;
        lower.copy_from_slice(op.as_bytes());
        lower.make_ascii_lowercase();
        if !ops.contains(std::str::from_utf8(lower).ok()?) {
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
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn operation_is_the_last_segment() {
        assert_eq!(super::operation("iam:CreateAccessKey"), "CreateAccessKey");
        assert_eq!(super::operation("google.iam.admin.v1.CreateServiceAccountKey"), "CreateServiceAccountKey");
        assert_eq!(super::operation("CreateUser"), "CreateUser");
    }
}
