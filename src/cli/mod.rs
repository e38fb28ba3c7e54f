//! The command line. `main.rs` only calls [`run`].

mod check;
pub mod feed;
mod input;
pub mod replay;
mod run;

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, EXIT_CONFIG, LogConfig, LogFormat};
use nhid_decode::Format;

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
    /// Consume audit topics from Kafka; produce alerts, actions and dead letters (at least once).
    Run(run::RunArgs),
    /// Validate the configuration, every detector file and the inventory.
    Check(EngineArgs),
}

/// Options that shape the engine, shared by the commands that build one.
#[derive(Args, Clone, Debug, Default)]
pub struct EngineArgs {
    /// Configuration file (TOML); defaults apply without one. `NHID__SECTION__KEY` environment
    /// variables override it, and flags override both.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Directory of detector files; overrides the config's `detectors_dir`.
    #[arg(long)]
    pub detectors: Option<PathBuf>,
    /// Directory of content rules (Sigma); overrides the config's `rules_dir`.
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Inventory file; overrides the config's `inventory`.
    #[arg(long)]
    pub inventory: Option<PathBuf>,
    /// Input format; overrides the config's `decode.format`.
    #[arg(long, value_parser = parse_format)]
    pub format: Option<Format>,
}

impl EngineArgs {
    /// The engine the configuration and overrides describe, or every error found: a
    /// broken config file does not hide broken detector or inventory files.
    pub fn engine(&self) -> Result<nhid_engine::Engine, Vec<String>> {
        self.load(|_| {}).map(|(_, engine)| engine)
    }

    /// Like [`EngineArgs::engine`], with more overrides (a command's own flags) applied to
    /// the configuration before it is validated; returns the configuration too.
    pub fn load(&self, more: impl FnOnce(&mut Config)) -> Result<(Config, nhid_engine::Engine), Vec<String>> {
        self.load_checked(more, |_| Vec::new())
    }

    /// [`EngineArgs::load`] for the commands that run Kafka clients: librdkafka's refusals
    /// of the `[kafka]` section (which it makes only when a client is built) are among the
    /// errors, so `nhid check` rejects what `nhid run` would, with the same exit code.
    pub fn load_for_kafka(&self, more: impl FnOnce(&mut Config)) -> Result<(Config, nhid_engine::Engine), Vec<String>> {
        self.load_checked(more, |config| config.kafka.client_errors())
    }

    fn load_checked(
        &self,
        more: impl FnOnce(&mut Config),
        also: impl FnOnce(&Config) -> Vec<String>,
    ) -> Result<(Config, nhid_engine::Engine), Vec<String>> {
        let (config, mut errors) = Config::layered(self.config.as_deref(), std::env::vars_os());
        let mut config = self.apply(config);
        more(&mut config);
        let engine = config.engine().map_err(|more| errors.extend(more));
        errors.extend(also(&config));
        match engine {
            Ok(engine) if errors.is_empty() => Ok((config, engine)),
            _ => Err(errors),
        }
    }

    fn apply(&self, mut config: Config) -> Config {
        if let Some(d) = &self.detectors {
            config.detectors_dir = Some(d.clone());
        }
        if let Some(r) = &self.rules {
            config.rules_dir = Some(r.clone());
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

/// `--format`: the configuration's spelling (`k8s_audit`) or the command line's (`k8s-audit`).
fn parse_format(s: &str) -> Result<Format, String> {
    Format::parse(&s.replace('-', "_")).ok_or_else(|| {
        let names: Vec<&str> = Format::ALL.iter().map(|f| f.as_str()).collect();
        format!("not a format; one of: {}", names.join(", "))
    })
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Replay(args) => replay::run(args),
        Command::Run(args) => run::run(&args),
        Command::Check(args) => check::run(&args),
    }
}

/// Prints configuration errors, all of them, and gives the configuration exit code.
pub fn config_errors(errors: &[String]) -> ExitCode {
    for e in errors {
        eprintln!("error: {e}");
    }
    eprintln!("{} configuration error(s)", errors.len());
    ExitCode::from(EXIT_CONFIG as u8)
}

/// Structured logs on standard error, as the `[log]` section says; `RUST_LOG` wins over
/// `log.level` when set. Called once the configuration is loaded: its errors are printed
/// plainly, whatever the format.
pub fn init_logs(log: &LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&log.level));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match log.format {
        // Colors only for a person watching: not in files or pipes.
        LogFormat::Pretty => logs.with_ansi(std::io::stderr().is_terminal()).try_init(),
        // Fields beside the message rather than nested, which is what log shippers index.
        LogFormat::Json => logs.json().flatten_event(true).try_init(),
    };
}

/// A flag set by the first SIGINT or SIGTERM; a second one exits at once. The handlers are
/// installed before this returns, so a signal right after start is not lost.
pub fn stop_on_signals() -> anyhow::Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    on_signals(move || flag.store(true, std::sync::atomic::Ordering::Relaxed))?;
    Ok(stop)
}

/// Exit code of a command stopped by a signal before it was done (`replay` before the end of
/// its input, or a second signal): the shell's code for an interrupted command.
pub const EXIT_INTERRUPTED: i32 = 130;

/// Runs `first` on a thread of its own at the first SIGINT or SIGTERM; a second signal exits
/// at once, even while `first` runs. The handlers are installed before this returns.
pub fn on_signals(first: impl FnOnce() + Send + 'static) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (mut term, mut int) = {
        let _guard = rt.enter();
        (signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?)
    };
    std::thread::Builder::new().name("nhid-signals".into()).spawn(move || {
        rt.block_on(async {
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
            tracing::info!("signal received: stopping (a second signal exits at once)");
            if let Err(e) = std::thread::Builder::new().name("nhid-stop".into()).spawn(first) {
                eprintln!("error: cannot stop cleanly: {e}");
                std::process::exit(EXIT_INTERRUPTED);
            }
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
            std::process::exit(EXIT_INTERRUPTED);
        })
    })?;
    Ok(())
}
