//! Closing the loop: the messages nhid reads besides audit events. The lifecycle topic
//! (`schemas/lifecycle.schema.json`) reports owners offboarded, credentials revoked and
//! principals retired; the action-results topic (`schemas/action-result.schema.json`)
//! reports what the revocation service did with nhid's requests; the verdicts topic
//! (`schemas/verdict.schema.json`) carries analysts' verdicts on alerts and incidents. The
//! engine turns them into facts ([`nhid_engine::state::lifecycle`]) and per-identity
//! acceptances that later audit events are judged against.
//!
//! Parsed like audit events: strings borrowed from the message, never a panic, and every
//! message that cannot be applied gets a [`DeadLetterReason`]. Unknown fields are ignored.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::DecodeError;
use crate::record::parse_canonical;
use nhid_model::event::borrowed_opt;
use nhid_model::string_enum;
use nhid_model::time::{Millis, serde_rfc3339};
use nhid_model::vocab::ActionKind;
use nhid_model::vocab::DeadLetterReason;

string_enum! {
    /// What changed in an identity's lifecycle.
    LifecycleKind {
        OwnerOffboarded => "owner_offboarded",
        CredentialRevoked => "credential_revoked",
        PrincipalRetired => "principal_retired",
    }
}

string_enum! {
    /// Whether the revocation service carried an action out.
    ActionStatus {
        Done => "done",
        Failed => "failed",
    }
}

string_enum! {
    /// An analyst's verdict on an alert or an incident.
    VerdictKind {
        TruePositive => "true_positive",
        FalsePositive => "false_positive",
        BenignChange => "benign_change",
    }
}

/// An analyst's verdict (`schemas/verdict.schema.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict<'a> {
    /// When the analyst gave it.
    #[serde(with = "serde_rfc3339")]
    pub time: Millis,
    /// The identity the alert or incident is about (as the alert names it).
    #[serde(borrow)]
    pub principal_id: Cow<'a, str>,
    /// What it is about: one alert, or a whole incident.
    #[serde(borrow, default, deserialize_with = "borrowed_opt", skip_serializing_if = "Option::is_none")]
    pub alert_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed_opt", skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<Cow<'a, str>>,
    pub verdict: VerdictKind,
    /// Who gave it.
    #[serde(borrow)]
    pub by: Cow<'a, str>,
    #[serde(borrow, default, deserialize_with = "borrowed_opt", skip_serializing_if = "Option::is_none")]
    pub note: Option<Cow<'a, str>>,
    /// Until when a false positive or benign change holds; [`DEFAULT_VERDICT_HOLDS`] after
    /// `time` when absent.
    #[serde(default, with = "serde_rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Millis>,
}

/// How long a verdict holds when it names no expiry: a week, then the detector judges the
/// identity again (an accepted behaviour does not stay accepted unseen).
pub const DEFAULT_VERDICT_HOLDS: Millis = 7 * nhid_model::time::DAY;

/// The longest a verdict may hold: a false positive accepted for longer belongs in a
/// reviewed suppression (`[[suppressions]]`), not in a message.
pub const MAX_VERDICT_HOLDS: Millis = 90 * nhid_model::time::DAY;

impl Verdict<'_> {
    /// Until when it holds.
    pub fn until(&self) -> Millis {
        self.expires_at.unwrap_or(self.time.saturating_add(DEFAULT_VERDICT_HOLDS))
    }

    /// The alert or incident id it names.
    pub fn target(&self) -> &str {
        self.alert_id.as_deref().or(self.incident_id.as_deref()).unwrap_or_default()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LifecycleEvent<'a> {
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    /// When the change took effect, by its source's clock: use is judged against this time.
    #[serde(with = "serde_rfc3339")]
    pub time: Millis,
    #[serde(rename = "type")]
    pub kind: LifecycleKind,
    /// Who left, for `owner_offboarded`.
    #[serde(borrow, default, deserialize_with = "borrowed_opt", skip_serializing_if = "Option::is_none")]
    pub owner: Option<Cow<'a, str>>,
    /// Who was retired, for `principal_retired`; who held the credential, for `credential_revoked`.
    #[serde(borrow, default, deserialize_with = "borrowed_opt", skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<Cow<'a, str>>,
    /// What was revoked, for `credential_revoked`.
    #[serde(borrow, default, deserialize_with = "borrowed_opt", skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed_opt", skip_serializing_if = "Option::is_none")]
    pub reason: Option<Cow<'a, str>>,
}

impl LifecycleEvent<'_> {
    /// The key the change is about: the owner, the credential or the principal, by type.
    /// Present once parsed.
    pub fn subject(&self) -> &str {
        let subject = match self.kind {
            LifecycleKind::OwnerOffboarded => &self.owner,
            LifecycleKind::CredentialRevoked => &self.credential_id,
            LifecycleKind::PrincipalRetired => &self.principal_id,
        };
        subject.as_deref().unwrap_or_default()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActionResult<'a> {
    /// The request's `action_id`.
    #[serde(borrow)]
    pub action_id: Cow<'a, str>,
    /// When the action took effect or failed, by the revocation service's clock.
    #[serde(with = "serde_rfc3339")]
    pub time: Millis,
    pub status: ActionStatus,
    #[serde(borrow)]
    pub principal_id: Cow<'a, str>,
    /// The request's action; decides whether `credential_id` itself was cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<ActionKind>,
    #[serde(borrow, default, deserialize_with = "borrowed_opt", skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed_opt", skip_serializing_if = "Option::is_none")]
    pub session_id: Option<Cow<'a, str>>,
    /// The revocation service's own words; shown to the analyst, never interpreted.
    #[serde(borrow, default, deserialize_with = "borrowed_opt", skip_serializing_if = "Option::is_none")]
    pub detail: Option<Cow<'a, str>>,
}

impl ActionResult<'_> {
    /// The credential this result reports cut. A session revocation or a rotation names the
    /// credential of its target too but does not cut it (a static key outlives the session it
    /// was used in), so only a done `revoke_credential`, or a done result that names no
    /// action, counts.
    pub fn revoked_credential(&self) -> Option<&str> {
        let cut = self.status == ActionStatus::Done && matches!(self.action, None | Some(ActionKind::RevokeCredential));
        self.credential_id.as_deref().filter(|_| cut)
    }
}

/// Parses one lifecycle message. The field its type needs must be present and non-empty: a
/// missing principal is `missing_principal`, a missing owner or credential `wrong_type`.
pub fn parse_lifecycle(text: &str) -> Result<LifecycleEvent<'_>, DecodeError> {
    let event: LifecycleEvent<'_> = parse_canonical(text)?;
    non_empty([
        ("owner", &event.owner),
        ("principal_id", &event.principal_id),
        ("credential_id", &event.credential_id),
    ])?;
    if event.subject().is_empty() {
        let (reason, field) = match event.kind {
            LifecycleKind::OwnerOffboarded => (DeadLetterReason::WrongType, "owner"),
            LifecycleKind::CredentialRevoked => (DeadLetterReason::WrongType, "credential_id"),
            LifecycleKind::PrincipalRetired => (DeadLetterReason::MissingPrincipal, "principal_id"),
        };
        return Err(DecodeError::new(reason, format!("{} without {field}", event.kind)));
    }
    Ok(event)
}

/// Parses one action result.
pub fn parse_action_result(text: &str) -> Result<ActionResult<'_>, DecodeError> {
    let result: ActionResult<'_> = parse_canonical(text)?;
    if result.principal_id.is_empty() {
        return Err(DecodeError::new(DeadLetterReason::MissingPrincipal, "empty principal_id"));
    }
    if result.action_id.is_empty() {
        return Err(DecodeError::new(DeadLetterReason::WrongType, "empty action_id"));
    }
    non_empty([("credential_id", &result.credential_id), ("session_id", &result.session_id)])?;
    Ok(result)
}

/// Parses one verdict: a principal, who gave it, and exactly one of an alert or an incident;
/// an expiry after its time and at most [`MAX_VERDICT_HOLDS`] after it.
pub fn parse_verdict(text: &str) -> Result<Verdict<'_>, DecodeError> {
    let verdict: Verdict<'_> = parse_canonical(text)?;
    if verdict.principal_id.is_empty() {
        return Err(DecodeError::new(DeadLetterReason::MissingPrincipal, "empty principal_id"));
    }
    non_empty([("alert_id", &verdict.alert_id), ("incident_id", &verdict.incident_id)])?;
    let wrong = |why: &str| Err(DecodeError::new(DeadLetterReason::WrongType, why.to_string()));
    if verdict.alert_id.is_some() == verdict.incident_id.is_some() {
        return wrong("a verdict names one alert_id or one incident_id");
    }
    if verdict.by.is_empty() {
        return wrong("empty by: a verdict says who gave it");
    }
    if let Some(until) = verdict.expires_at
        && (until <= verdict.time || until - verdict.time > MAX_VERDICT_HOLDS)
    {
        return wrong("expires_at must be after time, and at most 90 days after it");
    }
    Ok(verdict)
}

/// An id that is present is not empty: an empty credential id would otherwise be recorded
/// as revoked and match every event that names its credential as `""`.
fn non_empty<const N: usize>(fields: [(&str, &Option<Cow<'_, str>>); N]) -> Result<(), DecodeError> {
    match fields.iter().find(|(_, v)| v.as_deref() == Some("")) {
        Some((name, _)) => Err(DecodeError::new(DeadLetterReason::WrongType, format!("empty {name}"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REVOKED: &str = r#"{"id":"l1","time":"2026-11-23T10:01:05Z","type":"credential_revoked","principal_id":"svc-a","credential_id":"AKIA1","reason":"leaked","extra":{"ignored":true}}"#;
    const FAILED: &str = r#"{"action_id":"3e8b1f60-7a2d-5c94-b1e7-0d6c5a4f3e21","time":"2026-11-23T10:00:44Z","status":"failed","principal_id":"svc-a","action":"revoke_credential","credential_id":"AKIA1","detail":"503"}"#;

    fn reason<T: std::fmt::Debug>(r: Result<T, DecodeError>) -> DeadLetterReason {
        r.unwrap_err().reason
    }

    const VERDICT: &str = r#"{"time":"2026-11-24T09:00:00Z","principal_id":"tf-edge-1","alert_id":"7c0e9c52-3b8f-5a8e-9d0b-2f4c6a1e8d31","verdict":"false_positive","by":"ana@soc","note":"terraform apply"}"#;

    #[test]
    fn parses_a_verdict_and_refuses_one_without_a_single_target_an_author_or_a_sane_expiry() {
        let v = parse_verdict(VERDICT).unwrap();
        assert_eq!(
            (v.verdict, v.target(), &*v.by),
            (VerdictKind::FalsePositive, "7c0e9c52-3b8f-5a8e-9d0b-2f4c6a1e8d31", "ana@soc")
        );
        assert_eq!(v.until(), v.time + DEFAULT_VERDICT_HOLDS);
        let both = VERDICT.replace(r#""verdict""#, r#""incident_id":"i1","verdict""#);
        let neither = VERDICT.replace(r#""alert_id":"7c0e9c52-3b8f-5a8e-9d0b-2f4c6a1e8d31","#, "");
        let nobody = VERDICT.replace("ana@soc", "");
        let before = VERDICT.replace(r#""note""#, r#""expires_at":"2026-11-24T08:00:00Z","note""#);
        let forever = VERDICT.replace(r#""note""#, r#""expires_at":"2027-11-24T08:00:00Z","note""#);
        for bad in [both, neither, nobody, before, forever] {
            assert_eq!(reason(parse_verdict(&bad)), DeadLetterReason::WrongType, "{bad}");
        }
        assert_eq!(reason(parse_verdict(&VERDICT.replace("tf-edge-1", ""))), DeadLetterReason::MissingPrincipal);
        assert_eq!(reason(parse_verdict(&VERDICT.replace("false_positive", "maybe"))), DeadLetterReason::WrongType);
    }

    #[test]
    fn parses_a_lifecycle_event_borrowing_its_strings() {
        let e = parse_lifecycle(REVOKED).unwrap();
        assert_eq!(e.kind, LifecycleKind::CredentialRevoked);
        assert_eq!(e.subject(), "AKIA1");
        assert_eq!(e.time, nhid_model::time::parse_rfc3339("2026-11-23T10:01:05Z").unwrap());
        assert!(matches!(e.credential_id, Some(Cow::Borrowed(_))));
        let offboarded =
            parse_lifecycle(r#"{"id":"l2","time":"2026-11-20T17:00:00Z","type":"owner_offboarded","owner":"bob"}"#);
        assert_eq!(offboarded.unwrap().subject(), "bob");
    }

    #[test]
    fn a_lifecycle_event_needs_the_field_its_type_names() {
        let no_credential = REVOKED.replace(r#""credential_id":"AKIA1","#, "");
        assert_eq!(reason(parse_lifecycle(&no_credential)), DeadLetterReason::WrongType);
        let retired = r#"{"id":"l3","time":"2026-11-23T12:30:00Z","type":"principal_retired","credential_id":"AKIA1"}"#;
        assert_eq!(reason(parse_lifecycle(retired)), DeadLetterReason::MissingPrincipal);
        let offboarded = r#"{"id":"l2","time":"2026-11-20T17:00:00Z","type":"owner_offboarded","owner":""}"#;
        assert_eq!(reason(parse_lifecycle(offboarded)), DeadLetterReason::WrongType);
        let detail = parse_lifecycle(&no_credential).unwrap_err().detail;
        assert_eq!(detail, "credential_revoked without credential_id");
    }

    #[test]
    fn malformed_messages_get_the_reasons_audit_events_get() {
        assert_eq!(reason(parse_lifecycle("{")), DeadLetterReason::InvalidJson);
        assert_eq!(reason(parse_lifecycle("[1]")), DeadLetterReason::WrongType);
        // serde would read an array positionally into the fields.
        let array = r#"["l1","2026-11-23T10:01:05Z","principal_retired","team-a","svc-a"]"#;
        assert_eq!(reason(parse_lifecycle(array)), DeadLetterReason::WrongType);
        let array = r#"["a1","2026-11-23T10:00:44Z","done","svc-a","revoke_credential","AKIA1"]"#;
        assert_eq!(reason(parse_action_result(array)), DeadLetterReason::WrongType);
        assert_eq!(
            reason(parse_lifecycle(&REVOKED.replace("credential_revoked", "key_lost"))),
            DeadLetterReason::WrongType
        );
        assert_eq!(
            reason(parse_lifecycle(&REVOKED.replace(r#""time":"2026-11-23T10:01:05Z","#, ""))),
            DeadLetterReason::MissingTime
        );
        assert_eq!(
            reason(parse_lifecycle(&REVOKED.replace("2026-11-23T10:01:05Z", "soon"))),
            DeadLetterReason::InvalidTime
        );
        assert_eq!(
            reason(parse_action_result(&FAILED.replace(r#""principal_id":"svc-a","#, ""))),
            DeadLetterReason::MissingPrincipal
        );
        assert_eq!(
            reason(parse_action_result(&FAILED.replace(r#""principal_id":"svc-a""#, r#""principal_id":"""#))),
            DeadLetterReason::MissingPrincipal
        );
        assert_eq!(reason(parse_action_result(&FAILED.replace("failed", "pending"))), DeadLetterReason::WrongType);
        assert_eq!(
            reason(parse_action_result(&FAILED.replace("2026-11-23T10:00:44Z", "2026-11-23"))),
            DeadLetterReason::InvalidTime
        );
        assert_eq!(reason(parse_action_result(&FAILED.replace(r#""AKIA1""#, r#""""#))), DeadLetterReason::WrongType);
    }

    #[test]
    fn only_a_done_credential_revocation_cuts_the_credential() {
        let failed = parse_action_result(FAILED).unwrap();
        assert_eq!(failed.status, ActionStatus::Failed);
        assert_eq!(failed.revoked_credential(), None);
        let done = FAILED.replace("failed", "done");
        assert_eq!(parse_action_result(&done).unwrap().revoked_credential(), Some("AKIA1"));
        let unnamed = done.replace(r#""action":"revoke_credential","#, "");
        assert_eq!(parse_action_result(&unnamed).unwrap().revoked_credential(), Some("AKIA1"));
        let session = done.replace("revoke_credential", "revoke_session");
        assert_eq!(parse_action_result(&session).unwrap().revoked_credential(), None);
    }
}
