//! Alerts as OCSF Detection Findings (class 2004, category Findings), for SIEMs that ingest
//! OCSF without a parser of nhid's own schema. Built against the OCSF schema source
//! [`OCSF_VERSION`]; `tests/ocsf_output.rs` validates what nhid writes against that schema.
//!
//! The mapping, field by field (docs/soc.md has it as a table):
//! - `finding_info`: `uid` the alert id, `title` what kind of deviation, `desc` the alert's
//!   summary, `analytic` the detector instance, `attacks` its MITRE ATT&CK references, `tags`
//!   its OWASP NHI references, `related_events` the triggering events' ids.
//! - `evidences`: the triggering call (`actor.user` the principal with its credential,
//!   `actor.session`, `ai_agent`, `src_endpoint`, `api`, `http_request.user_agent`,
//!   `resources`), and the delegating user when there is one.
//! - `anomaly_analyses`: what was judged (the principal), what was seen (the summary, the
//!   probability) and the baseline it was judged against.
//! - `unmapped.nhid`: what has no OCSF attribute (the detector's evidence, the principal's
//!   type and owner), so that nothing of the nhid alert is lost.
//! - `metadata.correlation_uid`: the alert's incident; the incidents are Incident Findings
//!   (class 2005, [`incident_finding`]) listing their alerts' findings.

use serde_json::{Value, json};

use nhid_model::event::PrincipalType;
use nhid_model::string_enum;
use nhid_model::time::format_rfc3339;
use nhid_model::vocab::{Severity, attack_technique};

use super::alert::Alert;
use super::incident::{IncidentActivity, IncidentRecord};
use crate::detect::Detector;

/// The OCSF schema version the findings follow (`metadata.version`): the schema source nhid
/// is validated against (`../shared/ocsf-schema`, version.json).
pub const OCSF_VERSION: &str = "1.9.0-dev";

const DETECTION_FINDING: u32 = 2004;
const INCIDENT_FINDING: u32 = 2005;
const FINDINGS: u32 = 2;

string_enum! {
    /// How alerts are written: nhid's own schema (`schemas/alert.schema.json`) or OCSF
    /// Detection Findings.
    #[derive(Default)]
    AlertsFormat {
        #[default]
        Nhid => "nhid",
        Ocsf => "ocsf",
    }
}

impl AlertsFormat {
    /// One alert as one JSON document (no newline), in this format. `detectors` describe
    /// the analytics in OCSF (a detector that is gone is named without its description).
    pub fn encode(self, alert: &Alert, detectors: &[Detector]) -> Vec<u8> {
        match self {
            AlertsFormat::Nhid => serde_json::to_vec(alert),
            AlertsFormat::Ocsf => serde_json::to_vec(&detection_finding(alert, detectors)),
        }
        .expect("alerts serialize")
    }

    /// One incident record as one JSON document (no newline), in this format.
    pub fn encode_incident(self, record: &IncidentRecord) -> Vec<u8> {
        match self {
            AlertsFormat::Nhid => serde_json::to_vec(record),
            AlertsFormat::Ocsf => serde_json::to_vec(&incident_finding(record)),
        }
        .expect("incidents serialize")
    }
}

/// The OCSF Incident Finding for an incident record: activity Create, Update (an alert
/// joined) or Close; the alerts' Detection Findings listed by uid, as they share its
/// `metadata.correlation_uid`. nhid does not manage cases: a closed incident's status is
/// Other, "Quiet" (the episode ended; whether it is resolved is the SOC's call), and it is
/// assigned to the principal's owner when one is known, or to no one ("unassigned", as the
/// class requires an assignee or a group).
pub fn incident_finding(record: &IncidentRecord) -> Value {
    let incident = &record.incident;
    let (severity_id, severity) = severity(incident.severity);
    let (activity_id, activity) = match record.activity {
        IncidentActivity::Create => (1, "Create"),
        IncidentActivity::Update => (2, "Update"),
        IncidentActivity::Close => (3, "Close"),
    };
    let (status_id, status) = match record.activity {
        IncidentActivity::Close => (99, "Quiet"),
        _ => (1, "New"),
    };
    let findings: Vec<Value> = incident
        .alerts
        .iter()
        .map(|a| {
            json!({
                "uid": a.alert_id,
                "title": title(&a.kind),
                "types": [a.kind],
                "created_time": a.time,
            })
        })
        .collect();
    let group = match &incident.principal.owner {
        Some(owner) => json!({ "name": owner, "desc": "owner of the principal" }),
        None => json!({ "name": "unassigned", "desc": "no owner of the principal is known" }),
    };
    let mut unmapped = json!({
        "incident_id": incident.incident_id,
        "principal_id": incident.principal.id,
        "principal_type": incident.principal.kind.as_str(),
        "alert_count": incident.alert_count,
        "action_count": incident.action_count,
        "action_ids": incident.action_ids,
        "enforced": incident.enforced,
    });
    insert(&mut unmapped, "closed", record.closed.map(|c| c.as_str().into()));
    json!({
        "activity_id": activity_id,
        "activity_name": activity,
        "category_uid": FINDINGS,
        "category_name": "Findings",
        "class_uid": INCIDENT_FINDING,
        "class_name": "Incident Finding",
        "type_uid": INCIDENT_FINDING * 100 + activity_id,
        "type_name": format!("Incident Finding: {activity}"),
        // The class's time is when the incident was opened.
        "time": incident.first_seen,
        "start_time": incident.first_seen,
        "end_time": incident.last_seen,
        "timezone_offset": 0,
        "severity_id": severity_id,
        "severity": severity,
        "priority_id": priority(incident.severity).0,
        "priority": priority(incident.severity).1,
        "status_id": status_id,
        "status": status,
        "desc": record.summary,
        "message": record.summary,
        "assignee_group": group,
        "finding_info_list": findings,
        "metadata": {
            "version": OCSF_VERSION,
            "correlation_uid": incident.incident_id,
            "modified_time": record.time,
            "profiles": ["incident"],
            "product": product(),
        },
        "unmapped": { "nhid": unmapped },
    })
}

fn product() -> Value {
    json!({ "name": "nhid", "uid": "nhid", "vendor_name": "nhid", "version": env!("CARGO_PKG_VERSION") })
}

/// An incident's priority follows its severity (OCSF: Low 1 .. Critical 4).
fn priority(s: Severity) -> (u8, &'static str) {
    match s {
        Severity::Info | Severity::Low => (1, "Low"),
        Severity::Medium => (2, "Medium"),
        Severity::High => (3, "High"),
        Severity::Critical => (4, "Critical"),
    }
}

/// The OCSF Detection Finding for `alert` (activity Create: each alert is a finding of its
/// own, status New).
pub fn detection_finding(alert: &Alert, detectors: &[Detector]) -> Value {
    let (severity_id, severity) = severity(alert.severity);
    let description = detectors.iter().find(|d| d.id == alert.detector).map(|d| d.description.as_str());
    let (analytic_type_id, analytic_type) = analytic_type(&alert.kind, alert.score.probability.is_some());
    let mut analytic = json!({
        "uid": alert.detector,
        "name": alert.detector,
        "category": alert.kind,
        "type_id": analytic_type_id,
        "type": analytic_type,
    });
    insert(&mut analytic, "desc", description.map(Value::from));
    let owasp: Vec<Value> = alert
        .references
        .iter()
        .filter(|r| r.starts_with("OWASP-NHI"))
        .map(|r| json!({ "name": "owasp_nhi_top10", "value": r }))
        .collect();
    // A content finding is named by the rule it matched, and each rule is an analytic of it.
    let rules = content_rules(alert);
    let mut finding_info = json!({
        "uid": alert.alert_id,
        "title": rules.first().map_or(title(&alert.kind), |(_, name)| name),
        "desc": alert.summary,
        "analytic": analytic,
        "types": [alert.kind],
        "created_time": alert.time,
        "first_seen_time": alert.time,
        "last_seen_time": alert.time,
    });
    insert(&mut finding_info, "attacks", non_empty(alert.references.iter().filter_map(|r| attack(r)).collect()));
    insert(&mut finding_info, "tags", non_empty(owasp));
    let related = rules.iter().map(|(uid, name)| json!({ "uid": uid, "name": name, "type_id": 1, "type": "Rule" }));
    insert(&mut finding_info, "related_analytics", non_empty(related.collect()));
    insert(
        &mut finding_info,
        "related_events",
        non_empty(alert.event_ids.iter().map(|id| json!({ "uid": id })).collect()),
    );
    if let Some(ev) = &alert.event {
        insert(&mut finding_info, "data_sources", Some(json!([ev.source_format.as_str()])));
    }
    let mut finding = json!({
        "activity_id": 1,
        "activity_name": "Create",
        "category_uid": FINDINGS,
        "category_name": "Findings",
        "class_uid": DETECTION_FINDING,
        "class_name": "Detection Finding",
        "type_uid": DETECTION_FINDING * 100 + 1,
        "type_name": "Detection Finding: Create",
        "time": alert.time,
        // nhid writes every time in UTC.
        "timezone_offset": 0,
        "severity_id": severity_id,
        "severity": severity,
        "status_id": 1,
        "status": "New",
        "message": alert.summary,
        "count": alert.suppressed_repeats + 1,
        "metadata": {
            "version": OCSF_VERSION,
            "uid": alert.alert_id,
            "event_code": alert.kind,
            "original_time": format_rfc3339(alert.time),
            "product": product(),
        },
        "finding_info": finding_info,
        "evidences": evidences(alert),
        "anomaly_analyses": [anomaly_analysis(alert)],
        "observables": observables(alert),
        "unmapped": { "nhid": unmapped(alert) },
    });
    if let Some(resource) = alert.event.as_ref().and_then(|e| e.resource.as_deref()) {
        insert(&mut finding, "resources", Some(json!([{ "uid": resource }])));
    }
    insert(&mut finding["metadata"], "correlation_uid", alert.incident_id.as_ref().map(|i| i.as_str().into()));
    finding
}

/// The content rules a content finding matched, as (id, title), from its evidence.
fn content_rules(alert: &Alert) -> Vec<(&str, &str)> {
    let list = |key: &str| alert.evidence.get(key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let ids = list("rule_ids").iter().filter_map(Value::as_str);
    ids.zip(list("rules").iter().filter_map(Value::as_str)).collect()
}

/// The triggering call, and the human it was made for when one delegated it.
fn evidences(alert: &Alert) -> Value {
    let mut user = json!({
        "uid": alert.principal.id,
        "name": alert.principal.id,
        "type_id": user_type(alert.principal.kind).0,
        "type": user_type(alert.principal.kind).1,
    });
    if let Some(credential) = &alert.credential_id {
        let mut c = json!({ "uid": credential });
        insert(&mut c, "type", alert.event.as_ref().and_then(|e| e.credential_kind).map(|k| k.as_str().into()));
        insert(&mut user, "programmatic_credentials", Some(json!([c])));
    }
    let mut actor = json!({ "user": user });
    insert(&mut actor, "session", alert.actor.session_id.as_ref().map(|s| json!({ "uid": s })));
    let mut call = json!({ "name": "triggering call", "actor": actor });
    if let Some(ev) = &alert.event {
        let mut api = json!({ "operation": ev.action, "service": { "name": ev.service } });
        insert(&mut api, "request", alert.event_ids.first().map(|id| json!({ "uid": id })));
        insert(&mut call, "api", Some(api));
        insert(&mut call, "src_endpoint", ev.source_ip.as_ref().map(|ip| json!({ "ip": ip })));
        insert(&mut call, "http_request", ev.user_agent.as_ref().map(|ua| json!({ "user_agent": ua })));
        insert(&mut call, "resources", ev.resource.as_ref().map(|r| json!([{ "uid": r }])));
    }
    insert(&mut call, "ai_agent", alert.actor.agent_id.as_ref().map(|a| json!({ "uid": a, "name": a })));
    let mut evidences = vec![call];
    if let Some(user) = &alert.actor.delegating_user {
        evidences.push(json!({
            "name": "delegating user",
            "user": { "name": user, "type_id": 1, "type": "User" },
        }));
    }
    Value::Array(evidences)
}

/// What was judged, what was seen, and against which baseline.
fn anomaly_analysis(alert: &Alert) -> Value {
    let mut anomaly = json!({
        "observation_parameter": alert.kind,
        "observations": [{ "value": alert.summary }],
    });
    if let Some(p) = alert.score.probability {
        insert(&mut anomaly, "observation_type", Some("probability under the identity's baseline".into()));
        insert(&mut anomaly, "observed_pattern", Some(format!("p = {p:.3e}").into()));
    }
    let mut analysis = json!({
        "analysis_targets": [{ "name": alert.principal.id, "type": alert.principal.kind.as_str() }],
        "anomalies": [anomaly],
    });
    let baseline = alert
        .score
        .baseline
        .as_ref()
        .map(|b| json!([{ "observation_parameter": alert.kind, "observations": [{ "value": b }] }]));
    insert(&mut analysis, "baselines", baseline);
    analysis
}

/// The values a SOC pivots on, each with the attribute that holds it.
fn observables(alert: &Alert) -> Value {
    let mut list = vec![json!({ "name": "evidences.actor.user.uid", "type_id": 31, "value": alert.principal.id })];
    let mut add = |name: &str, type_id: u32, value: Option<&String>| {
        if let Some(v) = value {
            list.push(json!({ "name": name, "type_id": type_id, "value": v }));
        }
    };
    add("evidences.actor.user.programmatic_credentials.uid", 19, alert.credential_id.as_ref());
    add("evidences.user.name", 4, alert.actor.delegating_user.as_ref());
    if let Some(ev) = &alert.event {
        add("evidences.src_endpoint.ip", 2, ev.source_ip.as_ref());
        add("evidences.http_request.user_agent", 16, ev.user_agent.as_ref());
        add("resources.uid", 10, ev.resource.as_ref());
    }
    Value::Array(list)
}

/// What the nhid alert says that OCSF has no attribute for.
fn unmapped(alert: &Alert) -> Value {
    let mut nhid = json!({
        "detector": alert.detector,
        "kind": alert.kind,
        "principal_type": alert.principal.kind.as_str(),
        "evidence": alert.evidence,
        "suppressed_repeats": alert.suppressed_repeats,
        "references": alert.references,
    });
    insert(&mut nhid, "owner", alert.principal.owner.as_ref().map(|o| o.as_str().into()));
    insert(&mut nhid, "probability", alert.score.probability.map(Value::from));
    insert(&mut nhid, "outcome", alert.event.as_ref().map(|e| e.outcome.as_str().into()));
    nhid
}

/// `T1078` → technique; `T1078.004` → its technique and the sub-technique. Other references
/// (OWASP, URLs) are not attacks.
fn attack(reference: &str) -> Option<Value> {
    let (technique, sub) = attack_technique(reference)?;
    let named = |uid: &str| {
        let mut t = json!({ "uid": uid });
        insert(&mut t, "name", technique_name(uid).map(Value::from));
        t
    };
    let mut attack = json!({ "technique": named(technique) });
    insert(&mut attack, "sub_technique", sub.map(named));
    Some(attack)
}

/// MITRE ATT&CK (Enterprise) names of the techniques nhid's detectors refer to; others go
/// by their id alone.
fn technique_name(uid: &str) -> Option<&'static str> {
    Some(match uid {
        "T1021" => "Remote Services",
        "T1021.007" => "Cloud Services",
        "T1048" => "Exfiltration Over Alternative Protocol",
        "T1069" => "Permission Groups Discovery",
        "T1069.003" => "Cloud Groups",
        "T1078" => "Valid Accounts",
        "T1078.004" => "Cloud Accounts",
        "T1087" => "Account Discovery",
        "T1087.004" => "Cloud Account",
        "T1098" => "Account Manipulation",
        "T1098.001" => "Additional Cloud Credentials",
        "T1098.003" => "Additional Cloud Roles",
        "T1110" => "Brute Force",
        "T1110.001" => "Password Guessing",
        "T1136" => "Create Account",
        "T1136.003" => "Cloud Account",
        "T1526" => "Cloud Service Discovery",
        "T1528" => "Steal Application Access Token",
        "T1530" => "Data from Cloud Storage",
        "T1531" => "Account Access Removal",
        "T1550" => "Use Alternate Authentication Material",
        "T1550.001" => "Application Access Token",
        "T1550.004" => "Web Session Cookie",
        "T1552" => "Unsecured Credentials",
        "T1560" => "Archive Collected Data",
        "T1567" => "Exfiltration Over Web Service",
        "T1580" => "Cloud Infrastructure Discovery",
        "T1619" => "Cloud Storage Object Discovery",
        _ => return None,
    })
}

/// The class's severity: id and caption.
fn severity(s: Severity) -> (u8, &'static str) {
    match s {
        Severity::Info => (1, "Informational"),
        Severity::Low => (2, "Low"),
        Severity::Medium => (3, "Medium"),
        Severity::High => (4, "High"),
        Severity::Critical => (5, "Critical"),
    }
}

/// OCSF's user types: a person is a User, a machine identity a Service.
fn user_type(kind: PrincipalType) -> (u8, &'static str) {
    match kind {
        PrincipalType::Human => (1, "User"),
        PrincipalType::Unknown => (0, "Unknown"),
        _ => (4, "Service"),
    }
}

/// Count models are statistical analytics, other baselines behavioural; facts judged
/// without a baseline (a privilege operation, a revoked key used) are rules.
fn analytic_type(kind: &str, scored: bool) -> (u8, &'static str) {
    match (kind, scored) {
        ("rate_spike" | "volume_ceiling" | "denied_burst" | "breadth", true) => (3, "Statistical"),
        (_, true) => (2, "Behavioral"),
        (_, false) => (1, "Rule"),
    }
}

/// A finding's title: the kind of deviation, for a person.
fn title(kind: &str) -> &'static str {
    match kind {
        "rate_spike" => "Machine identity calling far above its usual rate",
        "volume_ceiling" => "Calls or data above the ceiling for the identity's type",
        "new_source" => "Machine identity used from a network or client it never used",
        "scope_drift" => "Machine identity performing actions outside its usual scope",
        "breadth" => "Machine identity touching far more targets than usual",
        "denied_burst" => "Machine identity with a burst of denied calls",
        "static_credential" => "Static credential older than its allowed age",
        "expired_credential" => "Expired, revoked or retired credential used",
        "orphaned_principal" => "Machine identity active after its owner was offboarded",
        "dormant_reactivation" => "Dormant machine identity active again",
        "shared_credential" => "Credential used from more networks at once than it ever was",
        "session_inheritance" => "Person acting through an agent or at machine speed",
        "interactive_login" => "Machine identity signing in interactively",
        "unregistered_principal" => "Machine identity the inventory does not list",
        "missing_attribution" => "Agent acting without a delegating user or session",
        "privilege_change" => "Machine identity changing privileges",
        "content" => "Dangerous call matched a content rule",
        "action_storm" => "Automatic actions stopped by the circuit breaker",
        "response_failed" => "Revocation failed: the finding is not contained",
        _ => "Non-human identity anomaly",
    }
}

/// Sets `key` on a JSON object when there is a value.
fn insert(object: &mut Value, key: &str, value: Option<Value>) {
    if let (Value::Object(map), Some(v)) = (object, value) {
        map.insert(key.into(), v);
    }
}

/// `Some` array when it has elements: OCSF arrays are left out rather than empty.
fn non_empty(items: Vec<Value>) -> Option<Value> {
    (!items.is_empty()).then_some(Value::Array(items))
}
