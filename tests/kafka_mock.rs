//! The Kafka runtime against librdkafka's in-process mock cluster: fast, in plain
//! `cargo test`. The mock speaks the real protocol over loopback (consumer groups, offset
//! commits, the idempotent producer); tests against a real broker are in `kafka_broker.rs`.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::http_get as get;
use common::kafka::{self, Running};
use nhid::config::Config;
use nhid_engine::respond::ocsf::AlertsFormat;
use nhid_engine::{Engine, Origin, Outputs};
use nhid_kafka::Stage;
use rdkafka::mocking::MockCluster;
use rdkafka::types::RDKafkaRespErr;

const WAIT: Duration = Duration::from_secs(60);

fn fixture_engine() -> Engine {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cloudtrail_leaked_access_key/config.toml");
    Config::load(Some(&path)).unwrap().engine().unwrap()
}

/// The leaked-key fixture (alerts and actions) followed by the garbage fixture (dead letters).
fn input() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    ["cloudtrail_leaked_access_key", "garbage_lines"]
        .iter()
        .flat_map(|case| {
            std::fs::read(dir.join(case).join("input.jsonl"))
                .unwrap()
                .split(|&b| b == b'\n')
                .map(<[u8]>::to_vec)
                .collect::<Vec<_>>()
        })
        .filter(|l| !l.is_empty())
        .collect()
}

/// What `nhid replay` produces over the same messages: alert ids, action ids, dead letters.
fn replayed(lines: &[Vec<u8>]) -> (Vec<String>, Vec<String>, usize) {
    let out = replay_outputs(lines);
    (
        out.alerts.iter().map(|a| a.alert_id.clone()).collect(),
        out.actions.iter().map(|a| a.action_id.clone()).collect(),
        out.dead_letters.len(),
    )
}

fn cluster() -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let cluster = MockCluster::new(1).unwrap();
    for (topic, partitions) in [
        ("audit", 1),
        ("nhid.alerts", 2),
        ("nhid.actions", 2),
        ("nhid.incidents", 2),
        ("nhid.dead-letter", 1),
        ("nhid.changelog", 8),
    ] {
        cluster.create_topic(topic, partitions, 1).unwrap();
    }
    cluster
}

/// Everything `nhid replay` produces over the messages.
fn replay_outputs(lines: &[Vec<u8>]) -> Outputs {
    let engine = fixture_engine();
    let mut out = Outputs::default();
    for (i, l) in lines.iter().enumerate() {
        engine.process(l, Origin { source: "audit", partition: 0, offset: i as i64 }, None, &mut out);
    }
    out
}

/// The incident records `nhid replay` writes over the same messages, as JSON.
fn replayed_incidents(lines: &[Vec<u8>]) -> Vec<serde_json::Value> {
    replay_outputs(lines).incidents.iter().map(|r| serde_json::to_value(r).unwrap()).collect()
}

fn keyed(lines: &[Vec<u8>]) -> Vec<(Option<String>, Vec<u8>)> {
    lines.iter().map(|l| (None, l.clone())).collect()
}

#[test]
fn alerts_actions_and_dead_letters_reach_their_topics_as_replay_produces_them() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    let lines = input();
    let (alert_ids, action_ids, dead) = replayed(&lines);
    let incident_records = replayed_incidents(&lines);
    assert!(!alert_ids.is_empty() && !action_ids.is_empty() && dead > 0, "the input exercises every output");
    assert!(!incident_records.is_empty());
    kafka::produce(&brokers, "audit", &keyed(&lines));

    let running = Running::start(fixture_engine(), kafka::config(&brokers, &["audit"], "g1"));
    let alerts = kafka::read_until(&brokers, "nhid.alerts", WAIT, |g| g.len() >= alert_ids.len());
    let actions = kafka::read_until(&brokers, "nhid.actions", WAIT, |g| g.len() >= action_ids.len());
    let incidents = kafka::read_until(&brokers, "nhid.incidents", WAIT, |g| g.len() >= incident_records.len());
    let dead_letters = kafka::read_until(&brokers, "nhid.dead-letter", WAIT, |g| g.len() >= dead);
    let report = running.stop().unwrap();

    let mut got: Vec<String> = alerts.iter().map(|m| m.json()["alert_id"].as_str().unwrap().to_string()).collect();
    let mut want = alert_ids.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want, "the same alert ids as replay");
    for m in &alerts {
        let v = m.json();
        common::assert_valid("alert", &v);
        assert_eq!(m.key.as_deref(), v["principal"]["id"].as_str(), "alerts are keyed by principal id");
    }
    let mut got: Vec<String> = actions.iter().map(|m| m.json()["action_id"].as_str().unwrap().to_string()).collect();
    let mut want = action_ids.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want, "the same action ids as replay");
    for m in &actions {
        common::assert_valid("action", &m.json());
        assert_eq!(m.key.as_deref(), m.json()["target"]["principal_id"].as_str());
    }
    // The incident records of replay, each keyed by its incident (a compacted topic keeps
    // each incident's latest).
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        sorted(incidents.iter().map(|m| m.json().to_string()).collect()),
        sorted(incident_records.iter().map(|v| v.to_string()).collect()),
        "the same incident records as replay"
    );
    for m in &incidents {
        let v = m.json();
        common::assert_valid("incident", &v);
        assert_eq!(m.key.as_deref(), v["incident_id"].as_str(), "incidents are keyed by incident id");
    }
    assert!(alerts.iter().all(|m| m.json()["incident_id"].is_string()), "every alert names its incident");
    assert_eq!(dead_letters.len(), dead);
    for m in &dead_letters {
        let offset: usize = m.header("nhid-source-offset").unwrap().parse().unwrap();
        assert_eq!(m.payload, lines[offset], "a dead letter carries the original bytes");
        assert_eq!(m.header("nhid-source-topic"), Some("audit"));
        assert_eq!(m.header("nhid-source-partition"), Some("0"));
        assert!(m.header("nhid-reason").is_some_and(|r| !r.is_empty()));
    }
    assert_eq!(report.stats.messages, lines.len() as u64);
    assert_eq!(report.unacknowledged, 0);
    assert_eq!(report.committed.get(&("audit".to_string(), 0)), Some(&(lines.len() as i64)));
    assert_eq!(kafka::committed(&brokers, "g1", "audit", 1), vec![Some(lines.len() as i64)]);
    assert!(report.latency.len() as usize >= alert_ids.len(), "every acknowledged alert has a latency");
}

#[test]
fn with_alerts_format_ocsf_the_alerts_topic_carries_detection_findings_of_replay_s_alerts() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    let lines = input();
    let (alert_ids, _, _) = replayed(&lines);
    kafka::produce(&brokers, "audit", &keyed(&lines));
    let mut config = kafka::config(&brokers, &["audit"], "g-ocsf");
    config.alerts_format = AlertsFormat::Ocsf;
    let running = Running::start(fixture_engine(), config);
    let findings = kafka::read_until(&brokers, "nhid.alerts", WAIT, |g| g.len() >= alert_ids.len());
    running.stop().unwrap();
    let mut got: Vec<String> =
        findings.iter().map(|m| m.json()["finding_info"]["uid"].as_str().unwrap().to_string()).collect();
    let mut want = alert_ids;
    got.sort();
    want.sort();
    assert_eq!(got, want, "one finding per alert of replay, by id");
    for m in &findings {
        let v = m.json();
        assert_eq!((v["class_uid"].as_u64(), v["type_uid"].as_u64()), (Some(2004), Some(200401)));
        assert_eq!(m.key.as_deref(), v["evidences"][0]["actor"]["user"]["uid"].as_str(), "keyed by principal id");
    }
}

#[test]
fn an_unacknowledged_alert_holds_the_commit_back_until_the_broker_takes_it() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    let lines = input();
    kafka::produce(&brokers, "audit", &keyed(&lines));
    // Which message raises the first alert: its offset must not be committed before the
    // alert is acknowledged.
    let first_alert = first_alerting(&fixture_engine(), &lines) as i64;

    // A retriable error: the producer keeps retrying, nothing is lost, nothing is acknowledged.
    cluster.topic_error("nhid.alerts", RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION).unwrap();
    let running = Running::start(fixture_engine(), kafka::config(&brokers, &["audit"], "g2"));
    // Every message is processed (the dead letters of the last ones arrive) ...
    let dead = replayed(&lines).2;
    kafka::read_until(&brokers, "nhid.dead-letter", WAIT, |g| g.len() >= dead);
    // ... and committed up to, never past, the message whose alert is in flight. Commits run
    // every 100 ms; the reads above took longer than several intervals.
    std::thread::sleep(Duration::from_millis(500));
    let held = kafka::committed(&brokers, "g2", "audit", 1)[0];
    assert!(held.is_none_or(|o| o <= first_alert), "committed {held:?} past the unacknowledged alert at {first_alert}");

    cluster.topic_error("nhid.alerts", RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR).unwrap();
    let alerts = kafka::read_until(&brokers, "nhid.alerts", WAIT, |g| !g.is_empty());
    assert!(!alerts.is_empty(), "the alert is delivered once the broker accepts it");
    let report = running.stop().unwrap();
    assert_eq!(report.unacknowledged, 0);
    assert_eq!(kafka::committed(&brokers, "g2", "audit", 1), vec![Some(lines.len() as i64)]);
}

/// The first message of `lines` whose processing by `engine` raises an alert.
fn first_alerting(engine: &Engine, lines: &[Vec<u8>]) -> usize {
    let mut out = Outputs::default();
    lines
        .iter()
        .position(|l| {
            engine.process(l, Origin { source: "audit", partition: 0, offset: 0 }, None, &mut out);
            !out.alerts.is_empty()
        })
        .unwrap()
}

#[test]
fn a_restart_restores_state_from_the_changelog_and_sends_nothing_twice() {
    let second = restart("g3", Changelog::Kept);
    assert_eq!(second.rebuilt, 0, "nothing committed is read again");
    assert!(second.restored >= 1, "the identities come back from the changelog");
}

#[test]
fn without_a_changelog_a_restart_rebuilds_state_from_the_log_and_sends_nothing_twice() {
    restart("g3-no-changelog", Changelog::None);
}

/// A record of another snapshot format (an nhid that changed it wrote it, say) is never
/// read as this one's: the partition's state is rebuilt from the log instead, and the
/// outputs are still those of an uninterrupted run.
#[test]
fn a_changelog_record_of_another_format_makes_the_restart_rebuild_instead() {
    let second = restart("g3-other-format", Changelog::OtherFormat);
    assert!(second.rebuilt > 0, "rebuilt by re-reading");
}

/// What the changelog holds at the restart.
#[derive(PartialEq)]
enum Changelog {
    Kept,
    /// None configured.
    None,
    /// A record of another snapshot format beside the first run's.
    OtherFormat,
}

/// A run stopped before the attack and a second one after it, in group `group`, with a
/// changelog or rebuilding; the second's report. Either way, the successor knows the
/// identity's baseline, and the outputs are those of an uninterrupted run, once each.
fn restart(group: &str, changelog: Changelog) -> nhid_kafka::Report {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    let cfg = || {
        let mut cfg = kafka::config(&brokers, &["audit"], group);
        if changelog == Changelog::None {
            cfg.changelog_topic = String::new();
        }
        cfg
    };
    let lines = input();
    let (alert_ids, action_ids, dead) = replayed(&lines);
    // Stop just before the attack: the successor must still know the identity's baseline
    // (learned over the first part) to see it.
    let split = first_alerting(&fixture_engine(), &lines);
    kafka::produce(&brokers, "audit", &keyed(&lines[..split]));
    let running = Running::start(fixture_engine(), cfg());
    kafka::wait_committed(
        &brokers,
        group,
        ("audit", 1),
        WAIT,
        |c| c[0] == Some(split as i64),
        || "the first part was not committed".into(),
    );
    let first = running.stop().unwrap();
    assert_eq!(first.stats.messages, split as u64);
    assert_eq!(first.stats.alerts.values().sum::<u64>(), 0);

    if changelog == Changelog::OtherFormat {
        // In the audit partition's changelog partition (0), keyed as records are (8 bytes).
        let record = [nhid_engine::state::snapshot::VERSION + 1, 0, 0, 0, 0, 0, 1, 2, 3];
        kafka::produce_to(&brokers, "nhid.changelog", 0, "nhid-bad", &record);
    }
    kafka::produce(&brokers, "audit", &keyed(&lines[split..]));
    let running = Running::start(fixture_engine(), cfg());
    let dead_letters = kafka::read_until(&brokers, "nhid.dead-letter", WAIT, |g| g.len() >= dead);
    let second = running.stop().unwrap();
    if changelog != Changelog::Kept {
        assert_eq!(second.rebuilt, split as u64, "the committed part is re-read for state only");
    }
    assert_eq!(dead_letters.len(), dead);

    let all = |topic, field: &str| -> Vec<String> {
        let mut ids: Vec<String> = kafka::read_until(&brokers, topic, Duration::from_secs(3), |_| false)
            .iter()
            .map(|m| m.json()[field].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(all("nhid.alerts", "alert_id"), sorted(alert_ids), "the alerts of an uninterrupted run, once each");
    assert_eq!(all("nhid.actions", "action_id"), sorted(action_ids));
    assert_eq!(kafka::committed(&brokers, group, "audit", 1), vec![Some(lines.len() as i64)]);
    second
}

#[test]
fn without_rebuild_a_restart_starts_at_the_committed_offset() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    let lines = input();
    let dead = replayed(&lines).2;
    kafka::produce(&brokers, "audit", &keyed(&lines));
    let cfg = || nhid_kafka::KafkaConfig { rebuild_secs: 0, ..kafka::config(&brokers, &["audit"], "g4") };
    let running = Running::start(fixture_engine(), cfg());
    kafka::read_until(&brokers, "nhid.dead-letter", WAIT, |g| g.len() >= dead);
    running.stop().unwrap();

    kafka::produce(&brokers, "audit", &[(None, b"not json".to_vec())]);
    let running = Running::start(fixture_engine(), cfg());
    kafka::read_until(&brokers, "nhid.dead-letter", WAIT, |g| g.len() > dead);
    let second = running.stop().unwrap();
    assert_eq!(second.stats.messages, 1, "committed input is not read again");
    assert_eq!(second.rebuilt, 0);
    assert_eq!(kafka::committed(&brokers, "g4", "audit", 1), vec![Some(lines.len() as i64 + 1)]);
}

fn identities(engine: &Engine) -> BTreeSet<String> {
    let mut ids = std::collections::BTreeSet::new();
    engine.store().for_each(|id, _| {
        ids.insert(id.to_string());
    });
    ids
}

/// Two instances in one group on four partitions: when the second joins, the first drains
/// and commits what it gives up and releases those identities; each then holds exactly the
/// identities of its own partitions (restored from the changelog) and nothing is sent twice.
#[test]
fn a_rebalance_moves_identity_state_with_partitions_and_sends_nothing_twice() {
    rebalance_moves_identity_state(None);
}

/// The same with the cooperative protocol, where the first instance gives up only the
/// partitions that move (`incremental_unassign`) and its workers go on reading the others
/// from their queues meanwhile.
#[test]
fn a_cooperative_rebalance_moves_identity_state_with_partitions_and_sends_nothing_twice() {
    rebalance_moves_identity_state(Some("cooperative-sticky"));
}

fn rebalance_moves_identity_state(strategy: Option<&str>) {
    use std::sync::Arc;
    let cluster = MockCluster::new(1).unwrap();
    for (topic, partitions) in [
        ("audit", 4),
        ("nhid.alerts", 1),
        ("nhid.actions", 1),
        ("nhid.incidents", 1),
        ("nhid.dead-letter", 1),
        ("nhid.changelog", 8),
    ] {
        cluster.create_topic(topic, partitions, 1).unwrap();
    }
    let brokers = cluster.bootstrap_servers();
    // The first minutes of a simulated population, keyed by principal (the mock cluster keeps
    // 5 MB per partition), with a poison message per principal among them.
    let mut bytes = Vec::new();
    let sim = nhid_sim::SimConfig { seed: 3, principals: 20, days: 1, ..Default::default() };
    nhid_sim::run(&sim, &mut bytes).unwrap();
    let mut messages = Vec::new();
    let mut poisoned = std::collections::BTreeSet::new();
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()).take(8_000) {
        let v: serde_json::Value = serde_json::from_slice(line).unwrap();
        let key = v["principal"]["id"].as_str().unwrap().to_string();
        if poisoned.insert(key.clone()) {
            messages.push((Some(key.clone()), b"{\"not\": \"an event\"".to_vec()));
        }
        messages.push((Some(key), line.to_vec()));
    }
    kafka::produce(&brokers, "audit", &messages);
    let all: BTreeSet<String> = messages.iter().filter_map(|(k, _)| k.clone()).collect();
    let engine = || Arc::new(Config::default().engine().unwrap());
    let cfg = || {
        let mut cfg = kafka::config(&brokers, &["audit"], "rebalance");
        if let Some(strategy) = strategy {
            cfg.properties.insert("partition.assignment.strategy".into(), strategy.into());
        }
        cfg
    };

    let (a_engine, b_engine) = (engine(), engine());
    let a = Running::start_shared(a_engine.clone(), cfg());
    kafka::read_until(&brokers, "nhid.dead-letter", WAIT, |g| g.len() >= poisoned.len());
    let deadline = std::time::Instant::now() + WAIT;
    while identities(&a_engine) != all {
        assert!(std::time::Instant::now() < deadline, "the first instance never saw every identity");
        std::thread::sleep(Duration::from_millis(50));
    }

    let b = Running::start_shared(b_engine.clone(), cfg());
    loop {
        let (ia, ib) = (identities(&a_engine), identities(&b_engine));
        if !ib.is_empty()
            && !ia.is_empty()
            && ia.is_disjoint(&ib)
            && ia.union(&ib).cloned().collect::<BTreeSet<_>>() == all
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "state did not settle: a {} b {} of {}",
            ia.len(),
            ib.len(),
            all.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (ra, rb) = (a.stop().unwrap(), b.stop().unwrap());
    assert!(rb.restored > 0, "the new owner restored its identities from the changelog");
    assert_eq!(rb.rebuilt, 0, "and re-read nothing for them");
    assert_eq!(ra.unacknowledged + rb.unacknowledged, 0);
    let dead = kafka::read_until(&brokers, "nhid.dead-letter", Duration::from_secs(2), |_| false);
    assert_eq!(dead.len(), poisoned.len(), "no dead letter sent twice across the rebalance");
}

/// Lane topics: every decoded event is republished, normalized, to its principal type's
/// lane (`machine` for every machine type, `human`), keyed by principal id.
#[test]
fn normalized_events_are_split_into_lane_topics() {
    let cluster = cluster();
    for topic in ["audit.machine", "audit.human"] {
        cluster.create_topic(topic, 1, 1).unwrap();
    }
    let brokers = cluster.bootstrap_servers();
    let lines = input();
    let lanes: std::collections::BTreeMap<String, String> =
        [("machine".into(), "audit.machine".into()), ("human".into(), "audit.human".into())].into();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cloudtrail_leaked_access_key/config.toml");
    let mut config = Config::load(Some(&path)).unwrap();
    config.kafka.lanes = lanes.clone();
    let engine = config.engine().unwrap();
    // What the engine says it saw, by type, over the same input.
    let mut out = Outputs::default();
    for l in &lines {
        engine.process(l, Origin { source: "audit", partition: 0, offset: 0 }, None, &mut out);
    }
    let by_type = out.stats.events_by_type;
    let human = by_type[nhid_model::event::PrincipalType::Human.index()] as usize;
    let machine: usize = nhid_model::event::PrincipalType::ALL
        .iter()
        .filter(|t| t.is_machine())
        .map(|t| by_type[t.index()] as usize)
        .sum();
    assert!(machine > 0);

    kafka::produce(&brokers, "audit", &keyed(&lines));
    let running = Running::start(
        config.engine().unwrap(),
        nhid_kafka::KafkaConfig { lanes, ..kafka::config(&brokers, &["audit"], "lanes") },
    );
    let machines = kafka::read_until(&brokers, "audit.machine", WAIT, |g| g.len() >= machine);
    let humans = kafka::read_until(&brokers, "audit.human", Duration::from_secs(3), |g| g.len() >= human);
    running.stop().unwrap();
    assert_eq!((machines.len(), humans.len()), (machine, human));
    for (messages, is_human) in [(&machines, false), (&humans, true)] {
        for m in messages.iter() {
            let v = m.json();
            common::assert_valid("audit-event", &v);
            let kind = nhid_model::event::PrincipalType::parse(v["principal"]["type"].as_str().unwrap()).unwrap();
            assert_eq!(kind == nhid_model::event::PrincipalType::Human, is_human);
            assert!(is_human || kind.is_machine());
            assert_eq!(m.key.as_deref(), v["principal"]["id"].as_str());
        }
    }
}

/// The loop closed over Kafka: a revocation reported on the lifecycle topic, then a use of the
/// revoked key on the audit topic, raises `expired_credential` on the alerts topic.
#[test]
fn a_credential_revoked_on_the_lifecycle_topic_and_used_again_is_alerted() {
    let cluster = cluster();
    cluster.create_topic("nhid.lifecycle", 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let revoked = br#"{"id":"sm-1","time":"2026-11-23T10:00:00Z","type":"credential_revoked","principal_id":"svc-export","credential_id":"AKIAREVOKEDEXAMPLE1"}"#;
    kafka::produce(&brokers, "nhid.lifecycle", &[(Some("svc-export".into()), revoked.to_vec())]);
    let cfg = nhid_kafka::KafkaConfig {
        lifecycle_topic: Some("nhid.lifecycle".into()),
        ..kafka::config(&brokers, &["audit"], "loop")
    };
    let running = Running::start(Config::default().engine().unwrap(), cfg);
    // The revocation is applied before the use is produced: the topics are read independently.
    kafka::wait_committed(
        &brokers,
        "loop",
        ("nhid.lifecycle", 1),
        WAIT,
        |c| c[0] == Some(1),
        || "the lifecycle event was not consumed".into(),
    );
    let used = br#"{"id":"e1","time":"2026-11-23T10:30:00Z","principal":{"id":"svc-export","type":"service_account"},"credential":{"id":"AKIAREVOKEDEXAMPLE1","kind":"static_key"},"action":"s3:GetObject","service":"s3","outcome":"success"}"#;
    kafka::produce(&brokers, "audit", &[(Some("svc-export".into()), used.to_vec())]);
    let alerts = kafka::read_until(&brokers, "nhid.alerts", WAIT, |g| !g.is_empty());
    let report = running.stop().unwrap();
    let alert = alerts.first().expect("an alert").json();
    assert_eq!(alert["kind"], "expired_credential");
    assert_eq!(alert["credential_id"], "AKIAREVOKEDEXAMPLE1");
    assert_eq!(report.stats.lifecycle_events.iter().sum::<u64>(), 1);
}

/// An analyst's false positive on the verdicts topic: the alert's repeat in a later window
/// is accepted (no alert), as `nhid replay --verdicts` accepts it; the verdict is counted once.
#[test]
fn a_false_positive_on_the_verdicts_topic_accepts_the_alert_s_repeat() {
    let cluster = cluster();
    for topic in ["nhid.lifecycle", "nhid.verdicts"] {
        cluster.create_topic(topic, 1, 1).unwrap();
    }
    let brokers = cluster.bootstrap_servers();
    let revoked = |n: u32| {
        format!(
            r#"{{"id":"sm-{n}","time":"2026-11-23T10:00:00Z","type":"credential_revoked","principal_id":"svc-{n}","credential_id":"AKIAREVOKEDEXAMPLE{n}"}}"#
        )
    };
    let used = |n: u32, at: &str| {
        format!(
            r#"{{"id":"e{n}-{at}","time":"2026-11-23T{at}Z","principal":{{"id":"svc-{n}","type":"service_account"}},"credential":{{"id":"AKIAREVOKEDEXAMPLE{n}","kind":"static_key"}},"action":"s3:GetObject","service":"s3","outcome":"success"}}"#
        )
    };
    // Without a verdict, the revoked key used again two hours later is alerted again.
    let engine = Config::default().engine().unwrap();
    let mut out = Outputs::default();
    let origin = Origin { source: "x", partition: 0, offset: 0 };
    engine.control(nhid_engine::ControlKind::Lifecycle, revoked(1).as_bytes(), origin, &mut out);
    for at in ["10:30:00", "12:30:00"] {
        engine.process(used(1, at).as_bytes(), origin, None, &mut out);
    }
    assert_eq!(out.alerts.len(), 2, "the repeat is an alert of its own: {:?}", out.alerts);

    for n in [1, 2] {
        kafka::produce(&brokers, "nhid.lifecycle", &[(Some(format!("svc-{n}")), revoked(n).into_bytes())]);
    }
    let cfg = nhid_kafka::KafkaConfig {
        lifecycle_topic: Some("nhid.lifecycle".into()),
        verdicts_topic: Some("nhid.verdicts".into()),
        ..kafka::config(&brokers, &["audit"], "verdicts")
    };
    let running = Running::start(Config::default().engine().unwrap(), cfg);
    kafka::produce(&brokers, "audit", &[(Some("svc-1".into()), used(1, "10:30:00").into_bytes())]);
    let first = kafka::read_until(&brokers, "nhid.alerts", WAIT, |g| !g.is_empty());
    let alert_id = first[0].json()["alert_id"].as_str().unwrap().to_string();
    let verdict = serde_json::json!({
        "time": "2026-11-23T10:31:00Z", "principal_id": "svc-1", "alert_id": alert_id,
        "verdict": "false_positive", "by": "ana@soc.example.com",
    });
    kafka::produce(&brokers, "nhid.verdicts", &[(Some("svc-1".into()), verdict.to_string().into_bytes())]);
    kafka::wait_committed(
        &brokers,
        "verdicts",
        ("nhid.verdicts", 1),
        WAIT,
        |c| c[0] == Some(1),
        || "the verdict was not consumed".into(),
    );
    // The repeat, then another identity's use as a marker that what came before is done.
    kafka::produce(&brokers, "audit", &[(Some("svc-1".into()), used(1, "12:30:00").into_bytes())]);
    kafka::produce(&brokers, "audit", &[(Some("svc-2".into()), used(2, "12:31:00").into_bytes())]);
    let alerts =
        kafka::read_until(&brokers, "nhid.alerts", WAIT, |g| g.iter().any(|m| m.json()["principal"]["id"] == "svc-2"));
    let report = running.stop().unwrap();
    let about_1: Vec<String> = alerts
        .iter()
        .filter(|m| m.json()["principal"]["id"] == "svc-1")
        .map(|m| m.json()["alert_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(about_1, [alert_id], "the repeat was accepted");
    let false_positive = nhid_decode::control::VerdictKind::FalsePositive.index();
    assert_eq!(report.stats.verdicts[false_positive], 1, "counted once, though every instance reads the topic");
    assert_eq!(report.stats.accepted, 1);
}

/// Two instances in one group: one is assigned the lifecycle topic's only partition, and
/// each one of the audit topic's two. Credentials revoked there, of principals on both audit
/// partitions, are each alerted on when used: every instance reads every control partition's
/// facts, not only those it is assigned (a revocation is keyed by whoever published it, the
/// key's events by their principal).
#[test]
fn a_revocation_reaches_every_instance_whichever_holds_the_lifecycle_partition() {
    let cluster = cluster();
    cluster.create_topic("nhid.lifecycle", 1, 1).unwrap();
    cluster.create_topic("audit.two", 2, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let key = |n: usize| format!("AKIAREVOKEDEXAMPLE{n}");
    let principal = |n: usize| format!("svc-export-{n}");
    for n in 0..2 {
        let revoked = format!(
            r#"{{"id":"sm-{n}","time":"2026-11-23T10:00:00Z","type":"credential_revoked","principal_id":"{}","credential_id":"{}"}}"#,
            principal(n),
            key(n)
        );
        kafka::produce(&brokers, "nhid.lifecycle", &[(Some("secrets-manager".into()), revoked.into_bytes())]);
    }
    let cfg = nhid_kafka::KafkaConfig {
        lifecycle_topic: Some("nhid.lifecycle".into()),
        ..kafka::config(&brokers, &["audit.two"], "facts")
    };
    let instances = [0, 1].map(|_| Running::start(Config::default().engine().unwrap(), cfg.clone()));
    let deadline = std::time::Instant::now() + WAIT;
    while !instances.iter().all(|i| i.assigned() >= 1) || instances.iter().map(Running::assigned).sum::<usize>() != 3 {
        assert!(std::time::Instant::now() < deadline, "the two instances never shared the partitions");
        std::thread::sleep(Duration::from_millis(20));
    }
    for n in 0..2 {
        let used = format!(
            r#"{{"id":"e{n}","time":"2026-11-23T10:30:00Z","principal":{{"id":"{}","type":"service_account"}},"credential":{{"id":"{}","kind":"static_key"}},"action":"s3:GetObject","service":"s3","outcome":"success"}}"#,
            principal(n),
            key(n)
        );
        kafka::produce_to(&brokers, "audit.two", n as i32, &principal(n), used.as_bytes());
    }
    let expired = |g: &[kafka::Got]| g.iter().filter(|m| m.json()["kind"] == "expired_credential").count();
    let alerts = kafka::read_until(&brokers, "nhid.alerts", WAIT, |g| expired(g) >= 2);
    for i in instances {
        i.stop().unwrap();
    }
    let mut revoked: Vec<String> = alerts
        .iter()
        .map(|m| m.json())
        .filter(|a| a["kind"] == "expired_credential")
        .map(|a| a["credential_id"].as_str().unwrap().to_string())
        .collect();
    revoked.sort();
    assert_eq!(revoked, [key(0), key(1)], "each revoked key's use alerted, whichever instance judged it");
}

fn sample_sum(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name) && l.contains(labels))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

/// `/metrics` after a known input counts exactly what was processed; `/readyz` says ready
/// once partitions are assigned; `/healthz` answers.
#[test]
fn the_metrics_endpoint_counts_what_was_processed() {
    use std::sync::Arc;
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    let lines = input();
    let (alert_ids, action_ids, dead) = replayed(&lines);
    let engine = Arc::new(fixture_engine());
    let metrics = Arc::new(nhid_engine::metrics::Metrics::new());
    let health = Arc::new(nhid_engine::metrics::Health::default());
    let http = nhid_http::HttpConfig { listen: "127.0.0.1:0".parse().unwrap(), ..Default::default() };
    let addr = nhid_http::serve(&http, engine.clone(), metrics.clone(), health.clone()).unwrap();
    assert_eq!(get(addr, "/healthz").0, 200);
    assert_eq!(get(addr, "/readyz"), (503, "not ready: no partitions assigned\n".into()));

    kafka::produce(&brokers, "audit", &keyed(&lines));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let runtime = {
        let (engine, metrics, health, stop) = (engine.clone(), metrics.clone(), health.clone(), stop.clone());
        let cfg = kafka::config(&brokers, &["audit"], "metrics");
        std::thread::spawn(move || nhid_kafka::run_observed(engine, &cfg, stop, metrics, health))
    };
    kafka::read_until(&brokers, "nhid.dead-letter", WAIT, |g| g.len() >= dead);
    kafka::read_until(&brokers, "nhid.alerts", WAIT, |g| g.len() >= alert_ids.len());
    assert_eq!(get(addr, "/readyz").0, 200);
    // Counters move per worker batch: wait for the last one.
    let deadline = std::time::Instant::now() + WAIT;
    let text = loop {
        let (status, text) = get(addr, "/metrics");
        assert_eq!(status, 200);
        if sample_sum(&text, "nhid_messages_received_total", "topic=\"audit\"") as usize == lines.len()
            && sample_sum(&text, "nhid_dead_letters_total", "") as usize == dead
        {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "metrics never caught up:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let report = runtime.join().unwrap().unwrap();
    assert_eq!(sample_sum(&text, "nhid_alerts_total", "") as usize, alert_ids.len());
    assert_eq!(sample_sum(&text, "nhid_actions_total", "") as usize, action_ids.len());
    assert_eq!(sample_sum(&text, "nhid_events_total", "") as u64, report.stats.events);
    assert_eq!(sample_sum(&text, "nhid_events_received_total", "topic=\"audit\"") as u64, report.stats.events);
    assert_eq!(sample_sum(&text, "nhid_processing_seconds_count", "") as usize, lines.len());
    // Produced without keys: every message that decoded an event is counted as not keyed by
    // its principal.
    let (replay, mut out) = (fixture_engine(), Outputs::default());
    let decoding = lines
        .iter()
        .enumerate()
        .filter(|(i, l)| {
            let origin = Origin { source: "audit", partition: 0, offset: *i as i64 };
            replay.process(l, origin, None, &mut out).events > 0
        })
        .count();
    let not_keyed = sample_sum(&text, "nhid_messages_not_keyed_by_principal_total", "topic=\"audit\"");
    assert_eq!(not_keyed as usize, decoding);
    assert!(sample_sum(&text, "nhid_identities", "") >= 1.0);
    assert_eq!(sample_sum(&text, "nhid_build_info", "version=\"") as usize, 1);
    assert!(!text.contains("arn:aws"), "no principal id in any label");
}

/// Simulated traffic (seed 7, 20 principals, 2 days) of the principals named, and the
/// alert and action ids a replay of it gives.
fn simulated(principals: &[&str]) -> (Vec<Vec<u8>>, BTreeSet<String>, BTreeSet<String>) {
    let mut bytes = Vec::new();
    let sim = nhid_sim::SimConfig { seed: 7, principals: 20, days: 2, ..nhid_sim::SimConfig::default() };
    nhid_sim::run(&sim, &mut bytes).unwrap();
    let lines: Vec<Vec<u8>> = bytes
        .split(|&b| b == b'\n')
        .filter(|l| {
            let v: serde_json::Value = serde_json::from_slice(l).unwrap_or_default();
            v["principal"]["id"].as_str().is_some_and(|p| principals.contains(&p))
        })
        .map(<[u8]>::to_vec)
        .collect();
    let engine = Config::default().engine().unwrap();
    let mut out = Outputs::default();
    for (i, l) in lines.iter().enumerate() {
        engine.process(l, Origin { source: "audit", partition: 0, offset: i as i64 }, None, &mut out);
    }
    let alerts = out.alerts.iter().map(|a| a.alert_id.clone()).collect();
    (lines, alerts, out.actions.iter().map(|a| a.action_id.clone()).collect())
}

/// A cluster with an audit topic of 8 partitions to re-key into 4 of `nhid.events`.
fn unkeyed_cluster() -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let cluster = MockCluster::new(1).unwrap();
    let topics = [
        ("audit", 8),
        ("nhid.events", 4),
        ("nhid.alerts", 2),
        ("nhid.actions", 2),
        ("nhid.incidents", 2),
        ("nhid.dead-letter", 1),
        ("nhid.changelog", 8),
    ];
    for (topic, partitions) in topics {
        cluster.create_topic(topic, partitions, 1).unwrap();
    }
    cluster
}

/// Instances of group `group` re-keying `audit`.
fn rekeying(brokers: &str, group: &str) -> Config {
    let mut config = Config::default();
    config.kafka = kafka::config(brokers, &["audit"], group);
    config.kafka.rekey_topics = vec!["audit".into()];
    config
}

/// Waits until group `group` has re-keyed all `n` audit messages and detected on every
/// event of them and the `written` ones written to `nhid.events` by the test: committed past its last event, a partition of `nhid.events` is done
/// (nothing is committed past a held event, nor past the changelog's last mark). `logs`
/// are shown if it never is.
fn wait_detected(brokers: &str, group: &str, n: usize, written: usize, logs: &dyn Fn() -> String) {
    let n = n as i64;
    let sum = |offsets: &[Option<i64>]| offsets.iter().map(|o| o.unwrap_or(0)).sum::<i64>();
    let rekey = format!("{group}.rekey");
    let why =
        || format!("not everything was re-keyed: {:?}\n{}", kafka::committed(brokers, &rekey, "audit", 8), logs());
    kafka::wait_committed(brokers, &rekey, ("audit", 8), WAIT * 3, |o| sum(o) == n, why);
    let events = |got: &[kafka::Got]| got.iter().filter(|m| m.header("nhid-watermarks").is_none()).count() as i64;
    let all = n + written as i64;
    let written = kafka::read_until(brokers, "nhid.events", WAIT, |got| events(got) == all);
    assert_eq!(events(&written), all, "every event re-keyed");
    let mut ends = vec![Some(0); 4];
    for m in &written {
        ends[m.partition as usize] = ends[m.partition as usize].max(Some(m.offset + 1));
    }
    let why = || {
        let committed = kafka::committed(brokers, group, "nhid.events", 4);
        format!("not everything was detected: {committed:?} of {ends:?}\n{}", logs())
    };
    let done = |o: &[Option<i64>]| o.iter().zip(&ends).all(|(o, end)| o >= end);
    kafka::wait_committed(brokers, group, ("nhid.events", 4), WAIT * 3, done, why);
}

/// Every alert on the alerts topic, by id: how many times each came.
fn alert_counts(brokers: &str) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for m in kafka::read_until(brokers, "nhid.alerts", Duration::from_secs(3), |_| false) {
        *counts.entry(m.json()["alert_id"].as_str().unwrap().to_string()).or_default() += 1;
    }
    counts
}

/// Three instances share an audit topic not keyed by principal: each re-keys the partitions
/// it was given to `nhid.events`, and detects on the partitions of it it was given, merging
/// there the events of every source partition, whichever instance re-keyed them, by event
/// time. Together they raise exactly the alert ids of a replay. (The mock cluster,
/// because Tansu 0.6 does not complete a rebalance of several members.)
#[test]
fn three_instances_re_keying_an_unkeyed_topic_raise_exactly_the_alerts_of_replay() {
    let cluster = unkeyed_cluster();
    let brokers = cluster.bootstrap_servers();
    let (lines, alert_ids, _) = simulated(&kafka::SMALL_POPULATION);
    assert!(alert_ids.len() >= 10, "the input raises alerts: {}", alert_ids.len());
    kafka::produce_round_robin(&brokers, "audit", 8, &lines);
    let config = rekeying(&brokers, "three");
    let instances: Vec<Running> =
        (0..3).map(|_| Running::start(config.engine().unwrap(), config.kafka.clone())).collect();
    wait_detected(&brokers, "three", lines.len(), 0, &String::new);
    let reports: Vec<_> = instances.into_iter().map(|i| i.stop().unwrap()).collect();
    let counts = alert_counts(&brokers);
    assert_eq!(counts.keys().cloned().collect::<BTreeSet<_>>(), alert_ids, "a replay's alerts");
    // Not each once: a drained partition's last commit can be refused while the group
    // rebalances (the mock cluster answers REBALANCE_IN_PROGRESS), and its new owner then
    // processes those events again (at least once, with the same ids). Each once after a
    // clean handover is `a_restart_amid_held_events_applies_each_event_once`.
    assert!(
        reports.iter().all(|r| r.stats.events > 0),
        "every instance did its share: {:?}",
        reports.iter().map(|r| r.stats.events).collect::<Vec<_>>()
    );
}

/// The latest changelog mark of each partition of `nhid.events`: its offset, and how far
/// the events of the source `audit.late:0` are in its state.
fn events_marks(brokers: &str) -> std::collections::BTreeMap<i32, (i64, Option<(i64, u32)>)> {
    use nhid_engine::state::snapshot::{self, Record};
    let homes: Vec<(u32, i32)> =
        (0..4).map(|p| (Origin { source: "nhid.events", partition: p, offset: 0 }.home(), p)).collect();
    let mut marks = std::collections::BTreeMap::new();
    for m in kafka::read_until(brokers, "nhid.changelog", Duration::from_secs(2), |_| false) {
        if let Ok((home, Record::Through { offset, sources })) = snapshot::decode(&m.payload)
            && let Some(&(_, p)) = homes.iter().find(|(h, _)| *h == home)
        {
            let late =
                sources.iter().find(|s| s.topic == "audit.late" && s.partition == 0).map(|s| (s.offset, s.index));
            marks.insert(p, (offset, late));
        }
    }
    marks
}

/// Where an event of `nhid.events` came from: its source (`topic:partition`) and its place
/// there.
fn source_of(m: &kafka::Got) -> Option<(&str, (i64, u32))> {
    let source = m.header("nhid-source")?;
    let (source, at) = source.rsplit_once(':').and_then(|(rest, index)| {
        let (source, offset) = rest.rsplit_once(':')?;
        Some((source, (offset.parse().ok()?, index.parse().ok()?)))
    })?;
    Some((source, at))
}

/// Stopped while detection holds events: a source lagging in event time (its re-keying
/// instance stalled, never saying it is idle) holds the others' later events back, and its
/// own, coming after them in the events topic, are applied first. The state then holds
/// events after the first held one; the successor restores it with how far each source's
/// events are in it, skips those when it reads them again, and so applies every event
/// exactly once: the alerts are a replay's, each once (applying the lagging source's events
/// twice gives others). The lagging source is written by the test, as its re-keying
/// instance would, so that it lags for certain; the others are re-keyed by nhid.
#[test]
fn a_restart_amid_held_events_applies_each_event_once() {
    use std::sync::Arc;
    let cluster = unkeyed_cluster();
    cluster.create_topic("audit.late", 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let (lines, alert_ids, _) = simulated(&kafka::SMALL_POPULATION);
    let split = first_alerting(&Config::default().engine().unwrap(), &lines);
    // The stages in instances of their own, as large deployments run them. Detection waits
    // for both topics' sources; audit.late's is the test's.
    let stage = |stage, max_idle_ms| {
        let mut config = rekeying(&brokers, "held");
        if stage == Stage::Detect {
            config.kafka.topics.push("audit.late".into());
            config.kafka.rekey_topics.push("audit.late".into());
        }
        config.kafka.stage = stage;
        config.kafka.rekey_max_idle_ms = max_idle_ms;
        config
    };
    let config = stage(Stage::Detect, 60_000);
    let rekey = stage(Stage::Rekey, 60_000);
    let rekey = Running::start(rekey.engine().unwrap(), rekey.kafka);
    // One in eight events comes from the lagging source, at its offset there.
    let lagging = |i: usize| i % 8 == 7;
    let others = |range: std::ops::Range<usize>| -> Vec<(i32, &[u8])> {
        range.filter(|&i| !lagging(i)).map(|i| ((i % 8) as i32, lines[i].as_slice())).collect()
    };
    let late = |range: std::ops::Range<usize>| -> Vec<(i64, &[u8])> {
        range.filter(|&i| lagging(i)).map(|i| ((i / 8) as i64, lines[i].as_slice())).collect()
    };
    let rekeyed = |n: usize| {
        let sum = |o: &[Option<i64>]| o.iter().map(|o| o.unwrap_or(0)).sum::<i64>();
        let why = || format!("not re-keyed: {:?}", kafka::committed(&brokers, "held.rekey", "audit", 8));
        kafka::wait_committed(&brokers, "held.rekey", ("audit", 8), WAIT, |o| sum(o) == n as i64, why);
    };

    // The lagging source stops at half the baseline, the others go on: their later events
    // are held.
    let (early, ahead) = (late(0..split / 2), others(0..split));
    kafka::produce_rekeyed(&brokers, "nhid.events", "audit.late:0", &early);
    kafka::produce_partitioned(&brokers, "audit", &ahead);
    let first = Running::start(config.engine().unwrap(), config.kafka.clone());
    rekeyed(ahead.len());
    // Then it sends more: applied at once, after held events in the events topic.
    let more = late(split / 2..split * 3 / 4);
    kafka::produce_rekeyed(&brokers, "nhid.events", "audit.late:0", &more);
    let events = kafka::read_until(&brokers, "nhid.events", WAIT, |g| {
        g.iter().filter(|m| source_of(m).is_some()).count() == early.len() + ahead.len() + more.len()
    });
    let mut last_late = std::collections::BTreeMap::new();
    for m in &events {
        if let Some(("audit.late:0", at)) = source_of(m) {
            let last = last_late.entry(m.partition).or_insert(at);
            *last = (*last).max(at);
        }
    }
    // Written once its events are applied in every partition they went to.
    let applied = || {
        let marks = events_marks(&brokers);
        last_late.iter().all(|(p, last)| marks.get(p).is_some_and(|(_, done)| *done == Some(*last)))
    };
    let deadline = std::time::Instant::now() + WAIT;
    while !applied() {
        assert!(
            std::time::Instant::now() < deadline,
            "audit.late's events not in the changelog: {:?}",
            events_marks(&brokers)
        );
    }
    let first = first.stop().unwrap();
    assert_eq!(first.stats.alerts.values().sum::<u64>(), 0, "stopped before the attacks");
    // What makes this test: events applied past a mark, which a restore must not apply again.
    let marks = events_marks(&brokers);
    let past_mark = events
        .iter()
        .filter(|m| matches!(source_of(m), Some(("audit.late:0", at)) if marks[&m.partition].1.is_some_and(|done| at <= done) && m.offset >= marks[&m.partition].0))
        .count();
    assert!(past_mark > 0, "the lagging source's events were applied after held ones: {marks:?}");

    // The rest: the others' first, then the lagging source's, which then says it is idle.
    // (The other way round, the lagging source's would go first: the others, idle, are not
    // waited for, and their events, coming later, would be out of order.)
    let second = Running::start_shared(Arc::new(config.engine().unwrap()), config.kafka.clone());
    kafka::produce_partitioned(&brokers, "audit", &others(split..lines.len()));
    rekeyed(others(0..lines.len()).len());
    let rest = late(split * 3 / 4..lines.len());
    kafka::produce_rekeyed(&brokers, "nhid.events", "audit.late:0", &rest);
    let time =
        |line: &[u8]| serde_json::from_slice::<serde_json::Value>(line).unwrap()["time"].as_str().map(String::from);
    let last = nhid_model::time::parse_rfc3339(&time(rest.last().unwrap().1).unwrap()).unwrap();
    kafka::produce_idle_mark(&brokers, "nhid.events", 4, ("audit.late", 0), last);
    wait_detected(&brokers, "held", others(0..lines.len()).len(), late(0..lines.len()).len(), &String::new);
    let second = second.stop().unwrap();
    rekey.stop().unwrap();
    assert!(second.restored > 0, "identities restored from the changelog");
    assert_eq!(second.rebuilt, 0, "nothing re-read to rebuild state");

    let counts = alert_counts(&brokers);
    assert_eq!(counts.keys().cloned().collect::<BTreeSet<_>>(), alert_ids, "a replay's alerts");
    assert!(counts.values().all(|&n| n == 1), "each once: {counts:?}");
}

/// One of three instances killed (SIGKILL) mid-stream, input not keyed by principal: the
/// other two take over its partitions of both stages (re-keying reads its sources again
/// from their commits; detection restores its identities from the changelog and reads on
/// from their marks), and together the three raise every alert and action of a replay: no
/// id lost, none other than replay's (one may come twice, with its id, as at-least-once
/// allows). Detection waits for the dead instance's sources, which it never heard were
/// idle, until the group hands them over. Processes, so that the kill is a real one; the
/// mock cluster, because Tansu 0.6 does not complete a rebalance of several members.
#[test]
fn one_of_three_instances_killed_mid_stream_loses_no_alert() {
    let cluster = unkeyed_cluster();
    let brokers = cluster.bootstrap_servers();
    let (lines, alert_ids, action_ids) = simulated(&kafka::SMALL_POPULATION);
    assert!(!action_ids.is_empty(), "the input raises actions");
    kafka::produce_round_robin(&brokers, "audit", 8, &lines);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("nhid.toml");
    // The dead member is noticed after 6 s rather than librdkafka's 45.
    let text = "[kafka]\nrekey_topics = [\"audit\"]\n[kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n";
    std::fs::write(&config, text).unwrap();
    let start = || kafka::Nhid::start(&brokers, "kill", dir.path(), &["--config", config.to_str().unwrap()]);
    let mut instances = vec![start(), start(), start()];
    let logs = |instances: &[kafka::Nhid]| instances.iter().map(kafka::Nhid::logs).collect::<Vec<_>>().join("\n");

    let sum = |offsets: &[Option<i64>]| offsets.iter().map(|o| o.unwrap_or(0)).sum::<i64>();
    // Killed a little before the first alert's event: the attacks come through the handover.
    let before = first_alerting(&Config::default().engine().unwrap(), &lines) as i64 * 9 / 10;
    let why = || format!("re-keying never got that far:\n{}", logs(&instances));
    kafka::wait_committed(&brokers, "kill.rekey", ("audit", 8), WAIT, |o| sum(o) >= before, why);
    instances.remove(0).kill();

    wait_detected(&brokers, "kill", lines.len(), 0, &|| logs(&instances));
    for nhid in instances {
        let (status, _, logs) = nhid.terminate(Duration::from_secs(30));
        assert!(status.success(), "nhid run exited with {status}:\n{logs}");
    }
    let ids = |topic: &str, field: &str| -> BTreeSet<String> {
        let got = kafka::read_until(&brokers, topic, Duration::from_secs(3), |_| false);
        got.iter().map(|m| m.json()[field].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(ids("nhid.alerts", "alert_id"), alert_ids, "the alert ids of a replay, none lost");
    assert_eq!(ids("nhid.actions", "action_id"), action_ids, "the action ids of a replay");
}

/// A canonical event of `principal` at `time` (milliseconds).
fn event_at(id: &str, principal: &str, time: i64) -> Vec<u8> {
    let event = serde_json::json!({
        "id": id,
        "time": nhid_model::time::format_rfc3339(time),
        "principal": {"id": principal, "type": "service_account"},
        "credential": {"kind": "static_key", "id": format!("AKIA{}", principal.to_uppercase())},
        "actor": {},
        "action": "s3:GetObject",
        "service": "s3",
        "resource": "arn:aws:s3:::reports-prod/daily.csv",
        "outcome": "success",
        "source": {"ip": "10.40.1.20", "user_agent": "aws-sdk-go-v2/1.30.3"},
        "source_format": "native",
    });
    serde_json::to_vec(&event).unwrap()
}

/// An event's time is its source's claim. One dated ten minutes ahead of when it reached
/// Kafka (a forged time, or a clock ahead; within the fifteen minutes an event may be ahead
/// and still be taken) is ordered as at its message's timestamp, and counted: ordered by its
/// own time, detection would hold it, and every later event of its principal from its
/// source, until every other source reached that time, ten minutes while another source
/// keeps sending (one that sends is never passed over).
#[test]
fn an_event_dated_ahead_of_its_delivery_does_not_hold_its_source_back() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let cluster = unkeyed_cluster();
    let brokers = cluster.bootstrap_servers();
    let config = rekeying(&brokers, "ahead");
    let nhid = Running::start(config.engine().unwrap(), config.kafka.clone());
    let now = || nhid_model::time::wall_clock();
    // Another source sends an event every 100 ms, dated as it is sent, throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let flowing = {
        let (stop, brokers) = (stop.clone(), brokers.clone());
        std::thread::spawn(move || {
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let event = event_at(&format!("flow-{i}"), "svc-flowing", now());
                kafka::produce_partitioned(&brokers, "audit", &[(1, &event)]);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let forged = event_at("forged", "svc-forged", now() + 10 * 60_000);
    let after = event_at("after", "svc-forged", now());
    kafka::produce_partitioned(&brokers, "audit", &[(0, &forged), (0, &after)]);
    let produced = now();

    let of_source_0 = |got: &[kafka::Got]| -> Vec<kafka::Got> {
        got.iter().filter(|m| source_of(m).is_some_and(|(s, _)| s == "audit:0")).cloned().collect()
    };
    let events = of_source_0(&kafka::read_until(&brokers, "nhid.events", WAIT, |g| of_source_0(g).len() == 2));
    assert_eq!(events.len(), 2, "both re-keyed");
    let ordered_by: i64 = events[0].header("nhid-time").unwrap().parse().unwrap();
    assert!(ordered_by <= produced + 1_000, "ordered as at its delivery, not ten minutes ahead: {ordered_by}");
    assert_eq!(events[0].json()["time"], serde_json::json!(nhid_model::time::format_rfc3339(now_of(&forged))));
    // Detection processes both (and so commits past them) while the other source flows.
    let (p, last) = (events[1].partition as usize, events[1].offset);
    let why = || format!("held back: {:?} of offset {last}", kafka::committed(&brokers, "ahead", "nhid.events", 4));
    kafka::wait_committed(&brokers, "ahead", ("nhid.events", 4), Duration::from_secs(30), |o| o[p] > Some(last), why);
    stop.store(true, Ordering::Relaxed);
    flowing.join().unwrap();
    nhid.stop().unwrap();
}

/// The time an event of [`event_at`] claims.
fn now_of(event: &[u8]) -> i64 {
    let v: serde_json::Value = serde_json::from_slice(event).unwrap();
    nhid_model::time::parse_rfc3339(v["time"].as_str().unwrap()).unwrap()
}
