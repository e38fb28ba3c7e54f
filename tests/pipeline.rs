//! The engine end to end over canonical events built here: aggregation, lanes,
//! guardrails, in-minute firing, order independence within a minute, dead letters.

mod common;

use nhid::detect;
use nhid::inventory::Inventory;
use nhid::pipeline::{Engine, EngineConfig, Origin, Outputs};
use nhid::respond::alert::{ActionKind, Alert};
use nhid::time::{DAY, MINUTE, Millis, SECOND, format_rfc3339};
use serde_json::json;

const T0: Millis = 1_793_577_600_000; // 2026-11-02T00:00:00Z

fn engine_with(inventory: &str) -> Engine {
    Engine::new(detect::load(None).unwrap(), Inventory::parse(inventory).unwrap(), EngineConfig::default())
}

fn engine() -> Engine {
    engine_with("")
}

struct Ev {
    id: String,
    time: Millis,
    principal: &'static str,
    kind: &'static str,
    action: &'static str,
    ip: &'static str,
    outcome: &'static str,
    credential: (&'static str, &'static str),
    session: Option<&'static str>,
}

fn ev(n: usize, time: Millis, principal: &'static str, kind: &'static str) -> Ev {
    Ev {
        id: format!("e{n}"),
        time,
        principal,
        kind,
        action: "s3:GetObject",
        ip: "10.1.2.3",
        outcome: "success",
        credential: ("AKIAEXAMPLE1", "static_key"),
        session: None,
    }
}

impl Ev {
    fn line(&self) -> String {
        let mut actor = json!({});
        if let Some(s) = self.session {
            actor = json!({"session_id": s, "delegating_user": "alice@example.com", "agent_id": "agent-7"});
        }
        json!({
            "id": self.id, "time": format_rfc3339(self.time),
            "principal": {"id": self.principal, "type": self.kind},
            "credential": {"id": self.credential.0, "kind": self.credential.1},
            "actor": actor,
            "action": self.action, "service": self.action.split(':').next().unwrap(),
            "outcome": self.outcome, "source": {"ip": self.ip, "user_agent": "sdk/1"},
            "source_format": "native"
        })
        .to_string()
    }
}

fn run(engine: &Engine, events: &[Ev]) -> Outputs {
    let mut out = Outputs::default();
    let mut all = Outputs::default();
    for (i, e) in events.iter().enumerate() {
        engine.process(e.line().as_bytes(), Origin { source: "test", partition: 0, offset: i as i64 }, None, &mut out);
        all.alerts.append(&mut out.alerts);
        all.actions.append(&mut out.actions);
        all.dead_letters.append(&mut out.dead_letters);
    }
    all.stats = out.stats;
    // Whatever the engine emits, consumers parse against the published schemas.
    for a in &all.alerts {
        common::assert_valid("alert", &serde_json::to_value(a).unwrap());
    }
    for a in &all.actions {
        common::assert_valid("action", &serde_json::to_value(a).unwrap());
    }
    all
}

/// A day of learning at `per_minute` calls a minute, evenly spread.
fn learn(principal: &'static str, kind: &'static str, per_minute: i64, days: i64) -> Vec<Ev> {
    let mut v = Vec::new();
    for m in 0..days * 1_440 {
        for k in 0..per_minute {
            let t = T0 + m * MINUTE + k * (MINUTE / per_minute);
            v.push(ev(v.len(), t, principal, kind));
        }
    }
    v
}

fn kinds(alerts: &[Alert]) -> Vec<&str> {
    alerts.iter().map(|a| a.kind.as_str()).collect()
}

#[test]
fn a_spike_fires_inside_the_minute_once_per_cooldown_with_suppressed_repeats_counted() {
    let engine = engine();
    let mut events = learn("svc-a", "service_account", 5, 1);
    let start = T0 + DAY + 10 * MINUTE;
    // Ten minutes at 300 calls a minute.
    for m in 0..10 {
        for k in 0..300 {
            events.push(ev(events.len(), start + m * MINUTE + k * 200, "svc-a", "service_account"));
        }
    }
    let out = run(&engine, &events);
    let spikes: Vec<&Alert> = out.alerts.iter().filter(|a| a.kind == "rate_spike").collect();
    assert_eq!(spikes.len(), 1, "{:?}", kinds(&out.alerts));
    // Inside the first minute: 30 calls at 200 ms spacing clear the threshold in seconds.
    assert!(spikes[0].time - start < 15 * SECOND, "fired {} ms after the spike began", spikes[0].time - start);
    assert_eq!(out.stats.suppressed_repeats, 9, "the other nine spike minutes are repeats");
    let action = out.actions.iter().find(|a| a.alert_id == spikes[0].alert_id).unwrap();
    assert_eq!(action.action, ActionKind::RevokeCredential);
    assert_eq!(action.target.credential_id.as_deref(), Some("AKIAEXAMPLE1"));
}

#[test]
fn a_burst_normal_for_a_human_does_not_page_and_humans_are_never_acted_on() {
    let engine = engine();
    let mut events = learn("alice@example.com", "human", 1, 1);
    let start = T0 + DAY + 10 * MINUTE;
    // 120 calls in a minute: a console page-through; 60 denied in a minute too.
    for k in 0..120 {
        events.push(ev(events.len(), start + k * 400, "alice@example.com", "human"));
    }
    for k in 0..60 {
        let mut e = ev(events.len(), start + 2 * MINUTE + k * 900, "alice@example.com", "human");
        e.outcome = "denied";
        e.ip = "203.0.113.9";
        e.action = "iam:ListUsers";
        events.push(e);
    }
    let out = run(&engine, &events);
    assert!(!out.alerts.iter().any(|a| a.kind == "rate_spike"), "{:?}", kinds(&out.alerts));
    // The denied burst does alert in the human lane, with human thresholds, and no action.
    assert!(out.alerts.iter().any(|a| a.kind == "denied_burst"));
    assert!(out.actions.is_empty(), "{:?}", out.actions);

    // The same burst from a machine pages.
    let engine = engine_with("");
    let mut events = learn("svc-b", "service_account", 1, 1);
    for k in 0..120 {
        events.push(ev(events.len(), start + k * 400, "svc-b", "service_account"));
    }
    assert!(run(&engine, &events).alerts.iter().any(|a| a.kind == "rate_spike"));
}

#[test]
fn an_identity_once_seen_as_human_stays_human() {
    let engine = engine();
    let mut events = learn("arn:aws:iam::1:user/bob", "service_account", 1, 1);
    events[10].kind = "human";
    let mut e = ev(events.len(), T0 + DAY + MINUTE, "arn:aws:iam::1:user/bob", "service_account");
    e.ip = "198.51.100.7";
    events.push(e);
    let out = run(&engine, &events);
    assert!(out.actions.is_empty(), "{:?}", out.actions);
    assert_eq!(out.stats.guardrail_blocks.len(), 0, "humans are not evaluated by new_source at all");
}

#[test]
fn protected_and_agent_session_targets() {
    let engine = engine_with("[[principal]]\nmatch = \"svc-prot*\"\nprotected = true\n");
    let mut events = learn("svc-protected", "service_account", 2, 1);
    let mut agent = learn("agent-7", "ai_agent", 2, 1);
    for e in &mut agent {
        e.credential = ("tok-1", "short_lived_token");
        e.session = Some("sess-1");
        e.action = "mcp-github:list_issues";
    }
    events.append(&mut agent);
    events.sort_by_key(|e| e.time);
    let t = T0 + DAY + 5 * MINUTE;
    let mut leak = ev(events.len(), t, "svc-protected", "service_account");
    leak.ip = "185.220.101.4";
    events.push(leak);
    let mut drift = ev(events.len(), t + SECOND, "agent-7", "ai_agent");
    drift.credential = ("tok-1", "short_lived_token");
    drift.session = Some("sess-1");
    drift.action = "secretsmanager:GetSecretValue";
    events.push(drift);
    let out = run(&engine, &events);
    let leak_alert = out.alerts.iter().find(|a| a.principal.id == "svc-protected").expect("protected still alerts");
    assert_eq!(leak_alert.kind, "new_source");
    assert!(out.actions.iter().all(|a| a.target.principal_id != "svc-protected"));
    let drift_alert = out.alerts.iter().find(|a| a.kind == "scope_drift").unwrap();
    assert_eq!(drift_alert.actor.session_id.as_deref(), Some("sess-1"));
    assert_eq!(drift_alert.actor.delegating_user.as_deref(), Some("alice@example.com"));
    let cut = out.actions.iter().find(|a| a.alert_id == drift_alert.alert_id).unwrap();
    assert_eq!(cut.action, ActionKind::RevokeSession);
    assert_eq!(cut.target.session_id.as_deref(), Some("sess-1"));
}

#[test]
fn events_reordered_within_a_minute_give_the_same_alerts() {
    let mut events = learn("svc-c", "service_account", 3, 1);
    let start = T0 + DAY + 30 * MINUTE;
    for k in 0..200 {
        let mut e = ev(events.len(), start + (k * 293) % MINUTE, "svc-c", "service_account");
        if k % 3 == 0 {
            e.outcome = "denied";
        }
        if k == 50 {
            e.ip = "192.0.2.10";
            e.action = "iam:CreateAccessKey";
        }
        events.push(e);
    }
    let tail = events.len() - 200;
    let ids = |events: &[Ev]| {
        let mut v: Vec<(String, String)> =
            run(&engine(), events).alerts.into_iter().map(|a| (a.alert_id, a.kind)).collect();
        v.sort();
        v
    };
    let baseline = ids(&events);
    assert!(baseline.len() >= 4, "{baseline:?}");
    // Reverse, then interleave, the last minute's events.
    events[tail..].reverse();
    assert_eq!(ids(&events), baseline);
    let (a, b) = events[tail..].split_at_mut(100);
    a.swap_with_slice(b);
    assert_eq!(ids(&events), baseline);
}

#[test]
fn garbage_lines_are_dead_lettered_and_every_good_line_is_processed() {
    let engine = engine();
    let good = learn("svc-d", "service_account", 1, 1);
    let mut out = Outputs::default();
    let garbage: [&[u8]; 5] =
        [b"not json", b"\xff\xfe\xfd", b"{\"principal\":{\"id\":\"\",\"type\":\"bot\"}}", b"[1,2", b"{}"];
    for (i, e) in good.iter().enumerate() {
        engine.process(e.line().as_bytes(), Origin { source: "f", partition: 0, offset: i as i64 }, None, &mut out);
        if i % 300 == 0 {
            let g = garbage[(i / 300) % garbage.len()];
            engine.process(g, Origin { source: "f", partition: 0, offset: i as i64 }, None, &mut out);
        }
    }
    assert_eq!(out.stats.events, good.len() as u64);
    assert_eq!(out.dead_letters.len() as u64, out.stats.dead_letters_total());
    assert_eq!(out.dead_letters.len(), good.len().div_ceil(300));
    assert!(out.dead_letters.iter().all(|d| !d.bytes.is_empty() && !d.detail.is_empty()));
}
