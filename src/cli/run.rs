//! `nhid run`: the Kafka runtime until SIGTERM or SIGINT.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use super::{EngineArgs, config_errors, init_logs, stop_on_signals};
use crate::config::Config;
use nhid_engine::metrics::Health;
use nhid_engine::metrics::Metrics;
use nhid_kafka::Report;

/// The essentials of the `[kafka]` section, so a first run needs no file.
#[derive(Args)]
pub struct RunArgs {
    /// Bootstrap servers, `host:port[,host:port]` [config: kafka.brokers; default localhost:9092].
    #[arg(long)]
    brokers: Option<String>,
    /// Audit topics, comma-separated [kafka.topics; default audit].
    #[arg(long, value_delimiter = ',')]
    topics: Option<Vec<String>>,
    /// Consumer group [kafka.group; default nhid].
    #[arg(long)]
    group: Option<String>,
    /// Static group membership id, stable per instance [kafka.instance_id].
    #[arg(long)]
    instance_id: Option<String>,
    /// [kafka.alerts_topic; default nhid.alerts]
    #[arg(long)]
    alerts_topic: Option<String>,
    /// [kafka.incidents_topic; default nhid.incidents]
    #[arg(long)]
    incidents_topic: Option<String>,
    /// [kafka.actions_topic; default nhid.actions]
    #[arg(long)]
    actions_topic: Option<String>,
    /// [kafka.dead_letter_topic; default nhid.dead-letter]
    #[arg(long)]
    dead_letter_topic: Option<String>,
    /// Where /metrics, /healthz and /readyz listen [http.listen; default 127.0.0.1:9898]; port 0 picks a free one.
    #[arg(long)]
    http_listen: Option<std::net::SocketAddr>,
    /// Worker threads, 0 for one per core [kafka.workers].
    #[arg(long)]
    workers: Option<usize>,
    #[command(flatten)]
    engine: EngineArgs,
}

impl RunArgs {
    fn apply(&self, config: &mut Config) {
        if let Some(l) = self.http_listen {
            config.http.listen = l;
        }
        let k = &mut config.kafka;
        let set = |field: &mut String, value: &Option<String>| {
            if let Some(v) = value {
                field.clone_from(v);
            }
        };
        set(&mut k.brokers, &self.brokers);
        set(&mut k.group, &self.group);
        set(&mut k.alerts_topic, &self.alerts_topic);
        set(&mut k.actions_topic, &self.actions_topic);
        set(&mut k.incidents_topic, &self.incidents_topic);
        set(&mut k.dead_letter_topic, &self.dead_letter_topic);
        if let Some(t) = &self.topics {
            k.topics.clone_from(t);
        }
        if self.instance_id.is_some() {
            k.instance_id.clone_from(&self.instance_id);
        }
        if let Some(w) = self.workers {
            k.workers = w;
        }
    }
}

pub fn run(args: &RunArgs) -> ExitCode {
    let (config, mut engine) = match args.engine.load_for_kafka(|c| args.apply(c)) {
        Ok(loaded) => loaded,
        Err(errors) => return config_errors(&errors),
    };
    init_logs(&config.log);
    // Actions leave as they are decided: a forged flood must not outpace the wall clock.
    engine.pace_actions_in_processing_time();
    let engine = Arc::new(engine);
    let (metrics, health) = (Arc::new(Metrics::new()), Arc::new(Health::default()));
    let result = nhid_http::serve(&config.http, engine.clone(), metrics.clone(), health.clone())
        .map_err(anyhow::Error::from)
        .and_then(|_| stop_on_signals())
        .and_then(|stop| Ok(nhid_kafka::run_observed(engine, &config.kafka, stop, metrics, health)?));
    match result {
        Ok(report) => summarize(&report),
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs what the run did; a clean exit means every output was acknowledged and committed.
pub(super) fn summarize(report: &Report) -> ExitCode {
    let s = &report.stats;
    tracing::info!(
        messages = s.messages,
        events = s.events,
        alerts = s.alerts.values().sum::<u64>(),
        actions = s.actions.values().sum::<u64>(),
        dead_letters = s.dead_letters_total(),
        committed = ?report.committed,
        "stopped"
    );
    if report.unacknowledged > 0 {
        tracing::error!(
            unacknowledged = report.unacknowledged,
            "outputs were not acknowledged before the grace period ended; their inputs will be read again"
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
