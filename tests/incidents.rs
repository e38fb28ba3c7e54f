//! Incidents through the binary, as a SOC reads them: `nhid replay --incidents FILE` on
//! simulated estates whose attacks are labelled. Each identity's alerts within an episode
//! are one incident; there are at most as many incidents as attack scenarios plus false
//! alerts; every record is the whole incident as it stands, and every alert names its own.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use nhid_engine::respond::alert::{Action, Alert};
use nhid_engine::respond::incident::{CloseReason, IncidentActivity, IncidentRecord, MAX_LISTED};
use nhid_model::time::{HOUR, SECOND};
use nhid_sim::Label;

const GAP: i64 = HOUR;

struct Run {
    labels: Vec<Label>,
    alerts: Vec<Alert>,
    actions: Vec<Action>,
    records: Vec<IncidentRecord>,
}

fn run(seed: u32, dir: &Path, env: &[(&str, &str)]) -> Run {
    let p = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let seed = seed.to_string();
    let sim = ["simulate", "--seed", &seed, "--principals", "60", "--days", "3", "--out", &p("ev.jsonl")];
    let more = ["--labels", &p("l.json"), "--inventory", &p("inv.toml")];
    common::nhid_ok(env!("CARGO_BIN_EXE_nhid-sim"), &[&sim[..], &more[..]].concat());
    let mut replay = std::process::Command::new(env!("CARGO_BIN_EXE_nhid"));
    replay.args(["replay", &p("ev.jsonl"), "--inventory", &p("inv.toml"), "--alerts", &p("a.jsonl")]);
    replay.args(["--actions", &p("x.jsonl"), "--incidents", &p("i.jsonl")]).envs(env.iter().copied());
    let out = replay.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Run {
        labels: serde_json::from_str(&std::fs::read_to_string(p("l.json")).unwrap()).unwrap(),
        alerts: common::schema_lines(Path::new(&p("a.jsonl")), "alert"),
        actions: common::schema_lines(Path::new(&p("x.jsonl")), "action"),
        records: common::schema_lines(Path::new(&p("i.jsonl")), "incident"),
    }
}

/// Each incident's records in the order written.
fn by_incident(records: &[IncidentRecord]) -> BTreeMap<&str, Vec<&IncidentRecord>> {
    let mut map: BTreeMap<&str, Vec<&IncidentRecord>> = BTreeMap::new();
    for r in records {
        map.entry(&r.incident.incident_id).or_default().push(r);
    }
    map
}

/// What every run must show: the records tell each incident's story in order, and the
/// incident holds exactly the alerts (and their actions) that name it.
fn check_records(run: &Run, gap: i64) {
    for (id, records) in by_incident(&run.records) {
        let activities: Vec<IncidentActivity> = records.iter().map(|r| r.activity).collect();
        assert_eq!(activities[0], IncidentActivity::Create, "{id}: opened first");
        assert!(activities[1..].iter().all(|&a| a != IncidentActivity::Create), "{id}: opened once");
        assert!(activities[1..].iter().rev().skip(1).all(|&a| a == IncidentActivity::Update), "{id}: {activities:?}");
        let last = records.last().unwrap();
        let incident = &last.incident;
        let alerts: Vec<&Alert> = run.alerts.iter().filter(|a| a.incident_id.as_deref() == Some(id)).collect();
        assert_eq!(incident.alert_count as usize, alerts.len(), "{id}: counts every alert naming it");
        assert_eq!(records.iter().filter(|r| r.activity != IncidentActivity::Close).count(), alerts.len());
        let listed: Vec<&str> = incident.alerts.iter().map(|a| a.alert_id.as_str()).collect();
        let named: Vec<&str> = alerts.iter().take(MAX_LISTED).map(|a| a.alert_id.as_str()).collect();
        assert_eq!(listed, named, "{id}: lists its alerts in the order raised");
        assert!(alerts.iter().all(|a| a.principal.id == incident.principal.id), "{id}: one identity");
        assert_eq!(Some(incident.severity), alerts.iter().map(|a| a.severity).max(), "{id}: the highest severity");
        let times: Vec<i64> = alerts.iter().map(|a| a.time).collect();
        assert_eq!((incident.first_seen, incident.last_seen), (times[0], *times.iter().max().unwrap()));
        assert!(times.windows(2).all(|w| w[1] - w[0] <= gap), "{id}: one episode: {times:?}");
        let actions: Vec<&str> = run
            .actions
            .iter()
            .filter(|x| alerts.iter().any(|a| a.alert_id == x.alert_id))
            .map(|x| x.action_id.as_str())
            .collect();
        assert_eq!(incident.action_ids, actions, "{id}: its alerts' actions");
        if last.activity == IncidentActivity::Close {
            assert_eq!(last.closed, Some(CloseReason::Quiet), "{id}: the estate is small, nothing is evicted");
            assert_eq!(last.time, incident.last_seen + gap, "{id}: closed when the gap passed");
        } else {
            assert!(last.closed.is_none());
        }
    }
    // Consecutive incidents of one identity are further apart than the gap.
    let mut per_principal: BTreeMap<&str, Vec<(i64, i64)>> = BTreeMap::new();
    for r in run.records.iter().filter(|r| r.activity == IncidentActivity::Create) {
        per_principal.entry(&r.incident.principal.id).or_default().push((r.incident.first_seen, 0));
    }
    for r in run.records.iter().filter(|r| r.activity == IncidentActivity::Close) {
        let spans = per_principal.get_mut(r.incident.principal.id.as_str()).unwrap();
        spans.iter_mut().find(|s| s.0 == r.incident.first_seen).unwrap().1 = r.incident.last_seen;
    }
    for (principal, spans) in per_principal {
        for w in spans.windows(2) {
            assert!(w[1].0 - w[0].1 > gap, "{principal}: an alert within the gap opened another incident: {spans:?}");
        }
    }
    assert!(run.alerts.iter().all(|a| a.incident_id.is_some()), "every alert names its incident");
}

#[test]
fn incidents_number_at_most_the_attacks_plus_the_false_alerts_and_each_holds_one_episode() {
    for seed in [7, 11, 23] {
        let dir = tempfile::tempdir().unwrap();
        let run = run(seed, dir.path(), &[]);
        check_records(&run, GAP);
        let attacks: Vec<&Label> = run.labels.iter().filter(|l| !l.expected_kinds.is_empty()).collect();
        let explained = |a: &Alert| {
            attacks.iter().any(|l| l.principal_id == a.principal.id && a.time >= l.start && a.time <= l.end + HOUR)
        };
        let false_alerts = run.alerts.iter().filter(|a| !explained(a)).count();
        let incidents = by_incident(&run.records).len();
        eprintln!(
            "seed {seed}: {} alerts, {} incidents; {} attack scenarios, {false_alerts} false alerts",
            run.alerts.len(),
            incidents,
            attacks.len()
        );
        assert!(incidents < run.alerts.len(), "seed {seed}: alerts are gathered, not copied");
        assert!(
            incidents <= attacks.len() + false_alerts,
            "seed {seed}: {incidents} incidents for {} attacks and {false_alerts} false alerts",
            attacks.len()
        );
        // Every attack is in an incident that has one of its expected alerts.
        for l in &attacks {
            assert!(
                run.alerts.iter().any(|a| a.principal.id == l.principal_id
                    && l.expected_kinds.contains(&a.kind)
                    && a.incident_id.is_some()),
                "seed {seed}: {} on {} in no incident",
                l.scenario,
                l.principal_id
            );
        }
    }
}

/// The gap is the operator's: ten days makes one incident per identity alerted over three
/// days, one second makes nearly one per alert.
#[test]
fn response_incident_gap_secs_sets_what_one_episode_is() {
    let dir = tempfile::tempdir().unwrap();
    let long = run(7, dir.path(), &[("NHID__RESPONSE__INCIDENT_GAP_SECS", "864000")]);
    check_records(&long, 10 * 24 * HOUR);
    let mut alerted: Vec<&str> = long.alerts.iter().map(|a| a.principal.id.as_str()).collect();
    alerted.sort();
    alerted.dedup();
    assert_eq!(by_incident(&long.records).len(), alerted.len(), "one incident per identity alerted");
    assert!(long.records.iter().all(|r| r.activity != IncidentActivity::Close), "none closes within the input");

    let short = run(7, dir.path(), &[("NHID__RESPONSE__INCIDENT_GAP_SECS", "1")]);
    check_records(&short, SECOND);
    assert!(by_incident(&short.records).len() > alerted.len());
}
