//! Incidents: the alerts about one identity within an attack episode, as one thing to
//! triage (`schemas/incident.schema.json`).
//!
//! An identity's first alert opens an incident; each alert within `response.incident_gap_secs`
//! of the previous one joins it; the gap passing without one closes it (in event time, by the
//! engine's sweep, or when the identity leaves the state). Each change is one record, the
//! incident as it now stands, keyed by its id: a compacted topic keeps the latest of each.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::alert::{Action, Alert, AlertPrincipal};
use nhid_model::string_enum;
use nhid_model::time::{Millis, serde_rfc3339};
use nhid_model::vocab::Severity;

/// Alert and action ids an incident lists; the counts go on. An attacker who makes an
/// identity alert all day must not make every record of its incident grow with it: the
/// alerts topic has every alert, with the incident's id.
pub const MAX_LISTED: usize = 50;

/// One identity's incident, as kept in its state and written in each record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// UUIDv5 of the principal and the first alert's id: as stable as the alert ids.
    pub incident_id: String,
    #[serde(with = "principal_in_state")]
    pub principal: AlertPrincipal,
    /// The highest severity of its alerts.
    pub severity: Severity,
    /// Event times of the first and the latest alert.
    #[serde(with = "serde_rfc3339")]
    pub first_seen: Millis,
    #[serde(with = "serde_rfc3339")]
    pub last_seen: Millis,
    pub alert_count: u32,
    /// Its alerts, the first [`MAX_LISTED`], in the order raised.
    pub alerts: Vec<IncidentAlert>,
    pub action_count: u32,
    /// Actions requested, the first [`MAX_LISTED`], in order.
    pub action_ids: Vec<String>,
    /// Whether an action requested was enforced (not a dry run).
    pub enforced: bool,
}

/// The principal as JSON names it (`owner` left out when unknown), and in the identity's
/// state (postcard: no field names, so no field may be left out) as a tuple.
mod principal_in_state {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::AlertPrincipal;
    use nhid_model::event::PrincipalType;

    pub fn serialize<S: Serializer>(p: &AlertPrincipal, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() { p.serialize(s) } else { (&p.id, p.kind, &p.owner).serialize(s) }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<AlertPrincipal, D::Error> {
        if d.is_human_readable() {
            AlertPrincipal::deserialize(d)
        } else {
            let (id, kind, owner) = <(String, PrincipalType, Option<String>)>::deserialize(d)?;
            Ok(AlertPrincipal { id, kind, owner })
        }
    }
}

/// One alert of an incident, as the incident lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentAlert {
    pub alert_id: String,
    pub kind: String,
    pub severity: Severity,
    #[serde(with = "serde_rfc3339")]
    pub time: Millis,
}

string_enum! {
    /// What a record says happened to the incident.
    IncidentActivity {
        Create => "create",
        Update => "update",
        Close => "close",
    }
}

string_enum! {
    /// Why an incident closed.
    CloseReason {
        /// No alert about the identity for the gap.
        Quiet => "quiet",
        /// The identity left the state (idle or over capacity) before the gap passed.
        Evicted => "evicted",
    }
}

/// One change of an incident: the incident as it stands after it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentRecord {
    pub activity: IncidentActivity,
    /// Event time of the change: the alert's, or when the gap passed.
    #[serde(with = "serde_rfc3339")]
    pub time: Millis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<CloseReason>,
    #[serde(flatten)]
    pub incident: Incident,
    /// One plain sentence for the analyst.
    pub summary: String,
}

impl Incident {
    /// The incident an alert opens.
    pub fn open(alert: &Alert) -> Self {
        let name = format!("incident|{}|{}", alert.principal.id, alert.alert_id);
        Incident {
            incident_id: Uuid::new_v5(&super::NAMESPACE, name.as_bytes()).to_string(),
            principal: alert.principal.clone(),
            severity: alert.severity,
            first_seen: alert.time,
            last_seen: alert.time,
            alert_count: 0,
            alerts: Vec::new(),
            action_count: 0,
            action_ids: Vec::new(),
            enforced: false,
        }
    }

    /// Whether an alert at `t` is past the episode (`gap` after the latest alert).
    pub fn is_over(&self, t: Millis, gap: Millis) -> bool {
        t > self.last_seen.saturating_add(gap)
    }

    /// Folds an alert, and the action it caused if any, into the incident.
    pub fn join(&mut self, alert: &Alert, action: Option<&Action>) {
        self.severity = self.severity.max(alert.severity);
        self.last_seen = self.last_seen.max(alert.time);
        self.principal = alert.principal.clone();
        self.alert_count = self.alert_count.saturating_add(1);
        if self.alerts.len() < MAX_LISTED {
            self.alerts.push(IncidentAlert {
                alert_id: alert.alert_id.clone(),
                kind: alert.kind.clone(),
                severity: alert.severity,
                time: alert.time,
            });
        }
        if let Some(action) = action {
            self.action_count = self.action_count.saturating_add(1);
            self.enforced |= action.mode == super::alert::Mode::Enforce;
            if self.action_ids.len() < MAX_LISTED {
                self.action_ids.push(action.action_id.clone());
            }
        }
    }

    /// The record of a change, with its sentence.
    pub fn record(&self, activity: IncidentActivity, time: Millis, closed: Option<CloseReason>) -> IncidentRecord {
        IncidentRecord { activity, time, closed, incident: self.clone(), summary: self.summary(closed) }
    }

    fn summary(&self, closed: Option<CloseReason>) -> String {
        use nhid_model::time::format_rfc3339;
        let alerts = match self.alert_count {
            1 => "1 alert".to_string(),
            n => format!("{n} alerts"),
        };
        let mut kinds: Vec<&str> = Vec::new();
        for a in &self.alerts {
            if !kinds.contains(&a.kind.as_str()) {
                kinds.push(&a.kind);
            }
        }
        let mut s = format!(
            "{} ({}) about {} {} from {} to {}, at most {}",
            alerts,
            kinds.join(", "),
            self.principal.kind.as_str().replace('_', " "),
            self.principal.id,
            format_rfc3339(self.first_seen),
            format_rfc3339(self.last_seen),
            self.severity.as_str(),
        );
        s.push_str(&match (self.action_count, self.enforced) {
            (0, _) => "; no action requested".to_string(),
            (n, true) => format!("; {n} action(s) requested, enforced"),
            (n, false) => format!("; {n} action(s) requested, as dry runs"),
        });
        s.push_str(match closed {
            None => ".",
            Some(CloseReason::Quiet) => "; closed: no alert since.",
            Some(CloseReason::Evicted) => "; closed: the identity left nhid's state.",
        });
        s
    }

    /// Heap bytes it holds, for the state's memory estimate. Read at every event of its
    /// identity, so from the lists' lengths rather than by walking them: alert and action ids
    /// are UUIDs, kinds nhid's own short names.
    pub fn heap_bytes(&self) -> usize {
        const UUID: usize = 36;
        const KIND: usize = 24;
        size_of::<Self>()
            + self.incident_id.len()
            + self.principal.id.len()
            + self.principal.owner.as_ref().map_or(0, String::len)
            + self.alerts.len() * (size_of::<IncidentAlert>() + UUID + KIND)
            + self.action_ids.len() * (size_of::<String>() + UUID)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nhid_model::event::PrincipalType;

    /// Kept in the identity's state: every field comes back from the binary form, an absent
    /// owner too (postcard cannot skip a field).
    #[test]
    fn an_incident_round_trips_through_the_state_s_binary_form_with_or_without_an_owner() {
        for owner in [None, Some("team-a".to_string())] {
            let incident = Incident {
                incident_id: "i".into(),
                principal: AlertPrincipal { id: "svc".into(), kind: PrincipalType::ServiceAccount, owner },
                severity: Severity::High,
                first_seen: 1,
                last_seen: 2,
                alert_count: 1,
                alerts: vec![IncidentAlert {
                    alert_id: "a".into(),
                    kind: "rate_spike".into(),
                    severity: Severity::High,
                    time: 2,
                }],
                action_count: 0,
                action_ids: Vec::new(),
                enforced: false,
            };
            let bytes = postcard::to_allocvec(&incident).unwrap();
            assert_eq!(postcard::from_bytes::<Incident>(&bytes).unwrap(), incident);
            let json = serde_json::to_value(&incident).unwrap();
            assert_eq!(json["principal"].get("owner").is_some(), incident.principal.owner.is_some());
            assert_eq!(serde_json::from_value::<Incident>(json).unwrap(), incident);
        }
    }
}
