//! The JSON Schemas in `schemas/` and the Rust structs they describe must agree: what nhid
//! writes validates, what validates decodes, and every enum lists the same values.

mod common;

use std::borrow::Cow;
use std::collections::BTreeSet;

use common::{assert_invalid, assert_valid, schema, schema_json};
use nhid_decode::control::{
    ActionResult, ActionStatus, LifecycleEvent, LifecycleKind, VerdictKind, parse_action_result, parse_lifecycle,
    parse_verdict,
};
use nhid_decode::native;
use nhid_engine::respond::alert::{
    Action, ActionTarget, Alert, AlertActor, AlertEvent, AlertPrincipal, MAX_EVENT_IDS, Mode, Score,
};
use nhid_engine::respond::incident::{CloseReason, IncidentActivity, IncidentRecord};
use nhid_model::event::{
    Actor, AuditEvent, Credential, CredentialKind, Impersonator, Outcome, Principal, PrincipalType, Source,
    SourceFormat,
};
use nhid_model::time::parse_rfc3339;
use nhid_model::vocab::DeadLetterReason;
use nhid_model::vocab::{ActionKind, Severity};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

const SCHEMAS: &[&str] = &["audit-event", "alert", "action", "lifecycle", "action-result", "incident", "verdict"];
const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

fn examples(name: &str) -> Vec<Value> {
    match schema_json(name).get("examples") {
        Some(Value::Array(examples)) => examples.clone(),
        other => panic!("schemas/{name}.schema.json has no examples array: {other:?}"),
    }
}

fn t(s: &str) -> i64 {
    parse_rfc3339(s).unwrap()
}

// ---------- (a) every schema file loads, declares 2020-12 and is a valid schema ----------

#[test]
fn every_schema_file_is_a_valid_2020_12_schema() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_str().unwrap().to_owned();
        let name = file
            .strip_suffix(".schema.json")
            .unwrap_or_else(|| panic!("schemas/{file}: every file in schemas/ is named <name>.schema.json"));
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("schemas/{file} is not valid json: {e}"));
        assert_eq!(doc["$schema"], DRAFT_2020_12, "schemas/{file} must declare draft 2020-12");
        assert_eq!(doc["$id"], format!("https://nhid.dev/schemas/{file}"), "schemas/{file} $id");
        let meta_errors: Vec<String> = jsonschema::draft202012::meta::validator()
            .iter_errors(&doc)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        assert!(meta_errors.is_empty(), "schemas/{file} fails the 2020-12 meta-schema:\n{}", meta_errors.join("\n"));
        schema(name); // compiles, with format assertions on
        names.insert(name.to_owned());
    }
    let expected: BTreeSet<String> = SCHEMAS.iter().map(|s| s.to_string()).collect();
    assert!(names.is_superset(&expected), "missing schemas: {:?}", expected.difference(&names).collect::<Vec<_>>());
}

#[test]
fn the_meta_schema_check_can_fail() {
    let broken = json!({"$schema": DRAFT_2020_12, "type": "strnig", "maxItems": -1});
    assert!(!jsonschema::draft202012::meta::is_valid(&broken));
}

/// Every object says what it accepts: no schema object leaves additional properties open.
#[test]
fn every_object_schema_closes_its_properties() {
    fn walk(name: &str, pointer: &str, node: &Value) {
        if let Value::Object(map) = node {
            if map.contains_key("properties") {
                assert_eq!(
                    map.get("additionalProperties"),
                    Some(&Value::Bool(false)),
                    "schemas/{name}.schema.json{pointer}: object with properties needs additionalProperties: false"
                );
            }
            for (key, child) in map {
                // An `if` tests values of the object around it; it does not describe an object.
                if key != "examples" && key != "if" {
                    walk(name, &format!("{pointer}/{key}"), child);
                }
            }
        }
    }
    for name in SCHEMAS {
        walk(name, "", &schema_json(name));
    }
}

// ---------- (b) every example validates ----------

#[test]
fn every_example_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let file = entry.unwrap().file_name().into_string().unwrap();
        let name = file.strip_suffix(".schema.json").unwrap();
        let examples = examples(name);
        assert!(!examples.is_empty(), "schemas/{file} has no examples");
        for (i, example) in examples.iter().enumerate() {
            let errors = common::errors(&schema(name), example);
            assert!(errors.is_empty(), "schemas/{file} examples[{i}] is invalid:\n  {}", errors.join("\n  "));
        }
    }
    assert!(examples("audit-event").len() >= 3);
    assert!(examples("alert").len() >= 3);
    assert!(examples("action").len() >= 2);
    assert!(examples("lifecycle").len() >= LifecycleKind::ALL.len());
    assert!(examples("action-result").len() >= ActionStatus::ALL.len());
}

// ---------- enums: the schema lists exactly the Rust variants ----------

fn schema_enum(name: &str, pointer: &str) -> BTreeSet<String> {
    let doc = schema_json(name);
    let values = doc.pointer(pointer).unwrap_or_else(|| panic!("schemas/{name}.schema.json has no {pointer}"));
    values.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
}

/// Serialized through serde, not `as_str`, because serde is what writes the JSON.
fn rust_enum<T: Serialize>(variants: &[T]) -> BTreeSet<String> {
    variants.iter().map(|v| serde_json::to_value(v).unwrap().as_str().unwrap().to_owned()).collect()
}

#[test]
fn schema_enums_list_exactly_the_rust_variants() {
    let principal_types = rust_enum(PrincipalType::ALL);
    let cases = [
        ("audit-event", "/$defs/principalType/enum", principal_types.clone()),
        ("audit-event", "/$defs/credentialKind/enum", rust_enum(CredentialKind::ALL)),
        ("audit-event", "/properties/outcome/enum", rust_enum(Outcome::ALL)),
        ("audit-event", "/$defs/sourceFormat/enum", rust_enum(SourceFormat::ALL)),
        ("alert", "/$defs/principalType/enum", principal_types.clone()),
        ("alert", "/properties/severity/enum", rust_enum(Severity::ALL)),
        ("action", "/properties/action/enum", rust_enum(ActionKind::ALL)),
        ("action", "/properties/target/properties/principal_type/enum", principal_types),
        ("action", "/properties/mode/enum", rust_enum(&[Mode::Enforce, Mode::DryRun])),
        ("lifecycle", "/properties/type/enum", rust_enum(LifecycleKind::ALL)),
        ("action-result", "/properties/status/enum", rust_enum(ActionStatus::ALL)),
        ("action-result", "/properties/action/enum", rust_enum(ActionKind::ALL)),
        ("incident", "/properties/activity/enum", rust_enum(IncidentActivity::ALL)),
        ("incident", "/properties/closed/enum", rust_enum(CloseReason::ALL)),
        ("incident", "/properties/severity/enum", rust_enum(Severity::ALL)),
        ("incident", "/$defs/principalType/enum", rust_enum(PrincipalType::ALL)),
        ("verdict", "/properties/verdict/enum", rust_enum(VerdictKind::ALL)),
    ];
    for (name, pointer, rust) in cases {
        assert_eq!(schema_enum(name, pointer), rust, "schemas/{name}.schema.json{pointer} vs the Rust enum");
    }
}

// ---------- property names: the schema and the serialized struct have the same keys ----------

/// Resolves a local `$ref` (`#/$defs/...`) against the schema document.
fn resolve<'a>(doc: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(r) => doc.pointer(r.strip_prefix('#').unwrap()).unwrap(),
        None => node,
    }
}

/// Walks a fully populated instance alongside the schema and asserts every object has
/// exactly the properties the schema names, so no field is missing from either side.
fn assert_same_properties(name: &str, doc: &Value, node: &Value, instance: &Value, at: &str) {
    let node = resolve(doc, node);
    let (Some(Value::Object(props)), Value::Object(fields)) = (node.get("properties"), instance) else {
        return;
    };
    let in_schema: BTreeSet<&String> = props.keys().collect();
    let in_rust: BTreeSet<&String> = fields.keys().collect();
    assert_eq!(in_schema, in_rust, "schemas/{name}.schema.json at {at:?}: schema properties vs serialized fields");
    for (key, child) in props {
        assert_same_properties(name, doc, child, &fields[key], &format!("{at}/{key}"));
    }
}

// ---------- (c) the canonical event ----------

fn full_event() -> AuditEvent<'static> {
    AuditEvent {
        id: "evt-1".into(),
        time: t("2026-11-23T10:00:00.123Z"),
        principal: Principal {
            id: "svc-billing".into(),
            kind: PrincipalType::ServiceAccount,
            name: Some("billing exporter".into()),
            owner: Some("team-billing".into()),
            tenant: Some("123456789012".into()),
            inferred: true,
        },
        credential: Credential {
            id: Some("AKIAIOSFODNN7EXAMPLE".into()),
            kind: CredentialKind::StaticKey,
            issued_at: Some(t("2024-02-14T09:12:44Z")),
            expires_at: Some(t("2027-02-14T09:12:44Z")),
        },
        actor: Actor {
            delegating_user: Some("alice@example.com".into()),
            agent_id: Some("agent:exporter".into()),
            session_id: Some("sess-1".into()),
            impersonator: Some(Box::new(Impersonator {
                principal: Principal {
                    id: "system:serviceaccount:tools:deployer".into(),
                    kind: PrincipalType::ServiceAccount,
                    name: Some("deployer".into()),
                    owner: Some("team-platform".into()),
                    tenant: Some("tools".into()),
                    inferred: true,
                },
                credential: Credential {
                    id: Some("JTI=deployer-token".into()),
                    kind: CredentialKind::ShortLivedToken,
                    issued_at: Some(t("2026-11-23T09:00:00Z")),
                    expires_at: Some(t("2026-11-23T10:00:00Z")),
                },
                session_id: Some("deployer-5c4d".into()),
            })),
        },
        action: "s3:GetObject".into(),
        service: "s3".into(),
        resource: Some(Cow::Borrowed("arn:aws:s3:::billing/invoices.csv")),
        outcome: Outcome::Success,
        source: Source {
            ip: Some("10.1.2.3".into()),
            user_agent: Some("aws-sdk-go-v2/1.30.3".into()),
            asn: Some(u32::MAX),
            country: Some("IE".into()),
        },
        bytes_out: Some(482_113),
        source_format: SourceFormat::Cloudtrail,
        rules: vec![nhid_model::event::RuleMatch {
            id: "4db60cc0-36fb-42b7-9b58-a5b53019fb74".into(),
            title: "AWS CloudTrail Important Change".into(),
            level: nhid_model::vocab::Severity::Medium,
            techniques: vec!["T1562.008".into()],
        }],
        raw: "",
        raw_fields: Default::default(),
    }
}

#[test]
fn a_fully_populated_event_from_the_structs_validates() {
    let value = serde_json::to_value(full_event()).unwrap();
    assert_valid("audit-event", &value);
    assert_eq!(value["time"], "2026-11-23T10:00:00.123Z");
    let doc = schema_json("audit-event");
    assert_same_properties("audit-event", &doc, &doc, &value, "");
}

#[test]
fn a_minimal_event_from_the_structs_validates() {
    let event = AuditEvent {
        id: "evt-2".into(),
        time: 0,
        principal: Principal {
            id: "ci-bot".into(),
            kind: PrincipalType::Bot,
            name: None,
            owner: None,
            tenant: None,
            inferred: false,
        },
        credential: Credential::default(),
        actor: Actor::default(),
        action: "repo.clone".into(),
        service: "github".into(),
        resource: None,
        outcome: Outcome::Denied,
        source: Source::default(),
        bytes_out: None,
        source_format: SourceFormat::Native,
        rules: Vec::new(),
        raw: "",
        raw_fields: Default::default(),
    };
    assert_valid("audit-event", &serde_json::to_value(event).unwrap());
}

#[test]
fn every_principal_type_credential_kind_outcome_and_format_validates() {
    let base = full_event();
    for &kind in PrincipalType::ALL {
        for &cred in CredentialKind::ALL {
            for &outcome in Outcome::ALL {
                for &format in SourceFormat::ALL {
                    let mut e = base.clone();
                    e.principal.kind = kind;
                    e.credential.kind = cred;
                    e.outcome = outcome;
                    e.source_format = format;
                    assert_valid("audit-event", &serde_json::to_value(e).unwrap());
                }
            }
        }
    }
}

/// The examples are written in nhid's own output form, so decoding and re-serializing
/// them changes nothing.
#[test]
fn every_event_example_decodes_and_round_trips() {
    for (i, example) in examples("audit-event").iter().enumerate() {
        let text = serde_json::to_string(example).unwrap();
        let event = native::decode(&text).unwrap_or_else(|e| panic!("audit-event examples[{i}] does not decode: {e}"));
        let again = serde_json::to_value(&event).unwrap();
        assert_valid("audit-event", &again);
        assert_eq!(&again, example, "audit-event examples[{i}] changes when decoded and re-serialized");
    }
}

/// The schema's description promises this leniency: credential, actor, source and
/// source_format may be missing on input, and what nhid writes back has them all.
#[test]
fn the_decoder_fills_what_the_schema_requires() {
    let lenient = json!({
        "id": "e1", "time": "2026-11-23T10:00:00+01:00",
        "principal": {"id": "svc-a", "type": "workload"},
        "action": "get", "service": "k8s", "outcome": "failure"
    });
    let errors = assert_invalid("audit-event", &lenient);
    assert_eq!(errors.len(), 4, "{errors:?}");
    let text = lenient.to_string();
    let event = native::decode(&text).unwrap();
    let written = serde_json::to_value(&event).unwrap();
    assert_valid("audit-event", &written);
    assert_eq!(written["time"], "2026-11-23T09:00:00.000Z");
    assert_eq!(written["credential"], json!({"kind": "unknown"}));
    assert_eq!(written["source_format"], "native");
}

/// What the schema requires, the decoder requires too, except the four fields it defaults.
#[test]
fn required_fields_agree_with_the_decoder() {
    let doc = schema_json("audit-event");
    let required: BTreeSet<&str> = doc["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let defaulted = ["credential", "actor", "source", "source_format"];
    let example = &examples("audit-event")[0];
    for key in doc["properties"].as_object().unwrap().keys() {
        let mut without = example.clone();
        without.as_object_mut().unwrap().remove(key);
        let text = without.to_string();
        let decoded = native::decode(&text);
        if required.contains(key.as_str()) && !defaulted.contains(&key.as_str()) {
            assert!(decoded.is_err(), "schema requires {key:?} but the decoder accepts an event without it");
        } else {
            assert!(decoded.is_ok(), "the decoder rejects an event without optional {key:?}: {:?}", decoded.err());
        }
    }
}

// ---------- (d) alerts and actions ----------

fn full_alert() -> Alert {
    let alert_id = Uuid::new_v5(&Uuid::NAMESPACE_OID, b"rate_spike_service_accounts/svc-billing/29409600");
    let mut evidence = serde_json::Map::new();
    evidence.insert("observed".into(), json!(1840));
    evidence.insert("baseline_mean".into(), json!(12.4));
    evidence.insert("never_seen_values".into(), json!(["203.0.113.77"]));
    evidence.insert("learned".into(), json!(true));
    evidence.insert("source_ip".into(), json!("203.0.113.77"));
    Alert {
        alert_id: alert_id.to_string(),
        time: t("2026-11-23T10:00:42Z"),
        detector: "rate_spike_service_accounts".into(),
        kind: "rate_spike".into(),
        severity: Severity::High,
        principal: AlertPrincipal {
            id: "svc-billing".into(),
            kind: PrincipalType::ServiceAccount,
            owner: Some("team-billing".into()),
        },
        credential_id: Some("AKIAIOSFODNN7EXAMPLE".into()),
        actor: AlertActor {
            delegating_user: Some("alice@example.com".into()),
            agent_id: Some("agent:exporter".into()),
            session_id: Some("sess-1".into()),
        },
        event: Some(AlertEvent {
            action: "s3:GetObject".into(),
            service: "s3".into(),
            resource: Some("arn:aws:s3:::billing-exports/2026/11/invoices.csv".into()),
            outcome: Outcome::Success,
            source_ip: Some("203.0.113.77".into()),
            user_agent: Some("aws-cli/2.17.5 md/command#s3.cp".into()),
            credential_kind: Some(CredentialKind::StaticKey),
            source_format: SourceFormat::Cloudtrail,
        }),
        event_ids: (0..MAX_EVENT_IDS).map(|i| format!("evt-{i}")).collect(),
        evidence,
        summary: "svc-billing made 1840 calls in one minute, against a usual 12 per minute.".into(),
        suppressed_repeats: 7,
        references: vec!["T1078.004".into(), "OWASP-NHI2".into()],
        score: Score {
            probability: Some(2.4e-12),
            baseline: Some("12.40 calls per minute (variance 15.10) at this hour, learned over 4320 minutes".into()),
        },
        incident_id: Some("3f1c9a52-0b7e-5d14-9c2a-6e8f4b1d7a30".into()),
    }
}

fn full_action() -> Action {
    let alert_id = full_alert().alert_id;
    let action_id = Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("{alert_id}/revoke_session").as_bytes());
    Action {
        action_id: action_id.to_string(),
        alert_id,
        action: ActionKind::RevokeSession,
        target: ActionTarget {
            principal_id: "agent:support-triage".into(),
            principal_kind: PrincipalType::AiAgent,
            credential_id: Some("tok_9f2c41d7".into()),
            session_id: Some("sess-7d1f0c2e".into()),
        },
        mode: Mode::Enforce,
        reason: "agent read from a never-seen service; policy revokes the session only.".into(),
        time: t("2026-11-23T10:04:17.250Z"),
    }
}

#[test]
fn an_alert_from_the_structs_validates() {
    let value = serde_json::to_value(full_alert()).unwrap();
    assert_valid("alert", &value);
    let doc = schema_json("alert");
    assert_same_properties("alert", &doc, &doc, &value, "");

    for &severity in Severity::ALL {
        let minimal = Alert {
            severity,
            principal: AlertPrincipal { id: "ci-bot".into(), kind: PrincipalType::Bot, owner: None },
            credential_id: None,
            actor: AlertActor::default(),
            event: None,
            event_ids: vec![],
            evidence: serde_json::Map::new(),
            suppressed_repeats: 0,
            references: vec![],
            score: Score::default(),
            incident_id: None,
            ..full_alert()
        };
        assert_valid("alert", &serde_json::to_value(minimal).unwrap());
    }
}

#[test]
fn an_action_from_the_structs_validates() {
    let value = serde_json::to_value(full_action()).unwrap();
    assert_valid("action", &value);
    let doc = schema_json("action");
    assert_same_properties("action", &doc, &doc, &value, "");

    for &action in ActionKind::ALL {
        for mode in [Mode::Enforce, Mode::DryRun] {
            let narrow = Action {
                action,
                mode,
                target: ActionTarget {
                    principal_id: "svc-billing".into(),
                    principal_kind: PrincipalType::ServiceAccount,
                    credential_id: None,
                    session_id: None,
                },
                ..full_action()
            };
            assert_valid("action", &serde_json::to_value(narrow).unwrap());
        }
    }
}

#[test]
fn every_alert_and_action_example_deserializes_and_round_trips() {
    for (i, example) in examples("alert").iter().enumerate() {
        let alert: Alert = serde_json::from_value(example.clone())
            .unwrap_or_else(|e| panic!("alert examples[{i}] does not deserialize into Alert: {e}"));
        assert_eq!(&serde_json::to_value(&alert).unwrap(), example, "alert examples[{i}] round trip");
    }
    for (i, example) in examples("action").iter().enumerate() {
        let action: Action = serde_json::from_value(example.clone())
            .unwrap_or_else(|e| panic!("action examples[{i}] does not deserialize into Action: {e}"));
        assert_eq!(&serde_json::to_value(&action).unwrap(), example, "action examples[{i}] round trip");
    }
    for (i, example) in examples("incident").iter().enumerate() {
        let record: IncidentRecord = serde_json::from_value(example.clone())
            .unwrap_or_else(|e| panic!("incident examples[{i}] does not deserialize into IncidentRecord: {e}"));
        assert_eq!(&serde_json::to_value(&record).unwrap(), example, "incident examples[{i}] round trip");
        // A close record has every property.
        if record.closed.is_some() {
            let doc = schema_json("incident");
            assert_same_properties("incident", &doc, &doc, example, "");
        }
    }
}

/// What the schemas require, the structs require too, and the reverse.
#[test]
fn required_fields_agree_with_the_alert_and_action_structs() {
    fn check<T: serde::de::DeserializeOwned>(name: &str) {
        let doc = schema_json(name);
        let required: BTreeSet<&str> =
            doc["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        let example = &examples(name)[0];
        for key in doc["properties"].as_object().unwrap().keys() {
            let mut without = example.clone();
            without.as_object_mut().unwrap().remove(key);
            let parsed = serde_json::from_value::<T>(without);
            assert_eq!(
                parsed.is_err(),
                required.contains(key.as_str()),
                "{name}: schema and struct disagree on whether {key:?} is required"
            );
        }
    }
    check::<Alert>("alert");
    check::<Action>("action");
    check::<IncidentRecord>("incident");
}

// ---------- (e) what must fail ----------

fn first_example(name: &str) -> Value {
    examples(name).swap_remove(0)
}

fn assert_fails_at(name: &str, instance: &Value, needle: &str) {
    let errors = assert_invalid(name, instance);
    assert!(errors.iter().any(|e| e.contains(needle)), "{name}: expected an error about {needle:?}, got {errors:?}");
}

#[test]
fn an_event_with_principal_type_robot_fails() {
    let mut event = first_example("audit-event");
    event["principal"]["type"] = json!("robot");
    assert_fails_at("audit-event", &event, "/principal/type");
    assert!(native::decode(&event.to_string()).is_err(), "the decoder must refuse it too");
}

#[test]
fn an_alert_with_severity_urgent_fails() {
    let mut alert = first_example("alert");
    alert["severity"] = json!("urgent");
    assert_fails_at("alert", &alert, "/severity");
    assert!(serde_json::from_value::<Alert>(alert).is_err(), "the struct must refuse it too");
}

#[test]
fn an_action_without_action_id_fails() {
    let mut action = first_example("action");
    action.as_object_mut().unwrap().remove("action_id");
    assert_fails_at("action", &action, "action_id");
    assert!(serde_json::from_value::<Action>(action).is_err(), "the struct must refuse it too");
}

#[test]
fn an_alert_with_seventeen_event_ids_fails() {
    let mut alert = first_example("alert");
    alert["event_ids"] = json!((0..=MAX_EVENT_IDS).map(|i| format!("evt-{i}")).collect::<Vec<_>>());
    assert_fails_at("alert", &alert, "/event_ids");
    alert["event_ids"] = json!((0..MAX_EVENT_IDS).map(|i| format!("evt-{i}")).collect::<Vec<_>>());
    assert_valid("alert", &alert);
}

#[test]
fn an_event_with_an_unknown_top_level_field_fails() {
    let mut event = first_example("audit-event");
    event["secret_access_key"] = json!("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    assert_fails_at("audit-event", &event, "secret_access_key");
}

#[test]
fn formats_are_checked() {
    let mut event = first_example("audit-event");
    event["time"] = json!("2026-11-23 10:00:00");
    assert_fails_at("audit-event", &event, "/time");
    let mut alert = first_example("alert");
    alert["alert_id"] = json!("not-a-uuid");
    assert_fails_at("alert", &alert, "/alert_id");
    let mut action = first_example("action");
    action["time"] = json!("2026-02-30T00:00:00Z");
    assert_fails_at("action", &action, "/time");
}

#[test]
fn other_values_the_schemas_refuse() {
    let mut event = first_example("audit-event");
    event["bytes_out"] = json!(-1);
    assert_fails_at("audit-event", &event, "/bytes_out");
    let mut event = first_example("audit-event");
    event["principal"]["id"] = json!("");
    assert_fails_at("audit-event", &event, "/principal/id");
    let mut event = first_example("audit-event");
    event["credential"]["secret"] = json!("hunter2");
    assert_fails_at("audit-event", &event, "secret");
    let mut alert = first_example("alert");
    alert["summary"] = json!("");
    assert_fails_at("alert", &alert, "/summary");
    let mut alert = first_example("alert");
    alert["evidence"]["nested"] = json!({"observed": 1});
    assert_fails_at("alert", &alert, "/evidence/nested");
    let mut action = first_example("action");
    action["mode"] = json!("enforce_later");
    assert_fails_at("action", &action, "/mode");
}

// ---------- (f) control messages: lifecycle events and action results ----------

fn full_lifecycle_event() -> LifecycleEvent<'static> {
    LifecycleEvent {
        id: "sm-rotation-9f31".into(),
        time: t("2026-11-23T10:01:05.250Z"),
        kind: LifecycleKind::CredentialRevoked,
        owner: Some("bob@example.com".into()),
        principal_id: Some("svc-billing".into()),
        credential_id: Some("AKIAIOSFODNN7EXAMPLE".into()),
        reason: Some("key leaked in a public repository".into()),
    }
}

fn full_action_result() -> ActionResult<'static> {
    ActionResult {
        action_id: full_action().action_id.into(),
        time: t("2026-11-23T10:04:19Z"),
        status: ActionStatus::Failed,
        principal_id: "agent:support-triage".into(),
        action: Some(ActionKind::RevokeSession),
        credential_id: Some("tok_9f2c41d7".into()),
        session_id: Some("sess-7d1f0c2e".into()),
        detail: Some("identity provider returned 503".into()),
    }
}

#[test]
fn control_messages_from_the_structs_validate() {
    let value = serde_json::to_value(full_lifecycle_event()).unwrap();
    assert_valid("lifecycle", &value);
    let doc = schema_json("lifecycle");
    assert_same_properties("lifecycle", &doc, &doc, &value, "");
    for &kind in LifecycleKind::ALL {
        assert_valid("lifecycle", &serde_json::to_value(LifecycleEvent { kind, ..full_lifecycle_event() }).unwrap());
    }

    let value = serde_json::to_value(full_action_result()).unwrap();
    assert_valid("action-result", &value);
    let doc = schema_json("action-result");
    assert_same_properties("action-result", &doc, &doc, &value, "");
    for &status in ActionStatus::ALL {
        for action in ActionKind::ALL.iter().copied().map(Some).chain([None]) {
            let result = ActionResult { status, action, ..full_action_result() };
            assert_valid("action-result", &serde_json::to_value(result).unwrap());
        }
    }
}

/// The examples are written in nhid's own output form, so parsing and re-serializing them
/// changes nothing.
#[test]
fn every_control_example_parses_and_round_trips() {
    for (i, example) in examples("lifecycle").iter().enumerate() {
        let text = example.to_string();
        let event = parse_lifecycle(&text).unwrap_or_else(|e| panic!("lifecycle examples[{i}] does not parse: {e}"));
        assert_eq!(&serde_json::to_value(&event).unwrap(), example, "lifecycle examples[{i}] round trip");
    }
    for (i, example) in examples("action-result").iter().enumerate() {
        let text = example.to_string();
        let result =
            parse_action_result(&text).unwrap_or_else(|e| panic!("action-result examples[{i}] does not parse: {e}"));
        assert_eq!(&serde_json::to_value(&result).unwrap(), example, "action-result examples[{i}] round trip");
    }
    for (i, example) in examples("verdict").iter().enumerate() {
        let text = example.to_string();
        let verdict = parse_verdict(&text).unwrap_or_else(|e| panic!("verdict examples[{i}] does not parse: {e}"));
        assert_eq!(&serde_json::to_value(&verdict).unwrap(), example, "verdict examples[{i}] round trip");
    }
}

/// Without any one field, an example is refused by the schema exactly when the parser
/// refuses it; that covers the fields each lifecycle type needs (`if`/`then`), not only the
/// ones every message needs.
#[test]
fn the_schemas_and_the_control_parsers_refuse_the_same_missing_fields() {
    fn check(name: &str, parses: fn(&str) -> bool) {
        let validator = schema(name);
        for (i, example) in examples(name).iter().enumerate() {
            for key in example.as_object().unwrap().keys() {
                let mut without = example.clone();
                without.as_object_mut().unwrap().remove(key);
                assert_eq!(
                    parses(&without.to_string()),
                    validator.is_valid(&without),
                    "{name} examples[{i}] without {key:?}: parser and schema disagree"
                );
            }
        }
    }
    check("lifecycle", |text| parse_lifecycle(text).is_ok());
    check("action-result", |text| parse_action_result(text).is_ok());
    check("verdict", |text| parse_verdict(text).is_ok());
}

#[test]
fn a_lifecycle_event_without_the_field_its_type_needs_fails() {
    for (kind, field, reason) in [
        ("owner_offboarded", "owner", DeadLetterReason::WrongType),
        ("credential_revoked", "credential_id", DeadLetterReason::WrongType),
        ("principal_retired", "principal_id", DeadLetterReason::MissingPrincipal),
    ] {
        let event = json!({"id": "l1", "time": "2026-11-23T10:00:00Z", "type": kind, "reason": "x"});
        assert_fails_at("lifecycle", &event, field);
        assert_eq!(parse_lifecycle(&event.to_string()).unwrap_err().reason, reason, "{kind}");
    }
    let mut event = first_example("lifecycle");
    event["type"] = json!("owner_vanished");
    assert_fails_at("lifecycle", &event, "/type");
    assert!(parse_lifecycle(&event.to_string()).is_err(), "the parser must refuse it too");
}

#[test]
fn values_the_action_result_schema_refuses() {
    let mut result = first_example("action-result");
    result["status"] = json!("pending");
    assert_fails_at("action-result", &result, "/status");
    assert!(parse_action_result(&result.to_string()).is_err(), "the parser must refuse it too");
    let mut result = first_example("action-result");
    result["principal_id"] = json!("");
    assert_fails_at("action-result", &result, "/principal_id");
    assert!(parse_action_result(&result.to_string()).is_err(), "the parser must refuse it too");
    let mut result = first_example("action-result");
    result["time"] = json!("2026-11-23");
    assert_fails_at("action-result", &result, "/time");
    assert!(parse_action_result(&result.to_string()).is_err(), "the parser must refuse it too");
    let mut result = first_example("action-result");
    result["action_id"] = json!("not-a-uuid");
    assert_fails_at("action-result", &result, "/action_id");
}

/// What a failed example result raises is a valid alert.
#[test]
fn the_alert_for_a_failed_action_validates() {
    let mut failed = 0;
    for example in examples("action-result") {
        let text = example.to_string();
        let result = parse_action_result(&text).unwrap();
        if result.status == ActionStatus::Failed {
            let principal =
                AlertPrincipal { id: result.principal_id.to_string(), kind: PrincipalType::AiAgent, owner: None };
            assert_valid(
                "alert",
                &serde_json::to_value(nhid_engine::respond::response_failed(&result, principal)).unwrap(),
            );
            failed += 1;
        }
    }
    assert!(failed > 0, "an action-result example is a failure");
}
