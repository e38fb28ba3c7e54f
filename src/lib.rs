//! nhid: a stream-processing detector for anomalies of non-human identities.
//!
//! # Layout
//!
//! The modules follow the data flow of `DESIGN.md`, one direction, no back-and-forth:
//!
//! ```text
//! bytes ─► decode ─► (inventory: classify/enrich) ─► state ─► detect ─► respond ─► alerts / actions
//!             └─► dead letters (reason + original bytes)
//! lifecycle, action results ─► control ─► state (revoked credentials, retired principals, offboarded owners)
//! ```
//!
//! - [`time`]: event time (`Millis`) and RFC 3339; nothing here reads the clock.
//! - [`event`]: the canonical [`event::AuditEvent`] every decoder produces.
//! - [`decode`]: per-format decoders (`native`, `cloudtrail`), auto-detection, dead-letter reasons.
//! - [`control`]: the lifecycle and action-result messages that close the loop.
//! - [`inventory`]: the optional inventory file: type overrides, owners, protected principals.
//! - [`state`]: per-identity baselines in a sharded concurrent map, bounded and evicted by event time;
//!   engine-wide facts from the control topics (`state::lifecycle`).
//! - [`detect`]: detector kinds (`detect/<kind>.rs`) and their instances loaded from `detectors/*.toml`.
//! - [`respond`]: alert aggregation and the response policy with its guardrails.
//! - [`pipeline`]: ties the stages together: `Engine::process(bytes, origin) -> outputs`,
//!   `Engine::control(kind, bytes, origin)` for the control topics;
//!   the transports (`replay` over files, the Kafka runtime) only feed it bytes and take outputs.
//! - [`runtime`]: the Kafka transport (`nhid run`, `nhid demo`): consumer group in, an idempotent
//!   producer out, offsets committed only after every output they caused is acknowledged.
//! - [`principals`]: the inventory of tracked identities read from live state (`/principals`).
//! - [`metrics`] and [`http`]: the Prometheus registry and the HTTP endpoint (`/metrics`, `/healthz`,
//!   `/readyz`, `/principals`).
//! - [`simulate`]: a labeled synthetic population with injected attacks, for tests, benches and demos.
//! - [`eval`]: detection quality of a replay against the simulator's labels (`nhid eval`): recall,
//!   detection delay, false alerts per 1,000 principal-days, automatic actions against the innocent.
//! - [`config`]: the typed configuration and `nhid check`.
//! - [`cli`]: the command line (`run`, `demo`, `replay`, `simulate`, `eval`, `check`).
//!
//! # Use as a library
//!
//! A transport hands the engine one message at a time and takes what it produced:
//!
//! ```
//! use nhid::config::Config;
//! use nhid::pipeline::{Origin, Outputs};
//!
//! let engine = Config::default().engine().expect("the built-in detectors load");
//! let mut out = Outputs::default();
//! let message = br#"{"id":"e1","time":"2026-11-23T10:00:00Z",
//!     "principal":{"id":"svc-billing","type":"service_account"},
//!     "credential":{"id":"AKIAEXAMPLE","kind":"static_key"},
//!     "action":"iam:CreateAccessKey","service":"iam","outcome":"success"}"#;
//! engine.process(message, Origin { source: "audit", partition: 0, offset: 42 }, None, &mut out);
//! assert_eq!(out.alerts[0].kind, "privilege_change");
//! assert_eq!(out.actions[0].action.as_str(), "notify_owner");
//! assert!(out.dead_letters.is_empty());
//! ```
//!
//! Messages from the lifecycle and action-results topics go to `Engine::control`; they
//! judge the audit events processed after them:
//!
//! ```
//! # use nhid::config::Config;
//! use nhid::pipeline::{ControlKind, Origin, Outputs};
//!
//! # let engine = Config::default().engine().expect("the built-in detectors load");
//! let mut out = Outputs::default();
//! let revoked = br#"{"id":"l1","time":"2026-11-23T10:00:00Z","type":"credential_revoked",
//!     "credential_id":"AKIAEXAMPLE"}"#;
//! engine.control(ControlKind::Lifecycle, revoked, Origin { source: "lifecycle", partition: 0, offset: 7 }, &mut out);
//! let used = br#"{"id":"e2","time":"2026-11-23T10:30:00Z",
//!     "principal":{"id":"svc-billing","type":"service_account"},
//!     "credential":{"id":"AKIAEXAMPLE","kind":"static_key"},
//!     "action":"s3:GetObject","service":"s3","outcome":"success"}"#;
//! engine.process(used, Origin { source: "audit", partition: 0, offset: 43 }, None, &mut out);
//! assert_eq!(out.alerts[0].kind, "expired_credential");
//! assert_eq!(out.alerts[0].evidence["reason"], "revoked");
//! ```

pub mod cli;
pub mod config;
pub mod control;
pub mod decode;
pub mod detect;
pub mod eval;
pub mod event;
pub mod http;
pub mod inventory;
pub mod metrics;
pub mod pipeline;
pub mod principals;
pub mod respond;
pub mod runtime;
pub mod simulate;
pub mod state;
pub mod time;
