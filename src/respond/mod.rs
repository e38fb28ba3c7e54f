//! Findings → alerts (one per principal, detector and window) → actions (guardrailed).

pub mod alert;
pub mod policy;

use uuid::Uuid;

use alert::ActionTarget;

/// Namespace of nhid's deterministic ids (UUIDv5). Changing it changes every id.
const NAMESPACE: Uuid = Uuid::from_u128(0x6e68_6964_2d61_6c65_7274_2d69_6473_0001);

/// The alert id: the same detector, principal and aggregation window give the same id
/// in `replay`, in `run`, and after a crash, so consumers can deduplicate.
pub fn alert_id(detector: &str, principal_id: &str, window: i64) -> String {
    Uuid::new_v5(&NAMESPACE, format!("alert|{detector}|{principal_id}|{window}").as_bytes()).to_string()
}

/// The action id, the revocation service's idempotency key.
pub fn action_id(alert_id: &str, action: alert::ActionKind, target: &ActionTarget) -> String {
    let key = format!(
        "action|{alert_id}|{}|{}|{}|{}",
        action.as_str(),
        target.principal_id,
        target.credential_id.as_deref().unwrap_or(""),
        target.session_id.as_deref().unwrap_or("")
    );
    Uuid::new_v5(&NAMESPACE, key.as_bytes()).to_string()
}
