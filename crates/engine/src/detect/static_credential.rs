//! `static_credential`: a long-lived static secret still in use past the age allowed for
//! its principal type (OWASP NHI7: long-lived secrets).

use serde::Deserialize;

use super::{Finding, Kind};
use crate::state::Observation;
use nhid_model::event::{AuditEvent, CredentialKind, PrincipalType};
use nhid_model::time::{DAY, Millis};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticCredential {
    /// Oldest a static credential of this type may be, from issue (else first use).
    pub max_age_days: u32,
}

impl StaticCredential {
    /// The age limit as event time, for readers outside the check (`/principals`' risk).
    pub fn max_age(&self) -> Millis {
        Millis::from(self.max_age_days) * DAY
    }
}

impl Kind for StaticCredential {
    fn check(&self, lane: PrincipalType, ev: &AuditEvent<'_>, obs: &Observation<'_>) -> Option<Finding> {
        if ev.credential.kind != CredentialKind::StaticKey {
            return None;
        }
        let age_days = obs.credential_age? / DAY;
        if age_days <= i64::from(self.max_age_days) {
            return None;
        }
        let id = ev.credential.id.as_deref().unwrap_or_default();
        Some(Finding {
            evidence: crate::evidence! { "credential_age_days" => age_days, "max_age_days" => self.max_age_days },
            summary: format!(
                "{} used static credential {id}, {age_days} days old, past the {}-day limit for a {lane}.",
                ev.principal.id, self.max_age_days
            ),
            unit: ev.time.div_euclid(DAY),
            key: ev.credential.id.as_deref().map_or(0, crate::state::sets::fingerprint),
            ..Default::default()
        })
    }
}
