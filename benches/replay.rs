//! The whole `nhid replay` process, as a user runs it, against a bare parse of the same file
//! measured in the same run: the ratio is the figure, the machine being shared and noisy.
//!
//! `cargo bench --bench replay` (about four minutes; `NHID_BENCH_KEEP=DIR` writes the two
//! files there instead, to profile `nhid replay` on them). The workload is
//! `nhid-sim simulate --seed 7 --principals 200 --days 4` (the classic estate), as canonical
//! JSON lines and as CloudTrail records (`shapes::cloudtrail`). Identities learn for a day
//! (the default), so three quarters of the events meet learned identities and every detector
//! runs on them; the benchmark asserts that alerts were raised, every event was processed and
//! none was dead-lettered.
//!
//! The bare parse is serde_json's borrowed parse of every line into the fields nhid reads, on
//! one thread, with the same buffered line reading: the canonical event's own struct
//! (`AuditEvent`), and for CloudTrail a struct of the record's fields nhid reads. No checks,
//! no state, no outputs: the cost of reading the bytes at all.

use std::borrow::Cow;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use nhid_model::event::AuditEvent;
use nhid_sim::SimConfig;
use serde::Deserialize;

mod shapes;

const ROUNDS: usize = 3;

fn main() {
    // `cargo bench` passes `--bench`; a name filter is not supported, nor needed.
    let dir = tempfile::tempdir().unwrap();
    let canonical = dir.path().join("canonical.jsonl");
    let cloudtrail = dir.path().join("cloudtrail.jsonl");
    let cfg = SimConfig { seed: 7, principals: 200, days: 4, ..SimConfig::default() };
    let mut native = Vec::new();
    nhid_sim::run(&cfg, &mut native).unwrap();
    std::fs::write(&canonical, &native).unwrap();
    let mut ct = std::io::BufWriter::new(std::fs::File::create(&cloudtrail).unwrap());
    for line in native.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        ct.write_all(&shapes::cloudtrail(line)).unwrap();
        ct.write_all(b"\n").unwrap();
    }
    ct.flush().unwrap();
    drop((native, ct));
    // `NHID_BENCH_KEEP=DIR` keeps the two files there and measures nothing (to profile
    // `nhid replay` on them by hand).
    if let Some(keep) = std::env::var_os("NHID_BENCH_KEEP") {
        for file in [&canonical, &cloudtrail] {
            // Moved (no second copy of 5 GB), or copied to another file system.
            let kept = Path::new(&keep).join(file.file_name().unwrap());
            std::fs::rename(file, &kept).or_else(|_| std::fs::copy(file, &kept).map(drop)).unwrap();
        }
        eprintln!("kept canonical.jsonl and cloudtrail.jsonl in {}", keep.to_string_lossy());
        return;
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    eprintln!("workload: nhid-sim simulate --seed 7 --principals 200 --days 4; {threads} cores");
    for (name, path, bare) in
        [("canonical", &canonical, bare_canonical as fn(&[u8])), ("cloudtrail", &cloudtrail, bare_cloudtrail)]
    {
        let (lines, bytes) = count(path);
        let (mut parse, mut all, mut one) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            parse.push(lines as f64 / timed(|| read_lines(path, bare)));
            all.push(lines as f64 / replay(path, None, lines, dir.path()));
            one.push(lines as f64 / replay(path, Some(1), lines, dir.path()));
        }
        let (parse, all, one) = (median(parse), median(all), median(one));
        eprintln!("{name}: {lines} events of {} B on average; medians of {ROUNDS} rounds, alternating", bytes / lines);
        eprintln!("  bare serde_json borrowed parse, one thread {:>12.0} events/s", parse);
        eprintln!("  nhid replay, {threads} threads {:>28.0} events/s  {:.2} x the parse", all, all / parse);
        eprintln!("  nhid replay --threads 1 {:>28.0} events/s  {:.2} x the parse", one, one / parse);
    }
}

/// Lines and bytes of a file.
fn count(path: &Path) -> (usize, usize) {
    let text = std::fs::read(path).unwrap();
    (text.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count(), text.len())
}

fn timed(f: impl FnOnce()) -> f64 {
    let started = Instant::now();
    f();
    started.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Every line of `path` through `parse`, read as `nhid replay` reads a file.
fn read_lines(path: &Path, parse: fn(&[u8])) {
    let mut input = BufReader::with_capacity(1 << 18, std::fs::File::open(path).unwrap());
    let mut line = Vec::new();
    while input.read_until(b'\n', &mut line).unwrap() > 0 {
        parse(line.trim_ascii());
        line.clear();
    }
}

fn bare_canonical(line: &[u8]) {
    let ev: AuditEvent<'_> = serde_json::from_slice(line).unwrap();
    std::hint::black_box(ev);
}

/// The CloudTrail fields nhid reads.
#[allow(dead_code)] // Read by black_box only: a parse's output.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record<'a> {
    #[serde(borrow)]
    event_time: Cow<'a, str>,
    #[serde(borrow)]
    event_source: Cow<'a, str>,
    #[serde(borrow)]
    event_name: Cow<'a, str>,
    #[serde(borrow)]
    event_id: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "sourceIPAddress")]
    source_ip_address: Option<Cow<'a, str>>,
    #[serde(borrow)]
    user_agent: Option<Cow<'a, str>>,
    #[serde(borrow)]
    error_code: Option<Cow<'a, str>>,
    #[serde(borrow)]
    recipient_account_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    user_identity: Identity<'a>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Identity<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    principal_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    arn: Option<Cow<'a, str>>,
    #[serde(borrow)]
    access_key_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    user_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    session_context: Option<SessionContext<'a>>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionContext<'a> {
    #[serde(borrow)]
    session_issuer: Option<Issuer<'a>>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Issuer<'a> {
    #[serde(borrow)]
    arn: Option<Cow<'a, str>>,
    #[serde(borrow)]
    user_name: Option<Cow<'a, str>>,
}

fn bare_cloudtrail(line: &[u8]) {
    let record: Record<'_> = serde_json::from_slice(line).unwrap();
    std::hint::black_box(record);
}

/// Seconds `nhid replay` takes, process start to exit, with `threads` (default: every core);
/// checks that it processed every line, dead-lettered none, and raised alerts.
fn replay(path: &Path, threads: Option<u16>, lines: usize, dir: &Path) -> f64 {
    let alerts = dir.join("alerts.jsonl");
    let mut command = Command::new(env!("CARGO_BIN_EXE_nhid"));
    command.arg("replay").arg(path).arg("--alerts").arg(&alerts);
    if let Some(n) = threads {
        command.args(["--threads", &n.to_string()]);
    }
    let started = Instant::now();
    let out = command.output().unwrap();
    let secs = started.elapsed().as_secs_f64();
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{summary}");
    assert!(summary.contains(&format!("{lines} events from")), "not every line processed:\n{summary}");
    assert!(summary.contains("dead letters by reason\n  (none)"), "{summary}");
    let raised = std::fs::read_to_string(&alerts).unwrap().lines().count();
    assert!(raised > 0, "no alert: the detectors did not run on learned identities\n{summary}");
    secs
}
