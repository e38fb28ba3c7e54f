//! Which principal each credential belongs to: the first that presented it. A key, token or
//! certificate authenticates one principal; the same one presented under a second is a copy
//! between identities, or events forged so that nhid would revoke another's credential
//! (a protected principal's key named under a principal nhid may act on). Either way the
//! credential is not the second principal's to lose: a finding, and never containment.

use dashmap::DashMap;
use foldhash::fast::RandomState;
use xxhash_rust::xxh3::xxh3_64;

use nhid_model::time::Millis;

/// Credential to its principal, by hashes of their ids: 24 bytes a credential, bounded.
pub struct CredentialBindings {
    map: DashMap<u64, Bound, RandomState>,
    cap: usize,
}

#[derive(Clone, Copy, Debug)]
struct Bound {
    principal: u64,
    last_seen: Millis,
}

impl CredentialBindings {
    /// Keeps at most `cap` credentials; past it, the least recently bound half is forgotten
    /// (a rotated key, an expired session's token), so forgetting is not per insert.
    pub fn new(cap: usize) -> Self {
        CredentialBindings { map: DashMap::with_hasher(RandomState::default()), cap: cap.max(2) }
    }

    /// Binds `credential` to `principal` if it is bound to none; returns whether it is bound
    /// to another. Called at a principal's first use of a credential, not per event.
    pub fn bind(&self, credential: &str, principal: &str, t: Millis) -> bool {
        let (c, p) = (xxh3_64(credential.as_bytes()), xxh3_64(principal.as_bytes()));
        let mut foreign = false;
        let mut grew = false;
        self.map
            .entry(c)
            .and_modify(|b| {
                foreign = b.principal != p;
                b.last_seen = b.last_seen.max(t);
            })
            .or_insert_with(|| {
                grew = true;
                Bound { principal: p, last_seen: t }
            });
        if grew && self.map.len() > self.cap {
            let seen = self.map.iter().map(|e| e.value().last_seen).collect();
            let cutoff = super::keep_newest(seen, self.cap / 2);
            self.map.retain(|_, b| b.last_seen >= cutoff);
        }
        foreign
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_belongs_to_the_first_principal_that_presented_it() {
        let bindings = CredentialBindings::new(100);
        assert!(!bindings.bind("AKIAPAYMENTS", "svc-payments", 0));
        assert!(!bindings.bind("AKIAPAYMENTS", "svc-payments", 10));
        assert!(bindings.bind("AKIAPAYMENTS", "svc-intruder", 20));
        assert!(!bindings.bind("AKIAOTHER", "svc-intruder", 30));
    }

    #[test]
    fn past_its_ceiling_it_forgets_the_least_recently_bound() {
        let bindings = CredentialBindings::new(10);
        for i in 0..11 {
            bindings.bind(&format!("key-{i}"), "svc", i);
        }
        assert!(bindings.len() <= 10 && bindings.len() >= 5, "{}", bindings.len());
        // The newest binding is kept: another principal presenting it is still foreign.
        assert!(bindings.bind("key-10", "svc-other", 20));
    }
}
