//! Helpers shared by integration tests. Each test binary compiles this module on its own
//! and uses only part of it.
#![allow(dead_code)]

pub mod broker;
pub mod dashboard;
pub mod kafka;

use std::path::PathBuf;

use serde_json::Value;

/// Path of `schemas/<name>.schema.json` in this crate.
pub fn schema_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas").join(format!("{name}.schema.json"))
}

/// The schema document itself, as JSON (for its `examples`, its enums, ...).
pub fn schema_json(name: &str) -> Value {
    let path = schema_path(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not valid json: {e}", path.display()))
}

/// A draft 2020-12 validator for `schemas/<name>.schema.json`. Format assertions are on, so
/// `date-time` and `uuid` are checked rather than treated as annotations (the 2020-12 default).
pub fn schema(name: &str) -> jsonschema::Validator {
    let doc = schema_json(name);
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&doc)
        .unwrap_or_else(|e| panic!("schemas/{name}.schema.json does not compile: {e}"))
}

/// Every validation error of `instance` against `schema`, one line each (`path: message`).
pub fn errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator.iter_errors(instance).map(|e| format!("{}: {e}", display_path(&e.instance_path().to_string()))).collect()
}

/// Panics listing every validation error of `instance` against `schemas/<name>.schema.json`.
pub fn assert_valid(name: &str, instance: &Value) {
    let errors = errors(&schema(name), instance);
    if !errors.is_empty() {
        panic!(
            "instance does not match schemas/{name}.schema.json:\n  {}\ninstance: {}",
            errors.join("\n  "),
            serde_json::to_string_pretty(instance).unwrap_or_default()
        );
    }
}

/// Panics unless `instance` fails `schemas/<name>.schema.json`; returns the errors so a
/// test can check it failed for the intended reason.
pub fn assert_invalid(name: &str, instance: &Value) -> Vec<String> {
    let errors = errors(&schema(name), instance);
    assert!(
        !errors.is_empty(),
        "instance unexpectedly matches schemas/{name}.schema.json: {}",
        serde_json::to_string_pretty(instance).unwrap_or_default()
    );
    errors
}

fn display_path(pointer: &str) -> &str {
    if pointer.is_empty() { "(root)" } else { pointer }
}
