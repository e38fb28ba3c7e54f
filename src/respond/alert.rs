//! What nhid emits: alerts for SOC teams (`schemas/alert.schema.json`) and revocation
//! requests for the revocation service (`schemas/action.schema.json`).

use serde::{Deserialize, Serialize};

use crate::event::PrincipalType;
use crate::time::{Millis, serde_rfc3339};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: &'static [Severity] = &[Self::Info, Self::Low, Self::Medium, Self::High, Self::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    RevokeSession,
    RevokeCredential,
    RotateSecret,
    DisablePrincipal,
    NotifyOwner,
}

impl ActionKind {
    pub const ALL: &'static [ActionKind] =
        &[Self::RevokeSession, Self::RevokeCredential, Self::RotateSecret, Self::DisablePrincipal, Self::NotifyOwner];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RevokeSession => "revoke_session",
            Self::RevokeCredential => "revoke_credential",
            Self::RotateSecret => "rotate_secret",
            Self::DisablePrincipal => "disable_principal",
            Self::NotifyOwner => "notify_owner",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Enforce,
    #[default]
    DryRun,
}

impl Mode {
    pub const ALL: &'static [Mode] = &[Mode::Enforce, Mode::DryRun];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::DryRun => "dry_run",
        }
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
