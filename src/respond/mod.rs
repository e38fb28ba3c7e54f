//! Findings → alerts (aggregated per principal and detector) → actions (guardrailed).

pub mod alert;
