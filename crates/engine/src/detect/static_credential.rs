//! `static_credential`: a long-lived static secret still in use past the age allowed for
//! its principal type (OWASP NHI7: long-lived secrets).

use serde::Deserialize;

use super::{Check, Finding, PerType};
use crate::state::Observation;
use nhid_model::event::{AuditEvent, CredentialKind, PrincipalType};
use nhid_model::time::DAY;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub max_age_days: u32,
}

pub struct StaticCredential(pub PerType<Params>);

impl Check for StaticCredential {
    fn check(&self, lane: PrincipalType, ev: &AuditEvent<'_>, obs: &Observation<'_>) -> Option<Finding> {
        let p = self.0.get(lane)?;
        if ev.credential.kind != CredentialKind::StaticKey {
            return None;
        }
        let age_days = obs.credential_age? / DAY;
        if age_days <= i64::from(p.max_age_days) {
            return None;
        }
        let id = ev.credential.id.as_deref().unwrap_or_default();
        Some(Finding {
            evidence: crate::evidence! { "credential_age_days" => age_days, "max_age_days" => p.max_age_days },
            summary: format!(
                "{} used static credential {id}, {age_days} days old, past the {}-day limit for a {lane}.",
                ev.principal.id, p.max_age_days
            ),
            unit: ev.time.div_euclid(DAY),
        })
    }
}
