//! The Kafka runtime behind `nhid run` and `nhid demo`: audit topics in; alerts, actions,
//! dead letters (and optionally per-lane copies of the normalized events) out, at least once.
//!
//! # Layout
//!
//! Modules follow a message through the runtime:
//!
//! - `config`: the `[kafka]` section ([`KafkaConfig`]), validated before any client connects.
//! - `runtime`: one run, start to stop ([`run`], [`run_observed`], the [`Report`]).
//! - `consumer`: the **consumer thread** polls the group consumer and hands each partition's
//!   messages, in order, to one worker (a partition always goes to the same worker). It
//!   commits every `commit_interval_ms`, and on revocation it drains, flushes and commits
//!   before the partitions go, then releases their identities' state.
//! - `partition`: what the threads share about one assigned input partition.
//! - `worker`: **workers** (one per core by default) run [`Engine::process`] and send what it
//!   produced through the producer.
//! - `rekeyed`: what the re-keying stage adds to the events topic (each event's source and
//!   time, and watermarks), and its workers' account of how far each source has got.
//! - `reorder`: the detection stage's workers hold re-keyed events back until they may go
//!   in event-time order across their sources.
//! - `output`: the idempotent producer; **its thread** receives delivery reports and marks
//!   outputs acknowledged in their input partition's [`Progress`].
//! - `changelog`: identity state as records of a compacted topic, written by the workers
//!   between messages and restored on assignment instead of re-reading days of input.
//! - `progress`: which input offset may be committed: only one whose outputs are all
//!   acknowledged.
//! - `error`: why a run could not start or did not end cleanly; `internal_events`: the
//!   errors it logs, counts (`nhid_kafka_errors_total{kind}`) and carries on from.
//!
//! Back-pressure runs backwards through bounded queues: a full producer queue blocks the
//! worker, a busy worker blocks the consumer thread, and librdkafka stops fetching.
//!
//! [`Engine::process`]: nhid_engine::Engine::process

mod changelog;
mod config;
mod consumer;
mod error;
mod facts;
mod internal_events;
mod output;
mod partition;
mod progress;
// librdkafka's own queues and batch reads, which rdkafka does not wrap: the crate's only
// `unsafe` (the workspace forbids it; this crate denies it, and allows it there alone).
#[allow(unsafe_code)]
mod queue;
mod rekeyed;
mod reorder;
mod runtime;
mod worker;

pub use config::{KafkaConfig, Stage};
pub use error::Error;
pub use output::Latency;
pub use progress::Progress;
pub use runtime::{Report, run, run_observed};
