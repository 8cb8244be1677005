//! The per-isolate staleness cache: "not revoked" answers reused for at most
//! `REVOCATION_CACHE_SECS`, so that a revocation takes effect within that bound.
//!
//! Only answers that let a credential through are stored; a "revoked" answer is never stored,
//! so the cache can delay a revocation by at most its validity and never undo one. Bounded to
//! [`MAX_ENTRIES`]: expired entries go first, then the oldest eighth.

use std::collections::HashMap;

use super::session::Session;

/// Most entries one isolate keeps.
pub const MAX_ENTRIES: usize = 4096;

/// What an entry is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CacheKey {
    /// A JWT: issuer, subject, `jti` (if any) and whether it is a refresh token.
    Jwt { iss: String, sub: String, jti: Option<String>, refresh: bool },
    /// An opaque session, by token hash.
    Session(String),
}

/// The remembered answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached {
    /// The `jti` was not blacklisted (and a refresh token was present); `cutoff` is the subject
    /// cutoff that was read (checked again against each token's `iat`).
    Jwt { cutoff: Option<u64>, permissions: Vec<String> },
    /// The session existed; `renewed_at` is when its TTL was last renewed.
    Session { session: Session, permissions: Vec<String>, renewed_at: u64 },
}

#[derive(Debug, Clone)]
struct Entry {
    value: Cached,
    stored_at: u64,
    valid_until: u64,
}

/// Bounded map from [`CacheKey`] to a [`Cached`] answer with its time of validity.
#[derive(Debug, Default)]
pub struct Cache {
    entries: HashMap<CacheKey, Entry>,
}

impl Cache {
    /// The answer for `key` if still valid at `now`, with the time it was read from the store.
    pub fn get(&mut self, key: &CacheKey, now: u64) -> Option<(Cached, u64)> {
        match self.entries.get(key) {
            Some(e) if now < e.valid_until => Some((e.value.clone(), e.stored_at)),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Remembers an answer read at `now` until `valid_until` (exclusive); no-op if that is not
    /// after `now`.
    pub fn put(&mut self, key: CacheKey, value: Cached, now: u64, valid_until: u64) {
        if valid_until <= now {
            return;
        }
        if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(&key) {
            self.entries.retain(|_, e| now < e.valid_until);
            if self.entries.len() >= MAX_ENTRIES {
                // Evict the oldest eighth at once: a stream of new credentials then pays for a
                // sweep once per batch rather than on every insert.
                let mut by_age: Vec<(u64, CacheKey)> = self.entries.iter().map(|(k, e)| (e.stored_at, k.clone())).collect();
                by_age.sort_unstable_by_key(|(at, _)| *at);
                let excess = self.entries.len() - (MAX_ENTRIES - MAX_ENTRIES / 8);
                for (_, old) in by_age.into_iter().take(excess) {
                    self.entries.remove(&old);
                }
            }
        }
        self.entries.insert(key, Entry { value, stored_at: now, valid_until });
    }

    /// Records a TTL renewal of a cached session.
    pub fn set_renewed(&mut self, key: &CacheKey, at: u64) {
        if let Some(Entry { value: Cached::Session { renewed_at, .. }, .. }) = self.entries.get_mut(key) {
            *renewed_at = at;
        }
    }

    /// Forgets every entry matching `pred` (used when this isolate itself revokes something).
    pub fn forget(&mut self, pred: impl Fn(&CacheKey, &Cached) -> bool) {
        self.entries.retain(|k, e| !pred(k, &e.value));
    }

    /// Number of entries (tests, metrics).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> CacheKey {
        CacheKey::Jwt { iss: "i".into(), sub: format!("s{i}"), jti: None, refresh: false }
    }
    fn val() -> Cached {
        Cached::Jwt { cutoff: None, permissions: vec![] }
    }

    #[test]
    fn entries_expire() {
        let mut c = Cache::default();
        c.put(key(1), val(), 100, 105);
        assert_eq!(c.get(&key(1), 104), Some((val(), 100)));
        assert_eq!(c.get(&key(1), 105), None);
        assert!(c.is_empty());
        c.put(key(2), val(), 100, 100);
        assert!(c.is_empty());
    }

    #[test]
    fn bounded_evicting_expired_then_oldest() {
        let mut c = Cache::default();
        for i in 0..MAX_ENTRIES {
            c.put(key(i), val(), i as u64, 1_000_000);
        }
        c.put(key(MAX_ENTRIES), val(), 5000, 1_000_000);
        // The oldest eighth goes at once; the newest entry is kept.
        assert_eq!(c.len(), MAX_ENTRIES - MAX_ENTRIES / 8 + 1);
        assert!(c.get(&key(0), 5000).is_none(), "oldest evicted");
        assert!(c.get(&key(MAX_ENTRIES / 8 - 1), 5000).is_none(), "the whole oldest eighth evicted");
        assert!(c.get(&key(MAX_ENTRIES / 8), 5000).is_some());
        assert!(c.get(&key(MAX_ENTRIES), 5000).is_some());
        // Expired entries go before live ones.
        let mut c = Cache::default();
        for i in 0..MAX_ENTRIES {
            c.put(key(i), val(), 10, if i == 7 { 20 } else { 1_000_000 });
        }
        c.put(key(MAX_ENTRIES), val(), 30, 1_000_000);
        assert_eq!(c.len(), MAX_ENTRIES);
        assert!(c.get(&key(0), 30).is_some());
    }

    #[test]
    fn forget_removes_matching() {
        let mut c = Cache::default();
        c.put(key(1), val(), 0, 10);
        c.put(key(2), val(), 0, 10);
        c.forget(|k, _| matches!(k, CacheKey::Jwt { sub, .. } if sub == "s1"));
        assert!(c.get(&key(1), 1).is_none());
        assert!(c.get(&key(2), 1).is_some());
    }
}
