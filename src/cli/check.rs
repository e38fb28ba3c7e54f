//! `nhid check`: validate configuration, detectors, content rules and inventory, and build
//! the Kafka clients
//! `nhid run` would (dropped at once: nothing is read or sent).

use std::process::ExitCode;

use super::{EngineArgs, config_errors};

pub fn run(args: &EngineArgs) -> ExitCode {
    match args.load_for_kafka(|_| {}) {
        Ok((_, engine)) => {
            let rules = engine.rules().map(|r| r.counts()).unwrap_or_default();
            let rules: Vec<String> = rules.iter().map(|(format, n)| format!("{n} {format}")).collect();
            println!(
                "ok: {} detectors ({}), {} content rules (compiled by format: {}), {} inventory entries",
                engine.detectors().len(),
                engine.detectors().iter().map(|d| d.id.as_str()).collect::<Vec<_>>().join(", "),
                engine.rules().map_or(0, |r| r.len()),
                if rules.is_empty() { "none".to_string() } else { rules.join(", ") },
                engine.inventory().len()
            );
            let ranges = engine.ranges();
            println!(
                "places: {} providers' published ranges, {}",
                ranges.provider_count(),
                ranges.asns().map_or("no autonomous systems table (public addresses are one place)".to_string(), |a| {
                    format!("{} autonomous systems' ranges", a.len())
                })
            );
            // Reported, not refused: an expired suppression matches nothing any more.
            for line in engine.suppressions().report(None, nhid_model::time::wall_clock()) {
                println!("suppression {line}");
            }
            ExitCode::SUCCESS
        }
        Err(errors) => config_errors(&errors),
    }
}
