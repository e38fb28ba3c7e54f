//! The typed configuration (`nhid.toml`). Every field has a default, unknown fields are
//! rejected, and validation reports every error at once (exit code 64 in the CLI).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::decode::{DEFAULT_MAX_EVENT_BYTES, Format};
use crate::detect;
use crate::http::HttpConfig;
use crate::inventory::Inventory;
use crate::pipeline::{Engine, EngineConfig};
use crate::respond::policy::ResponseConfig;
use crate::runtime::KafkaConfig;
use crate::state::StateConfig;

/// Exit code for bad configuration (`EX_CONFIG` in sysexits.h).
pub const EXIT_CONFIG: i32 = 64;

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Directory of detector instances (`*.toml`); the built-in set when absent.
    pub detectors_dir: Option<PathBuf>,
    /// Inventory file (owners, type overrides, protected principals); optional.
    pub inventory: Option<PathBuf>,
    #[serde(default)]
    pub decode: DecodeConfig,
    #[serde(default)]
    pub state: StateConfig,
    #[serde(default)]
    pub response: ResponseConfig,
    #[serde(default)]
    pub kafka: KafkaConfig,
    #[serde(default)]
    pub http: HttpConfig,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DecodeConfig {
    /// `auto` detects the format of every message.
    #[serde(default)]
    pub format: Format,
    /// Larger messages are dead-lettered unread (`too_large`).
    #[serde(default = "default_max_event_bytes")]
    pub max_event_bytes: usize,
}

fn default_max_event_bytes() -> usize {
    DEFAULT_MAX_EVENT_BYTES
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig { format: Format::Auto, max_event_bytes: default_max_event_bytes() }
    }
}

impl Config {
    /// Reads and validates a file; a missing `path` gives the defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, Vec<String>> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path).map_err(|e| vec![format!("{}: {e}", path.display())])?;
        let config: Config = toml::from_str(&text).map_err(|e| vec![format!("{}: {e}", path.display())])?;
        let errors = config.validate();
        if errors.is_empty() { Ok(config) } else { Err(errors) }
    }

    pub fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        let mut check = |ok: bool, msg: &str| {
            if !ok {
                errors.push(msg.to_string());
            }
        };
        check(self.decode.max_event_bytes > 0, "decode.max_event_bytes: must be positive");
        check(self.state.max_identities > 0, "state.max_identities: must be positive");
        check(self.state.idle_ttl_secs > 0, "state.idle_ttl_secs: must be positive");
        check(self.response.max_actions_per_minute > 0, "response.max_actions_per_minute: must be positive");
        check(self.response.breaker_cooldown_secs > 0, "response.breaker_cooldown_secs: must be positive");
        errors.extend(self.kafka.validate());
        errors
    }

    /// Loads detectors and inventory and builds the engine, reporting every error at once.
    pub fn engine(&self) -> Result<Engine, Vec<String>> {
        let mut errors = self.validate();
        let detectors = detect::load(self.detectors_dir.as_deref()).map_err(|e| errors.extend(e)).ok();
        let inventory = match &self.inventory {
            None => Some(Inventory::default()),
            Some(p) => Inventory::load(p).map_err(|e| errors.extend(e)).ok(),
        };
        match (detectors, inventory) {
            (Some(d), Some(i)) if errors.is_empty() => Ok(Engine::new(
                d,
                i,
                EngineConfig {
                    format: self.decode.format,
                    normalize: !self.kafka.lanes.is_empty(),
                    max_event_bytes: self.decode.max_event_bytes,
                    state: self.state.clone(),
                    response: self.response.clone(),
                },
            )),
            _ => Err(errors),
        }
    }
}
