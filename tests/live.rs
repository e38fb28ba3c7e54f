//! Live mode as `nhid demo` uses it: the history warms an engine with the built-in
//! detectors, then live windows of 100 ms carry an attack every 20 s. Every attack is
//! alerted on its principal within 10 s of its first malicious event, nothing else is
//! alerted, and no action targets a human.

use std::collections::BTreeMap;
use std::time::Instant;

use nhid_engine::detect;
use nhid_engine::inventory::Inventory;
use nhid_engine::respond::alert::{Action, Alert};
use nhid_engine::{Engine, EngineConfig, Origin, Outputs};
use nhid_model::event::PrincipalType;
use nhid_model::time::{DAY, MINUTE, Millis, SECOND};
use nhid_sim::{DEFAULT_START, Live, LiveConfig};

#[test]
fn live_attacks_are_alerted_within_seconds_and_nothing_else_is() {
    let engine = Engine::new(detect::load(None).unwrap(), Inventory::default(), EngineConfig::default());
    let cfg = LiveConfig::default();
    // Not on a minute, so windows and attacks straddle minute boundaries.
    let now = DEFAULT_START + 3 * DAY + 13 * MINUTE + 4_321;
    let mut sim = Live::new(&cfg, now);
    let mut out = Outputs::default();
    let mut offset = 0;
    let mut feed = |line: &[u8], engine: &Engine, out: &mut Outputs| {
        engine.process(line, Origin { source: "audit", partition: 0, offset }, None, out);
        offset += 1;
    };

    let started = Instant::now();
    let mut history = 0u64;
    sim.history(&mut |line, _| {
        feed(line, &engine, &mut out);
        history += 1;
    })
    .unwrap();
    let secs = started.elapsed().as_secs_f64();
    eprintln!("history: {history} events generated and processed in {secs:.1} s ({:.0}/s)", history as f64 / secs);
    let warm_up_alerts: Vec<(String, String)> = out.alerts.drain(..).map(|a| (a.kind, a.principal.id)).collect();
    eprintln!("alerts during the history (the engine still learning for its first day): {warm_up_alerts:?}");
    out.actions.clear();
    assert!(out.dead_letters.is_empty());

    // Five minutes: the sixth attack (the slow ramp) spikes two minutes after it starts.
    let mut alerts: Vec<Alert> = Vec::new();
    let mut actions: Vec<Action> = Vec::new();
    let mut live = 0u64;
    let mut until = now;
    while until < now + 5 * MINUTE {
        until += 100;
        sim.advance(until, &mut |line, _| {
            feed(line, &engine, &mut out);
            live += 1;
        })
        .unwrap();
        alerts.append(&mut out.alerts);
        actions.append(&mut out.actions);
    }
    assert!(out.dead_letters.is_empty());
    eprintln!("live: {live} events in 5 min ({:.1}/s)", live as f64 / 300.0);

    let injected = sim.injected();
    let mut scenarios: Vec<&str> = injected.iter().map(|l| l.scenario.as_str()).collect();
    scenarios.sort_unstable();
    scenarios.dedup();
    assert_eq!(scenarios.len(), 6, "every scenario within five minutes: {injected:#?}");
    let mut latency = BTreeMap::new();
    for l in injected {
        let delay = alerts
            .iter()
            .filter(|a| a.principal.id == l.principal_id && l.expected_kinds.contains(&a.kind))
            .map(|a| a.time - l.first_malicious_time)
            .min();
        assert!(
            delay.is_some_and(|d| (0..=10 * SECOND).contains(&d)),
            "{} on {} alerted {delay:?} ms after its first malicious event; alerts on it: {:?}",
            l.scenario,
            l.principal_id,
            alerts.iter().filter(|a| a.principal.id == l.principal_id).map(|a| (&a.kind, a.time)).collect::<Vec<_>>()
        );
        latency.insert(format!("{} {}", l.scenario, l.principal_id), delay.unwrap_or_default());
    }
    eprintln!("ms from the first malicious event to the alert: {latency:#?}");

    let attacked = |id: &str| injected.iter().any(|l| l.principal_id == id);
    let false_alerts: Vec<(&str, &str, &str)> = alerts
        .iter()
        .filter(|a| !attacked(&a.principal.id))
        .map(|a| (a.kind.as_str(), a.principal.id.as_str(), a.summary.as_str()))
        .collect();
    assert!(false_alerts.is_empty(), "alerts on principals nobody attacked: {false_alerts:#?}");
    for a in &actions {
        assert_ne!(a.target.principal_kind, PrincipalType::Human, "{a:?}");
        assert!(attacked(&a.target.principal_id), "{a:?}");
    }
    let first: Millis = injected.iter().map(|l| l.first_malicious_time).min().unwrap_or(Millis::MAX);
    assert!(first - now <= 15 * SECOND, "the first attack comes {} ms after now", first - now);
}
