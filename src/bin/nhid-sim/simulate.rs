//! `nhid-sim simulate`: a labeled synthetic population, written as canonical JSON lines.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use nhid_sim::{Estate, SimConfig};

#[derive(Args)]
pub struct SimulateArgs {
    /// Seed: the same seed gives byte-identical output.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Number of identities (all principal types, humans included).
    #[arg(long, default_value_t = 100)]
    principals: usize,
    /// Days of event time to generate.
    #[arg(long, default_value_t = 3)]
    days: u32,
    /// Which population: `classic` (identities with fixed actions, addresses and user agents;
    /// its output for a seed never changes) or `cloud` (the classic population for 45 % of
    /// it, and CI runners, serverless functions, autoscaled fleets, low-volume keys, Terraform
    /// runs and weekly jobs as their platforms behave, with four more attack scenarios).
    #[arg(long, default_value = "classic", value_parser = parse_estate)]
    estate: Estate,
    /// Output file of canonical events (JSON lines).
    #[arg(long)]
    out: PathBuf,
    /// Where to write the labels of the injected scenarios (JSON array).
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Where to write an inventory (TOML, for `[inventory] file`): every principal but the
    /// shadow keys, which the `shadow_key` scenario leaves out on purpose.
    #[arg(long)]
    inventory: Option<PathBuf>,
}

/// `--estate`: one of the estates' names.
pub fn parse_estate(s: &str) -> Result<Estate, String> {
    Estate::parse(s).ok_or_else(|| {
        let names: Vec<&str> = Estate::ALL.iter().map(|e| e.name()).collect();
        format!("not an estate; one of: {}", names.join(", "))
    })
}

pub fn run(args: SimulateArgs) -> ExitCode {
    match simulate_to_files(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn simulate_to_files(args: &SimulateArgs) -> anyhow::Result<()> {
    let cfg = SimConfig {
        seed: args.seed,
        principals: args.principals,
        days: args.days,
        estate: args.estate,
        ..SimConfig::default()
    };
    let file = File::create(&args.out).map_err(|e| anyhow::anyhow!("{}: {e}", args.out.display()))?;
    let mut out = BufWriter::with_capacity(1 << 16, file);
    let summary = nhid_sim::run(&cfg, &mut out)?;
    out.flush()?;
    if let Some(path) = &args.labels {
        let f = File::create(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        serde_json::to_writer_pretty(BufWriter::new(f), &summary.labels)?;
    }
    if let Some(path) = &args.inventory {
        let text = nhid_sim::inventory_toml(&summary.inventory)?;
        // The classic estate's header as it always was; another estate says which.
        let estate = match args.estate {
            Estate::Classic => String::new(),
            other => format!(" --estate {}", other.name()),
        };
        let header = format!(
            "# nhid simulate --seed {} --principals {}{estate}: every principal but the shadow keys\n\n",
            args.seed, args.principals
        );
        std::fs::write(path, header + &text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    let changes = summary.labels.iter().filter(|l| l.expected_kinds.is_empty()).count();
    eprintln!(
        "nhid simulate: {} events, {} principals over {} day(s), {} injected attacks and {changes} benign change(s) -> {}",
        summary.events,
        summary.principals_by_type.values().sum::<usize>(),
        args.days,
        summary.labels.len() - changes,
        args.out.display()
    );
    for (kind, n) in &summary.principals_by_type {
        eprintln!("  {:<22} {n:>6}", kind.as_str());
    }
    if args.estate != Estate::Classic {
        eprintln!("  by archetype:");
        for (archetype, n) in &summary.principals_by_archetype {
            eprintln!("  {:<22} {n:>6}", archetype.name());
        }
    }
    let scenarios: std::collections::BTreeSet<&str> = summary.labels.iter().map(|l| l.scenario.as_str()).collect();
    let possible = args.estate.scenarios();
    if scenarios.len() < possible {
        eprintln!(
            "warning: only {} of {possible} scenarios injected: they start after 30 h and need suitable victims \
             (use --principals 30 or more; --days 2 for most, --days 5 for new_nightly_batch, \
             --days 10 for dormant_key_reactivated)",
            scenarios.len(),
        );
    }
    for l in &summary.labels {
        let what = if l.expected_kinds.is_empty() { "change" } else { "attack" };
        eprintln!("  {what} {:<29} {} from {}", l.scenario, l.principal_id, nhid_model::time::format_rfc3339(l.start));
    }
    Ok(())
}
