//! Findings → alerts (one per principal, detector and window) → actions (guardrailed), each
//! alert in its identity's incident;
//! and the alert when an action is reported failed.

pub mod alert;
pub mod incident;
pub mod ocsf;
pub mod policy;
pub mod suppress;
pub mod verdict;

use uuid::Uuid;

use alert::ActionTarget;
use nhid_decode::control::ActionResult;
use nhid_model::vocab::{ActionKind, Severity};

/// Namespace of nhid's deterministic ids (UUIDv5). Changing it changes every id.
const NAMESPACE: Uuid = Uuid::from_u128(0x6e68_6964_2d61_6c65_7274_2d69_6473_0001);

/// The alert id: the same detector, principal, aggregation window and finding key (what is
/// new in it: see `detect::Finding::key`; 0 for findings without one) give the same id in
/// `replay`, in `run`, and after a crash, so consumers can deduplicate; and the same
/// findings in another order within the window give the same ids.
pub fn alert_id(detector: &str, principal_id: &str, window: i64, key: u32) -> String {
    let name = match key {
        0 => format!("alert|{detector}|{principal_id}|{window}"),
        _ => format!("alert|{detector}|{principal_id}|{window}|{key:08x}"),
    };
    Uuid::new_v5(&NAMESPACE, name.as_bytes()).to_string()
}

/// The action id, the revocation service's idempotency key.
pub fn action_id(alert_id: &str, action: ActionKind, target: &ActionTarget) -> String {
    let key = format!(
        "action|{alert_id}|{}|{}|{}|{}",
        action.as_str(),
        target.principal_id,
        target.credential_id.as_deref().unwrap_or(""),
        target.session_id.as_deref().unwrap_or("")
    );
    Uuid::new_v5(&NAMESPACE, key.as_bytes()).to_string()
}

/// Where `response_failed` alerts say they come from: the topic, as there is no detector file.
pub const ACTION_RESULTS: &str = "action_results";

/// Kind and severity of the alert for a failed action (a metric series from the start).
pub const RESPONSE_FAILED: (&str, Severity) = ("response_failed", Severity::High);

/// The revocation service's words are shown, not trusted: bounded so a chatty error cannot
/// bloat every copy of the alert.
const MAX_DETAIL_CHARS: usize = 256;

/// The alert for an action the revocation service reports failed. Containment did not
/// happen, so the finding behind it is still open, and a finding not acted on is a failed
/// control: the SOC has to see it. Alerted, not re-requested: retrying is the revocation
/// service's call (it holds the idempotency key and knows the fault). The id is keyed by the
/// action and the minute of the report, so a redelivered report has the same id and a later
/// failure of the same action is a new alert.
pub fn response_failed(result: &ActionResult<'_>, principal: alert::AlertPrincipal) -> alert::Alert {
    let action = result.action.map_or("act", ActionKind::as_str);
    let credential = result.credential_id.as_deref().map(|c| format!(" (credential {c})")).unwrap_or_default();
    let detail = result.detail.as_deref().map(|d| d.chars().take(MAX_DETAIL_CHARS).collect::<String>());
    let said = detail.as_deref().map(|d| format!(" The revocation service said: {d}")).unwrap_or_default();
    alert::Alert {
        alert_id: alert_id(ACTION_RESULTS, &result.action_id, result.time.div_euclid(nhid_model::time::MINUTE), 0),
        time: result.time,
        detector: ACTION_RESULTS.into(),
        kind: RESPONSE_FAILED.0.into(),
        severity: RESPONSE_FAILED.1,
        summary: format!(
            "The revocation service failed to {action} for {}{credential}: the finding behind action {} is not contained.{said}",
            principal.id, result.action_id
        ),
        principal,
        credential_id: result.credential_id.as_deref().map(str::to_owned),
        actor: alert::AlertActor { session_id: result.session_id.as_deref().map(str::to_owned), ..Default::default() },
        event: None,
        event_ids: Vec::new(),
        evidence: crate::evidence! {
            "action_id" => result.action_id,
            "action" => result.action.map(ActionKind::as_str),
            "detail" => detail,
        },
        suppressed_repeats: 0,
        // The credential the action was to cut is still valid in someone's hands.
        references: vec!["T1078.004".into(), "OWASP-NHI2".into()],
        score: alert::Score::default(),
        incident_id: None,
    }
}
