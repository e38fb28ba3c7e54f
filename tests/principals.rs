//! `/principals` and `/principals/{id}`: the inventory of tracked identities, through the
//! real HTTP endpoint, in process and from `nhid replay --http`.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;

use common::{Killed, http_get};
use nhid_engine::detect;
use nhid_engine::inventory::Inventory;
use nhid_engine::metrics::Metrics;
use nhid_engine::{ControlKind, Engine, EngineConfig, Origin, Outputs};
use serde_json::Value;

const INVENTORY: &str = r#"
[[principal]]
match = "svc-inv"
owner = "team-x"

[[principal]]
match = "svc-ok"

[[principal]]
match = "svc-override"
owner = "team-gone"

[[principal]]
match = "arn:aws:iam::123456789012:role/deploy/*"
type = "service_account"
owner = "team-ok"
criticality = "critical"
"#;

/// Owners offboarded at 01:00 and (after the stream ends) on the 30th; a key revoked at 01:30.
const LIFECYCLE: &[&str] = &[
    r#"{"id":"l1","time":"2026-11-20T01:00:00Z","type":"owner_offboarded","owner":"team-gone"}"#,
    r#"{"id":"l2","time":"2026-11-30T00:00:00Z","type":"owner_offboarded","owner":"team-later"}"#,
    r#"{"id":"l3","time":"2026-11-20T01:30:00Z","type":"credential_revoked","credential_id":"AKIAREVOKEDEXAMPLE1"}"#,
];

const DEPLOY_ROLE: &str = "arn:aws:iam::123456789012:role/deploy/ci";

/// (principal id, type, owner in its events): one event an hour from 00:00 to 03:00.
const PRINCIPALS: &[(&str, &str, Option<&str>)] = &[
    ("svc-gone", "service_account", Some("team-gone")),
    ("svc-noowner", "service_account", None),
    ("key-noowner", "api_key", None),
    ("svc-inv", "service_account", None),
    ("svc-override", "service_account", Some("team-ok")),
    ("svc-ok", "service_account", Some("team-ok")),
    ("svc-later", "workload", Some("team-later")),
    ("alice@example.com", "human", None),
    ("mystery", "unknown", None),
    (DEPLOY_ROLE, "service_account", None),
];

/// What `/principals?orphaned=true` must list for this input, and nothing else: machines
/// whose owner (the inventory's first, else their events') was offboarded by the end of
/// the stream, or that have no owner at all. Not the human, not the unknown, not the one
/// whose owner leaves after the stream's end.
const ORPHANED: &[&str] = &["key-noowner", "svc-gone", "svc-noowner", "svc-override"];

fn events() -> Vec<String> {
    let mut lines = Vec::new();
    for hour in 0..4 {
        for (i, (id, kind, owner)) in PRINCIPALS.iter().enumerate() {
            let owner = owner.map(|o| format!(r#","owner":"{o}""#)).unwrap_or_default();
            let credential =
                if *id == DEPLOY_ROLE { "AKIAREVOKEDEXAMPLE1".to_string() } else { format!("AKIAEXAMPLE{i:04}") };
            lines.push(format!(
                r#"{{"id":"e{hour}-{i}","time":"2026-11-20T{hour:02}:00:0{i}Z","principal":{{"id":"{id}","type":"{kind}"{owner}}},"credential":{{"id":"{credential}","kind":"static_key"}},"action":"s3:GetObject","service":"s3","outcome":"success","source":{{"ip":"10.0.0.{i}"}}}}"#
            ));
        }
    }
    lines
}

fn engine(inventory: &str) -> Engine {
    let detectors = detect::load(None).expect("the built-in detectors load");
    Engine::new(detectors, Inventory::parse(inventory).unwrap(), EngineConfig::default())
}

/// The scenario through an engine served over HTTP; returns the address and what the engine emitted.
fn served_scenario() -> (SocketAddr, Outputs) {
    let engine = Arc::new(engine(INVENTORY));
    let mut out = Outputs::default();
    for (i, line) in LIFECYCLE.iter().enumerate() {
        let origin = Origin { source: "lifecycle", partition: 0, offset: i as i64 };
        engine.control(ControlKind::Lifecycle, line.as_bytes(), origin, &mut out);
    }
    for (i, line) in events().iter().enumerate() {
        engine.process(line.as_bytes(), Origin { source: "audit", partition: 0, offset: i as i64 }, None, &mut out);
    }
    // An analyst confirms the deploy role's first alert.
    let first = out.alerts.iter().find(|a| a.principal.id == DEPLOY_ROLE).expect("the deploy role alerts");
    let verdict = serde_json::json!({
        "time": "2026-11-20T03:30:00Z", "principal_id": DEPLOY_ROLE, "alert_id": first.alert_id,
        "verdict": "true_positive", "by": "ana@soc.example.com", "note": "the key was revoked: someone kept it",
    });
    let origin = Origin { source: "verdicts", partition: 0, offset: 0 };
    engine.control(ControlKind::Verdict, verdict.to_string().as_bytes(), origin, &mut out);
    assert!(out.dead_letters.is_empty(), "{:?}", out.dead_letters);
    (serve(engine), out)
}

/// The HTTP endpoint over an engine, on a free port.
fn serve(engine: Arc<Engine>) -> SocketAddr {
    let health = Arc::new(nhid_engine::metrics::Health::default());
    let http = nhid_http::HttpConfig { listen: "127.0.0.1:0".parse().unwrap(), ..Default::default() };
    nhid_http::serve(&http, engine, Arc::new(Metrics::new()), health).unwrap()
}

fn json(addr: SocketAddr, path: &str) -> (u16, Value) {
    let (status, body) = http_get(addr, path);
    (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}")))
}

fn ids(page: &Value) -> Vec<String> {
    page["principals"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn orphaned_true_lists_exactly_the_orphaned_machine_identities() {
    let (addr, _) = served_scenario();
    let (status, page) = json(addr, "/principals?orphaned=true");
    assert_eq!(status, 200);
    assert_eq!(ids(&page), ORPHANED);
    assert_eq!(page["total"], ORPHANED.len());
    let reason = |id: &str| {
        let p = page["principals"].as_array().unwrap().iter().find(|p| p["id"] == id).unwrap();
        p["orphaned"]["reason"].as_str().unwrap().to_string()
    };
    assert_eq!(reason("svc-gone"), "owner_offboarded");
    assert_eq!(reason("svc-override"), "owner_offboarded", "the inventory's owner wins over the events'");
    assert_eq!(reason("svc-noowner"), "no_owner");

    let (_, rest) = json(addr, "/principals?orphaned=false");
    let all: BTreeSet<&str> = PRINCIPALS.iter().map(|p| p.0).collect();
    let expected: Vec<&str> = all.iter().copied().filter(|id| !ORPHANED.contains(id)).collect();
    assert_eq!(ids(&rest), expected);
    let (_, svc_later) = json(addr, "/principals/svc-later");
    assert!(svc_later.get("orphaned").is_none(), "its owner leaves after the stream's end: {svc_later}");
}

#[test]
fn filters_by_type_and_owner() {
    let (addr, _) = served_scenario();
    let (_, humans) = json(addr, "/principals?type=human");
    assert_eq!(ids(&humans), ["alice@example.com"]);
    let (_, machines) = json(addr, "/principals?type=machine");
    assert_eq!(machines["total"], PRINCIPALS.len() - 2, "neither the human nor the unknown");
    let (_, keys) = json(addr, "/principals?type=api_key");
    assert_eq!(ids(&keys), ["key-noowner"]);
    // The owner alerts name: the inventory's (the deploy role, svc-override is team-gone's), else the events'.
    let (_, team_ok) = json(addr, "/principals?owner=team-ok");
    assert_eq!(ids(&team_ok), [DEPLOY_ROLE, "svc-ok"]);
    let (_, both) = json(addr, "/principals?owner=team-gone&type=service_account&orphaned=true");
    assert_eq!(ids(&both), ["svc-gone", "svc-override"]);
}

#[test]
fn a_principal_shows_its_credentials_open_alerts_and_risk() {
    let (addr, out) = served_scenario();
    // Ids hold slashes and colons: the path takes the rest of the URL.
    let (status, p) = json(addr, &format!("/principals/{DEPLOY_ROLE}"));
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["id"], DEPLOY_ROLE);
    assert_eq!(p["type"], "service_account");
    assert_eq!(p["owner"], "team-ok");
    assert_eq!(p["first_seen"], "2026-11-20T00:00:09.000Z");
    assert_eq!(p["last_seen"], "2026-11-20T03:00:09.000Z");
    assert_eq!(p["inventory"]["criticality"], "critical");
    let credential = &p["credentials"][0];
    // Its first and last 4 characters: `http.show_full_credential_ids` is off by default.
    assert_eq!(credential["id"], "AKIA…PLE1");
    assert_eq!(credential["kind"], "static_key");
    assert_eq!(credential["age_secs"], 3 * 3_600, "first used three hours before the stream's end");
    assert_eq!(credential["revoked_at"], "2026-11-20T01:30:00.000Z");

    // Its open alert is the latest one emitted (one an hour: the detector's window), by id.
    let emitted: Vec<&nhid_engine::respond::alert::Alert> =
        out.alerts.iter().filter(|a| a.principal.id == DEPLOY_ROLE).collect();
    assert_eq!(emitted.len(), 2, "{emitted:?}");
    let latest = emitted.last().unwrap();
    let open = p["open_alerts"].as_array().unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["alert_id"], latest.alert_id);
    assert_eq!(open[0]["kind"], "expired_credential");
    assert_eq!(open[0]["severity"], "critical", "bumped for a critical identity, as emitted");
    assert_eq!(open[0]["severity"], latest.severity.as_str());
    assert_eq!(open[0]["time"], "2026-11-20T03:00:09.000Z");
    // And the incident it is part of, open, as the incidents topic has it.
    assert_eq!(p["incident"]["incident_id"].as_str(), latest.incident_id.as_deref());
    let listed = p["incident"]["alerts"].as_array().unwrap();
    assert_eq!(listed.last().unwrap()["alert_id"], latest.alert_id);
    let last_record = out.incidents.iter().rfind(|r| r.incident.principal.id == DEPLOY_ROLE).unwrap();
    assert_eq!(p["incident"], serde_json::to_value(&last_record.incident).unwrap());
    // The analyst's verdict on its first alert: who, when, on what, and what it changed.
    let verdict = &p["verdicts"][0];
    assert_eq!(verdict["verdict"], "true_positive");
    assert_eq!(verdict["by"], "ana@soc.example.com");
    assert_eq!(verdict["target"], emitted[0].alert_id);
    assert_eq!(verdict["time"], "2026-11-20T03:30:00.000Z");
    assert_eq!(verdict["note"], "the key was revoked: someone kept it");
    assert_eq!(verdict["accepts"], serde_json::json!([]), "a true positive accepts nothing");
    assert_eq!(p["verdicts"].as_array().unwrap().len(), 1);

    let factors: Vec<&str> =
        p["risk"]["factors"].as_array().unwrap().iter().map(|f| f["factor"].as_str().unwrap()).collect();
    assert!(factors.contains(&"revoked_credential_in_use"), "{factors:?}");
    assert!(factors.contains(&"criticality_critical"), "{factors:?}");
    let sum: u64 = p["risk"]["factors"].as_array().unwrap().iter().map(|f| f["points"].as_u64().unwrap()).sum();
    assert_eq!(p["risk"]["score"], sum.min(100));
    assert!(p["baseline"]["known_actions"].as_u64().unwrap() >= 1, "the detail view has the baseline");

    // An identity in good standing scores nothing.
    let (_, ok) = json(addr, "/principals/svc-ok");
    assert_eq!(ok["risk"]["score"], 0, "{ok}");
    assert_eq!(ok["open_alerts"].as_array().unwrap().len(), 0);
    assert!(ok.get("incident").is_none() && ok.get("verdicts").is_none(), "no incident, no verdict: {ok}");
    assert_eq!(ok["learning"], true, "three hours of a one-day learning period");

    let (status, missing) = json(addr, "/principals/svc-nobody");
    assert_eq!(status, 404);
    assert!(missing["error"].as_str().unwrap().contains("svc-nobody"));
}

#[test]
fn pages_follow_on_without_gaps_or_repeats() {
    let engine = Arc::new(engine(""));
    let mut out = Outputs::default();
    for i in 0..250 {
        let line = format!(
            r#"{{"id":"e{i}","time":"2026-11-20T00:00:00Z","principal":{{"id":"p{i:03}","type":"workload","owner":"team-{}"}},"action":"s3:GetObject","service":"s3","outcome":"success"}}"#,
            i % 2
        );
        engine.process(line.as_bytes(), Origin { source: "audit", partition: 0, offset: i }, None, &mut out);
    }
    let addr = serve(engine);
    let mut seen = Vec::new();
    let mut path = "/principals?limit=100".to_string();
    let mut pages = 0;
    loop {
        let (status, page) = json(addr, &path);
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["total"], 250);
        seen.extend(ids(&page));
        pages += 1;
        match page.get("next").and_then(Value::as_str) {
            Some(next) => path = format!("/principals?limit=100&after={next}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..250).map(|i| format!("p{i:03}")).collect();
    assert_eq!(seen, expected);
    // Default page size, and a filter's total.
    let (_, page) = json(addr, "/principals?owner=team-1");
    assert_eq!((page["total"].as_u64(), ids(&page).len()), (Some(125), 100));
}

#[test]
fn bad_queries_get_a_400_that_says_why() {
    let (addr, _) = served_scenario();
    for (query, says) in [
        ("/principals?orphan=true", "orphan"),
        ("/principals?type=robot", "robot"),
        ("/principals?limit=0", "limit"),
        ("/principals?limit=5000", "limit"),
        ("/principals?orphaned=maybe", "orphaned"),
    ] {
        let (status, body) = json(addr, query);
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body["error"].as_str().unwrap().contains(says), "{query}: {body}");
    }
}

/// The acceptance: `nhid replay --http` over a known input (inventory, lifecycle file and
/// audit events) serves the inventory, and `orphaned=true` lists exactly the orphaned identities.
#[test]
fn replay_with_http_serves_the_inventory_of_what_it_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, lines: &[String]| {
        let path = dir.path().join(name);
        let mut f = std::fs::File::create(&path).unwrap();
        for l in lines {
            writeln!(f, "{l}").unwrap();
        }
        path
    };
    let inventory = write("inventory.toml", &[INVENTORY.to_string()]);
    let lifecycle = write("lifecycle.jsonl", &LIFECYCLE.iter().map(|l| l.to_string()).collect::<Vec<_>>());
    let audit = write("events.jsonl", &events());
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_nhid"))
            .arg("replay")
            .arg(&audit)
            .arg("--lifecycle")
            .arg(&lifecycle)
            .arg("--inventory")
            .arg(&inventory)
            .args(["--http", "127.0.0.1:0", "--alerts", "/dev/null"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // The replay prints where it serves once every event is in.
    let stderr = BufReader::new(child.0.stderr.take().unwrap());
    let mut addr = None;
    for line in stderr.lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("serving http://") {
            addr = rest.split('/').next().map(|a| a.parse::<SocketAddr>().unwrap());
            break;
        }
    }
    let addr = addr.expect("nhid replay --http never said where it serves");
    let (status, page) = json(addr, "/principals?orphaned=true");
    assert_eq!(status, 200);
    assert_eq!(ids(&page), ORPHANED);
    let (_, metrics) = http_get(addr, "/metrics");
    let events_total: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("nhid_events_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(events_total as usize, events().len(), "/metrics counts what was replayed");
}
