//! The engine end to end over canonical events built here: aggregation, lanes,
//! guardrails, in-minute firing, order independence within a minute, dead letters; and the
//! control topics (lifecycle events, action results) interleaved with them.

mod common;

use nhid_engine::detect;
use nhid_engine::inventory::Inventory;
use nhid_engine::respond::alert::Alert;
use nhid_engine::{ControlKind, Engine, EngineConfig, Origin, Outputs};
use nhid_model::event::PrincipalType;
use nhid_model::time::{DAY, HOUR, MINUTE, Millis, SECOND, format_rfc3339};
use nhid_model::vocab::DeadLetterReason;
use nhid_model::vocab::{ActionKind, Severity};
use serde_json::{Value, json};

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
    ip: String,
    outcome: &'static str,
    credential: (&'static str, &'static str),
    session: Option<&'static str>,
    owner: Option<&'static str>,
    ua: String,
    /// The decoder read `kind` from fields the caller chooses (`principal.type_inferred`).
    inferred: bool,
}

fn ev(n: usize, time: Millis, principal: &'static str, kind: &'static str) -> Ev {
    Ev {
        id: format!("e{n}"),
        time,
        principal,
        kind,
        action: "s3:GetObject",
        ip: "10.1.2.3".into(),
        outcome: "success",
        credential: ("AKIAEXAMPLE1", "static_key"),
        session: None,
        owner: None,
        ua: "sdk/1".into(),
        inferred: false,
    }
}

impl Ev {
    fn line(&self) -> String {
        let mut actor = json!({});
        if let Some(s) = self.session {
            actor = json!({"session_id": s, "delegating_user": "alice@example.com", "agent_id": "agent-7"});
        }
        let mut principal = json!({"id": self.principal, "type": self.kind});
        if let Some(o) = self.owner {
            principal["owner"] = o.into();
        }
        if self.inferred {
            principal["type_inferred"] = true.into();
        }
        let mut credential = json!({"kind": self.credential.1});
        if !self.credential.0.is_empty() {
            credential["id"] = self.credential.0.into();
        }
        json!({
            "id": self.id, "time": format_rfc3339(self.time),
            "principal": principal,
            "credential": credential,
            "actor": actor,
            "action": self.action, "service": self.action.split(':').next().unwrap(),
            "outcome": self.outcome, "source": {"ip": self.ip, "user_agent": self.ua},
            "source_format": "native"
        })
        .to_string()
    }
}

fn run(engine: &Engine, events: &[Ev]) -> Outputs {
    run_with(engine, events, &[])
}

/// Runs `events`, each control message `(i, kind, message)` just before `events[i]` (or
/// after the last event for `i == events.len()`).
fn run_with(engine: &Engine, events: &[Ev], control: &[(usize, ControlKind, Value)]) -> Outputs {
    let mut out = Outputs::default();
    let mut all = Outputs::default();
    for i in 0..=events.len() {
        for (_, kind, message) in control.iter().filter(|(at, _, _)| *at == i) {
            let origin = Origin { source: "control", partition: 0, offset: i as i64 };
            engine.control(*kind, message.to_string().as_bytes(), origin, &mut out);
        }
        if let Some(e) = events.get(i) {
            let origin = Origin { source: "test", partition: 0, offset: i as i64 };
            engine.process(e.line().as_bytes(), origin, None, &mut out);
        }
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
        e.ip = "203.0.113.9".into();
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

/// A call at `time` from `ip`, typed `kind` by its decoder.
fn call(events: &[Ev], time: Millis, principal: &'static str, kind: &'static str, ip: &str) -> Ev {
    let mut e = ev(events.len(), time, principal, kind);
    e.ip = ip.into();
    e
}

#[test]
fn an_iam_user_seen_at_the_console_is_still_judged_as_a_machine_when_its_key_is_used() {
    // Bob's access key calls every minute; on his first day he signs in at the console too
    // (the platform states it: a password sign-in, then console session credentials).
    let bob = "arn:aws:iam::1:user/bob";
    let mut events = learn(bob, "service_account", 1, 1);
    events[10].kind = "human";
    events[10].action = "signin:ConsoleLogin";
    events[10].credential = ("", "password");
    // After the learning: a console session from a new address, then his key from another,
    // creating a key three minutes later.
    let mut console = call(&events, T0 + DAY + MINUTE, bob, "human", "203.0.113.5");
    console.credential = ("ASIACONSOLE1", "session");
    events.push(console);
    let mut stolen = call(&events, T0 + DAY + 3 * MINUTE, bob, "service_account", "198.51.100.7");
    stolen.action = "iam:CreateAccessKey";
    events.push(stolen);
    let out = run(&engine(), &events);
    let of = |cred: &'static str| out.alerts.iter().filter(move |a| a.credential_id.as_deref() == Some(cred));
    assert!(of("AKIAEXAMPLE1").any(|a| a.kind == "new_source"), "{:#?}", kinds(&out.alerts));
    assert!(of("AKIAEXAMPLE1").all(|a| a.principal.kind == PrincipalType::ServiceAccount));
    assert!(
        out.actions.iter().any(|a| a.target.credential_id.as_deref() == Some("AKIAEXAMPLE1")),
        "the key is cut off: {:?}",
        out.actions
    );
    // The person at the console is judged as one: alerts only, never acted on; and Bob's
    // console sign-ins are reported once (on his first day), not at each.
    assert!(of("ASIACONSOLE1").all(|a| a.principal.kind == PrincipalType::Human), "{:#?}", out.alerts);
    assert!(!out.actions.iter().any(|a| a.target.credential_id.as_deref() == Some("ASIACONSOLE1")));
    assert_eq!(of_kind(&out, "interactive_login").len(), 1, "{:#?}", kinds(&out.alerts));
}

#[test]
fn a_type_read_from_fields_the_caller_chooses_never_moves_a_known_role_to_the_human_lane() {
    // A role machines use, learned; then its stolen session used from outside, once as
    // curl would and once with a browser's user agent and a person's session name.
    let role = "arn:aws:iam::1:role/deployer";
    let attack = |inferred: bool| {
        let mut events = learn(role, "service_account", 1, 2);
        for k in 0..3 {
            let mut e = call(&events, T0 + 2 * DAY + k * MINUTE, role, "service_account", "185.220.101.4");
            e.credential = ("ASIASTOLEN1", "short_lived_token");
            e.session = Some("deployer-run-9");
            if inferred {
                (e.kind, e.inferred, e.ua) = ("human", true, "Mozilla/5.0 (X11; Linux x86_64)".into());
            }
            events.push(e);
        }
        run(&engine(), &events)
    };
    let (curl, browser) = (attack(false), attack(true));
    assert!(!curl.actions.is_empty() && !curl.alerts.is_empty());
    assert!(browser.alerts.iter().all(|a| a.principal.kind == PrincipalType::ServiceAccount), "{:#?}", browser.alerts);
    for a in &curl.alerts {
        assert!(browser.alerts.iter().any(|b| b.kind == a.kind), "{} missing with a browser", a.kind);
    }
    assert_eq!(browser.actions.len(), curl.actions.len(), "{:?}", browser.actions);
    // And the claim itself is a finding.
    let claim = of_kind(&browser, "interactive_login");
    assert_eq!(claim.len(), 1, "{:#?}", kinds(&browser.alerts));
    assert_eq!(claim[0].evidence["claimed_type"], "human");
}

#[test]
fn a_role_people_use_is_still_theirs_after_it_was_evicted_while_idle() {
    // A role people sign in to through SAML (sessions named after them: a type inferred),
    // idle for two months, evicted; the first call back is a machine's session (no person
    // named), and then a person's session again, from a new address.
    let role = "arn:aws:iam::1:role/analysts";
    let engine = engine_at(|| T0 + 100 * DAY);
    let mut events = learn(role, "human", 1, 2);
    events.iter_mut().for_each(|e| e.inferred = true);
    let back = T0 + 60 * DAY;
    for i in 0..8 {
        events.push(call(&events, back + i * SECOND, "svc-other", "service_account", "10.1.2.3"));
    }
    events.push(call(&events, back + MINUTE, role, "service_account", "10.1.2.3"));
    let mut person = call(&events, back + 2 * MINUTE, role, "human", "198.51.100.20");
    person.inferred = true;
    person.session = Some("carol@example.com");
    events.push(person);
    let out = run(&engine, &events);
    assert!(out.stats.evictions >= 1, "the role was evicted");
    let carol: Vec<_> =
        out.alerts.iter().filter(|a| a.actor.session_id.as_deref() == Some("carol@example.com")).collect();
    assert!(carol.iter().all(|a| a.principal.kind == PrincipalType::Human), "{carol:#?}");
    assert!(
        !out.actions.iter().any(|a| a.target.session_id.as_deref() == Some("carol@example.com")),
        "{:?}",
        out.actions
    );
    assert_eq!(engine.store().get(role).map(|i| i.kind), Some(PrincipalType::Human));
}

#[test]
fn a_protected_principal_s_key_named_under_another_principal_is_never_revoked() {
    let engine = engine_with("[[principal]]\nmatch = \"svc-vault\"\nprotected = true\n");
    let mut events = learn("svc-vault", "service_account", 1, 1);
    let mut decoy = learn("svc-decoy", "service_account", 1, 1);
    decoy.iter_mut().for_each(|e| e.credential = ("AKIADECOY0001", "static_key"));
    events.append(&mut decoy);
    // The vault's key, named under a principal nhid may act on, from an anonymiser.
    let stolen = call(&events, T0 + DAY + MINUTE, "svc-decoy", "service_account", "185.220.101.4");
    events.push(stolen);
    let out = run(&engine, &events);
    assert!(!out.actions.iter().any(|a| a.action != ActionKind::NotifyOwner), "nothing is cut off: {:?}", out.actions);
    let shared = of_kind(&out, "shared_credential");
    assert_eq!(shared.len(), 1, "{:#?}", kinds(&out.alerts));
    assert_eq!(shared[0].principal.id, "svc-decoy");
    assert_eq!(shared[0].evidence["first_presented_by_another_principal"], true);
    assert!(out.stats.guardrail_blocks.contains_key(&nhid_engine::respond::policy::Block::ForeignCredential));
}

/// A Kubernetes audit event (as the API server writes it) of `user`, impersonating
/// `impersonated` when given, from `ip`.
fn k8s(n: usize, time: Millis, user: &Value, impersonated: Option<&Value>, ip: &str) -> String {
    let mut e = json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": format!("a-{n}"),
        "stage": "ResponseComplete", "requestURI": "/api/v1/namespaces/prod/secrets", "verb": "list",
        "user": user, "sourceIPs": [ip], "userAgent": "payments/1.4 (linux/amd64) kubernetes/v1.29",
        "objectRef": {"resource": "secrets", "namespace": "prod", "apiVersion": "v1"},
        "responseStatus": {"code": 200}, "stageTimestamp": format_rfc3339(time)
    });
    if let Some(i) = impersonated {
        e["impersonatedUser"] = i.clone();
    }
    e.to_string()
}

fn service_account(namespace: &str, name: &str, token: &str, pod: &str) -> Value {
    json!({
        "username": format!("system:serviceaccount:{namespace}:{name}"),
        "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{namespace}"), "system:authenticated"],
        "extra": {
            "authentication.kubernetes.io/credential-id": [format!("JTI={token}")],
            "authentication.kubernetes.io/pod-name": [pod]
        }
    })
}

/// The request was made with the impersonator's token: that token (and its pod) is what
/// containment cuts, never the impersonated service account, whatever the impersonator
/// named in its `Impersonate-Extra-*` headers; a person impersonating is never acted on.
#[test]
fn an_impersonated_request_s_containment_cuts_off_the_impersonator_s_token() {
    let payments = service_account("prod", "payments", "payments-token", "payments-7d9f");
    let victim = json!({"username": "system:serviceaccount:prod:payments", "extra": {
        "authentication.kubernetes.io/credential-id": ["JTI=chosen-by-intruder"],
        "authentication.kubernetes.io/pod-name": ["payments-7d9f"]}});
    for (impersonator, contained) in [
        (service_account("tools", "intruder", "intruder-token", "intruder-5c4d"), true),
        (json!({"username": "admin@example.com", "groups": ["system:authenticated"]}), false),
    ] {
        let engine = engine();
        let mut out = Outputs::default();
        let mut lines: Vec<String> =
            (0..2 * 1_440).map(|m| k8s(m, T0 + m as Millis * MINUTE, &payments, None, "10.0.3.7")).collect();
        let t = T0 + DAY + 5 * MINUTE;
        lines.push(k8s(lines.len(), t, &impersonator, Some(&victim), "185.220.101.4"));
        for (i, line) in lines.iter().enumerate() {
            engine.process(line.as_bytes(), Origin { source: "k8s", partition: 0, offset: i as i64 }, None, &mut out);
        }
        assert!(out.dead_letters.is_empty(), "{:?}", out.dead_letters);
        let alert = out.alerts.iter().find(|a| a.kind == "new_source").expect("the impersonated request is new");
        assert_eq!(alert.principal.id, "system:serviceaccount:prod:payments");
        assert_eq!(alert.actor.delegating_user.as_deref(), impersonator["username"].as_str());
        assert!(out.actions.iter().all(|a| a.target.principal_id != "system:serviceaccount:prod:payments"));
        assert!(out.actions.iter().all(|a| a.target.credential_id.as_deref() != Some("JTI=chosen-by-intruder")));
        let cuts: Vec<_> = out.actions.iter().filter(|a| a.action != ActionKind::NotifyOwner).collect();
        if contained {
            assert_eq!(cuts.len(), 1, "{:?}", out.actions);
            assert_eq!(cuts[0].action, ActionKind::RevokeSession, "a bound token is cut with its pod's session");
            assert_eq!(cuts[0].target.principal_id, "system:serviceaccount:tools:intruder");
            assert_eq!(cuts[0].target.credential_id.as_deref(), Some("JTI=intruder-token"));
            assert_eq!(cuts[0].target.session_id.as_deref(), Some("intruder-5c4d"));
        } else {
            assert!(cuts.is_empty(), "a person is never acted on: {:?}", out.actions);
            assert!(out.stats.guardrail_blocks.contains_key(&nhid_engine::respond::policy::Block::Human));
        }
    }
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
    leak.ip = "185.220.101.4".into();
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
            e.ip = "192.0.2.10".into();
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

// ---------- control topics: lifecycle events and action results ----------

/// One event a minute for `minutes` minutes from `start`.
fn every_minute(principal: &'static str, kind: &'static str, start: Millis, minutes: i64) -> Vec<Ev> {
    (0..minutes).map(|m| ev(m as usize, start + m * MINUTE, principal, kind)).collect()
}

fn lifecycle(kind: &str, subject: (&str, &str), time: Millis) -> Value {
    let mut m = json!({"id": format!("l-{time}"), "time": format_rfc3339(time), "type": kind});
    m[subject.0] = subject.1.into();
    m
}

fn action_result(status: &str, action: &str, principal: &str, credential: &str, time: Millis) -> Value {
    json!({"action_id": "3e8b1f60-7a2d-5c94-b1e7-0d6c5a4f3e21", "time": format_rfc3339(time), "status": status,
        "principal_id": principal, "action": action, "credential_id": credential})
}

fn of_kind<'a>(out: &'a Outputs, kind: &str) -> Vec<&'a Alert> {
    out.alerts.iter().filter(|a| a.kind == kind).collect()
}

#[test]
fn a_revoked_credential_used_again_fires_expired_credential_once_per_window() {
    let engine = engine();
    // Two and a half hours of one call a minute; the revocation (at 00:05) arrives before the 00:03 call.
    let events = every_minute("svc-a", "service_account", T0, 150);
    let revoked_at = T0 + 5 * MINUTE;
    let revoked = lifecycle("credential_revoked", ("credential_id", "AKIAEXAMPLE1"), revoked_at);
    let out = run_with(&engine, &events, &[(3, ControlKind::Lifecycle, revoked)]);
    let fired = of_kind(&out, "expired_credential");
    // One alert per hourly window: 00:07 (00:06 is within the minute of grace), 01:00, 02:00.
    let times: Vec<Millis> = fired.iter().map(|a| a.time).collect();
    assert_eq!(times, [T0 + 7 * MINUTE, T0 + 60 * MINUTE, T0 + 120 * MINUTE], "{:?}", kinds(&out.alerts));
    assert_eq!(fired[1].suppressed_repeats, 52, "00:08 to 00:59 were repeats");
    let first = fired[0];
    assert_eq!(first.evidence["reason"], "revoked");
    assert_eq!(first.evidence["revoked_at"], format_rfc3339(revoked_at));
    assert_eq!(first.evidence["revoked_seconds_ago"], 120);
    assert!(first.summary.contains("2 minutes after it was revoked"), "{}", first.summary);
    assert_eq!(first.credential_id.as_deref(), Some("AKIAEXAMPLE1"));
    let cut = out.actions.iter().find(|a| a.alert_id == first.alert_id).expect("the detector asks for revocation");
    assert_eq!(cut.action, ActionKind::RevokeCredential);
    assert_eq!(out.stats.lifecycle_events, [0, 1, 0]);
}

#[test]
fn out_of_order_findings_alternating_between_windows_never_repeat_an_alert_id() {
    let engine = engine();
    let revoked_at = T0 + 5 * MINUTE;
    let revoked = lifecycle("credential_revoked", ("credential_id", "AKIAEXAMPLE1"), revoked_at);
    let mut events = every_minute("svc-a", "service_account", T0, 5);
    // Uses of the revoked key, delivered alternating between the 01:00 and the 02:00 window.
    for (n, minute) in [70, 130, 75, 135, 80, 140].into_iter().enumerate() {
        events.push(ev(100 + n, T0 + minute * MINUTE, "svc-a", "service_account"));
    }
    let out = run_with(&engine, &events, &[(0, ControlKind::Lifecycle, revoked)]);
    let ids: Vec<&str> = of_kind(&out, "expired_credential").iter().map(|a| a.alert_id.as_str()).collect();
    let unique: std::collections::HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "an alert id was emitted twice: {ids:?}");
    assert_eq!(ids.len(), 2, "one alert per window: {ids:?}");
}

#[test]
fn use_before_the_revocation_time_does_not_fire_even_when_the_message_came_first() {
    let engine = engine();
    let revoked_at = T0 + HOUR;
    let revoked = lifecycle("credential_revoked", ("credential_id", "AKIAEXAMPLE1"), revoked_at);
    let mut events = every_minute("svc-a", "service_account", T0, 60);
    // Late arrivals from before the revocation, after a use that did fire.
    events.push(ev(60, revoked_at + 5 * MINUTE, "svc-a", "service_account"));
    events.push(ev(61, revoked_at - SECOND, "svc-a", "service_account"));
    let out = run_with(&engine, &events, &[(0, ControlKind::Lifecycle, revoked)]);
    let fired = of_kind(&out, "expired_credential");
    assert_eq!(fired.len(), 1, "{:?}", kinds(&out.alerts));
    assert_eq!(fired[0].time, revoked_at + 5 * MINUTE);
    assert_eq!(out.stats.suppressed_repeats, 0, "the late call from before the revocation is not a repeat");
}

#[test]
fn a_done_revocation_holds_for_credentials_the_identity_no_longer_lists_and_identities_not_yet_seen() {
    let engine = engine();
    let t = T0 + 10 * MINUTE;
    let mut events = Vec::new();
    // svc-a used the old key, then rotated through five more: its own state keeps four.
    events.push(ev(0, T0, "svc-a", "service_account"));
    for (i, key) in ["AKIA2", "AKIA3", "AKIA4", "AKIA5", "AKIA6"].into_iter().enumerate() {
        let mut e = ev(i + 1, T0 + (i as Millis + 1) * MINUTE, "svc-a", "service_account");
        e.credential = (key, "static_key");
        events.push(e);
    }
    let done = action_result("done", "revoke_credential", "svc-a", "AKIAEXAMPLE1", t);
    // svc-b's key is revoked before nhid ever saw svc-b.
    let done_b = action_result("done", "revoke_credential", "svc-b", "AKIA-B", t);
    // svc-c's agent session was cut, not its key: the key stays usable.
    let session = action_result("done", "revoke_session", "svc-c", "AKIA-C", t);
    let mut reuse = ev(10, t + 5 * MINUTE, "svc-a", "service_account");
    reuse.credential = ("AKIAEXAMPLE1", "static_key");
    let mut first_b = ev(11, t + 5 * MINUTE, "svc-b", "api_key");
    first_b.credential = ("AKIA-B", "static_key");
    let mut key_c = ev(12, t + 5 * MINUTE, "svc-c", "service_account");
    key_c.credential = ("AKIA-C", "static_key");
    events.extend([reuse, first_b, key_c]);
    let control = [
        (6, ControlKind::ActionResult, done),
        (6, ControlKind::ActionResult, done_b),
        (6, ControlKind::ActionResult, session),
    ];
    let out = run_with(&engine, &events, &control);
    let fired: Vec<&str> = of_kind(&out, "expired_credential").iter().map(|a| a.principal.id.as_str()).collect();
    assert_eq!(fired, ["svc-a", "svc-b"]);
    assert_eq!(out.stats.action_results_by_status(), [3, 0]);
}

#[test]
fn a_retired_principal_that_acts_again_fires_expired_credential() {
    let engine = engine();
    let events = every_minute("agent-old", "ai_agent", T0, 30);
    let retired = lifecycle("principal_retired", ("principal_id", "agent-old"), T0 + 10 * MINUTE);
    let out = run_with(&engine, &events, &[(0, ControlKind::Lifecycle, retired)]);
    let fired = of_kind(&out, "expired_credential");
    assert_eq!(fired.len(), 1, "{:?}", kinds(&out.alerts));
    assert_eq!(fired[0].time, T0 + 12 * MINUTE);
    assert_eq!(fired[0].evidence["reason"], "principal_retired");
    assert_eq!(fired[0].evidence["principal_retired_at"], format_rfc3339(T0 + 10 * MINUTE));
}

#[test]
fn an_offboarded_owner_orphans_their_machine_principals_and_no_one_elses() {
    // svc-inv's events still name bob, but the inventory, which wins, says team-x owns it;
    // agent-bob's events name no owner, the inventory says bob.
    let engine = engine_with(
        "[[principal]]\nmatch = \"svc-inv\"\nowner = \"team-x\"\n\
         [[principal]]\nmatch = \"agent-bob\"\nowner = \"bob\"\n",
    );
    let offboarded_at = T0 + 10 * MINUTE;
    let mut events = Vec::new();
    for (principal, kind, owner) in [
        ("svc-bob", "service_account", Some("bob")),
        ("agent-bob", "ai_agent", None),
        ("svc-carol", "service_account", Some("carol")),
        ("svc-inv", "service_account", Some("bob")),
        ("bob@example.com", "human", Some("bob")),
    ] {
        for mut e in every_minute(principal, kind, T0, 90) {
            e.owner = owner;
            events.push(e);
        }
    }
    events.sort_by_key(|e| e.time);
    let offboarded = lifecycle("owner_offboarded", ("owner", "bob"), offboarded_at);
    let out = run_with(&engine, &events, &[(0, ControlKind::Lifecycle, offboarded)]);
    let orphans = of_kind(&out, "orphaned_principal");
    let mut who: Vec<&str> = orphans.iter().map(|a| a.principal.id.as_str()).collect();
    who.sort();
    assert_eq!(who, ["agent-bob", "svc-bob"], "one alert each per day, for bob's machines only");
    for a in &orphans {
        assert_eq!(a.time, offboarded_at, "at or after the offboarding, not before");
        assert_eq!(a.principal.owner.as_deref(), Some("bob"));
        assert_eq!(a.evidence["owner_offboarded_at"], format_rfc3339(offboarded_at));
        let notice = out.actions.iter().find(|x| x.alert_id == a.alert_id).unwrap();
        assert_eq!(notice.action, ActionKind::NotifyOwner, "orphaned is not misuse: nothing is cut");
    }
}

#[test]
fn a_failed_action_raises_response_failed_naming_the_action_and_principal() {
    let engine = engine_with("[[principal]]\nmatch = \"svc-a\"\nowner = \"team-billing\"\n");
    let events = every_minute("svc-a", "service_account", T0, 3);
    let mut failed = action_result("failed", "revoke_credential", "svc-a", "AKIAEXAMPLE1", T0 + 2 * MINUTE);
    failed["detail"] = "AccessDenied: iam:UpdateAccessKey".into();
    let never_seen = action_result("failed", "revoke_session", "svc-gone", "tok-1", T0 + 2 * MINUTE);
    let control = [
        (3, ControlKind::ActionResult, failed.clone()),
        (3, ControlKind::ActionResult, failed),
        (3, ControlKind::ActionResult, never_seen),
    ];
    let out = run_with(&engine, &events, &control);
    let alerts = of_kind(&out, "response_failed");
    assert_eq!(alerts.len(), 3);
    let a = alerts[0];
    assert_eq!((a.detector.as_str(), a.severity), ("action_results", Severity::High));
    assert_eq!(a.principal.id, "svc-a");
    assert_eq!(a.principal.kind, PrincipalType::ServiceAccount);
    assert_eq!(a.principal.owner.as_deref(), Some("team-billing"));
    assert_eq!(a.credential_id.as_deref(), Some("AKIAEXAMPLE1"));
    assert_eq!(a.evidence["action_id"], "3e8b1f60-7a2d-5c94-b1e7-0d6c5a4f3e21");
    assert_eq!(a.evidence["detail"], "AccessDenied: iam:UpdateAccessKey");
    assert!(a.summary.contains("3e8b1f60-7a2d-5c94-b1e7-0d6c5a4f3e21") && a.summary.contains("svc-a"), "{}", a.summary);
    assert_eq!(alerts[1].alert_id, a.alert_id, "a redelivered report has the same alert id");
    assert_eq!(alerts[2].principal.kind, PrincipalType::Unknown, "a principal nhid does not know");
    assert!(out.actions.is_empty(), "a failure is alerted, not retried by nhid");
    assert_eq!(out.stats.action_results_by_status(), [0, 3]);
    assert_eq!(out.stats.alerts[&(nhid_engine::respond::ACTION_RESULTS.to_string(), Severity::High)], 3);
    // A failed revocation revokes nothing.
    assert!(of_kind(&out, "expired_credential").is_empty());
}

#[test]
fn malformed_control_messages_are_dead_lettered_with_a_reason() {
    let engine = engine();
    let origin = Origin { source: "control", partition: 3, offset: 7 };
    use ControlKind::{ActionResult as Result, Lifecycle};
    let t = r#""time":"2026-11-02T00:00:00Z""#;
    let bomb = format!("{}{}", "[".repeat(70), "]".repeat(70));
    let cases: Vec<(ControlKind, Vec<u8>, DeadLetterReason)> = [
        (Lifecycle, "not json".into(), DeadLetterReason::InvalidJson),
        (Lifecycle, r#"{}"#.into(), DeadLetterReason::WrongType),
        (
            Lifecycle,
            r#"{"id":"l","type":"principal_retired","principal_id":"p"}"#.into(),
            DeadLetterReason::MissingTime,
        ),
        (Lifecycle, format!(r#"{{"id":"l",{t},"type":"owner_offboarded"}}"#), DeadLetterReason::WrongType),
        (Lifecycle, format!(r#"{{"id":"l",{t},"type":"principal_retired"}}"#), DeadLetterReason::MissingPrincipal),
        (
            Lifecycle,
            r#"{"id":"l","time":"soon","type":"owner_offboarded","owner":"o"}"#.into(),
            DeadLetterReason::InvalidTime,
        ),
        (Result, format!(r#"{{"action_id":"a",{t},"status":"done"}}"#), DeadLetterReason::MissingPrincipal),
        (
            Result,
            format!(r#"{{"action_id":"a",{t},"status":"maybe","principal_id":"p"}}"#),
            DeadLetterReason::WrongType,
        ),
        (Result, bomb, DeadLetterReason::NestingTooDeep),
    ]
    .into_iter()
    .map(|(kind, text, reason)| (kind, text.into_bytes(), reason))
    .chain([(Result, b"\xff\xfe{}".to_vec(), DeadLetterReason::InvalidUtf8)])
    .collect();
    let mut out = Outputs::default();
    for (kind, bytes, reason) in &cases {
        let (kind, bytes, reason) = (*kind, bytes.as_slice(), *reason);
        engine.control(kind, bytes, origin, &mut out);
        let dl = out
            .dead_letters
            .pop()
            .unwrap_or_else(|| panic!("{:?} was not dead-lettered", String::from_utf8_lossy(bytes)));
        assert_eq!(dl.reason, reason, "{:?}: {}", String::from_utf8_lossy(bytes), dl.detail);
        assert_eq!((dl.source.as_str(), dl.partition, dl.offset, dl.bytes.as_slice()), ("control", 3, 7, bytes));
        assert!(!dl.detail.is_empty());
    }
    assert_eq!(out.stats.dead_letters_total(), cases.len() as u64);
    assert_eq!(
        (out.stats.lifecycle_events, out.stats.action_results_by_status()),
        ([0; 3], [0; 2]),
        "nothing was applied"
    );
    assert!(out.alerts.is_empty());
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_control(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
        let engine = engine();
        let mut out = Outputs::default();
        for kind in [ControlKind::Lifecycle, ControlKind::ActionResult] {
            engine.control(kind, &bytes, Origin { source: "control", partition: 0, offset: 0 }, &mut out);
        }
        let applied = out.stats.lifecycle_events.iter().chain(&out.stats.action_results_by_status()).sum::<u64>();
        proptest::prop_assert_eq!(applied + out.stats.dead_letters_total(), 2);
    }

    #[test]
    fn json_like_text_never_panics_control(s in r#"[\{\}\[\]":,a-z_0-9 \\-]{0,200}"#) {
        let engine = engine();
        let mut out = Outputs::default();
        for kind in [ControlKind::Lifecycle, ControlKind::ActionResult] {
            engine.control(kind, s.as_bytes(), Origin { source: "control", partition: 0, offset: 0 }, &mut out);
        }
        proptest::prop_assert_eq!(out.dead_letters.len() as u64, out.stats.dead_letters_total());
    }
}

#[test]
fn revocations_are_forgotten_after_ninety_days_of_event_time() {
    // A replay, months later by the wall clock.
    let engine = engine_at(|| T0 + 200 * DAY);
    let revoked = lifecycle("credential_revoked", ("credential_id", "AKIAEXAMPLE1"), T0);
    // A call every ten minutes from day 89 to day 91.
    let events: Vec<Ev> =
        (0..=2 * 144).map(|i| ev(i as usize, T0 + 89 * DAY + i * 10 * MINUTE, "svc-a", "service_account")).collect();
    let out = run_with(&engine, &events, &[(0, ControlKind::Lifecycle, revoked)]);
    let fired: Vec<Millis> = of_kind(&out, "expired_credential").iter().map(|a| a.time).collect();
    assert_eq!(fired.first(), Some(&(T0 + 89 * DAY)));
    assert!(
        fired.iter().all(|&t| t <= T0 + 90 * DAY),
        "the map is bounded: by then the platform's denial is the control: {fired:?}"
    );
}

/// A format set for a topic overrides detection there, and only there.
#[test]
fn a_topic_format_overrides_detection_on_that_topic_only() {
    let config = EngineConfig {
        topic_formats: vec![("audit-native".into(), nhid_decode::Format::Native)],
        ..EngineConfig::default()
    };
    let engine = Engine::new(detect::load(None).unwrap(), Inventory::default(), config);
    let record = br#"{"eventVersion":"1.08","eventTime":"2026-11-20T10:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"us-east-1","sourceIPAddress":"10.0.0.1","userIdentity":{"type":"AssumedRole","principalId":"AROAEXAMPLE:job","arn":"arn:aws:sts::123456789012:assumed-role/etl/job","accountId":"123456789012","accessKeyId":"ASIAEXAMPLE"}}"#;
    let mut out = Outputs::default();
    let on = |source| Origin { source, partition: 0, offset: 1 };
    let decoded = engine.process(record, on("audit"), None, &mut out);
    assert_eq!(decoded.format, Some(nhid_model::event::SourceFormat::Cloudtrail), "detected elsewhere");
    assert!(out.dead_letters.is_empty());
    let forced = engine.process(record, on("audit-native"), None, &mut out);
    assert_eq!(forced.format, None);
    assert_eq!(out.dead_letters.len(), 1, "read as a canonical event it is not one");
    assert_ne!(out.dead_letters[0].reason, DeadLetterReason::UnknownFormat, "the format was not guessed");
}

// ---------- detection on estates as they are (context and calibration) ----------

/// A CI role deploying from GitHub-hosted runners: every job on a fresh address in the
/// ranges GitHub publishes for Actions, its CLI naming each command in the user agent.
fn ci_jobs(days: i64, every: i64) -> Vec<Ev> {
    let commands = ["s3.cp", "sts.get-caller-identity", "ecr.get-login-password", "ecs.update-service"];
    let actions = ["s3:PutObject", "sts:GetCallerIdentity", "ecr:GetAuthorizationToken", "ecs:UpdateService"];
    let mut v = Vec::new();
    for (job, start) in (0..days * DAY).step_by(every as usize).enumerate() {
        // 4.148.0.0/14 and 4.152.0.0/14 are in data/ipranges/github (Actions runners).
        let ip = format!("4.{}.{}.{}", 148 + job % 8, (job * 37) % 256, 10 + job % 200);
        for (k, (command, action)) in commands.iter().zip(actions).enumerate() {
            let mut e = ev(v.len(), T0 + start + k as i64 * SECOND, "ci-deployer", "workload");
            e.ip = ip.clone();
            e.action = action;
            e.credential = ("ASIACIDEPLOY", "short_lived_token");
            e.ua = format!("aws-cli/2.17.{} md/awscrt#0.20 ua/2.0 os/linux#6.5 md/command#{command}", job % 3);
            v.push(e);
        }
    }
    v
}

#[test]
fn a_ci_runner_on_a_new_github_address_is_not_new_the_same_token_from_an_anonymiser_is() {
    let engine = engine();
    // Two days of jobs every 20 minutes; the last day is after learning.
    let mut events = ci_jobs(2, 20 * MINUTE);
    let out = run(&engine, &events);
    assert!(out.alerts.is_empty(), "a day of fresh runner addresses: {:#?}", out.alerts);
    // The role's token used from a ProtonVPN exit (data/ipranges/protonvpn) with curl.
    let mut leak = ev(events.len(), T0 + 2 * DAY + 5 * MINUTE, "ci-deployer", "workload");
    leak.ip = "5.157.13.2".into();
    leak.action = "s3:GetObject";
    leak.credential = ("ASIACIDEPLOY", "short_lived_token");
    leak.ua = "curl/8.4.0".into();
    events.push(leak);
    let out = run(&engine, &events[events.len() - 1..]);
    let alert = out.alerts.iter().find(|a| a.kind == "new_source").expect("the anonymiser is new");
    assert_eq!(alert.evidence["network_place"], "anonymizer (protonvpn)", "{alert:#?}");
    assert_eq!(alert.evidence["new_client"], "curl/8");
    assert!(alert.score.probability.unwrap() < 1e-3, "{:?}", alert.score);
    assert!(alert.score.baseline.as_deref().unwrap().contains("observations"));
    let action = out.actions.iter().find(|a| a.alert_id == alert.alert_id).expect("an action");
    assert_eq!(action.action, ActionKind::RevokeCredential);
}

/// An on-premises backup job's static key on an office line whose ISP hands out a new
/// address every two hours (Comcast's 73.0.0.0/8, AS7922, in `tests/data/asn`), syncing every
/// two minutes.
fn office_key(days: i64) -> Vec<Ev> {
    let mut v = Vec::new();
    for m in (0..days * 1_440).step_by(2) {
        let lease = m / 120;
        let mut e = ev(v.len(), T0 + m * MINUTE, "onprem-backup", "service_account");
        e.ip = format!("73.{}.{}.{}", 10 + lease % 200, (lease * 53) % 256, 20 + lease % 100);
        e.action = "s3:PutObject";
        e.credential = ("AKIABACKUP01", "static_key");
        e.ua = "aws-cli/2.17.20 md/awscrt#0.20 ua/2.0 os/linux#6.5 md/command#s3.cp".into();
        v.push(e);
    }
    v
}

#[test]
fn with_an_asn_table_a_key_from_another_isp_is_new_without_one_every_public_address_is_one_place() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/asn");
    let asns = nhid_engine::context::asn::Asns::load(&dir).unwrap();
    let ranges = nhid_engine::context::network::Ranges::shipped().with_asns(asns);
    let config = EngineConfig { ranges: Some(std::sync::Arc::new(ranges)), ..EngineConfig::default() };
    let with = Engine::new(detect::load(None).unwrap(), Inventory::default(), config);
    let without = engine();
    let events = office_key(2);
    for engine in [&with, &without] {
        let out = run(engine, &events);
        assert!(out.alerts.is_empty(), "two days of new leases from one ISP: {:#?}", out.alerts);
    }
    // The key from a Deutsche Telekom line (2.160.0.0/12, AS3320), with the job's own client
    // and call: all a thief needs to copy.
    let mut leak = ev(events.len(), T0 + 2 * DAY + 5 * MINUTE, "onprem-backup", "service_account");
    leak.ip = "2.164.77.12".into();
    leak.action = "s3:PutObject";
    leak.credential = ("AKIABACKUP01", "static_key");
    leak.ua = events[0].ua.clone();
    let out = run(&with, std::slice::from_ref(&leak));
    let alert = out.alerts.iter().find(|a| a.kind == "new_source").expect("another ISP is a new place");
    assert_eq!(alert.evidence["network_place"], "public (AS3320 Deutsche Telekom AG)", "{alert:#?}");
    let action = out.actions.iter().find(|a| a.alert_id == alert.alert_id).expect("an action");
    assert_eq!(action.action, ActionKind::RevokeCredential, "{:?}", alert.score);
    // Without the table, the thief's line is one more public address among many.
    let out = run(&without, &[leak]);
    assert!(out.alerts.iter().all(|a| a.kind != "new_source"), "{:#?}", out.alerts);
}

/// A deploy role's jobs every three hours for two days, each its own session on a fresh
/// GitHub-hosted address making ten calls, then on the third day a job of `big` calls over
/// three minutes; with `session` false every job uses one static key instead.
fn deploys(big: usize, session: bool) -> Vec<Ev> {
    const SESSIONS: [&str; 17] = [
        "ASIAJOB00",
        "ASIAJOB01",
        "ASIAJOB02",
        "ASIAJOB03",
        "ASIAJOB04",
        "ASIAJOB05",
        "ASIAJOB06",
        "ASIAJOB07",
        "ASIAJOB08",
        "ASIAJOB09",
        "ASIAJOB10",
        "ASIAJOB11",
        "ASIAJOB12",
        "ASIAJOB13",
        "ASIAJOB14",
        "ASIAJOB15",
        "ASIAJOB16",
    ];
    let mut v = Vec::new();
    for (job, &id) in SESSIONS.iter().enumerate() {
        let (start, calls) = if job < 16 { (job as i64 * 3 * HOUR, 10) } else { (2 * DAY + 10 * HOUR, big) };
        for k in 0..calls {
            let mut e = ev(v.len(), T0 + start + k as i64 * 3 * MINUTE / calls as i64, "deploy-web", "workload");
            e.ip = format!("4.{}.{}.{}", 148 + job % 8, (job * 37) % 256, 10 + job);
            e.action = "s3:PutObject";
            e.credential = if session { (id, "short_lived_token") } else { ("AKIADEPLOY", "static_key") };
            e.ua = "aws-cli/2.17.20 md/awscrt#0.20 ua/2.0 os/linux#6.5 md/command#s3.sync".into();
            v.push(e);
        }
    }
    v
}

#[test]
fn a_ci_job_twenty_times_the_usual_size_is_its_size_and_its_session_from_elsewhere_is_not() {
    let engine = engine();
    let events = deploys(200, true);
    let out = run(&engine, &events);
    assert!(out.alerts.is_empty() && out.actions.is_empty(), "a big deploy: {:#?}", out.alerts);
    // The big job's session, a minute after its last call, from a ProtonVPN exit.
    let mut stolen = ev(events.len(), T0 + 2 * DAY + 10 * HOUR + 4 * MINUTE, "deploy-web", "workload");
    stolen.ip = "5.157.13.2".into();
    stolen.action = "s3:GetObject";
    stolen.credential = ("ASIAJOB16", "short_lived_token");
    stolen.ua = "aws-cli/2.17.20 md/awscrt#0.20 ua/2.0 os/linux#6.5 md/command#s3.cp".into();
    let out = run(&engine, &[stolen]);
    let contained: Vec<_> = out.actions.iter().filter(|a| a.action != ActionKind::NotifyOwner).collect();
    assert!(!contained.is_empty(), "the session carried off the runner: {:#?}", out.alerts);
    // The same deploys with one static key, which no job mints: the big one is a spike.
    let out = run(&engine_with(""), &deploys(200, false));
    assert_eq!(of_kind(&out, "rate_spike").len(), 1, "{:#?}", out.alerts);
}

#[test]
fn a_low_volume_key_still_discovering_its_actions_is_not_flagged_a_stable_one_is() {
    let engine = engine();
    // Thirty calls a day drawn from a long tail (Zipf, s = 1) of twenty actions over eleven
    // services, for four days: the tail's actions and services keep showing for the first
    // time, as real low-volume keys' do.
    let tail = [
        "s3:GetObject",
        "s3:ListBucket",
        "s3:PutObject",
        "sqs:SendMessage",
        "sqs:ReceiveMessage",
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:PutItem",
        "kms:Decrypt",
        "kms:Encrypt",
        "logs:PutLogEvents",
        "logs:CreateLogStream",
        "sns:Publish",
        "ssm:GetParameter",
        "ssm:GetParameters",
        "secretsmanager:GetSecretValue",
        "cloudwatch:PutMetricData",
        "ecr:BatchGetImage",
        "ec2:DescribeInstances",
        "lambda:InvokeFunction",
    ];
    let mut events = Vec::new();
    let mut x: u64 = 7;
    let weights: Vec<f64> = (1..=tail.len()).map(|k| 1.0 / k as f64).collect();
    let total: f64 = weights.iter().sum();
    for d in 0..4 {
        for i in 0..30i64 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let mut u = (x >> 11) as f64 / (1u64 << 53) as f64 * total;
            let pick = weights.iter().position(|w| {
                u -= w;
                u < 0.0
            });
            let mut e = ev(events.len(), T0 + d * DAY + i * 47 * MINUTE, "svc-lowvol", "api_key");
            e.action = tail[pick.unwrap_or(tail.len() - 1)];
            events.push(e);
        }
    }
    // Stable keys: the same two actions every minute, one for five days, one for two.
    for (id, days) in [("svc-stable", 5), ("svc-young", 2)] {
        for m in 0..days * 1_440 {
            let mut e = ev(events.len(), T0 + m * MINUTE, id, "api_key");
            e.action = if m % 2 == 0 { "s3:GetObject" } else { "s3:PutObject" };
            events.push(e);
        }
    }
    // Each probes from where it always works: the five days are enough history to judge
    // an hour of it, the two days are not. From an address never used, the young key's
    // discovery is judged by the minute and is flagged too.
    for (id, at, ip) in [
        ("svc-stable", T0 + 5 * DAY, None),
        ("svc-young", T0 + 2 * DAY, None),
        ("svc-young", T0 + 2 * DAY + 10 * MINUTE, Some("198.51.100.9")),
    ] {
        let mut probe = ev(events.len(), at + 30 * SECOND, id, "api_key");
        probe.action = if ip.is_none() { "s3:ListBuckets" } else { "iam:ListUsers" };
        if let Some(ip) = ip {
            probe.ip = ip.into();
        }
        events.push(probe);
    }
    events.sort_by_key(|e| e.time);
    let out = run(&engine, &events);
    let drifts: Vec<(&str, &str)> = of_kind(&out, "scope_drift")
        .iter()
        .map(|a| (a.principal.id.as_str(), a.evidence["action"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(drifts, [("svc-young", "iam:ListUsers"), ("svc-stable", "s3:ListBuckets")], "{:#?}", out.alerts);
    for a in of_kind(&out, "scope_drift") {
        assert!(a.score.probability.unwrap() <= 0.01, "{a:#?}");
    }
}

#[test]
fn an_attacker_s_privilege_change_after_a_benign_one_in_the_same_hour_is_its_own_alert() {
    let engine = engine();
    let mut events = learn("svc-infra", "service_account", 1, 1);
    let start = T0 + DAY + HOUR + 23 * MINUTE;
    let mut benign = ev(events.len(), start, "svc-infra", "service_account");
    benign.action = "iam:UpdateAssumeRolePolicy";
    events.push(benign);
    let mut attack = ev(events.len(), start + 7 * MINUTE, "svc-infra", "service_account");
    attack.action = "iam:UpdateAssumeRolePolicy";
    attack.ip = "198.51.100.23".into();
    events.push(attack);
    // The attacker's repeat in the same minute is the same finding.
    let mut again = ev(events.len(), start + 7 * MINUTE + SECOND, "svc-infra", "service_account");
    again.action = "iam:UpdateAssumeRolePolicy";
    again.ip = "198.51.100.23".into();
    events.push(again);
    let out = run(&engine, &events);
    let changes: Vec<&Alert> = out.alerts.iter().filter(|a| a.kind == "privilege_change").collect();
    assert_eq!(changes.len(), 2, "{changes:#?}");
    assert_ne!(changes[0].alert_id, changes[1].alert_id);
    assert_eq!(changes[1].event_ids, [format!("e{}", events.len() - 2)], "the attacker's call is the evidence");
}

#[test]
fn a_model_s_finding_that_is_not_surprising_enough_notifies_instead_of_revoking() {
    let engine = engine();
    // A key with a short history (150 calls over a day from one private network and one
    // client): a public address is a one-in-150 event, worth an alert but not a revocation.
    let mut events: Vec<Ev> = (0..150).map(|i| ev(i, T0 + i as i64 * 9 * MINUTE, "svc-young", "api_key")).collect();
    let mut other = ev(events.len(), T0 + DAY + HOUR, "svc-young", "api_key");
    other.ip = "198.51.100.77".into();
    events.push(other);
    let out = run(&engine, &events);
    let alert = out.alerts.iter().find(|a| a.kind == "new_source").unwrap_or_else(|| panic!("{:#?}", out.alerts));
    let p = alert.score.probability.unwrap();
    assert!(p > 1e-3 && p <= 0.01, "{p}");
    let action = out.actions.iter().find(|a| a.alert_id == alert.alert_id).unwrap();
    assert_eq!(action.action, ActionKind::NotifyOwner);
    assert_eq!(out.stats.guardrail_blocks.get(&nhid_engine::respond::policy::Block::NotSurprising), Some(&1));
}

/// An engine whose wall clock stands at `now`.
fn engine_at(now: fn() -> Millis) -> Engine {
    let config = EngineConfig { wall_clock: now, ..EngineConfig::default() };
    Engine::new(detect::load(None).unwrap(), Inventory::default(), config)
}

/// Two days of learning, then an event `forged` (its principal, its time), then the stolen
/// key used from a Tor exit five minutes after the learning.
fn forged_then_stolen(forged: (&'static str, Millis)) -> Vec<Ev> {
    let mut events = learn("svc-payments", "service_account", 1, 2);
    events.push(ev(events.len(), forged.1, forged.0, "service_account"));
    let mut stolen = ev(events.len(), T0 + 2 * DAY + 5 * MINUTE, "svc-payments", "service_account");
    stolen.ip = "185.220.101.4".into();
    events.push(stolen);
    events
}

#[test]
fn an_event_from_the_future_is_dead_lettered_and_does_not_blind_the_engine() {
    // Live: the wall clock just after the learning. One event dated 2099 (and one forty
    // days ahead) would have moved the clock past every identity's idle timeout.
    for ahead in [4_070_908_800_000, T0 + 42 * DAY] {
        let out = run(&engine_at(|| T0 + 2 * DAY + 10 * MINUTE), &forged_then_stolen(("svc-payments", ahead)));
        assert_eq!(out.stats.dead_letters[DeadLetterReason::ImplausibleTime.index()], 1);
        let dead = &out.dead_letters[0];
        assert_eq!(dead.reason, DeadLetterReason::ImplausibleTime);
        assert!(dead.detail.contains("900 s ahead"), "{}", dead.detail);
        assert!(kinds(&out.alerts).contains(&"new_source"), "{:#?}", out.alerts);
    }
}

/// The wall clock is read once for a stream of past events, and again for an event its
/// last reading would refuse: which a fresh reading then decides.
#[test]
fn the_wall_clock_is_read_again_only_for_an_event_ahead_of_its_last_reading() {
    use std::sync::atomic::{AtomicI64, Ordering};
    static READS: AtomicI64 = AtomicI64::new(0);
    // An hour later at every reading.
    let engine = engine_at(|| T0 + 2 * DAY + READS.fetch_add(1, Ordering::Relaxed) * HOUR);
    let out = run(&engine, &learn("svc-payments", "service_account", 1, 2));
    assert!(out.dead_letters.is_empty());
    assert_eq!(READS.load(Ordering::Relaxed), 1, "past events pass on the first reading");
    // Half an hour ahead of that reading (the skew allows 15 minutes): read again, an hour
    // later, and let through.
    let out = run(&engine, &[ev(0, T0 + 2 * DAY + 30 * MINUTE, "svc-payments", "service_account")]);
    assert!(out.dead_letters.is_empty(), "{:?}", out.dead_letters);
    assert_eq!(READS.load(Ordering::Relaxed), 2);
    // Three hours ahead: the fresh reading (two hours) refuses it.
    let out = run(&engine, &[ev(1, T0 + 2 * DAY + 3 * HOUR, "svc-payments", "service_account")]);
    assert_eq!(out.stats.dead_letters[DeadLetterReason::ImplausibleTime.index()], 1);
    assert_eq!(READS.load(Ordering::Relaxed), 3);
}

#[test]
fn one_event_weeks_ahead_in_a_replay_does_not_move_the_clock_a_resumed_stream_does() {
    // A replay of old files: the wall clock months later cannot refuse an event forty days
    // ahead of the rest, past the five weeks identities are kept idle.
    let engine = engine_at(|| T0 + 100 * DAY);
    let out = run(&engine, &forged_then_stolen(("svc-forged", T0 + 42 * DAY)));
    assert!(out.dead_letters.is_empty());
    assert_eq!(out.stats.evictions, 0);
    assert!(kinds(&out.alerts).contains(&"new_source"), "{:#?}", out.alerts);
    assert_eq!(engine.now(), Some(T0 + 2 * DAY + 5 * MINUTE));
    // The stream resuming sixty days later: the clock follows once a quorum of events
    // arrived, to the earliest of them, and idle identities are then evicted.
    let resumed: Vec<Ev> =
        (0..8).map(|i| ev(i, T0 + 60 * DAY + i as Millis * SECOND, "svc-batch", "service_account")).collect();
    let out = run(&engine, &resumed);
    assert!(engine.now().is_some_and(|t| (T0 + 60 * DAY..T0 + 61 * DAY).contains(&t)), "{:?}", engine.now());
    assert!(out.stats.evictions >= 1, "svc-payments, idle for two months, is evicted");
}

#[test]
fn a_megabyte_message_or_field_is_dead_lettered_in_bounded_size_and_the_stream_goes_on() {
    let engine = engine();
    let mut out = Outputs::default();
    let origin = Origin { source: "test", partition: 0, offset: 0 };
    // A megabyte of garbage: its dead letter keeps the first 64 KiB, the size and a hash.
    let garbage = vec![b'x'; 1_000_000];
    engine.process(&garbage, origin, None, &mut out);
    let dead = &out.dead_letters[0];
    assert_eq!(dead.bytes.len(), nhid_engine::MAX_DEAD_LETTER_BYTES);
    assert_eq!((dead.original_len, dead.original_xxh3.len()), (1_000_000, 32));
    assert_eq!(dead.to_json()["original_bytes"], 1_000_000);
    // An event whose principal id is a megabyte: refused, named, never an identity.
    let mut long = ev(1, T0, "svc-a", "service_account").line();
    long = long.replace("\"svc-a\"", &format!("\"{}\"", "p".repeat(1_000_000)));
    engine.process(long.as_bytes(), origin, None, &mut out);
    let dead = &out.dead_letters[1];
    assert_eq!(dead.reason, DeadLetterReason::FieldTooLong);
    assert!(dead.detail.starts_with("principal.id is 1000000 bytes"), "{}", dead.detail);
    assert_eq!(out.stats.dead_letters[DeadLetterReason::FieldTooLong.index()], 1);
    assert_eq!(engine.store().len(), 0);
    // What comes next is processed.
    engine.process(ev(2, T0, "svc-a", "service_account").line().as_bytes(), origin, None, &mut out);
    assert_eq!((out.stats.events, out.dead_letters.len()), (1, 2));
}

#[test]
fn a_refused_record_of_a_cloudtrail_document_is_named_by_its_index() {
    let engine = engine();
    let record = |name: &str| {
        format!(
            r#"{{"eventVersion":"1.08","eventTime":"2026-11-02T00:00:00Z","eventSource":"s3.amazonaws.com","eventName":"{name}","awsRegion":"us-east-1","sourceIPAddress":"10.0.0.1","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/ci","accountId":"111122223333","accessKeyId":"AKIAEXAMPLE","userName":"ci"}}}}"#
        )
    };
    let (good, refused) = (record("GetObject"), record(&"A".repeat(5_000)));
    let origin = Origin { source: "test", partition: 0, offset: 0 };
    // Which record a refusal names is known only once the message is read: the first of
    // several is record 0, the only one is the message itself. `process` commits records
    // as it reads them, `prepare` and `commit` (replay) after; both name the same.
    for (doc, named) in [
        (format!(r#"{{"Records":[{good},{refused}]}}"#), Some(1)),
        (format!(r#"{{"Records":[{refused},{good}]}}"#), Some(0)),
        (format!(r#"{{"Records":[{refused}]}}"#), None),
        (refused.clone(), None),
    ] {
        for prepared in [false, true] {
            let mut out = Outputs::default();
            match prepared {
                false => engine.process(doc.as_bytes(), origin, None, &mut out),
                true => engine.commit(engine.prepare(doc.as_bytes(), origin.source, None), origin, &mut out),
            };
            let dead: Vec<_> = out.dead_letters.iter().map(|d| (d.reason, d.record)).collect();
            assert_eq!(dead, [(DeadLetterReason::FieldTooLong, named)], "{doc:.60}, prepared: {prepared}");
            assert_eq!((out.stats.messages, out.stats.events), (1, u64::from(named.is_some())));
        }
    }
}
