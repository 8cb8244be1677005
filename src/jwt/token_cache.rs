//! Per-isolate cache of tokens whose signature already verified, keyed by SHA-256 of the whole
//! token. It only skips signature work: claims are checked again on every hit, and an entry
//! never outlives the token's `exp`.

use std::cell::RefCell;
use std::collections::HashMap;

use sha2::{Digest, Sha256};

/// Default of `VERIFIED_TOKEN_CACHE_SIZE`.
pub const DEFAULT_TOKEN_CACHE_SIZE: usize = 1024;

/// A bounded map from token hash to a value, each entry valid until its `exp`.
#[derive(Debug)]
pub struct TokenCache<T> {
    capacity: usize,
    entries: RefCell<HashMap<[u8; 32], (u64, T)>>,
}

/// SHA-256 of a whole token: computed once per request, used for the lookup and the insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenKey([u8; 32]);

impl TokenKey {
    pub fn of(token: &str) -> Self {
        TokenKey(Sha256::digest(token.as_bytes()).into())
    }
}

impl From<&str> for TokenKey {
    fn from(token: &str) -> Self {
        TokenKey::of(token)
    }
}

impl<T: Clone> TokenCache<T> {
    /// A cache of at most `capacity` entries; 0 disables it.
    pub fn new(capacity: usize) -> Self {
        TokenCache { capacity, entries: RefCell::new(HashMap::new()) }
    }

    /// The cached value for `token`, if present and `now < exp` (expired entries are dropped).
    pub fn get(&self, token: impl Into<TokenKey>, now: u64) -> Option<T> {
        if self.capacity == 0 {
            return None;
        }
        let k = token.into().0;
        let mut entries = self.entries.borrow_mut();
        match entries.get(&k) {
            Some((exp, v)) if now < *exp => Some(v.clone()),
            Some(_) => {
                entries.remove(&k);
                None
            }
            None => None,
        }
    }

    /// Remembers `value` for `token` until `exp`. When full, expired entries go first, then the
    /// entries that expire soonest (an eighth of the capacity at a time).
    pub fn insert(&self, token: impl Into<TokenKey>, exp: u64, now: u64, value: T) {
        if self.capacity == 0 || now >= exp {
            return;
        }
        let k = token.into().0;
        let mut entries = self.entries.borrow_mut();
        if !entries.contains_key(&k) && entries.len() >= self.capacity {
            entries.retain(|_, (e, _)| now < *e);
            if entries.len() >= self.capacity {
                // Evict a batch (an eighth of the capacity, at least one) of the entries that
                // expire soonest, so a stream of new tokens pays for a sweep once per batch
                // rather than on every insert.
                let target = self.capacity - (self.capacity / 8).max(1);
                let mut by_exp: Vec<([u8; 32], u64)> = entries.iter().map(|(k, (e, _))| (*k, *e)).collect();
                by_exp.sort_unstable_by_key(|(_, e)| *e);
                let excess = entries.len() - target;
                for (old, _) in by_exp.into_iter().take(excess) {
                    entries.remove(&old);
                }
            }
        }
        entries.insert(k, (exp, value));
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
        c.insert("t", 100, 10, 1);
        assert_eq!(c.get("t", 99), Some(1));
        assert_eq!(c.get("t", 100), None);
        assert!(c.is_empty());
        c.insert("old", 50, 60, 2);
        assert!(c.is_empty(), "already expired tokens are not stored");
    }

    #[test]
    fn bounded_with_eviction() {
        let c = TokenCache::new(2);
        c.insert("a", 100, 0, 'a');
        c.insert("b", 200, 0, 'b');
        c.insert("c", 300, 0, 'c');
        assert_eq!(c.len(), 2);
        assert_eq!((c.get("a", 1), c.get("b", 1), c.get("c", 1)), (None, Some('b'), Some('c')));
        // Expired entries are evicted first.
        c.insert("d", 400, 250, 'd');
        assert_eq!((c.get("c", 251), c.get("d", 251)), (Some('c'), Some('d')));
    }

    #[test]
    fn a_full_cache_evicts_an_eighth_of_the_soonest_expiring_at_once() {
        let c = TokenCache::new(16);
        for i in 0..16u64 {
            c.insert(format!("t{i}").as_str(), 100 + i, 0, i);
        }
        c.insert("new", 1000, 0, 99);
        assert_eq!(c.len(), 15);
        assert_eq!((c.get("t0", 1), c.get("t1", 1), c.get("t2", 1)), (None, None, Some(2)));
        assert_eq!(c.get("new", 1), Some(99));
        // The next insert has room: no sweep, nothing else evicted.
        c.insert("newer", 1000, 0, 98);
        assert_eq!(c.len(), 16);
    }

    #[test]
    fn zero_disables() {
        let c = TokenCache::new(0);
        c.insert("a", 100, 0, 1);
        assert_eq!(c.get("a", 1), None);
    }
}
