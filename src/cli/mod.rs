//! The command line. `main.rs` only calls [`run`].

mod check;
mod replay;
mod simulate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, EXIT_CONFIG};
use crate::decode::Format;

#[derive(Parser)]
#[command(name = "nhid", version, about = "Detects anomalies of non-human identities in audit event streams")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the detectors over audit event files (JSON lines, `.gz` too) in event time.
    Replay(replay::ReplayArgs),
    /// Generate a labeled synthetic population with injected attacks (canonical JSON lines).
    Simulate(simulate::SimulateArgs),
    /// Validate the configuration, every detector file and the inventory.
    Check(EngineArgs),
}

/// Options that shape the engine, shared by the commands that build one.
#[derive(Args, Clone, Debug, Default)]
pub struct EngineArgs {
    /// Configuration file (TOML); defaults apply without one.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Directory of detector files; overrides the config's `detectors_dir`.
    #[arg(long)]
    pub detectors: Option<PathBuf>,
    /// Inventory file; overrides the config's `inventory`.
    #[arg(long)]
    pub inventory: Option<PathBuf>,
    /// Input format; overrides the config's `decode.format`.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

impl EngineArgs {
    /// The engine the configuration and overrides describe, or every error found: a
    /// broken config file does not hide broken detector or inventory files.
    pub fn engine(&self) -> Result<crate::pipeline::Engine, Vec<String>> {
        let (config, mut errors) = match self.config() {
            Ok(c) => (c, Vec::new()),
            Err(e) => (self.apply(Config::default()), e),
        };
        match config.engine() {
            Ok(engine) if errors.is_empty() => Ok(engine),
            Ok(_) => Err(errors),
            Err(more) => {
                errors.extend(more);
                Err(errors)
            }
        }
    }

    /// The configuration with command-line overrides applied.
    pub fn config(&self) -> Result<Config, Vec<String>> {
        Ok(self.apply(Config::load(self.config.as_deref())?))
    }

    fn apply(&self, mut config: Config) -> Config {
        if let Some(d) = &self.detectors {
            config.detectors_dir = Some(d.clone());
        }
        if let Some(i) = &self.inventory {
            config.inventory = Some(i.clone());
        }
        if let Some(f) = self.format {
            config.decode.format = f;
        }
        config
    }
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Replay(args) => replay::run(args),
        Command::Simulate(args) => simulate::run(args),
        Command::Check(args) => check::run(&args),
    }
}

/// Prints configuration errors, all of them, and gives the configuration exit code.
fn config_errors(errors: &[String]) -> ExitCode {
    for e in errors {
        eprintln!("error: {e}");
    }
    eprintln!("{} configuration error(s)", errors.len());
    ExitCode::from(EXIT_CONFIG as u8)
}
