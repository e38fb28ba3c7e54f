//! `unregistered_principal`: a machine identity the inventory does not list. Shadow keys
//! and service accounts nobody registered have no owner, no review and no rotation, and a
//! key an attacker minted for persistence is one of them. Only when an inventory is loaded;
//! once per identity, on its first event.

use serde::Deserialize;

use super::{Finding, Kind};
use crate::state::Observation;
use nhid_model::event::{AuditEvent, PrincipalType};

/// No parameters: which lanes run, and their severity and response, are the whole instance.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnregisteredPrincipal {}

impl Kind for UnregisteredPrincipal {
    fn check(&self, lane: PrincipalType, ev: &AuditEvent<'_>, obs: &Observation<'_>) -> Option<Finding> {
        if obs.registered != Some(false) {
            return None;
        }
        let credential = ev.credential.id.as_deref().map(|c| format!(" with credential {c}")).unwrap_or_default();
        Some(Finding {
            evidence: crate::evidence! {
                "credential_id" => ev.credential.id,
                "credential_kind" => ev.credential.kind.as_str(),
                "action" => ev.action,
                "source_ip" => ev.source.ip,
                "tenant" => ev.principal.tenant,
            },
            summary: format!(
                "{} ({lane}) is not in the inventory; it acted{credential}: {} from {}.",
                ev.principal.id,
                ev.action,
                ev.source.ip.as_deref().unwrap_or("an unknown address")
            ),
            // One finding for the identity's whole life in memory.
            unit: 0,
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{event, observe, shipped};
    use super::*;

    #[test]
    fn fires_only_when_an_inventory_is_loaded_and_does_not_list_the_machine() {
        let d = shipped("unregistered_principal");
        let ev = event(0, PrincipalType::ApiKey);
        let mut obs = observe(&ev);
        assert!(d.check(PrincipalType::ApiKey, &ev, &obs).is_none(), "no inventory");
        obs.registered = Some(true);
        assert!(d.check(PrincipalType::ApiKey, &ev, &obs).is_none());
        obs.registered = Some(false);
        let f = d.check(PrincipalType::ApiKey, &ev, &obs).unwrap().1;
        assert_eq!(f.evidence["credential_id"], "AKIA1");
        assert!(d.check(PrincipalType::Human, &ev, &obs).is_none(), "people are in the directory, not here");
    }
}
