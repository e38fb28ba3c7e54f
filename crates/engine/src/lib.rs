//! The engine: one message in, alerts, actions and dead letters out.
//!
//! # Layout
//!
//! The modules follow the data flow of `DESIGN.md`, one direction:
//!
//! ```text
//! bytes ─► nhid_decode ─► inventory (classify, enrich) ─► state ─► detect ─► respond ─► alerts / actions
//!             └─► dead letters (reason + original bytes)
//! lifecycle, action results ─► Engine::control ─► state::lifecycle (revoked credentials, retired principals)
//! ```
//!
//! - [`inventory`]: the optional inventory file: type overrides, owners, protected principals.
//! - [`state`]: per-identity baselines in a sharded concurrent map, bounded and evicted by event
//!   time; engine-wide facts from the control topics ([`state::lifecycle`]).
//! - [`detect`]: detector kinds (`detect/<kind>.rs`) and their instances from `detectors/*.toml`.
//! - [`respond`]: alert aggregation and the response policy with its guardrails.
//! - [`Engine`]: ties the stages together; transports (file replay, Kafka) only feed it bytes
//!   and take [`Outputs`].
//! - [`metrics`]: the Prometheus registry the transports and the HTTP endpoint share, and the
//!   process's readiness ([`metrics::Health`]).
//!
//! # Use as a library
//!
//! A transport hands the engine one message at a time and takes what it produced:
//!
//! ```
//! use nhid_engine::{Engine, EngineConfig, Origin, Outputs, detect, inventory::Inventory};
//!
//! let detectors = detect::load(None).expect("the built-in detectors load");
//! let engine = Engine::new(detectors, Inventory::default(), EngineConfig::default());
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
//! # use nhid_engine::{Engine, EngineConfig, detect, inventory::Inventory};
//! use nhid_engine::{ControlKind, Origin, Outputs};
//!
//! # let engine = Engine::new(detect::load(None).unwrap(), Inventory::default(), EngineConfig::default());
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

pub mod context;
pub mod detect;
mod engine;
pub mod inventory;
pub mod metrics;
pub mod respond;
pub mod rules;
pub mod state;

pub use engine::*;
