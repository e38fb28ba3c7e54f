//! `nhid replay`: the engine over files, in file order, one line one message. Streams:
//! one line in memory at a time, whatever the file size.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Args;
use flate2::read::MultiGzDecoder;

use super::{EngineArgs, config_errors, init_logs, stop_on_signals};
use crate::config::Config;
use nhid_engine::metrics::Health;
use nhid_engine::metrics::Metrics;
use nhid_engine::{ControlKind, Engine, Origin, Outputs, Stats};
use nhid_model::event::{PrincipalType, SourceFormat};
use nhid_model::vocab::DeadLetterReason;

#[derive(Args)]
pub struct ReplayArgs {
    /// Input files: JSON lines, gzip-compressed or not; `-` reads standard input.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Where alerts go, as JSON lines (standard output by default).
    #[arg(long)]
    alerts: Option<PathBuf>,
    /// Where actions (revocation requests) go, as JSON lines.
    #[arg(long)]
    actions: Option<PathBuf>,
    /// Where dead letters go, as JSON lines with their reason and original bytes.
    #[arg(long)]
    dead_letter: Option<PathBuf>,
    /// Lifecycle events (offboarded owners, revoked credentials, retired principals; JSON
    /// lines as on the lifecycle topic), applied before the audit events: each holds from
    /// its own time on.
    #[arg(long)]
    lifecycle: Vec<PathBuf>,
    /// Serve /metrics and the /principals inventory on this address during the replay and
    /// after it, until interrupted (port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    http: Option<std::net::SocketAddr>,
    #[command(flatten)]
    engine: EngineArgs,
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

struct Sinks {
    alerts: Box<dyn Write>,
    actions: Option<Box<dyn Write>>,
    dead_letters: Option<Box<dyn Write>>,
}

fn create(path: &Path) -> anyhow::Result<Box<dyn Write>> {
    let f = File::create(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(Box::new(BufWriter::with_capacity(1 << 16, f)))
}

fn replay(engine: &Arc<Engine>, config: &Config, args: &ReplayArgs) -> anyhow::Result<()> {
    let served = match args.http {
        Some(_) => {
            init_logs(&config.log);
            let metrics = Arc::new(Metrics::new());
            let bound = nhid_http::serve(&config.http, engine.clone(), metrics.clone(), Arc::new(Health::default()))?;
            Some((bound, metrics, stop_on_signals()?))
        }
        None => None,
    };
    let mut sinks = Sinks {
        alerts: match &args.alerts {
            Some(p) => create(p)?,
            None => Box::new(BufWriter::new(io::stdout().lock())),
        },
        actions: args.actions.as_deref().map(create).transpose()?,
        dead_letters: args.dead_letter.as_deref().map(create).transpose()?,
    };
    let started = Instant::now();
    let mut out = Outputs::default();
    feed(engine, &args.lifecycle, &args.files, &mut out, |out| drain(out, &mut sinks))?;
    sinks.alerts.flush()?;
    for w in [&mut sinks.actions, &mut sinks.dead_letters].into_iter().flatten() {
        w.flush()?;
    }
    print_summary(&out.stats, args.files.len(), started.elapsed().as_secs_f64(), args.dead_letter.is_some());
    if let Some((bound, metrics, stop)) = served {
        metrics.absorb(&out.stats);
        eprintln!("\nserving http://{bound}/principals and /metrics until interrupted");
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

/// Feeds the lifecycle files, then the audit files, through the engine in file order, one
/// line one message, and hands `out` to `take` after every message to drain: `replay` writes
/// the outputs out, `eval` keeps the alerts and actions it scores. Streams: one line in
/// memory at a time, whatever the file sizes.
pub fn feed(
    engine: &Engine,
    lifecycle: &[PathBuf],
    files: &[PathBuf],
    out: &mut Outputs,
    mut take: impl FnMut(&mut Outputs) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    for path in lifecycle {
        each_line(path, |message, origin| {
            engine.control(ControlKind::Lifecycle, message, origin, out);
            take(out)
        })?;
    }
    for path in files {
        each_line(path, |message, origin| {
            engine.process(message, origin, None, out);
            take(out)
        })?;
    }
    Ok(())
}

/// Calls `f` with every non-blank line of a file and where it came from (line numbers as
/// offsets).
fn each_line(path: &Path, mut f: impl FnMut(&[u8], Origin<'_>) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let name = path.display().to_string();
    let mut reader = open(path)?;
    let mut line = Vec::with_capacity(4096);
    let mut number = 0i64;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        if n == 0 {
            return Ok(());
        }
        number += 1;
        let trimmed = line.trim_ascii();
        if !trimmed.is_empty() {
            f(trimmed, Origin { source: &name, partition: 0, offset: number })?;
        }
    }
}

fn open(path: &Path) -> anyhow::Result<Box<dyn BufRead>> {
    let raw: Box<dyn Read> = if path == Path::new("-") {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?)
    };
    let mut buffered = BufReader::with_capacity(1 << 16, raw);
    // Gzip by its magic bytes, not its name: `.gz` files and compressed stdin alike.
    let gz = buffered.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if gz { Box::new(BufReader::with_capacity(1 << 16, MultiGzDecoder::new(buffered))) } else { Box::new(buffered) })
}

fn drain(out: &mut Outputs, sinks: &mut Sinks) -> anyhow::Result<()> {
    for alert in out.alerts.drain(..) {
        serde_json::to_writer(&mut sinks.alerts, &alert)?;
        sinks.alerts.write_all(b"\n")?;
    }
    for action in out.actions.drain(..) {
        if let Some(w) = &mut sinks.actions {
            serde_json::to_writer(&mut *w, &action)?;
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
