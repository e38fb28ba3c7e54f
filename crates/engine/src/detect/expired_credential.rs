//! `expired_credential`: a credential used when its holder should no longer have it: after
//! its `expires_at` (a replayed token, an issuer that does not enforce expiry), after nhid
//! was told it was revoked (the revocation did not take, or was undone), or by a principal
//! nhid was told was retired.

use serde::Deserialize;

use super::{Finding, Kind, span};
use crate::state::Observation;
use nhid_model::event::{AuditEvent, PrincipalType};
use nhid_model::time::{MINUTE, Millis, SECOND, format_rfc3339};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpiredCredential {
    /// Tolerated clock skew between the issuer and the audit source.
    pub grace_secs: u32,
    /// Tolerated delay between a reported revocation or retirement and the last calls that
    /// pass: revocation propagates within seconds (IAM is eventually consistent), calls in
    /// flight are logged after it, and the revocation service's clock is not the audit source's.
    #[serde(default = "default_revocation_grace_secs")]
    pub revocation_grace_secs: u32,
}

fn default_revocation_grace_secs() -> u32 {
    60
}

impl Kind for ExpiredCredential {
    fn check(&self, _lane: PrincipalType, ev: &AuditEvent<'_>, obs: &Observation<'_>) -> Option<Finding> {
        let revocation_grace = Millis::from(self.revocation_grace_secs) * SECOND;
        let principal = &ev.principal.id;
        let credential = ev.credential.id.as_deref();
        let unit = ev.time.div_euclid(MINUTE);
        // A revocation names this very credential, so it comes first; then the principal's
        // retirement; expiry, which issuers sometimes stretch, last.
        if let Some(at) = obs.revoked_at.filter(|&at| ev.time - at > revocation_grace) {
            let late = ev.time - at;
            return Some(Finding {
                evidence: crate::evidence! {
                    "reason" => "revoked",
                    "revoked_at" => format_rfc3339(at),
                    "revoked_seconds_ago" => late / SECOND,
                },
                summary: format!(
                    "{principal} used credential {} {} after it was revoked ({}).",
                    credential.unwrap_or_default(),
                    span(late),
                    format_rfc3339(at)
                ),
                unit,
                key: credential.map_or(0, crate::state::sets::fingerprint),
                ..Default::default()
            });
        }
        if let Some(at) = obs.retired_at.filter(|&at| ev.time - at > revocation_grace) {
            let late = ev.time - at;
            let with = credential.map(|c| format!(" with credential {c}")).unwrap_or_default();
            return Some(Finding {
                evidence: crate::evidence! {
                    "reason" => "principal_retired",
                    "principal_retired_at" => format_rfc3339(at),
                    "retired_seconds_ago" => late / SECOND,
                },
                summary: format!(
                    "{principal} acted{with} {} after it was retired ({}).",
                    span(late),
                    format_rfc3339(at)
                ),
                unit,
                key: credential.map_or(0, crate::state::sets::fingerprint),
                ..Default::default()
            });
        }
        let late = obs.expired_for?;
        if late <= Millis::from(self.grace_secs) * SECOND {
            return None;
        }
        let expired = ev.credential.expires_at.map(format_rfc3339).unwrap_or_default();
        Some(Finding {
            evidence: crate::evidence! {
                "reason" => "expired",
                "expired_seconds_ago" => late / SECOND,
                "expires_at" => expired,
            },
            summary: format!(
                "{principal} used credential {} {} after it expired.",
                credential.unwrap_or_default(),
                span(late)
            ),
            unit,
            key: credential.map_or(0, crate::state::sets::fingerprint),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{event, observe, shipped};
    use super::*;
    use nhid_model::time::HOUR;

    const T: Millis = 100 * HOUR;

    #[test]
    fn use_past_the_revocation_grace_fires_and_names_the_revocation() {
        let d = shipped("expired_credential");
        let ev = event(T, PrincipalType::ServiceAccount);
        let mut obs = observe(&ev);
        obs.revoked_at = Some(T - 60 * SECOND);
        assert!(d.check(PrincipalType::ServiceAccount, &ev, &obs).is_none(), "within the minute of grace");
        obs.revoked_at = Some(T - 61 * SECOND);
        let (_, f) = d.check(PrincipalType::ServiceAccount, &ev, &obs).unwrap();
        assert_eq!(f.evidence["reason"], "revoked");
        assert_eq!(f.evidence["revoked_seconds_ago"], 61);
        assert_eq!(
            f.summary,
            "svc-a used credential AKIA1 61 seconds after it was revoked (1970-01-05T03:58:59.000Z)."
        );
    }

    #[test]
    fn a_revocation_comes_before_a_retirement_and_an_expiry() {
        let d = shipped("expired_credential");
        let mut ev = event(T, PrincipalType::Workload);
        ev.credential.expires_at = Some(T - HOUR);
        let mut obs = observe(&ev);
        let reason =
            |obs: &Observation<'_>| d.check(PrincipalType::Workload, &ev, obs).unwrap().1.evidence["reason"].clone();
        assert_eq!(reason(&obs), "expired");
        obs.retired_at = Some(T - HOUR);
        assert_eq!(reason(&obs), "principal_retired");
        obs.revoked_at = Some(T - HOUR);
        assert_eq!(reason(&obs), "revoked");
    }

    #[test]
    fn humans_are_judged_with_no_response() {
        let d = shipped("expired_credential");
        let ev = event(T, PrincipalType::Human);
        let mut obs = observe(&ev);
        obs.retired_at = Some(T - HOUR);
        let (settings, f) = d.check(PrincipalType::Human, &ev, &obs).unwrap();
        assert_eq!(settings.response, nhid_model::vocab::Response::None);
        assert_eq!(
            f.summary,
            "svc-a acted with credential AKIA1 60 minutes after it was retired (1970-01-05T03:00:00.000Z)."
        );
    }

    #[test]
    fn files_written_before_revocations_keep_loading_with_a_minute_of_grace() {
        let text = "kind = \"expired_credential\"\ndescription = \"x\"\nseverity = \"high\"\nreferences = [\"T1550.001\"]\n[default]\ngrace_secs = 300\n";
        let d = super::super::parse("old", text).unwrap();
        let ev = event(T, PrincipalType::ApiKey);
        let mut obs = observe(&ev);
        obs.revoked_at = Some(T - 60 * SECOND);
        assert!(d.check(PrincipalType::ApiKey, &ev, &obs).is_none());
        obs.revoked_at = Some(T - 61 * SECOND);
        assert!(d.check(PrincipalType::ApiKey, &ev, &obs).is_some());
    }
}
