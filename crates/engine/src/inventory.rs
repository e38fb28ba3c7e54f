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
use std::path::Path;

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

#[derive(Debug, Default)]
pub struct Inventory {
    entries: Vec<Entry>,
    exact: HashMap<String, u32>,
    globs: GlobSet,
    /// Entry index of each glob in `globs`.
    glob_entries: Vec<u32>,
}

impl Inventory {
    pub fn load(path: &Path) -> Result<Self, Vec<String>> {
        let text = std::fs::read_to_string(path).map_err(|e| vec![format!("{}: {e}", path.display())])?;
        Self::parse(&text).map_err(|es| es.into_iter().map(|e| format!("{}: {e}", path.display())).collect())
    }

    pub fn parse(text: &str) -> Result<Self, Vec<String>> {
        let file: File = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        let mut errors = Vec::new();
        let mut inv = Inventory::default();
        let mut builder = GlobSetBuilder::new();
        for (i, entry) in file.principal.iter().enumerate() {
            if entry.pattern.is_empty() {
                errors.push(format!("principal[{i}]: empty match"));
            } else if entry.pattern.contains(['*', '?', '[', '{']) {
                match Glob::new(&entry.pattern) {
                    Ok(g) => {
                        builder.add(g);
                        inv.glob_entries.push(i as u32);
                    }
                    Err(e) => errors.push(format!("principal[{i}]: match {:?}: {e}", entry.pattern)),
                }
            } else {
                inv.exact.entry(entry.pattern.clone()).or_insert(i as u32);
            }
        }
        inv.globs = builder.build().map_err(|e| vec![e.to_string()])?;
        inv.entries = file.principal;
        if errors.is_empty() { Ok(inv) } else { Err(errors) }
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
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(Inventory::parse("[[principal]]\nmatch = \"x\"\ncolour = 1\n").is_err());
    }
}
