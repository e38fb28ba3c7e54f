//! `nhid-sim eval`: replays labeled events through the engine, exactly as `nhid replay` does, and
//! scores the alerts and actions against the labels (`nhid_sim::eval`: what is measured, and the
//! JSON fields). The events come from files (`--labels FILE EVENTS...`), or, without files,
//! straight from the simulator in process (`--estate`, `--seed`, `--principals`, `--days`, as
//! `nhid-sim simulate` takes them), with its inventory, so that nothing is written to disk.
//! Memory grows with alerts and identities, not with events: only the alerts' and actions'
//! ids, times, kinds, principals and targets are kept.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;

use nhid::cli::feed::{default_threads, feed};
use nhid::cli::{EngineArgs, config_errors};
use nhid_engine::{ControlKind, Engine, Origin, Outputs};
use nhid_model::time::{Millis, format_rfc3339};
use nhid_sim::eval::{
    self, ActionCount, ActionRecord, AlertRecord, ArchetypeRow, AutomaticActions, DelayStats, FalseAlerts,
    PrincipalSpan, Report, TARGET_FALSE_PER_1000, TARGET_MEDIAN_DELAY_MS, TARGET_MEDIAN_DELAY_RATE_MS,
};
use nhid_sim::{Estate, Label, SimConfig};

use crate::simulate::parse_estate;

#[derive(Args)]
pub struct EvalArgs {
    /// The labels of the events: the JSON array `nhid simulate --labels` writes. Required with
    /// EVENTS files; not given when the events are simulated in process.
    #[arg(long, value_name = "FILE", required_unless_present_any = ["estate", "seed", "principals", "days"])]
    labels: Option<PathBuf>,
    /// Audit event files, replayed in order as by `nhid replay`: JSON lines, gzip-compressed
    /// or not; `-` reads standard input. Without them, the events are simulated in process
    /// (`--estate`, `--seed`, `--principals`, `--days`).
    #[arg(value_name = "EVENTS", requires = "labels")]
    events: Vec<PathBuf>,
    /// Simulate in process instead of reading files: the population (`classic` or `cloud`,
    /// as `nhid-sim simulate --estate`); classic by default.
    #[arg(long, value_parser = parse_estate, conflicts_with_all = ["events", "labels"])]
    estate: Option<Estate>,
    /// Simulate in process: the seed [default: 7].
    #[arg(long, conflicts_with_all = ["events", "labels"])]
    seed: Option<u64>,
    /// Simulate in process: identities of every type [default: 100].
    #[arg(long, conflicts_with_all = ["events", "labels"])]
    principals: Option<usize>,
    /// Simulate in process: days of event time [default: 3].
    #[arg(long, conflicts_with_all = ["events", "labels"])]
    days: Option<u32>,
    /// Lifecycle events applied before the audit events, as `nhid replay --lifecycle`.
    #[arg(long)]
    lifecycle: Vec<PathBuf>,
    /// Print the report as one JSON object (fields documented in the `nhid::eval` module).
    #[arg(long)]
    json: bool,
    /// Exit with 1 when a target is missed; without it targets are only reported.
    #[arg(long)]
    check: bool,
    #[command(flatten)]
    engine: EngineArgs,
}

/// State idle TTL for the replay: the longest a setting may be (ten years of event time), so
/// that no identity is evicted for idleness. The false-alert rate divides by the
/// principal-days after learning, read from the state once the replay is over; an identity
/// evicted for idleness would drop out of that sum (and, seen again, would learn again as
/// if new). The price: an identity idle longer than the configured TTL keeps its baseline
/// here where `nhid replay` would forget it. Only the identity ceiling
/// (`state.max_identities`) can still evict; eval reports it.
const IDLE_TTL_SECS: u64 = nhid_model::time::MAX_SETTING_SECS;

/// At most this many false alerts and offending actions are listed in the text report;
/// `--json` lists them all.
const LISTED: usize = 20;

pub fn run(args: EvalArgs) -> ExitCode {
    let report = match &args.labels {
        Some(labels) => evaluate_files(labels, &args),
        None => evaluate_simulated(&args),
    };
    let report = match report {
        Ok(r) => r,
        Err(Failure::Config(errors)) => return config_errors(&errors),
        Err(Failure::Other(e)) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", render(&report));
    }
    if args.check && !report.targets_missed.is_empty() {
        eprintln!("nhid eval: target(s) missed: {}", report.targets_missed.join(", "));
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Why there is no report: the configuration (exit 64, every error at once), or anything else.
enum Failure {
    Config(Vec<String>),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Other(e)
    }
}

fn evaluate_files(labels: &Path, args: &EvalArgs) -> Result<Report, Failure> {
    let engine = args.engine.load(|c| c.state.idle_ttl_secs = IDLE_TTL_SECS).map_err(Failure::Config)?.1;
    let labels = read_labels(labels)?;
    let started = Instant::now();
    let (mut out, mut replayed) = (Outputs::default(), Replayed::default());
    let lifecycle: Vec<_> = args.lifecycle.iter().map(|p| (ControlKind::Lifecycle, p.clone())).collect();
    feed(&engine, &lifecycle, &args.events, default_threads(), |process| {
        process(&mut out);
        replayed.take(&mut out);
        Ok(())
    })?;
    let source = format!("{} file(s)", args.events.len());
    Ok(replayed.score(&engine, &out, &labels, &source, started))
}

/// Simulates the run the flags describe and feeds its events straight into the engine, with
/// the simulator's inventory unless one is configured.
fn evaluate_simulated(args: &EvalArgs) -> Result<Report, Failure> {
    let defaults = SimConfig { seed: 7, ..SimConfig::default() };
    let cfg = SimConfig {
        seed: args.seed.unwrap_or(defaults.seed),
        principals: args.principals.unwrap_or(defaults.principals),
        days: args.days.unwrap_or(defaults.days),
        estate: args.estate.unwrap_or_default(),
        ..defaults
    };
    let inventory = InventoryFile::write(&cfg)?;
    let engine = args
        .engine
        .load(|c| {
            c.state.idle_ttl_secs = IDLE_TTL_SECS;
            if c.inventory.is_none() {
                c.inventory = Some(inventory.0.clone());
            }
        })
        .map_err(Failure::Config)?
        .1;
    drop(inventory);
    let started = Instant::now();
    let mut sink = EngineSink {
        engine: &engine,
        out: Outputs::default(),
        replayed: Replayed::default(),
        partial: Vec::new(),
        line: 0,
    };
    // Lifecycle events first, as with files.
    let EngineSink { out, replayed, .. } = &mut sink;
    let lifecycle: Vec<_> = args.lifecycle.iter().map(|p| (ControlKind::Lifecycle, p.clone())).collect();
    feed(&engine, &lifecycle, &[], 1, |process| {
        process(out);
        replayed.take(out);
        Ok(())
    })?;
    let summary = nhid_sim::run(&cfg, &mut sink).map_err(|e| anyhow::anyhow!("simulating: {e}"))?;
    let EngineSink { out, replayed, .. } = sink;
    let source = format!(
        "nhid-sim simulate --estate {} --seed {} --principals {} --days {} (in process)",
        cfg.estate.name(),
        cfg.seed,
        cfg.principals,
        cfg.days
    );
    Ok(replayed.score(&engine, &out, &summary.labels, &source, started))
}

/// The simulator's inventory in a temporary file, for the engine's configuration to load;
/// removed when dropped.
struct InventoryFile(PathBuf);

impl InventoryFile {
    fn write(cfg: &SimConfig) -> anyhow::Result<InventoryFile> {
        let path = std::env::temp_dir().join(format!("nhid-sim-eval-{}-inventory.toml", std::process::id()));
        let text = nhid_sim::inventory_toml(&nhid_sim::inventory(cfg))?;
        std::fs::write(&path, text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(InventoryFile(path))
    }
}

impl Drop for InventoryFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Where the simulator writes in process: each complete line goes to the engine.
struct EngineSink<'a> {
    engine: &'a Engine,
    out: Outputs,
    replayed: Replayed,
    partial: Vec<u8>,
    line: i64,
}

impl Write for EngineSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.partial.extend_from_slice(buf);
        let mut done = 0;
        while let Some(nl) = self.partial[done..].iter().position(|&b| b == b'\n') {
            self.line += 1;
            let origin = Origin { source: "simulated", partition: 0, offset: self.line };
            self.engine.process(&self.partial[done..done + nl], origin, None, &mut self.out);
            self.replayed.take(&mut self.out);
            done += nl + 1;
        }
        self.partial.drain(..done);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What a replay produced, as eval keeps it.
#[derive(Default)]
struct Replayed {
    alerts: Vec<AlertRecord>,
    actions: Vec<ActionRecord>,
}

impl Replayed {
    /// Keeps what eval needs of the outputs and drops them (dead letters are only counted, in
    /// the stats).
    fn take(&mut self, out: &mut Outputs) {
        self.alerts.extend(out.alerts.iter().map(AlertRecord::from));
        self.actions.extend(out.actions.iter().map(ActionRecord::from));
        out.clear();
    }

    /// Scores the replay against `labels`, with the principals as the engine's state holds them.
    fn score(self, engine: &Engine, out: &Outputs, labels: &[Label], source: &str, started: Instant) -> Report {
        let mut principals = Vec::with_capacity(engine.store().len());
        engine.store().for_each(|id, identity| {
            principals.push(PrincipalSpan {
                principal_id: id.to_owned(),
                first_seen: identity.first_seen,
                last_seen: identity.last_seen,
                learned_at: identity.first_seen.saturating_add(engine.learning_ms(identity.kind)),
            })
        });
        let s = &out.stats;
        eprintln!(
            "nhid eval: {} messages, {} events from {source} in {:.2} s; {} alerts, {} actions, {} labels",
            s.messages,
            s.events,
            started.elapsed().as_secs_f64(),
            self.alerts.len(),
            self.actions.len(),
            labels.len()
        );
        if s.evictions > 0 {
            eprintln!(
                "warning: {} identities evicted over state.max_identities: principal-days after learning are undercounted",
                s.evictions
            );
        }
        let mut report = eval::evaluate(labels, &self.alerts, &self.actions, &principals);
        report.replay = eval::ReplayCounts {
            messages: s.messages,
            events: s.events,
            dead_letters: s.dead_letters_total(),
            evictions: s.evictions,
            principals: principals.len(),
        };
        report
    }
}

fn read_labels(path: &Path) -> anyhow::Result<Vec<Label>> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!("{}: not a labels file (the JSON array `nhid simulate --labels` writes): {e}", path.display())
    })
}

/// The report as aligned tables, in the manner of `nhid replay`'s summary.
fn render(r: &Report) -> String {
    let mut o = String::new();
    let t = &r.totals;
    let _ = writeln!(
        o,
        "nhid eval: {} events, {} principals, {} alerts, {} actions; {} attack label(s), {} benign-change label(s)",
        r.replay.events, r.replay.principals, t.alerts, t.actions, t.attack_labels, t.benign_labels
    );
    render_attacks(&mut o, r);
    render_benign_changes(&mut o, r);
    render_delays(&mut o, r);
    render_false_alerts(&mut o, &r.false_alerts);
    render_archetypes(&mut o, &r.by_archetype);
    render_automatic_actions(&mut o, &r.automatic_actions);
    render_targets(&mut o, r);
    o
}

fn render_attacks(o: &mut String, r: &Report) {
    let _ = writeln!(o, "\nattacks (detected: an expected kind on the principal within [start, end + 1 h])");
    let rows: Vec<Vec<String>> = r
        .attacks
        .iter()
        .map(|a| {
            let actions: Vec<String> = a
                .actions
                .iter()
                .map(|x| {
                    let n = if x.count > 1 { format!(" x{}", x.count) } else { String::new() };
                    format!("{} ({}){n}", x.action.as_str(), x.mode.as_str())
                })
                .collect();
            vec![
                a.label.scenario.clone(),
                a.label.principal_id.clone(),
                yes_no(a.detected).into(),
                or_dash_secs(a.delay_ms),
                or_none(a.kinds.join(", ")),
                or_none(actions.join(", ")),
                a.expected_response.map_or("-".into(), |r| r.as_str().to_owned()),
                a.narrow_response.map_or("-", yes_no).into(),
            ]
        })
        .collect();
    table(o, &["scenario", "principal", "detected", "delay", "kinds", "action", "expected", "narrow"], &[3], &rows);
    let n = &r.narrow_response;
    if n.judged > 0 {
        let _ = writeln!(
            o,
            "  narrow response (the expected action on the attack's credential or session, nothing wider): {}/{}",
            n.correct, n.judged
        );
    }
}

fn render_benign_changes(o: &mut String, r: &Report) {
    let _ = writeln!(o, "\nbenign changes (alerts tolerated before quiet_from, false from it on)");
    let rows: Vec<Vec<String>> = r
        .benign_changes
        .iter()
        .map(|b| {
            vec![
                b.label.scenario.clone(),
                b.label.principal_id.clone(),
                b.quiet_from.map_or("-".into(), format_rfc3339),
                b.tolerated_alerts.to_string(),
                b.false_alerts.to_string(),
                yes_no(b.quiet).into(),
            ]
        })
        .collect();
    table(o, &["scenario", "principal", "quiet from", "tolerated", "false", "quiet"], &[3, 4], &rows);
}

fn render_delays(o: &mut String, r: &Report) {
    let _ = writeln!(o, "\ndetection delay (event time from the first malicious event to the first expected alert)");
    let delay_row = |name: &str, d: &DelayStats| {
        vec![name.to_owned(), d.detected.to_string(), or_dash_secs(d.median_ms), or_dash_secs(d.max_ms)]
    };
    let rows = vec![
        delay_row("all", &r.delay.overall),
        delay_row("rate-based", &r.delay.rate_based),
        delay_row("other", &r.delay.other),
    ];
    table(o, &["kinds", "detected", "median", "max"], &[1, 2, 3], &rows);
}

fn render_false_alerts(o: &mut String, f: &FalseAlerts) {
    let _ = writeln!(
        o,
        "\nfalse alerts (no label explains them, raised after learning): {} over {:.1} principal-days = {} per 1,000",
        f.count,
        f.principal_days_after_learning,
        or_dash_rate(f.per_1000_principal_days)
    );
    let _ = writeln!(
        o,
        "  not counted: {} explained by labels, {} during learning",
        f.alerts_explained, f.alerts_during_learning
    );
    let rows: Vec<Vec<String>> = f
        .by_kind_severity
        .iter()
        .map(|k| {
            vec![
                k.kind.clone(),
                k.severity.as_str().into(),
                k.count.to_string(),
                or_dash_rate(k.per_1000_principal_days),
            ]
        })
        .collect();
    table(o, &["kind", "severity", "count", "per 1,000"], &[2, 3], &rows);
    if !f.alerts.is_empty() {
        let rows: Vec<Vec<String>> = f
            .alerts
            .iter()
            .take(LISTED)
            .map(|a| vec![format_rfc3339(a.time), a.kind.clone(), a.severity.as_str().into(), a.principal_id.clone()])
            .collect();
        let _ = writeln!(o);
        table(o, &["time", "kind", "severity", "principal"], &[], &rows);
        more(o, f.alerts.len());
    }
}

fn render_archetypes(o: &mut String, rows: &[ArchetypeRow]) {
    let _ = writeln!(o, "\nby archetype (false alerts after learning, containment of benign identities)");
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|a| {
            let mut kinds: Vec<(&String, &usize)> = a.false_alerts_by_kind.iter().collect();
            kinds.sort_by_key(|&(kind, n)| (std::cmp::Reverse(*n), kind));
            let kinds: Vec<String> = kinds.iter().take(4).map(|(kind, n)| format!("{kind} {n}")).collect();
            vec![
                a.archetype.name().into(),
                a.principals.to_string(),
                format!("{:.1}", a.principal_days_after_learning),
                a.false_alerts.to_string(),
                or_dash_rate(a.per_1000_principal_days),
                a.containment_of_benign.to_string(),
                or_none(kinds.join(", ")),
            ]
        })
        .collect();
    table(
        o,
        &["archetype", "principals", "principal-days", "false", "per 1,000", "containment", "top kinds"],
        &[1, 2, 3, 4, 5],
        &rows,
    );
}

fn render_automatic_actions(o: &mut String, a: &AutomaticActions) {
    let _ = writeln!(o, "\nautomatic actions (dry runs included)");
    let rows = vec![
        vec!["containment of benign identities".into(), a.against_benign.count.to_string()],
        vec!["any action against humans".into(), a.against_humans.count.to_string()],
        vec!["(benign changes while new, tolerated)".into(), a.on_benign_changes_while_new.to_string()],
    ];
    table(o, &["against", "count"], &[1], &rows);
    offenders(o, "containment of benign identities", &a.against_benign);
    offenders(o, "actions against humans", &a.against_humans);
}

fn render_targets(o: &mut String, r: &Report) {
    let _ = writeln!(o, "\ntargets (reported; --check makes a miss exit 1)");
    let (d, f, a) = (&r.delay, &r.false_alerts, &r.automatic_actions);
    let pct = |v: f64| format!("{:.1} %", v * 100.0);
    let row = |name: &str, value: String, goal: String, met: Option<bool>| {
        vec![name.to_owned(), value, goal, verdict(met).to_owned()]
    };
    let rows = vec![
        row(
            "recall",
            r.recall.value.map_or("-".into(), |v| format!("{}/{} = {}", r.recall.detected, r.recall.attacks, pct(v))),
            format!("= {}", pct(r.recall.target)),
            r.recall.met,
        ),
        row(
            "median delay, rate-based kinds",
            or_dash_secs(d.rate_based.median_ms),
            format!("<= {}", secs(TARGET_MEDIAN_DELAY_RATE_MS)),
            d.rate_based.met,
        ),
        row(
            "median delay, other kinds",
            or_dash_secs(d.other.median_ms),
            format!("<= {}", secs(TARGET_MEDIAN_DELAY_MS)),
            d.other.met,
        ),
        row(
            "false alerts per 1,000 principal-days",
            or_dash_rate(f.per_1000_principal_days),
            format!("<= {TARGET_FALSE_PER_1000}"),
            f.met,
        ),
        row(
            "containment of benign identities",
            a.against_benign.count.to_string(),
            format!("= {}", a.against_benign.target),
            Some(a.against_benign.met),
        ),
        row(
            "actions against humans",
            a.against_humans.count.to_string(),
            format!("= {}", a.against_humans.target),
            Some(a.against_humans.met),
        ),
    ];
    table(o, &["target", "value", "goal", "result"], &[1], &rows);
    if r.targets_missed.is_empty() {
        let _ = writeln!(o, "  all targets met (or not applicable)");
    } else {
        let _ = writeln!(o, "  missed: {}", r.targets_missed.join(", "));
    }
}

fn offenders(o: &mut String, what: &str, c: &ActionCount) {
    if c.offenders.is_empty() {
        return;
    }
    let _ = writeln!(o, "\n  {what}:");
    let rows: Vec<Vec<String>> = c
        .offenders
        .iter()
        .take(LISTED)
        .map(|x| {
            vec![
                format_rfc3339(x.time),
                format!("{} ({})", x.action.as_str(), x.mode.as_str()),
                x.principal_id.clone(),
                x.principal_type.as_str().into(),
                x.alert_kind.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(o, &["time", "action", "principal", "type", "alert kind"], &[], &rows);
    more(o, c.offenders.len());
}

fn more(o: &mut String, total: usize) {
    if total > LISTED {
        let _ = writeln!(o, "  ... and {} more (--json lists them all)", total - LISTED);
    }
}

/// Rows under a header, two spaces in, columns padded to their widest cell; the columns in
/// `right` (numbers) are right-aligned.
fn table(o: &mut String, header: &[&str], right: &[usize], rows: &[Vec<String>]) {
    if rows.is_empty() {
        let _ = writeln!(o, "  (none)");
        return;
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    line(o, &widths, right, header.iter().copied());
    for row in rows {
        line(o, &widths, right, row.iter().map(String::as_str));
    }
}

fn line<'a>(o: &mut String, widths: &[usize], right: &[usize], cells: impl Iterator<Item = &'a str>) {
    let mut text = String::from(" ");
    for (i, (cell, w)) in cells.zip(widths).enumerate() {
        let pad = w - cell.chars().count();
        text.push(' ');
        if right.contains(&i) {
            text.extend(std::iter::repeat_n(' ', pad));
            text.push_str(cell);
        } else {
            text.push_str(cell);
            text.extend(std::iter::repeat_n(' ', pad));
        }
        text.push(' ');
    }
    let _ = writeln!(o, "{}", text.trim_end());
}

fn secs(ms: Millis) -> String {
    format!("{:.1} s", ms as f64 / 1_000.0)
}

fn or_dash_secs(ms: Option<Millis>) -> String {
    ms.map_or("-".into(), secs)
}

/// A rate per 1,000 principal-days, `-` when there were none to divide by.
fn or_dash_rate(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}"))
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn or_none(s: String) -> String {
    if s.is_empty() { "none".into() } else { s }
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "n/a",
    }
}
