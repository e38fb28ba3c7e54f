//! `nhid run` (the binary) against a real Kafka-protocol broker: Tansu, started per test by
//! `common::broker`. Without a tansu binary these tests fail and say how to install one,
//! unless `NHID_SKIP_BROKER_TESTS=1` skips them explicitly.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::broker::Broker;
use common::kafka::{self, Got};
use nhid_sim::{SimConfig, run as simulate};

const WAIT: Duration = Duration::from_secs(180);

/// Simulated traffic (seed 7, 20 principals, 2 days, six attacks), keyed by principal id as
/// DESIGN.md asks producers to, and written to a file for `nhid replay`.
struct Input {
    messages: Vec<(Option<String>, Vec<u8>)>,
    alert_ids: BTreeSet<String>,
    action_ids: BTreeSet<String>,
}

fn input(dir: &Path) -> Input {
    input_of(dir, |_| true)
}

/// [`input`] of the principals `only` keeps.
fn input_of(dir: &Path, only: impl Fn(&str) -> bool) -> Input {
    let mut bytes = Vec::new();
    simulate(&SimConfig { seed: 7, principals: 20, days: 2, ..SimConfig::default() }, &mut bytes).unwrap();
    let bytes: Vec<u8> = bytes
        .split_inclusive(|&b| b == b'\n')
        .filter(|l| {
            let v: serde_json::Value = serde_json::from_slice(l).unwrap_or_default();
            v["principal"]["id"].as_str().is_some_and(&only)
        })
        .flatten()
        .copied()
        .collect();
    let file = dir.join("events.jsonl");
    std::fs::write(&file, &bytes).unwrap();
    let messages = bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_slice(l).unwrap();
            (v["principal"]["id"].as_str().map(str::to_owned), l.to_vec())
        })
        .collect();
    let (alert_ids, action_ids) = replay(&file, dir, None);
    assert!(alert_ids.len() >= 6 && !action_ids.is_empty(), "the input raises alerts and actions");
    Input { messages, alert_ids, action_ids }
}

/// Alert and action ids of `nhid replay` over a file.
fn replay(file: &Path, dir: &Path, config: Option<&Path>) -> (BTreeSet<String>, BTreeSet<String>) {
    let (alerts, actions) = (dir.join("replay-alerts.jsonl"), dir.join("replay-actions.jsonl"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nhid"));
    cmd.arg("replay").arg(file).arg("--alerts").arg(&alerts).arg("--actions").arg(&actions);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "replay failed: {}", String::from_utf8_lossy(&out.stderr));
    let ids = |path: &Path, field: &str| {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()[field].as_str().unwrap().to_string())
            .collect()
    };
    (ids(&alerts, "alert_id"), ids(&actions, "action_id"))
}

fn topics(broker: &Broker, audit_partitions: u32) {
    broker.create_topic("audit", audit_partitions);
    broker.create_topic("nhid.alerts", 2);
    broker.create_topic("nhid.actions", 2);
    broker.create_topic("nhid.incidents", 2);
    broker.create_topic("nhid.dead-letter", 1);
}

fn ids(messages: &[Got], field: &str) -> BTreeSet<String> {
    messages.iter().map(|m| m.json()[field].as_str().unwrap().to_string()).collect()
}

/// Reads `topic` until every id of `want` has appeared.
fn read_ids(brokers: &str, topic: &str, field: &str, want: &BTreeSet<String>) -> Vec<Got> {
    kafka::read_until(brokers, topic, WAIT, |got| want.is_subset(&ids(got, field)))
}

#[test]
fn end_to_end_alerts_and_actions_match_replay() {
    let Some(broker) = Broker::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = input(dir.path());
    topics(&broker, 4);
    kafka::produce(&broker.brokers, "audit", &input.messages);

    let nhid = kafka::Nhid::start(&broker.brokers, "e2e", dir.path(), &[]);
    let alerts = read_ids(&broker.brokers, "nhid.alerts", "alert_id", &input.alert_ids);
    let actions = read_ids(&broker.brokers, "nhid.actions", "action_id", &input.action_ids);
    let (status, _, logs) = nhid.terminate(Duration::from_secs(30));
    assert!(status.success(), "nhid run exited with {status}:\n{logs}");

    assert_eq!(ids(&alerts, "alert_id"), input.alert_ids, "the alert ids of nhid replay over the same events");
    assert_eq!(alerts.len(), input.alert_ids.len(), "each alert once");
    assert_eq!(ids(&actions, "action_id"), input.action_ids);
    for m in &alerts {
        common::assert_valid("alert", &m.json());
        assert_eq!(m.key.as_deref(), m.json()["principal"]["id"].as_str());
    }
    let committed: i64 = kafka::committed(&broker.brokers, "e2e", "audit", 4).iter().map(|o| o.unwrap_or(0)).sum();
    assert_eq!(committed, input.messages.len() as i64, "everything committed at shutdown");
}

/// With static membership (`--instance-id`), as deployments should run: Tansu 0.6 never
/// expires a crashed dynamic member, so without it the restarted instance would wait for
/// partitions that stay assigned to the dead one.
#[test]
fn sigkill_mid_stream_then_restart_loses_no_alert() {
    let Some(broker) = Broker::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = input(dir.path());
    topics(&broker, 4);
    kafka::produce(&broker.brokers, "audit", &input.messages);

    // Commits every 100 ms, so that the first one comes early: at the default 1 s nhid has
    // read the whole input by then.
    let config = dir.path().join("commit-often.toml");
    std::fs::write(&config, "[kafka]\ncommit_interval_ms = 100\n").unwrap();
    let config = config.to_str().unwrap();
    let nhid = kafka::Nhid::start(
        &broker.brokers,
        "kill",
        dir.path(),
        &["--instance-id", "nhid-kill-test", "--config", config],
    );
    // Killed as soon as a first commit shows it is under way: the attacks lie in the second
    // half of the input, so their alerts are still to come.
    let started = |c: &[Option<i64>]| c.iter().any(Option::is_some);
    kafka::wait_committed(&broker.brokers, "kill", ("audit", 4), WAIT, started, || {
        format!(
            "nothing committed:
{}",
            nhid.logs()
        )
    });
    nhid.kill();
    let before = kafka::read_until(&broker.brokers, "nhid.alerts", Duration::from_secs(2), |_| false);
    assert!(ids(&before, "alert_id").len() < input.alert_ids.len(), "killed before every alert was out");
    let committed: i64 = kafka::committed(&broker.brokers, "kill", "audit", 4).iter().map(|o| o.unwrap_or(0)).sum();
    assert!(committed < input.messages.len() as i64, "killed mid-stream ({committed} committed)");

    let nhid = kafka::Nhid::start(&broker.brokers, "kill", dir.path(), &["--instance-id", "nhid-kill-test"]);
    let alerts = read_ids(&broker.brokers, "nhid.alerts", "alert_id", &input.alert_ids);
    let actions = read_ids(&broker.brokers, "nhid.actions", "action_id", &input.action_ids);
    let (status, _, logs) = nhid.terminate(Duration::from_secs(30));
    assert!(status.success(), "{logs}");
    assert_eq!(ids(&alerts, "alert_id"), input.alert_ids, "every alert of an uninterrupted run, nothing else");
    assert_eq!(ids(&actions, "action_id"), input.action_ids);
    // Each partition is restored, or rebuilt where the changelog cannot say its state is
    // the committed offset's: killed between a write and the commit that reaches it (ahead),
    // or before a write the broker shows (none, behind; Tansu 0.6 under load was seen to
    // report ends without records it had acknowledged). Either way the alerts above are
    // exact; nothing the changelog holds is ever refused.
    assert!(!logs.contains("was refused"), "{logs}");
}

#[test]
fn broker_restart_mid_stream_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut broker) = Broker::start_persistent(dir.path()) else { return };
    let input = input(dir.path());
    topics(&broker, 2);
    let half = input.messages.len() / 2;
    kafka::produce(&broker.brokers, "audit", &input.messages[..half]);

    let nhid = kafka::Nhid::start(&broker.brokers, "restart", dir.path(), &[]);
    let started = |c: &[Option<i64>]| c.iter().any(Option::is_some);
    kafka::wait_committed(&broker.brokers, "restart", ("audit", 2), WAIT, started, || {
        format!(
            "nothing committed before the broker restart:
{}",
            nhid.logs()
        )
    });
    broker.restart(Duration::from_secs(2));
    kafka::produce(&broker.brokers, "audit", &input.messages[half..]);

    let alerts = read_ids(&broker.brokers, "nhid.alerts", "alert_id", &input.alert_ids);
    let actions = read_ids(&broker.brokers, "nhid.actions", "action_id", &input.action_ids);
    let (status, _, logs) = nhid.terminate(Duration::from_secs(30));
    assert!(status.success(), "{logs}");
    assert_eq!(ids(&alerts, "alert_id"), input.alert_ids);
    assert_eq!(ids(&actions, "action_id"), input.action_ids);
    let committed: i64 = kafka::committed(&broker.brokers, "restart", "audit", 2).iter().map(|o| o.unwrap_or(0)).sum();
    assert_eq!(committed, input.messages.len() as i64);
}

/// The garbage fixture, then the leaked-key fixture, on one partition.
fn fixture_lines() -> Vec<(Option<String>, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    ["garbage_lines", "cloudtrail_leaked_access_key"]
        .iter()
        .flat_map(|case| {
            std::fs::read(dir.join(case).join("input.jsonl"))
                .unwrap()
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| (None, l.to_vec()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The alert ids `nhid replay` raises over `lines` with the fixture's configuration.
fn fixture_alert_ids(dir: &Path, lines: &[(Option<String>, Vec<u8>)]) -> BTreeSet<String> {
    let file = dir.join("fixture.jsonl");
    std::fs::write(&file, lines.iter().flat_map(|(_, l)| [l.as_slice(), b"\n"].concat()).collect::<Vec<u8>>()).unwrap();
    replay(&file, dir, Some(&fixture_config())).0
}

fn fixture_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cloudtrail_leaked_access_key/config.toml")
}

#[test]
fn poison_messages_are_dead_lettered_and_the_partition_keeps_moving() {
    let Some(broker) = Broker::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    topics(&broker, 1);
    let lines = fixture_lines();
    let alert_ids = fixture_alert_ids(dir.path(), &lines);
    kafka::produce(&broker.brokers, "audit", &lines);

    let config = fixture_config();
    let nhid = kafka::Nhid::start(&broker.brokers, "poison", dir.path(), &["--config", config.to_str().unwrap()]);
    // The alerts come from messages after the poison: the partition moved past it.
    let alerts = read_ids(&broker.brokers, "nhid.alerts", "alert_id", &alert_ids);
    let dead = kafka::read_until(&broker.brokers, "nhid.dead-letter", Duration::from_secs(5), |_| false);
    let (status, _, logs) = nhid.terminate(Duration::from_secs(30));
    assert!(status.success(), "{logs}");
    assert_eq!(ids(&alerts, "alert_id"), alert_ids);

    let expected = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/garbage_lines/expected.jsonl"),
    )
    .unwrap();
    let reasons: Vec<String> = expected
        .lines()
        .filter_map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["dead_letter"]["reason"].as_str().map(str::to_owned)
        })
        .collect();
    let got: Vec<String> = dead.iter().map(|m| m.header("nhid-reason").unwrap().to_string()).collect();
    assert_eq!(got, reasons, "each poison message dead-lettered once, in order, with its reason");
    for m in &dead {
        let offset: usize = m.header("nhid-source-offset").unwrap().parse().unwrap();
        assert_eq!(m.payload, lines[offset].1, "the original bytes");
        assert_eq!(m.header("nhid-source-topic"), Some("audit"));
    }
}

#[test]
fn an_output_larger_than_the_producer_takes_is_dead_lettered_and_the_partition_moves_on() {
    let Some(broker) = Broker::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    topics(&broker, 1);
    // Before the fixture: 900 kB of garbage, and an event whose principal id is 900 kB (both
    // under max_event_bytes). Their dead letters keep 64 KiB of each: more than this
    // producer takes (message.max.bytes 20,000, as a broker may be set).
    let garbage = vec![b'x'; 900_000];
    let long_id = format!(
        r#"{{"id":"e1","time":"2026-11-02T00:00:00Z","principal":{{"id":"{}","type":"service_account"}},"action":"s3:GetObject","service":"s3","outcome":"success"}}"#,
        "p".repeat(900_000)
    );
    let fixture = fixture_lines();
    let alert_ids = fixture_alert_ids(dir.path(), &fixture);
    let mut lines = vec![(None, garbage), (None, long_id.into_bytes())];
    lines.extend(fixture);
    kafka::produce(&broker.brokers, "audit", &lines);

    let config = dir.path().join("config.toml");
    let small = "[kafka.properties]\n\"message.max.bytes\" = \"20000\"\n";
    std::fs::write(&config, std::fs::read_to_string(fixture_config()).unwrap() + small).unwrap();
    let nhid = kafka::Nhid::start(&broker.brokers, "large", dir.path(), &["--config", config.to_str().unwrap()]);
    // The alerts come from messages after the two: the partition moved past them.
    let alerts = read_ids(&broker.brokers, "nhid.alerts", "alert_id", &alert_ids);
    let dead = kafka::read_until(&broker.brokers, "nhid.dead-letter", Duration::from_secs(5), |_| false);
    let (status, _, logs) = nhid.terminate(Duration::from_secs(30));
    assert!(status.success(), "{logs}");
    assert_eq!(ids(&alerts, "alert_id"), alert_ids);
    let replaced: Vec<(&str, &str)> = dead
        .iter()
        .take(2)
        .map(|m| (m.header("nhid-reason").unwrap(), m.header("nhid-source-offset").unwrap()))
        .collect();
    assert_eq!(replaced, [("output_too_large", "0"), ("output_too_large", "1")], "{logs}");
    assert!(dead[..2].iter().all(|m| m.payload.is_empty()));
    assert!(logs.contains("dead-lettered instead"), "{logs}");
    // The fixture's own poison messages are small enough to go as they are.
    assert!(dead.len() > 2 && dead[2..].iter().all(|m| m.header("nhid-reason") != Some("output_too_large")));
}

#[test]
fn sigterm_exits_cleanly_commits_and_a_restart_sends_nothing_twice() {
    let Some(broker) = Broker::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    topics(&broker, 1);
    let lines = fixture_lines();
    kafka::produce(&broker.brokers, "audit", &lines);
    let config = fixture_config();
    let args = ["--config", config.to_str().unwrap()];

    let nhid = kafka::Nhid::start(&broker.brokers, "term", dir.path(), &args);
    let end = Some(lines.len() as i64);
    kafka::wait_committed(
        &broker.brokers,
        "term",
        ("audit", 1),
        WAIT,
        |c| c[0] == end,
        || {
            format!(
                "the input was not committed:
{}",
                nhid.logs()
            )
        },
    );
    let alerts_before = kafka::read_until(&broker.brokers, "nhid.alerts", Duration::from_secs(3), |_| false).len();
    let dead_before = kafka::read_until(&broker.brokers, "nhid.dead-letter", Duration::from_secs(3), |_| false).len();
    assert!(alerts_before > 0 && dead_before > 0);
    // The default grace is 10 s; a clean stop with nothing in flight takes far less.
    let (status, took, logs) = nhid.terminate(Duration::from_secs(10));
    assert!(status.success(), "exit {status} after SIGTERM:\n{logs}");
    assert!(logs.contains("stopped"), "{logs}");
    eprintln!("SIGTERM to exit: {took:?}");

    kafka::produce(&broker.brokers, "audit", &[(None, b"{\"truncated\": ".to_vec())]);
    let nhid = kafka::Nhid::start(&broker.brokers, "term", dir.path(), &args);
    kafka::read_until(&broker.brokers, "nhid.dead-letter", WAIT, |g| g.len() > dead_before);
    let (status, _, logs) = nhid.terminate(Duration::from_secs(10));
    assert!(status.success(), "{logs}");
    let alerts_after = kafka::read_until(&broker.brokers, "nhid.alerts", Duration::from_secs(3), |_| false).len();
    let dead_after = kafka::read_until(&broker.brokers, "nhid.dead-letter", Duration::from_secs(3), |_| false).len();
    assert_eq!(alerts_after, alerts_before, "no alert sent again");
    assert_eq!(dead_after, dead_before + 1, "only the new message's dead letter");
    assert_eq!(kafka::committed(&broker.brokers, "term", "audit", 1), vec![Some(lines.len() as i64 + 1)]);
}

/// Real audit topics are rarely keyed by principal: a connector from S3 keys by object or
/// not at all. The same traffic produced without keys over 8 partitions gave 79 alerts,
/// 12 of replay's 27 missing, on one instance with one worker or two: fetches interleave
/// one principal's events out of order by up to an hour of event time. Re-keyed (decoded,
/// produced keyed by principal to `nhid.events`, reordered there by event time across the
/// source partitions), it gives exactly replay's alerts and actions, each once.
#[test]
fn an_unkeyed_topic_re_keyed_by_principal_gives_exactly_the_alerts_of_replay() {
    let Some(broker) = Broker::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    // The whole stream (253,634 events) gave exactly replay's 27 alerts the same way when
    // run alone; reading it back from Tansu took minutes on a loaded machine.
    let input = input_of(dir.path(), |p| kafka::SMALL_POPULATION.contains(&p));
    topics(&broker, 8);
    broker.create_topic("nhid.events", 4);
    let unkeyed: Vec<_> = input.messages.iter().map(|(_, line)| (None, line.clone())).collect();
    kafka::produce(&broker.brokers, "audit", &unkeyed);
    let config = dir.path().join("nhid.toml");
    // Tansu, on a machine running tests side by side, can be slow to serve a partition; the
    // default wait (a second) could then let order go, which this test is about.
    std::fs::write(&config, "[kafka]\nrekey_topics = [\"audit\"]\nrekey_max_idle_ms = 5000\n").unwrap();

    let nhid = kafka::Nhid::start(&broker.brokers, "unkeyed", dir.path(), &["--config", config.to_str().unwrap()]);
    let why = || format!("not everything was re-keyed and detected:\n{}", nhid.logs());
    let total = input.messages.len() as i64;
    let sum = |offsets: &[Option<i64>]| offsets.iter().map(|o| o.unwrap_or(0)).sum::<i64>();
    kafka::wait_committed(&broker.brokers, "unkeyed.rekey", ("audit", 8), WAIT, |o| sum(o) == total, why);
    let events = |got: &[Got]| got.iter().filter(|m| m.header("nhid-watermarks").is_none()).count() as i64;
    let written = kafka::read_until(&broker.brokers, "nhid.events", WAIT, |got| events(got) == total);
    let mut ends = vec![0; 4];
    for m in &written {
        ends[m.partition as usize] = ends[m.partition as usize].max(m.offset + 1);
    }
    let ends: Vec<_> = ends.into_iter().map(Some).collect();
    // Committed past its last event, a partition is done: nothing is committed past a held event.
    let done = |o: &[Option<i64>]| o.iter().zip(&ends).all(|(o, end)| o >= end);
    kafka::wait_committed(&broker.brokers, "unkeyed", ("nhid.events", 4), WAIT, done, why);
    let alerts = kafka::read_until(&broker.brokers, "nhid.alerts", Duration::from_secs(10), |_| false);
    let actions = kafka::read_until(&broker.brokers, "nhid.actions", Duration::from_secs(10), |_| false);
    let (status, _, logs) = nhid.terminate(Duration::from_secs(30));
    assert!(status.success(), "nhid run exited with {status}:\n{logs}");

    assert_eq!(ids(&alerts, "alert_id"), input.alert_ids, "the alert ids of nhid replay over the same events");
    assert_eq!(alerts.len(), input.alert_ids.len(), "each alert once");
    assert_eq!(ids(&actions, "action_id"), input.action_ids);
    let events: Vec<_> = written.iter().filter(|m| m.header("nhid-watermarks").is_none()).collect();
    assert_eq!(events.len() as i64, total, "each event re-keyed once");
    for m in events.iter().step_by(97) {
        common::assert_valid("audit-event", &m.json());
        assert_eq!(m.key.as_deref(), m.json()["principal"]["id"].as_str(), "keyed by principal");
        assert!(m.header("nhid-source").is_some_and(|s| s.starts_with("audit:")), "its source named");
    }
    // Nothing of an event is lost on its way: replayed in time order, the canonical events
    // written to `nhid.events` give the same alerts.
    let mut events = events;
    events.sort_by_key(|m| {
        (m.json()["time"].as_str().unwrap().to_string(), m.header("nhid-source").unwrap().to_string())
    });
    let file = dir.path().join("rekeyed.jsonl");
    std::fs::write(&file, events.iter().flat_map(|m| [&m.payload[..], b"\n"]).flatten().copied().collect::<Vec<u8>>())
        .unwrap();
    assert_eq!(replay(&file, dir.path(), None).0, input.alert_ids, "the re-keyed events replayed");
}

/// Ten days of a small estate, each message stamped with its event time (as connectors stamp
/// audit records): `svc-dormant` works for a day and a half then sleeps; `svc-revoked` works
/// for two days and its key is revoked (lifecycle topic) on day five. nhid reads it all and
/// is stopped; on day ten both act again.
struct TenDays {
    before: Vec<(String, Vec<u8>, i64)>,
    revocation: (String, Vec<u8>, i64),
    after: Vec<(String, Vec<u8>, i64)>,
}

fn ten_days() -> TenDays {
    const MINUTE: i64 = 60_000;
    const DAY: i64 = 1_440 * MINUTE;
    // Twelve days ago, on a whole day: day ten is two days before now.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let t0 = (now - 12 * DAY) / DAY * DAY;
    let event = |n: usize, t: i64, principal: &str, key: &str| {
        let line = serde_json::json!({
            "id": format!("{principal}-{n}"), "time": nhid_model::time::format_rfc3339(t),
            "principal": {"id": principal, "type": "service_account"},
            "credential": {"id": key, "kind": "static_key"},
            "action": "s3:GetObject", "service": "s3", "outcome": "success",
            "source": {"ip": "10.1.2.3", "user_agent": "sdk/1"}, "source_format": "native"
        });
        (principal.to_string(), line.to_string().into_bytes(), t)
    };
    let mut before = Vec::new();
    for (n, m) in (0..36 * 60).step_by(10).enumerate() {
        before.push(event(n, t0 + m * MINUTE, "svc-dormant", "AKIADORMANT"));
    }
    for (n, m) in (0..48 * 60).step_by(10).enumerate() {
        before.push(event(n, t0 + m * MINUTE + 5 * MINUTE, "svc-revoked", "AKIAREVOKED"));
    }
    before.sort_by_key(|(_, _, t)| *t);
    let revoked_at = t0 + 5 * DAY;
    let revocation = serde_json::json!({
        "id": "l-1", "time": nhid_model::time::format_rfc3339(revoked_at), "type": "credential_revoked",
        "credential_id": "AKIAREVOKED"
    });
    let revocation = ("AKIAREVOKED".to_string(), revocation.to_string().into_bytes(), revoked_at);
    let day10 = t0 + 10 * DAY;
    let after = vec![
        event(9_000, day10, "svc-dormant", "AKIADORMANT"),
        event(9_000, day10 + MINUTE, "svc-revoked", "AKIAREVOKED"),
    ];
    TenDays { before, revocation, after }
}

/// Restarted on day ten, nhid still knows what it learned ten days before: the dormant key
/// waking raises `dormant_reactivation`, the key revoked five days before raises
/// `expired_credential`. Its state comes from the changelog, and the revocation from the
/// lifecycle topic, re-read as far back as facts are kept. The same runs rebuilding from two
/// days of input instead (no changelog) still know the revocation, but not that the key slept.
#[test]
fn a_restart_ten_days_on_still_knows_the_dormant_key_and_the_revocation() {
    let Some(broker) = Broker::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    topics(&broker, 2);
    broker.create_topic("nhid.lifecycle", 1);
    let days = ten_days();
    kafka::produce_at(&broker.brokers, "audit", &days.before);
    kafka::produce_at(&broker.brokers, "nhid.lifecycle", std::slice::from_ref(&days.revocation));

    // Runs nhid in `group` until it has committed `messages` of the audit topic, then stops it.
    let run = |group: &str, changelog: &str, messages: usize| {
        let config = dir.path().join(format!("{group}.toml"));
        let toml = format!(
            "[kafka]\nlifecycle_topic = \"nhid.lifecycle\"\ncommit_interval_ms = 100\nchangelog_topic = \"{changelog}\"\n"
        );
        std::fs::write(&config, toml).unwrap();
        let nhid = kafka::Nhid::start(&broker.brokers, group, dir.path(), &["--config", config.to_str().unwrap()]);
        let done = |c: &[Option<i64>]| c.iter().map(|o| o.unwrap_or(0)).sum::<i64>() == messages as i64;
        kafka::wait_committed(&broker.brokers, group, ("audit", 2), WAIT, done, || nhid.logs());
        let (status, _, logs) = nhid.terminate(Duration::from_secs(30));
        assert!(status.success(), "{logs}");
        logs
    };
    // Both groups write to one alerts topic, and the same finding has the same id in both:
    // what each raised shows in how many alerts of a kind there are.
    let count = |principal: &str, kind: &str| {
        let alerts = kafka::read_until(&broker.brokers, "nhid.alerts", Duration::from_secs(2), |_| false);
        alerts.iter().map(Got::json).filter(|a| a["principal"]["id"] == principal && a["kind"] == kind).count()
    };
    let before = days.before.len();
    run("ten-days", "nhid.changelog", before);
    run("ten-days-rebuild", "", before);
    let dormant = || count("svc-dormant", "dormant_reactivation");
    let expired = || count("svc-revoked", "expired_credential");
    assert_eq!((dormant(), expired()), (0, 0), "nothing to raise in the first two days");

    kafka::produce_at(&broker.brokers, "audit", &days.after);
    let logs = run("ten-days", "nhid.changelog", before + days.after.len());
    assert!(logs.contains("restored the partition's state from the changelog"), "{logs}");
    assert_eq!((dormant(), expired()), (1, 1), "both raised after a restart with the changelog:\n{logs}");

    let logs = run("ten-days-rebuild", "", before + days.after.len());
    assert_eq!(dormant(), 1, "rebuilding from two days of input, the sleep is not known:\n{logs}");
    assert_eq!(expired(), 2, "the lifecycle topic is re-read all the same:\n{logs}");
}
