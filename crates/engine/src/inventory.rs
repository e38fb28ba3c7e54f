//! The optional inventory file: what the organisation knows about its principals.
//!
//! ```toml
//! [[principal]]
//! match = "arn:aws:iam::123456789012:role/billing-*"   # exact id or glob
//! type = "service_account"          # overrides what the decoder derived
//! owner = "team-billing"
//! criticality = "high"              # low | medium | high | critical
//! protected = true                  # never acted on automatically
//! auto_revoke = false               # alerts and owner notices only
//! ```
//! The first entry in file order that matches wins. Matching happens once per identity,
//! when it is first seen, never per event.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use nhid_model::event::PrincipalType;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Criticality {
    Low,
    Medium,
    High,
    Critical,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    #[serde(rename = "match")]
    pub pattern: String,
    #[serde(rename = "type")]
    pub kind: Option<PrincipalType>,
    pub owner: Option<String>,
    pub criticality: Option<Criticality>,
    #[serde(default)]
    pub protected: bool,
    /// `None` means allowed (the default policy decides).
    pub auto_revoke: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    principal: Vec<Entry>,
}

/// One problem with the inventory file.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("{0}")]
    Read(std::io::Error),
    #[error("{0}")]
    Toml(toml::de::Error),
    #[error("principal[{index}]: empty match")]
    EmptyMatch { index: usize },
    #[error("principal[{index}]: match {pattern:?}: {source}")]
    Glob { index: usize, pattern: String, source: globset::Error },
    #[error("{0}")]
    Globs(globset::Error),
}

/// Every problem with the inventory, so that one run shows them all: one a line, after
/// the file's path when it was read from one.
#[derive(Debug, thiserror::Error)]
pub struct InventoryErrors {
    pub path: Option<PathBuf>,
    pub problems: Vec<Problem>,
}

impl InventoryErrors {
    /// Each problem as its own message, for callers that print them with others.
    pub fn messages(&self) -> impl Iterator<Item = String> + '_ {
        self.problems.iter().map(|p| match &self.path {
            Some(path) => format!("{}: {p}", path.display()),
            None => p.to_string(),
        })
    }
}

impl std::fmt::Display for InventoryErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.messages().collect::<Vec<_>>().join("\n"))
    }
}

#[derive(Debug, Default)]
pub struct Inventory {
    entries: Vec<Entry>,
    exact: HashMap<String, u32>,
    globs: GlobSet,
    /// Entry index of each glob in `globs`.
    glob_entries: Vec<u32>,
}

impl Inventory {
    pub fn load(path: &Path) -> Result<Self, InventoryErrors> {
        let in_file = |problems| InventoryErrors { path: Some(path.to_path_buf()), problems };
        let text = std::fs::read_to_string(path).map_err(|e| in_file(vec![Problem::Read(e)]))?;
        Self::parse(&text).map_err(|e| in_file(e.problems))
    }

    pub fn parse(text: &str) -> Result<Self, InventoryErrors> {
        let errors = |problems| InventoryErrors { path: None, problems };
        let file: File = toml::from_str(text).map_err(|e| errors(vec![Problem::Toml(e)]))?;
        let mut problems = Vec::new();
        let mut inv = Inventory::default();
        let mut builder = GlobSetBuilder::new();
        for (index, entry) in file.principal.iter().enumerate() {
            if entry.pattern.is_empty() {
                problems.push(Problem::EmptyMatch { index });
            } else if entry.pattern.contains(['*', '?', '[', '{']) {
                match Glob::new(&entry.pattern) {
                    Ok(g) => {
                        builder.add(g);
                        inv.glob_entries.push(index as u32);
                    }
                    Err(source) => problems.push(Problem::Glob { index, pattern: entry.pattern.clone(), source }),
                }
            } else {
                inv.exact.entry(entry.pattern.clone()).or_insert(index as u32);
            }
        }
        inv.globs = builder.build().map_err(|e| errors(vec![Problem::Globs(e)]))?;
        inv.entries = file.principal;
        if problems.is_empty() { Ok(inv) } else { Err(errors(problems)) }
    }

    /// The first entry in file order matching `principal_id`.
    pub fn resolve(&self, principal_id: &str) -> Option<u32> {
        if self.entries.is_empty() {
            return None;
        }
        let exact = self.exact.get(principal_id).copied();
        let glob = self.globs.matches(principal_id).into_iter().map(|g| self.glob_entries[g]).min();
        exact.into_iter().chain(glob).min()
    }

    pub fn entry(&self, index: Option<u32>) -> Option<&Entry> {
        self.entries.get(index? as usize)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[[principal]]
match = "svc-payments"
protected = true
owner = "team-pay"

[[principal]]
match = "svc-*"
type = "workload"
auto_revoke = false

[[principal]]
match = "svc-batch"
owner = "never-reached-for-owner"
"#;

    #[test]
    fn first_match_in_file_order_wins_exact_or_glob() {
        let inv = Inventory::parse(FILE).unwrap();
        let pay = inv.entry(inv.resolve("svc-payments")).unwrap();
        assert!(pay.protected);
        let batch = inv.entry(inv.resolve("svc-batch")).unwrap();
        assert_eq!(batch.kind, Some(PrincipalType::Workload));
        assert_eq!(batch.auto_revoke, Some(false));
        assert!(inv.resolve("key-1").is_none());
    }

    #[test]
    fn all_errors_at_once() {
        let errs = Inventory::parse("[[principal]]\nmatch = \"\"\n[[principal]]\nmatch = \"a[\"\n").unwrap_err();
        assert_eq!(errs.problems.len(), 2, "{errs}");
        assert!(Inventory::parse("[[principal]]\nmatch = \"x\"\ncolour = 1\n").is_err());
    }
}
