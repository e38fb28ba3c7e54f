//! nhid: a stream-processing detector for anomalies of non-human identities.
//!
//! # Layout
//!
//! The workspace's crates follow the data flow of `DESIGN.md`; each depends only on the
//! ones before it, so the flow cannot run backwards:
//!
//! ```text
//! nhid-model   time, the canonical AuditEvent, the shared vocabulary (severity, response, action, dead-letter reason)
//! nhid-decode  bytes ─► AuditEvent per format (auto-detected), control messages; dead-letter reasons
//! nhid-engine  inventory ─► state ─► detect ─► respond: Engine::process(bytes) -> alerts, actions, dead letters
//! nhid-kafka   the Kafka transport: consumer group in, idempotent producer out, at-least-once offsets
//! nhid-http    /metrics, /healthz, /readyz, /principals
//! nhid         this crate: the configuration and the command line (`run`, `replay`, `check`)
//! nhid-sim     simulator and evaluation; the `nhid-sim` tool (feature `sim`), never in `nhid`
//! ```
//!
//! - [`config`]: the typed configuration tree, layered (file, environment), validated at once.
//! - [`cli`]: the production commands; [`cli::replay`] also feeds `nhid-sim eval`.

#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
