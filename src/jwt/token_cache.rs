//! Per-isolate cache of tokens whose signature already verified, keyed by the token itself
//! (exact match: no digest to compute per request, no collision to reason about). It only
//! skips signature work: claims are checked again on every hit, and an entry never outlives
//! the token's `exp`. Memory is bounded by capacity × `MAX_TOKEN_BYTES`.
//!
//! A token is stored the second time it verifies, not the first (a "doorkeeper", as in
//! TinyLFU): the first time only a 64-bit fingerprint is kept. Tokens seen once — every token
//! of a client that sends one request per token, or a flood of fresh tokens — then neither
//! push reused tokens out nor fill the isolate's memory with entries nobody asks for again; a
//! reused token pays one more signature check per isolate (more only when, between its first
//! two verifications, another new token's fingerprint took its slot: one slot per entry, at
//! most 4096).

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::BuildHasher;

/// Default of `VERIFIED_TOKEN_CACHE_SIZE`.
pub const DEFAULT_TOKEN_CACHE_SIZE: usize = 1024;

/// Slots of the doorkeeper: one per entry, at most this many (32 KiB).
const MAX_SEEN_SLOTS: usize = 4096;

/// A bounded map from token to a value, each entry valid until its `exp`.
#[derive(Debug)]
pub struct TokenCache<T> {
    capacity: usize,
    entries: RefCell<HashMap<Box<str>, (u64, T)>>,
    /// Fingerprints of tokens offered once and not stored (direct-mapped: a slot keeps the
    /// latest; 0 = empty). Allocated on first use.
    seen: RefCell<Vec<u64>>,
}

impl<T: Clone> TokenCache<T> {
    /// A cache of at most `capacity` entries; 0 disables it.
    pub fn new(capacity: usize) -> Self {
        TokenCache { capacity, entries: RefCell::new(HashMap::new()), seen: RefCell::new(Vec::new()) }
    }

    /// The cached value for `token`, if present and `now < exp` (expired entries are dropped).
    pub fn get(&self, token: &str, now: u64) -> Option<T> {
        if self.capacity == 0 {
            return None;
        }
        let mut entries = self.entries.borrow_mut();
        match entries.get(token) {
            Some((exp, v)) if now < *exp => Some(v.clone()),
            Some(_) => {
                entries.remove(token);
                None
            }
            None => None,
        }
    }

    /// Offers `value` for `token` (whose signature just verified), valid until `exp`: stored
    /// if this token was offered before (see the module doc), else only its fingerprint is
    /// kept. Returns whether it was stored.
    pub fn offer(&self, token: &str, exp: u64, now: u64, value: T) -> bool {
        if self.capacity == 0 || now >= exp {
            return false;
        }
        let hash = self.fingerprint(token);
        let mut seen = self.seen.borrow_mut();
        if seen.is_empty() {
            seen.resize(self.capacity.min(MAX_SEEN_SLOTS), 0);
        }
        // The slot comes from the whole hash (the remainder is below the slot count, a usize);
        // the mark kept in it is never 0, so that 0 can mark an empty slot.
        let slot = (hash % seen.len() as u64) as usize;
        let mark = hash | 1;
        if seen[slot] != mark {
            seen[slot] = mark;
            return false;
        }
        seen[slot] = 0;
        drop(seen);
        self.insert(token, exp, now, value);
        true
    }

    /// The doorkeeper's 64-bit hash of `token` (keyed like the cache's own map).
    fn fingerprint(&self, token: &str) -> u64 {
        self.entries.borrow().hasher().hash_one(token)
    }

    /// Stores `value` for `token` until `exp`, without the doorkeeper. When full, expired
    /// entries go first, then the entries that expire soonest (an eighth of the capacity at a
    /// time).
    fn insert(&self, token: &str, exp: u64, now: u64, value: T) {
        let mut entries = self.entries.borrow_mut();
        if !entries.contains_key(token) && entries.len() >= self.capacity {
            entries.retain(|_, (e, _)| now < *e);
            if entries.len() >= self.capacity {
                // Evict a batch (an eighth of the capacity, at least one) of the entries that
                // expire soonest, so a stream of new tokens pays for a sweep once per batch
                // rather than on every insert.
                let target = self.capacity - (self.capacity / 8).max(1);
                let mut by_exp: Vec<u64> = entries.values().map(|(e, _)| *e).collect();
                by_exp.sort_unstable();
                let excess = entries.len() - target;
                // The `excess` soonest to expire: all before the excess-th soonest `exp`, then
                // as many expiring exactly then as are still needed.
                let limit = by_exp[excess - 1];
                let mut ties = excess - by_exp.partition_point(|e| *e < limit);
                entries.retain(|_, (e, _)| {
                    if *e < limit {
                        return false;
                    }
                    if *e == limit && ties > 0 {
                        ties -= 1;
                        return false;
                    }
                    true
                });
            }
        }
        entries.insert(token.into(), (exp, value));
    }

    /// Number of entries (expired ones included until touched).
    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_end_at_exp() {
        let c = TokenCache::new(4);
        put(&c, "t", 100, 10, 1);
        assert_eq!(c.get("t", 99), Some(1));
        assert_eq!(c.get("t", 100), None);
        assert!(c.is_empty());
        assert!(!c.offer("old", 50, 60, 2) && !c.offer("old", 50, 60, 2));
        assert!(c.is_empty(), "already expired tokens are not stored");
    }

    #[test]
    fn bounded_with_eviction() {
        let c = TokenCache::new(2);
        put(&c, "a", 100, 0, 'a');
        put(&c, "b", 200, 0, 'b');
        put(&c, "c", 300, 0, 'c');
        assert_eq!(c.len(), 2);
        assert_eq!((c.get("a", 1), c.get("b", 1), c.get("c", 1)), (None, Some('b'), Some('c')));
        // Expired entries are evicted first.
        put(&c, "d", 400, 250, 'd');
        assert_eq!((c.get("c", 251), c.get("d", 251)), (Some('c'), Some('d')));
    }

    #[test]
    fn a_full_cache_evicts_an_eighth_of_the_soonest_expiring_at_once() {
        let c = TokenCache::new(16);
        for i in 0..16u64 {
            put(&c, format!("t{i}").as_str(), 100 + i, 0, i);
        }
        put(&c, "new", 1000, 0, 99);
        assert_eq!(c.len(), 15);
        assert_eq!((c.get("t0", 1), c.get("t1", 1), c.get("t2", 1)), (None, None, Some(2)));
        assert_eq!(c.get("new", 1), Some(99));
        // The next insert has room: no sweep, nothing else evicted.
        put(&c, "newer", 1000, 0, 98);
        assert_eq!(c.len(), 16);
    }

    #[test]
    fn eviction_among_equal_expiry_removes_exactly_the_batch() {
        let c = TokenCache::new(16);
        for i in 0..16u64 {
            put(&c, format!("t{i}").as_str(), 500, 0, i);
        }
        put(&c, "new", 1000, 0, 99);
        assert_eq!(c.len(), 15, "two of the sixteen equal entries went, the new one came in");
        assert_eq!((0..16).filter(|i| c.get(&format!("t{i}"), 1).is_some()).count(), 14);
        assert_eq!(c.get("new", 1), Some(99));
    }

    #[test]
    fn a_hit_needs_the_whole_token() {
        let c = TokenCache::new(4);
        put(&c, "header.payload.signature", 100, 0, 1);
        assert_eq!(c.get("header.payload.signature", 1), Some(1));
        assert_eq!(c.get("header.payload.signaturX", 1), None);
        assert_eq!(c.get("header.payload.", 1), None);
    }

    #[test]
    fn zero_disables() {
        let c = TokenCache::new(0);
        assert!(!c.offer("a", 100, 0, 1) && !c.offer("a", 100, 0, 1));
        assert_eq!(c.get("a", 1), None);
    }

    #[test]
    fn a_token_is_stored_the_second_time_it_is_offered() {
        let c = TokenCache::new(4);
        // Another token whose fingerprint takes another of the four slots (the hash is keyed
        // at random per process).
        let slot = |t: &str| c.fingerprint(t) % 4;
        let b = (0..).map(|i| format!("b{i}")).find(|b| slot(b) != slot("a")).unwrap();
        assert!(!c.offer("a", 100, 0, 1), "first sighting: fingerprint only");
        assert_eq!((c.get("a", 1), c.len()), (None, 0));
        assert!(!c.offer(&b, 100, 0, 2));
        assert!(c.offer("a", 100, 0, 1), "second sighting, with another token in between");
        assert_eq!((c.get("a", 1), c.get(&b, 1)), (Some(1), None));
        // A stream of one-off tokens leaves the stored one alone and stores nothing.
        for i in 0..100 {
            assert!(!c.offer(&format!("once-{i}"), 100, 0, 3));
        }
        assert_eq!((c.get("a", 1), c.len()), (Some(1), 1));
    }

    #[test]
    fn the_doorkeeper_keeps_one_fingerprint_per_slot() {
        // One slot: a different token in between overwrites the first sighting.
        let c = TokenCache::new(1);
        assert!(!c.offer("a", 100, 0, 1));
        assert!(!c.offer("b", 100, 0, 2));
        assert!(!c.offer("a", 100, 0, 1), "counted as a first sighting again");
        assert!(c.offer("a", 100, 0, 1));
        // Slots are bounded whatever the capacity.
        let big = TokenCache::new(usize::MAX);
        assert!(!big.offer("a", 100, 0, 1) && big.offer("a", 100, 0, 1));
        assert_eq!(big.seen.borrow().len(), MAX_SEEN_SLOTS);
        // Every slot is in use, odd and even: a thousand one-off tokens in 1024 slots leave
        // marks in both halves.
        let c = TokenCache::new(1024);
        for i in 0..1000 {
            c.offer(&format!("once-{i}"), 100, 0, 0);
        }
        let used: Vec<usize> = c.seen.borrow().iter().enumerate().filter(|(_, m)| **m != 0).map(|(i, _)| i).collect();
        assert!(used.iter().any(|i| i % 2 == 0) && used.iter().any(|i| i % 2 == 1), "{} slots used", used.len());
        assert!(used.len() > 512, "{} slots used", used.len());
    }

    /// Stores through the doorkeeper: the first offer keeps the fingerprint, the second stores.
    fn put<T: Clone>(c: &TokenCache<T>, token: &str, exp: u64, now: u64, value: T) {
        if now < exp {
            assert!(!c.offer(token, exp, now, value.clone()), "{token}: stored on its first offer");
        }
        c.offer(token, exp, now, value);
    }
}
