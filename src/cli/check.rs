//! `nhid check`: validate configuration, detectors and inventory, and build the Kafka clients
//! `nhid run` would (dropped at once: nothing is read or sent).

use std::process::ExitCode;

use super::{EngineArgs, config_errors};

pub fn run(args: &EngineArgs) -> ExitCode {
    match args.load_for_kafka(|_| {}) {
        Ok((_, engine)) => {
            println!(
                "ok: {} detectors ({}), {} inventory entries",
                engine.detectors().len(),
                engine.detectors().iter().map(|d| d.id.as_str()).collect::<Vec<_>>().join(", "),
                engine.inventory().len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => config_errors(&errors),
    }
}
