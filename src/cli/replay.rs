//! `nhid replay`: the engine over files, in file order, one record one message (JSON lines,
//! or the layouts audit logs are exported in: [`super::input`]), on every core
//! ([`super::feed`]). Streams: a few batches of messages in memory at a time, and at most
//! `max_event_bytes` of a message, whatever the file size.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use clap::Args;

use super::feed::{default_threads, feed};
use super::{EXIT_INTERRUPTED, EngineArgs, config_errors, init_logs, on_signals};
use crate::config::Config;
use nhid_engine::detect::Detector;
use nhid_engine::metrics::Health;
use nhid_engine::metrics::Metrics;
use nhid_engine::respond::ocsf::AlertsFormat;
use nhid_engine::{ControlKind, Engine, Outputs, Stats};
use nhid_model::event::{PrincipalType, SourceFormat};
use nhid_model::vocab::DeadLetterReason;

#[derive(Args)]
pub struct ReplayArgs {
    /// Input files, gzip-compressed or not (`-` reads standard input): JSON lines, CloudTrail
    /// as delivered to S3 (`{"Records":[...]}`), JSON arrays, or pretty-printed records.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Where alerts go, as JSON lines (standard output by default).
    #[arg(long)]
    alerts: Option<PathBuf>,
    /// How alerts are written: `nhid` (schemas/alert.schema.json) or `ocsf` (OCSF Detection
    /// Findings, class 2004).
    #[arg(long, value_name = "FORMAT", default_value = "nhid", value_parser = alerts_format)]
    alerts_format: AlertsFormat,
    /// Where actions (revocation requests) go, as JSON lines.
    #[arg(long)]
    actions: Option<PathBuf>,
    /// Where incidents go, as JSON lines: a record each time one is opened, updated by an
    /// alert, or closed (schemas/incident.schema.json; with `--alerts-format ocsf`, OCSF
    /// Incident Findings, class 2005).
    #[arg(long)]
    incidents: Option<PathBuf>,
    /// Where dead letters go, as JSON lines with their reason and original bytes.
    #[arg(long)]
    dead_letter: Option<PathBuf>,
    /// Lifecycle events (offboarded owners, revoked credentials, retired principals; JSON
    /// lines as on the lifecycle topic), applied before the audit events: each holds from
    /// its own time on.
    #[arg(long)]
    lifecycle: Vec<PathBuf>,
    /// Analysts' verdicts (JSON lines as on the verdicts topic, schemas/verdict.schema.json),
    /// applied after the lifecycle events and before the audit events: a verdict on an alert
    /// takes effect when the alert is raised, from the verdict's own time on.
    #[arg(long)]
    verdicts: Vec<PathBuf>,
    /// Serve /metrics and the /principals inventory on this address during the replay and
    /// after it, until interrupted (port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    http: Option<std::net::SocketAddr>,
    /// Threads that decode and match content rules (default: one per core). The outputs are
    /// the same whatever the number: events go through the state and the detectors in input
    /// order.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    #[command(flatten)]
    engine: EngineArgs,
}

fn alerts_format(s: &str) -> Result<AlertsFormat, String> {
    AlertsFormat::parse(s).ok_or_else(|| format!("{s:?}: expected nhid or ocsf"))
}

pub fn run(args: ReplayArgs) -> ExitCode {
    // `--http` is `http.listen`: validated with the rest (a non-loopback address needs a token).
    let listen = |c: &mut crate::config::Config| {
        if let Some(l) = args.http {
            c.http.listen = l;
        }
    };
    let (config, engine) = match args.engine.load(listen) {
        Ok((c, e)) => (c, Arc::new(e)),
        Err(errors) => return config_errors(&errors),
    };
    match replay(&engine, &config, &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Where outputs go. `Send`: an interrupted replay flushes them from the signal handler.
struct Sinks {
    alerts: Box<dyn Write + Send>,
    alerts_format: AlertsFormat,
    actions: Option<Box<dyn Write + Send>>,
    incidents: Option<Box<dyn Write + Send>>,
    dead_letters: Option<Box<dyn Write + Send>>,
}

fn create(path: &Path) -> anyhow::Result<Box<dyn Write + Send>> {
    let f = File::create(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(Box::new(BufWriter::with_capacity(1 << 16, f)))
}

/// What a replay has produced so far. Locked while a message is processed and its outputs
/// written, so whoever else takes it (the signal handler) finds it between two messages.
struct Progress {
    out: Outputs,
    sinks: Sinks,
    started: Instant,
    /// For the summary: how many files, and whether dead letters are kept.
    files: usize,
    dead_letters_kept: bool,
    /// The summary is printed: the input was read to its end, or the replay was stopped.
    ended: bool,
    engine: Arc<Engine>,
}

impl Progress {
    /// Flushes the outputs, and prints the summary the first time.
    fn end(&mut self) -> io::Result<()> {
        self.sinks.alerts.flush()?;
        for w in
            [&mut self.sinks.actions, &mut self.sinks.incidents, &mut self.sinks.dead_letters].into_iter().flatten()
        {
            w.flush()?;
        }
        if !self.ended {
            self.ended = true;
            let secs = self.started.elapsed().as_secs_f64();
            print_summary(&self.out.stats, self.files, secs, self.dead_letters_kept);
            print_suppressions(&self.engine, &self.out.stats);
        }
        Ok(())
    }
}

fn lock(progress: &Mutex<Progress>) -> anyhow::Result<MutexGuard<'_, Progress>> {
    progress.lock().map_err(|_| anyhow::anyhow!("a previous message panicked"))
}

fn replay(engine: &Arc<Engine>, config: &Config, args: &ReplayArgs) -> anyhow::Result<()> {
    let served = match args.http {
        Some(_) => {
            init_logs(&config.log);
            let metrics = Arc::new(Metrics::new());
            // Every detector's and every suppression's series from the start, as `nhid run`
            // exports them: a rule that matched nothing shows 0, not nothing.
            metrics.expect(engine, &[]);
            let bound = nhid_http::serve(&config.http, engine.clone(), metrics.clone(), Arc::new(Health::default()))?;
            Some((bound, metrics))
        }
        None => None,
    };
    let sinks = Sinks {
        alerts: match &args.alerts {
            Some(p) => create(p)?,
            None => Box::new(BufWriter::with_capacity(1 << 16, io::stdout())),
        },
        alerts_format: args.alerts_format,
        actions: args.actions.as_deref().map(create).transpose()?,
        incidents: args.incidents.as_deref().map(create).transpose()?,
        dead_letters: args.dead_letter.as_deref().map(create).transpose()?,
    };
    let progress = Arc::new(Mutex::new(Progress {
        out: Outputs::default(),
        sinks,
        started: Instant::now(),
        files: args.files.len(),
        dead_letters_kept: args.dead_letter.is_some(),
        ended: false,
        engine: engine.clone(),
    }));
    // SIGINT or SIGTERM stops the replay after the message in hand, with its outputs
    // flushed. The handler does this itself: the main thread may be blocked reading a pipe
    // that never ends, and would never see a flag. Exit 0 once the input was read to its
    // end (`--http` serving on), 130 before.
    let stopping = progress.clone();
    on_signals(move || {
        let code = match lock(&stopping) {
            Ok(mut p) => {
                let complete = p.ended;
                if !complete {
                    eprintln!("nhid replay: stopped by a signal before the end of its input");
                }
                match p.end() {
                    Ok(()) if complete => 0,
                    Ok(()) => EXIT_INTERRUPTED,
                    Err(e) => {
                        eprintln!("error: {e}");
                        1
                    }
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        };
        std::process::exit(code)
    })?;
    let threads = args.threads.map_or_else(default_threads, usize::from);
    let control: Vec<(ControlKind, PathBuf)> = (args.lifecycle.iter().map(|p| (ControlKind::Lifecycle, p.clone())))
        .chain(args.verdicts.iter().map(|p| (ControlKind::Verdict, p.clone())))
        .collect();
    feed(engine, &control, &args.files, threads, |process| {
        let mut p = lock(&progress)?;
        let Progress { out, sinks, .. } = &mut *p;
        process(out);
        drain(out, sinks, engine.detectors())
    })?;
    let mut p = lock(&progress)?;
    p.end()?;
    if let Some((bound, metrics)) = served {
        metrics.absorb(&p.out.stats);
        eprintln!("\nserving http://{bound}/principals and /metrics until interrupted");
        drop(p);
        // Until the signal handler exits.
        loop {
            std::thread::park();
        }
    }
    Ok(())
}

fn drain(out: &mut Outputs, sinks: &mut Sinks, detectors: &[Detector]) -> anyhow::Result<()> {
    for alert in out.alerts.drain(..) {
        sinks.alerts.write_all(&sinks.alerts_format.encode(&alert, detectors))?;
        sinks.alerts.write_all(b"\n")?;
    }
    for action in out.actions.drain(..) {
        if let Some(w) = &mut sinks.actions {
            serde_json::to_writer(&mut *w, &action)?;
            w.write_all(b"\n")?;
        }
    }
    // The audit trail of verdicts, as `nhid run` logs it.
    for (principal, v) in out.verdicts.drain(..) {
        eprintln!("verdict {} by {} on {principal} ({}): {}", v.verdict, v.by, v.target, v.change());
    }
    for incident in out.incidents.drain(..) {
        if let Some(w) = &mut sinks.incidents {
            w.write_all(&sinks.alerts_format.encode_incident(&incident))?;
            w.write_all(b"\n")?;
        }
    }
    for dl in out.dead_letters.drain(..) {
        if let Some(w) = &mut sinks.dead_letters {
            serde_json::to_writer(&mut *w, &dl.to_json())?;
            w.write_all(b"\n")?;
        }
    }
    Ok(())
}

fn print_suppressions(engine: &Engine, s: &Stats) {
    let lines = engine.suppressions().report(Some(&s.suppressed), nhid_model::time::wall_clock());
    if !lines.is_empty() {
        let mut e = io::stderr().lock();
        let _ = writeln!(e, "\nsuppressions");
        for line in lines {
            let _ = writeln!(e, "  {line}");
        }
    }
}

fn print_summary(s: &Stats, files: usize, secs: f64, dead_letters_kept: bool) {
    let mut e = io::stderr().lock();
    let rate = if secs > 0.0 { s.events as f64 / secs } else { 0.0 };
    let _ = writeln!(
        e,
        "nhid replay: {} messages, {} events from {files} file(s) in {secs:.2} s ({rate:.0} events/s)",
        s.messages, s.events
    );
    let _ = writeln!(e, "\nevents by principal type");
    for &t in PrincipalType::ALL {
        let n = s.events_by_type[t.index()];
        if n > 0 {
            let _ = writeln!(e, "  {:<22} {n:>12}", t.as_str());
        }
    }
    let _ = writeln!(e, "\nevents by source format and principal type");
    for &f in SourceFormat::ALL {
        for &t in PrincipalType::ALL {
            let n = s.events_by_format[f.index()][t.index()];
            if n > 0 {
                let _ = writeln!(e, "  {:<12} {:<22} {n:>12}", f.as_str(), t.as_str());
            }
        }
    }
    let _ = writeln!(e, "\nalerts by detector and severity");
    if s.alerts.is_empty() {
        let _ = writeln!(e, "  (none)");
    }
    for ((detector, sev), n) in &s.alerts {
        let _ = writeln!(e, "  {detector:<22} {:<10} {n:>6}", sev.as_str());
    }
    let _ = writeln!(e, "  suppressed repeats {:>23}", s.suppressed_repeats);
    let [tp, fp, benign] = s.verdicts;
    let _ = writeln!(
        e,
        "\nverdicts\n  true positive {tp:>28}\n  false positive {fp:>27}\n  benign change {benign:>28}\n  findings accepted {:>24}",
        s.accepted
    );
    let [opened, updated, closed] = s.incidents;
    let _ =
        writeln!(e, "\nincidents\n  opened {opened:>35}\n  updated by an alert {updated:>22}\n  closed {closed:>35}");
    let _ = writeln!(e, "\nactions");
    if s.actions.is_empty() {
        let _ = writeln!(e, "  (none)");
    }
    for ((action, mode), n) in &s.actions {
        let _ = writeln!(e, "  {:<22} {:<10} {n:>6}", action.as_str(), mode.as_str());
    }
    for (block, n) in &s.guardrail_blocks {
        let _ = writeln!(e, "  blocked: {:<19} {n:>17}", block.as_str());
    }
    let _ = writeln!(e, "\ndead letters by reason");
    if s.dead_letters_total() == 0 {
        let _ = writeln!(e, "  (none)");
    }
    for &r in DeadLetterReason::ALL {
        let n = s.dead_letters[r.index()];
        if n > 0 {
            let _ = writeln!(e, "  {:<22} {n:>12}", r.as_str());
        }
    }
    if s.dead_letters_total() > 0 && !dead_letters_kept {
        let _ = writeln!(e, "  (pass --dead-letter PATH to keep them with their original bytes)");
    }
}
