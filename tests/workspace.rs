//! The crate graph is the data flow: each crate of the workspace depends only on crates
//! before it (a cycle would not compile; this catches an edge that compiles but runs against
//! the flow, such as the engine depending on a transport), and the production binary does
//! not depend on the simulator unless the `sim` feature asks for it.

use std::path::Path;

/// The flow, first to last. A crate may depend on the ones before it.
const FLOW: &[&str] = &["nhid-model", "nhid-decode", "nhid-engine", "nhid-http", "nhid-kafka", "nhid-sim", "nhid"];

/// Transports and tools that must not depend on each other, though both come after the engine.
const SIBLINGS: &[(&str, &str)] = &[("nhid-kafka", "nhid-http"), ("nhid-sim", "nhid-http"), ("nhid-sim", "nhid-kafka")];

fn manifest(path: &Path) -> toml::Table {
    std::fs::read_to_string(path).unwrap().parse().unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn workspace_deps(table: &toml::Table, section: &str) -> Vec<(String, bool)> {
    table
        .get(section)
        .and_then(|d| d.as_table())
        .into_iter()
        .flatten()
        .filter(|(name, _)| name.starts_with("nhid"))
        .map(|(name, spec)| (name.clone(), spec.get("optional").and_then(|o| o.as_bool()).unwrap_or(false)))
        .collect()
}

fn position(name: &str) -> usize {
    FLOW.iter().position(|c| *c == name).unwrap_or_else(|| panic!("{name} is not in the flow: add it to FLOW"))
}

#[test]
fn every_crate_depends_only_on_crates_before_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut crates = vec![root.join("Cargo.toml")];
    for entry in std::fs::read_dir(root.join("crates")).unwrap() {
        crates.push(entry.unwrap().path().join("Cargo.toml"));
    }
    assert_eq!(crates.len(), FLOW.len(), "every crate of the workspace has a place in FLOW");
    for path in crates {
        let table = manifest(&path);
        let name = table["package"]["name"].as_str().unwrap().to_string();
        for (dep, optional) in workspace_deps(&table, "dependencies") {
            assert!(position(&dep) < position(&name), "{name} depends on {dep}, which comes after it in the flow");
            assert!(!SIBLINGS.contains(&(name.as_str(), dep.as_str())), "{name} depends on its sibling {dep}");
            if name == "nhid" && dep == "nhid-sim" {
                assert!(optional, "the production binary depends on the simulator only through the `sim` feature");
            }
        }
    }
}
