//! Identity state through the changelog's records (`state::snapshot`): an engine restored
//! from them at any point raises what one that never stopped raises, and records of another
//! format are refused, never misread.

use std::collections::BTreeMap;

use nhid_engine::detect;
use nhid_engine::inventory::Inventory;
use nhid_engine::state::snapshot::{self, Record, SnapshotError};
use nhid_engine::{Engine, EngineConfig, Origin, Outputs, Restored};
use nhid_sim::{SimConfig, run as simulate};

/// One partition's worth of input: three simulated days of twenty principals (seed 7), the
/// last with the simulation's attacks.
fn input() -> Vec<Vec<u8>> {
    let mut bytes = Vec::new();
    simulate(&SimConfig { seed: 7, principals: 20, days: 3, ..SimConfig::default() }, &mut bytes).unwrap();
    bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect()
}

fn engine() -> Engine {
    let engine = Engine::new(detect::load(None).unwrap(), Inventory::default(), EngineConfig::default());
    engine.track_changes();
    engine
}

const TOPIC: &str = "audit";

fn origin(offset: usize) -> Origin<'static> {
    Origin { source: TOPIC, partition: 3, offset: offset as i64 }
}

/// The compacted changelog: the latest record per key.
type Changelog = BTreeMap<u64, Option<Vec<u8>>>;

fn snapshot_into(engine: &Engine, changelog: &mut Changelog, through: usize, sources: &[snapshot::SourceDone]) {
    let home = origin(0).home();
    let mut changes = Vec::new();
    engine.changes(home, &mut changes);
    for c in changes {
        changelog.insert(c.key, c.value);
    }
    let mark = snapshot::through(home, through as i64, sources);
    changelog.insert(snapshot::through_key(home), Some(mark));
}

/// The per-source progress a mark at `through` of `len` messages carries in these tests:
/// none in the first third (a keyed partition's marks), some after (an events partition's).
fn sources(through: usize, len: usize) -> Vec<snapshot::SourceDone> {
    let done = |partition| snapshot::SourceDone {
        topic: "audit".into(),
        partition,
        offset: through as i64 * 3 + i64::from(partition),
        index: partition as u32,
    };
    if through < len / 3 { Vec::new() } else { vec![done(0), done(7)] }
}

/// The alerts and actions of `lines[from..]`, whole (evidence, scores and summaries too).
fn run(engine: &Engine, lines: &[Vec<u8>], from: usize) -> (Vec<String>, Vec<String>) {
    let (mut alerts, mut actions) = (Vec::new(), Vec::new());
    let mut out = Outputs::default();
    for (i, line) in lines.iter().enumerate().skip(from) {
        engine.process(line, origin(i), None, &mut out);
        alerts.extend(out.alerts.drain(..).map(|a| serde_json::to_string(&a).unwrap()));
        actions.extend(out.actions.drain(..).map(|a| serde_json::to_string(&a).unwrap()));
        out.clear();
    }
    (alerts, actions)
}

#[test]
fn an_engine_restored_from_the_changelog_raises_what_one_that_never_stopped_raises() {
    let lines = input();
    let whole = run(&engine(), &lines, 0);
    assert!(whole.0.len() >= 10 && !whole.1.is_empty(), "the input raises alerts and actions: {whole:?}");

    // Snapshots every 2,000 messages, as commits would take them; restored at a cut in
    // the learning day, one in the second day, and one just before the attacks' day.
    let cuts = [lines.len() / 5, lines.len() / 2, lines.len() * 2 / 3];
    let (live, mut changelog) = (engine(), Changelog::new());
    let mut out = Outputs::default();
    let mut next_cut = 0;
    for (i, line) in lines.iter().enumerate() {
        if i % 2_000 == 0 || cuts.contains(&i) {
            snapshot_into(&live, &mut changelog, i, &sources(i, lines.len()));
        }
        if cuts.get(next_cut) == Some(&i) {
            next_cut += 1;
            let restored = engine();
            let home = origin(0).home();
            let mut through = None;
            for record in changelog.values().flatten() {
                if let Restored::Through { offset, sources } = restored.restore(record, home).unwrap() {
                    through = Some((offset as usize, sources));
                }
            }
            assert_eq!(through, Some((i, sources(i, lines.len()))), "the changelog says how far it holds");
            assert_eq!(restored.store().len(), live.store().len(), "every identity is restored");
            let (alerts, actions) = run(&restored, &lines, i);
            let (expected_alerts, expected_actions) = run_tail(&lines, i);
            assert_eq!(alerts, expected_alerts, "alerts after a restore at message {i}");
            assert_eq!(actions, expected_actions, "actions after a restore at message {i}");
        }
        live.process(line, origin(i), None, &mut out);
        out.clear();
    }
    assert_eq!(next_cut, cuts.len());
}

/// What an engine that never stopped raises from `from` on.
fn run_tail(lines: &[Vec<u8>], from: usize) -> (Vec<String>, Vec<String>) {
    let engine = engine();
    run(&engine, &lines[..from], 0);
    run(&engine, lines, from)
}

#[test]
fn records_of_another_partition_are_left_to_it() {
    let lines = input();
    let engine = engine();
    run(&engine, &lines[..500], 0);
    let mut changes = Vec::new();
    engine.changes(origin(0).home(), &mut changes);
    assert!(!changes.is_empty());
    let other = Origin { source: TOPIC, partition: 4, offset: 0 }.home();
    let fresh = self::engine();
    for c in changes.iter().filter_map(|c| c.value.as_deref()) {
        assert_eq!(fresh.restore(c, other), Ok(Restored::Elsewhere));
    }
    assert_eq!(fresh.store().len(), 0);
}

#[test]
fn only_identities_changed_since_the_last_snapshot_are_written_again() {
    let lines = input();
    let engine = engine();
    let home = origin(0).home();
    run(&engine, &lines[..5_000], 0);
    let mut first = Vec::new();
    engine.changes(home, &mut first);
    assert_eq!(first.len(), engine.store().len(), "each identity once");
    let mut none = Vec::new();
    engine.changes(home, &mut none);
    assert!(none.is_empty(), "nothing changed since: {} records", none.len());
    // One more event: its identity alone.
    run(&engine, &lines[..5_001], 5_000);
    let mut one = Vec::new();
    engine.changes(home, &mut one);
    let id: serde_json::Value = serde_json::from_slice(&lines[5_000]).unwrap();
    let id = id["principal"]["id"].as_str().unwrap();
    assert_eq!(one.iter().map(|c| c.key).collect::<Vec<_>>(), [snapshot::key_of(id)]);
}

/// A record written by format 3: an identity of the simulation at its first alert, with its
/// open incident (so that every part of the state is in it). Kept as bytes
/// so that a change to any state type's fields (which postcard would misread, not refuse)
/// fails here until `snapshot::VERSION` is bumped and this file written again by
/// `NHID_WRITE_SNAPSHOT=1 cargo test --test snapshot`.
const PINNED: &str = "tests/data/snapshot/identity-v3.bin";

#[test]
fn the_format_is_pinned_and_other_versions_are_refused() {
    let home = origin(0).home();
    if std::env::var_os("NHID_WRITE_SNAPSHOT").is_some() {
        let lines = input();
        let engine = engine();
        // Up to the first alert: its incident is then open.
        let mut out = Outputs::default();
        for (i, line) in lines.iter().enumerate() {
            engine.process(line, origin(i), None, &mut out);
            if !out.incidents.is_empty() {
                break;
            }
        }
        let mut changes = Vec::new();
        engine.changes(home, &mut changes);
        let with_incident = |record: &Vec<u8>| matches!(snapshot::decode(record), Ok((_, Record::Identity { identity, .. })) if identity.incident().is_some());
        let biggest = changes.into_iter().filter_map(|c| c.value).filter(with_incident).max_by_key(Vec::len).unwrap();
        std::fs::create_dir_all("tests/data/snapshot").unwrap();
        std::fs::write(PINNED, biggest).unwrap();
    }
    let pinned = std::fs::read(PINNED).unwrap();
    assert_eq!(pinned[0], snapshot::VERSION, "the pinned record is of this format: write it again");
    let engine = engine();
    assert_eq!(engine.restore(&pinned, home), Ok(Restored::Identity), "format {} reads its own", snapshot::VERSION);
    // Written again, unchanged: every field read where it was written.
    let Ok((_, Record::Identity { id, .. })) = snapshot::decode(&pinned) else { panic!("an identity's record") };
    assert!(engine.snapshot(&id) == Some(pinned.clone()), "read and written again, the record is the same");
    assert!(engine.store().get(&id).unwrap().incident().is_some(), "the pinned identity has an open incident");
    let mut changes = Vec::new();
    engine.changes(home, &mut changes);
    assert!(changes.is_empty(), "a restored identity is not dirty");

    let mut other = pinned.clone();
    other[0] = snapshot::VERSION + 1;
    assert_eq!(engine.restore(&other, home), Err(SnapshotError::Version(snapshot::VERSION + 1)));
    for cut in [0, 3, 6, pinned.len() / 2] {
        assert!(
            matches!(self::engine().restore(&pinned[..cut], home), Err(SnapshotError::Corrupt(_))),
            "a record cut at {cut} bytes is refused"
        );
    }
}
