//! The state changelog's records at a million identities: what writing one costs, how large
//! they are, and how fast an engine restores them (the CPU side of a restore; reading them
//! from a broker comes on top, see docs/scale.md).
//!
//! `cargo bench --bench changelog` (about a minute on 2 cores). Target: a million identities
//! restored in ≤ 30 s.
//!
//! The identities are real ones: the two hundred principals of `nhid-sim simulate --seed 7
//! --principals 200 --days 2`, learned by the engine from their two days, each written under
//! 5,000 names (their state otherwise as learned: sets, baselines, seasonal profile,
//! credentials, alert marks).

use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, ensure};
use nhid::config::Config;
use nhid_engine::state::snapshot::{self, Record};
use nhid_engine::{Engine, Origin, Outputs, Restored};
use nhid_sim::SimConfig;

const IDENTITIES: usize = 1_000_000;

fn engine() -> anyhow::Result<Engine> {
    let engine = Config::default().engine().map_err(|e| anyhow!("building the engine: {}", e.join("; ")))?;
    engine.track_changes();
    Ok(engine)
}

fn main() -> anyhow::Result<()> {
    let mut bytes = Vec::new();
    nhid_sim::run(&SimConfig { seed: 7, principals: 200, days: 2, ..SimConfig::default() }, &mut bytes)?;
    let learned = engine()?;
    let origin = Origin { source: "audit", partition: 0, offset: 0 };
    let mut out = Outputs::default();
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        learned.process(line, origin, None, &mut out);
        out.clear();
    }
    let home = origin.home();
    let mut changes = Vec::new();
    learned.changes(home, &mut changes);
    let templates: Vec<(Box<str>, u64, Box<nhid_engine::state::Identity>)> = changes
        .iter()
        .filter_map(|c| c.value.as_deref())
        .filter_map(|v| match snapshot::decode(v) {
            Ok((home, Record::Identity { id, detectors, mut identity })) => {
                // A record's home is in its head, not its body: the template keeps it.
                identity.set_home(home);
                Some((id, detectors, identity))
            }
            _ => None,
        })
        .collect();
    ensure!(templates.len() >= 150, "{} identities learned", templates.len());
    let template_bytes: usize = changes.iter().filter_map(|c| c.value.as_ref()).map(Vec::len).sum();
    println!(
        "{} identities learned from {} events; their records {} bytes each on average",
        templates.len(),
        bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count(),
        template_bytes / changes.len()
    );

    // Writing: one record per identity, as a commit does for each changed identity.
    let started = Instant::now();
    let records: Vec<Vec<u8>> = (0..IDENTITIES)
        .map(|i| {
            let (id, detectors, identity) = &templates[i % templates.len()];
            snapshot::identity(&format!("{id}-{i}"), *detectors, identity)
        })
        .collect();
    let written = started.elapsed();
    let total: usize = records.iter().map(Vec::len).sum();
    println!(
        "write: {} records in {:.2} s ({}/s, {:.2} µs each), {:.0} MB, {} bytes a record",
        thousands(IDENTITIES),
        written.as_secs_f64(),
        thousands(rate(IDENTITIES, written)),
        written.as_secs_f64() * 1e6 / IDENTITIES as f64,
        total as f64 / 1e6,
        total / IDENTITIES
    );

    // Restoring: each record decoded and put in the state, as an assignment does.
    let restored = engine()?;
    let started = Instant::now();
    for r in &records {
        ensure!(restored.restore(r, home).context("a record refused")? == Restored::Identity, "not restored");
    }
    let took = started.elapsed();
    ensure!(restored.store().len() == IDENTITIES, "{} restored", restored.store().len());
    println!(
        "restore: {} identities in {:.2} s ({}/s); the state then holds {:.0} MB by its estimate",
        thousands(IDENTITIES),
        took.as_secs_f64(),
        thousands(rate(IDENTITIES, took)),
        restored.store().estimated_bytes() as f64 / 1e6
    );
    ensure!(took <= Duration::from_secs(30), "restoring a million identities took {took:?}, over the 30 s target");
    Ok(())
}

fn rate(n: usize, took: Duration) -> usize {
    (n as f64 / took.as_secs_f64()) as usize
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
