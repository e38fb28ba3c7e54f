//! What the content rules cost, all of them and each one alone, against what decoding the
//! same records costs, on two CloudTrail streams:
//! - an estate: a day of `nhid-sim`'s population (seed 7, 300 principals) written as the
//!   records one AWS account would log (`tests/common/aws_account.rs`): ordinary calls,
//!   where almost nothing matches;
//! - dense: every CloudTrail sample of Panther's rule tests and every Stratus Red Team record
//!   (`tests/data/`), nearly every one a call some rule is about.
//!
//! Rules run on records just decoded (hot in cache), as in the pipeline: each pass decodes
//! the stream in batches of 256 records and evaluates the rules on each batch, timing both
//! apart (the fastest of 3 passes, ns per record, measured in the same run). The decoding
//! time is the baseline the rules' cost is a share of; the whole `nhid replay` ratio is in
//! docs/performance.md.
//!   cargo bench --bench rules        (about three minutes)

#[path = "../tests/common/aws_account.rs"]
#[allow(dead_code)]
mod aws_account;

use std::hint::black_box;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nhid_decode::{DecodeContext, Format};
use nhid_engine::rules::Rules;
use nhid_model::event::AuditEvent;
use nhid_sim::SimConfig;

const PASSES: usize = 3;
/// Records of the estate's day, from its start.
const ESTATE: usize = 200_000;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn estate() -> Vec<String> {
    let mut buf = Vec::new();
    nhid_sim::run(&SimConfig { seed: 7, principals: 300, days: 1, ..SimConfig::default() }, &mut buf).unwrap();
    let text = String::from_utf8(buf).unwrap();
    text.lines()
        .filter_map(|line| {
            let ev = nhid_decode::native::decode(line).unwrap();
            aws_account::record("123456789012", &ev).map(|(record, _)| record.to_string())
        })
        .take(ESTATE)
        .collect()
}

fn dense() -> Vec<String> {
    let mut text = String::new();
    let path = root().join("tests/data/panther_analysis_labeled_events/rule_tests.jsonl.gz");
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()).read_to_string(&mut text).unwrap();
    let mut records: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|t| t["log"].get("eventName").is_some())
        .map(|t| t["log"].to_string())
        .collect();
    for entry in std::fs::read_dir(root().join("tests/data/stratus/aws")).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_str().unwrap().starts_with("aws.") {
            records.extend(std::fs::read_to_string(path).unwrap().lines().map(String::from));
        }
    }
    // Only the records that decode (a few rule tests carry unreadable times on purpose).
    records.retain(|r| decode(std::slice::from_ref(r)).len() == 1);
    records
}

fn decode(records: &[String]) -> Vec<AuditEvent<'_>> {
    let ctx = DecodeContext { fallback_time: Some(0), max_event_bytes: 0 };
    let mut events = Vec::with_capacity(records.len());
    for r in records {
        nhid_decode::decode(r.as_bytes(), Format::Cloudtrail, &ctx, &mut |ev| events.extend(ev.ok()));
    }
    events
}

/// A pass over `records` in batches of 256, each decoded (cache-hot, as in the pipeline) and
/// then given to `rules`: ns per record of decoding, of evaluating, and how many matched.
fn pass(rules: &Rules, records: &[String]) -> (f64, f64, usize) {
    let (mut decoding, mut evaluating) = (f64::INFINITY, f64::INFINITY);
    let mut matched = 0;
    for _ in 0..PASSES {
        let (mut d, mut e) = (Duration::ZERO, Duration::ZERO);
        matched = 0;
        for batch in records.chunks(256) {
            let t = Instant::now();
            let mut events = decode(batch);
            d += t.elapsed();
            let t = Instant::now();
            for ev in &mut events {
                rules.evaluate(ev);
            }
            e += t.elapsed();
            matched += events.iter().filter(|ev| !ev.rules.is_empty()).count();
            black_box(events);
        }
        let per = |t: Duration| t.as_nanos() as f64 / records.len() as f64;
        decoding = decoding.min(per(d));
        evaluating = evaluating.min(per(e));
    }
    (decoding, evaluating, matched)
}

fn rule_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rule_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "yml") {
            files.push(path);
        }
    }
}

fn main() {
    let streams = [("estate", estate()), ("dense", dense())];
    let (all, _) = Rules::builtin();
    println!("{:<62} {:>14} {:>14}", "ns per record (matches)", streams[0].0, streams[1].0);
    let totals: Vec<(f64, f64, usize)> = streams.iter().map(|(_, records)| pass(&all, records)).collect();
    println!(
        "{:<62} {:>14.0} {:>14.0}",
        format!("decoding ({} and {} records)", streams[0].1.len(), streams[1].1.len()),
        totals[0].0,
        totals[1].0
    );
    println!(
        "{:<62} {:>14} {:>14}",
        format!("all {} shipped rules", all.len()),
        format!("{:.0} ({})", totals[0].1, totals[0].2),
        format!("{:.0} ({})", totals[1].1, totals[1].2)
    );
    println!(
        "{:<62} {:>13.0}% {:>13.0}%",
        "  as a share of decoding",
        100.0 * totals[0].1 / totals[0].0,
        100.0 * totals[1].1 / totals[1].0
    );

    // Each CloudTrail rule alone, the costliest first.
    let mut files = Vec::new();
    rule_files(&root().join("rules"), &mut files);
    let dir = tempfile::tempdir().unwrap();
    let mut each = Vec::new();
    for file in files {
        let one = dir.path().join("rule.yml");
        std::fs::copy(&file, &one).unwrap();
        let (rules, _) = Rules::load(dir.path());
        if !rules.counts().iter().any(|(format, _)| *format == "cloudtrail") {
            continue;
        }
        let costs: Vec<(f64, usize)> = streams
            .iter()
            .map(|(_, records)| {
                let (_, ns, matched) = pass(&rules, records);
                (ns, matched)
            })
            .collect();
        let name = file.strip_prefix(root().join("rules")).unwrap().display().to_string();
        each.push((name, costs));
    }
    each.sort_by(|a, b| b.1[0].0.total_cmp(&a.1[0].0));
    for (name, costs) in &each {
        println!(
            "{:<62} {:>14} {:>14}",
            name,
            format!("{:.0} ({})", costs[0].0, costs[0].1),
            format!("{:.0} ({})", costs[1].0, costs[1].1)
        );
    }
}
