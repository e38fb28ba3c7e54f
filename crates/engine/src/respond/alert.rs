//! What nhid emits: alerts for SOC teams (`schemas/alert.schema.json`) and revocation
//! requests for the revocation service (`schemas/action.schema.json`).

use serde::{Deserialize, Serialize};

use nhid_model::event::{AuditEvent, CredentialKind, Outcome, PrincipalType, SourceFormat};
use nhid_model::string_enum;
use nhid_model::time::{Millis, serde_rfc3339};
use nhid_model::vocab::{ActionKind, Severity};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// UUIDv5 of detector, principal and aligned window: the same finding over the same
    /// events has the same id in `replay`, in `run`, and after a crash and restart.
    pub alert_id: String,
    /// Event time of the event that triggered the alert.
    #[serde(with = "serde_rfc3339")]
    pub time: Millis,
    /// Detector instance id (file stem in `detectors/`).
    pub detector: String,
    /// Detector kind (`rate_spike`, ...), `action_storm` from the response circuit breaker, or
    /// `response_failed` when the revocation service reports an action failed.
    pub kind: String,
    pub severity: Severity,
    pub principal: AlertPrincipal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
    pub actor: AlertActor,
    /// The call that triggered the alert; absent from the alerts about nhid's own responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<AlertEvent>,
    /// Ids of the triggering events, at most [`MAX_EVENT_IDS`].
    pub event_ids: Vec<String>,
    /// Observed against expected numbers, named per kind (`observed`, `baseline_mean`, ...).
    pub evidence: serde_json::Map<String, serde_json::Value>,
    /// One plain sentence for the analyst.
    pub summary: String,
    /// Repeats of this finding (same principal and detector) suppressed since the previous alert.
    pub suppressed_repeats: u64,
    /// MITRE ATT&CK technique ids and OWASP Non-Human Identity Top 10 entries.
    pub references: Vec<String>,
    /// How surprising the finding is, and what it was judged against.
    pub score: Score,
    /// The incident it is part of (`schemas/incident.schema.json`); absent only when the
    /// identity it is about is no longer in nhid's state (a late action result).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
}

/// How surprising a finding is under the identity's own model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// The chance of what was seen under the identity's baseline (lower is more
    /// surprising): a count model's tail, a novelty's discovery rate. Absent for facts no
    /// baseline explains away (a privilege operation, a revoked key used): those are
    /// judged by rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// What it was judged against, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
}

pub const MAX_EVENT_IDS: usize = 16;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertPrincipal {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: PrincipalType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertActor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegating_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

/// The triggering event as its source stated it: what was called, on what, with what
/// outcome, from where. What an attacker may choose (the user agent, the resource) is shown
/// for the analyst, never interpreted here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    pub action: String,
    pub service: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The kind of the credential in `credential_id`, as the event stated it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_kind: Option<CredentialKind>,
    /// The format the event arrived in (`cloudtrail`, `k8s_audit`, ...).
    pub source_format: SourceFormat,
}

impl AlertEvent {
    pub fn of(ev: &AuditEvent<'_>) -> Self {
        let owned = |s: &Option<std::borrow::Cow<'_, str>>| s.as_deref().map(str::to_owned);
        AlertEvent {
            action: ev.action.to_string(),
            service: ev.service.to_string(),
            resource: owned(&ev.resource),
            outcome: ev.outcome,
            source_ip: owned(&ev.source.ip),
            user_agent: owned(&ev.source.user_agent),
            credential_kind: ev.credential.id.is_some().then_some(ev.credential.kind),
            source_format: ev.source_format,
        }
    }
}

string_enum! {
    /// `enforce`: the revocation service acts; `dry_run`: it records what it would have done.
    #[derive(Default)]
    Mode {
        Enforce => "enforce",
        #[default]
        DryRun => "dry_run",
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// UUIDv5 of the alert id and the action: the revocation service's idempotency key.
    pub action_id: String,
    pub alert_id: String,
    pub action: ActionKind,
    pub target: ActionTarget,
    pub mode: Mode,
    /// Why, in one sentence (the alert summary plus the policy decision).
    pub reason: String,
    #[serde(with = "serde_rfc3339")]
    pub time: Millis,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActionTarget {
    pub principal_id: String,
    #[serde(rename = "principal_type")]
    pub principal_kind: PrincipalType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}
