//! Memos of context's pure functions of a string (a user agent's client, an address's place
//! and network), one per worker thread.
//!
//! An identity mostly repeats its user agent and its address, and a fleet shares a few:
//! normalising a user agent takes 70-700 ns and placing an address about 80 ns, a lookup
//! here a hash of the string and one comparison.
//! - Exact: a slot answers only for the very string it was computed from, compared whole
//!   (never by hash alone), within the same scope (the [`super::network::Ranges`] an
//!   address was placed by); what is memoised depends on nothing else.
//! - Bounded: a fixed number of slots, direct-mapped by hash; a new string replaces the one
//!   in its slot, reusing its buffer (no allocation once the slots are warm). Keys longer
//!   than the memo's limit are not memoised.
//! - Per thread: no lock on the hot path; workers see the same sources anyway.

use xxhash_rust::xxh3::xxh3_64_with_seed;

pub(crate) struct Memo<V> {
    slots: Box<[Slot<V>]>,
    max_key: usize,
}

struct Slot<V> {
    hash: u64,
    scope: u64,
    key: String,
    value: Option<V>,
}

impl<V: Copy> Memo<V> {
    /// `slots` is rounded up to a power of two; keys longer than `max_key` bytes pass through.
    pub(crate) fn new(slots: usize, max_key: usize) -> Self {
        let slots = (0..slots.next_power_of_two())
            .map(|_| Slot { hash: 0, scope: 0, key: String::new(), value: None })
            .collect();
        Memo { slots, max_key }
    }

    /// The value memoised for `key` in `scope`, else `compute`'s, memoised when it gives one.
    pub(crate) fn get_or_insert_with(
        &mut self,
        scope: u64,
        key: &str,
        compute: impl FnOnce() -> Option<V>,
    ) -> Option<V> {
        if key.len() > self.max_key {
            return compute();
        }
        let hash = xxh3_64_with_seed(key.as_bytes(), scope);
        let i = hash as usize & (self.slots.len() - 1);
        let slot = &mut self.slots[i];
        if slot.value.is_some() && slot.hash == hash && slot.scope == scope && slot.key == key {
            return slot.value;
        }
        let value = compute()?;
        slot.key.clear();
        slot.key.push_str(key);
        (slot.hash, slot.scope, slot.value) = (hash, scope, Some(value));
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_only_for_the_same_key_and_scope() {
        let mut memo = Memo::new(1, 8);
        let calls = std::cell::Cell::new(0);
        let mut get = |scope: u64, key: &str| {
            memo.get_or_insert_with(scope, key, || {
                calls.set(calls.get() + 1);
                Some(key.len() + scope as usize)
            })
        };
        assert_eq!(get(0, "abc"), Some(3));
        assert_eq!(get(0, "abc"), Some(3));
        assert_eq!(get(1, "abc"), Some(4), "another scope: computed again");
        assert_eq!(get(0, "abcd"), Some(4), "one slot: replaced");
        assert_eq!(get(0, "a very long key"), Some(15), "too long: passed through");
        assert_eq!(get(0, "abcd"), Some(4));
        assert_eq!(calls.get(), 4);
    }
}
