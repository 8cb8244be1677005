//! The ONE Redis key schema, shared by the worker, the operator CLI and the tests.
//!
//! `{p}` is the configurable prefix `REDIS_PREFIX` (default `edge-auth:`).
//!
//! | key | type | value | TTL | written by |
//! |---|---|---|---|---|
//! | `{p}revoked:jti:{ih}:{jti}` | string | `"1"` | token's remaining lifetime + leeway | logout, `edge-auth revoke-jti` / `revoke-token` |
//! | `{p}revoked:sub:{ih}:{sub}` | string | cutoff, Unix seconds: tokens of `sub` with `iat` < cutoff (or without `iat`) are revoked | none, or optional | logout-everywhere, `edge-auth revoke-subject` |
//! | `{p}session:{th}` | string | session JSON `{"sub","device","roles","permissions","created","expires","ttl"}` | sliding/initial TTL, never past `expires` | login, `edge-auth session create` |
//! | `{p}sessions:{sub}` | sorted set | members `{th}` scored by creation time (the subject's devices) | none | with the session |
//! | `{p}perms:{sub}` | set | permissions that extend the token's scopes, read on each request | none | `edge-auth perms set` |
//! | `{p}refresh:{ih}:{jti}` | string | `"1"`: present while the refresh token is valid | refresh token lifetime | token endpoint, `edge-auth refresh add` |
//! | `{p}rate:sub:{window}:{sub}` | string | request counter of a subject in fixed window `{window}` (= now / window seconds) | window length | the check |
//! | `{p}rate:device:{window}:{len(sub)}:{sub}:{device}` | string | counter of one device of a subject (JWT with a device) | window length | the check |
//! | `{p}rate:session:{window}:{th}` | string | counter of one session (opaque token, `RATE_LIMIT_KEY=device`) | window length | the check |
//!
//! - `{ih}` = first 16 hex digits of SHA-256(`iss`): issuers are URLs full of `:`.
//! - `{th}` = full lower-case hex SHA-256 of the opaque session token: the token itself is never stored.
//! - Tokens are never keyed on a hash of the raw JWT (ECDSA signatures are malleable: one token
//!   has many valid encodings); a JWT is identified by (`iss`, `jti`).
//!
//! Why a `:` inside `jti`, `sub` or `device` cannot make two keys collide: every key type starts
//! with a distinct fixed tag (`revoked:jti:`, `revoked:sub:`, `session:`, `sessions:`, `perms:`,
//! `refresh:`, `rate:sub:`, `rate:device:`, `rate:session:`; none is a prefix of another), the
//! components before the free-form one have a fixed length or contain no `:` (hashes, window
//! numbers, a length), and the one free-form component comes last (in `rate:device:` the
//! subject is length-prefixed). So each key decodes to exactly one tuple of components.

use sha2::{Digest, Sha256};

/// Default `REDIS_PREFIX`.
pub const DEFAULT_PREFIX: &str = "edge-auth:";

/// Builds every key of the schema for one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySchema {
    prefix: String,
}

impl Default for KeySchema {
    fn default() -> Self {
        KeySchema::new(DEFAULT_PREFIX)
    }
}

impl KeySchema {
    /// A schema with the given prefix (may be empty).
    pub fn new(prefix: impl Into<String>) -> Self {
        KeySchema { prefix: prefix.into() }
    }

    /// The prefix `{p}`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `{p}revoked:jti:{ih}:{jti}`: a blacklisted token.
    pub fn revoked_jti(&self, iss: &str, jti: &str) -> String {
        format!("{}revoked:jti:{}:{}", self.prefix, issuer_hash(iss), jti)
    }

    /// `{p}revoked:sub:{ih}:{sub}`: the subject's revocation cutoff.
    pub fn revoked_sub(&self, iss: &str, sub: &str) -> String {
        format!("{}revoked:sub:{}:{}", self.prefix, issuer_hash(iss), sub)
    }

    /// `{p}session:` — what [`KeySchema::session`] puts before the token hash (Lua scripts
    /// append the hash themselves).
    pub fn session_prefix(&self) -> String {
        format!("{}session:", self.prefix)
    }

    /// `{p}session:{th}` where `token_hash` is [`token_hash`] of the opaque token.
    pub fn session(&self, token_hash: &str) -> String {
        format!("{}{}", self.session_prefix(), token_hash)
    }

    /// `{p}sessions:{sub}`: the subject's sessions (sorted set of token hashes by creation time).
    pub fn sessions(&self, sub: &str) -> String {
        format!("{}sessions:{}", self.prefix, sub)
    }

    /// `{p}perms:` — what [`KeySchema::perms`] puts before the subject.
    pub fn perms_prefix(&self) -> String {
        format!("{}perms:", self.prefix)
    }

    /// `{p}perms:{sub}`: extra permissions of the subject (a set).
    pub fn perms(&self, sub: &str) -> String {
        format!("{}{}", self.perms_prefix(), sub)
    }

    /// `{p}refresh:{ih}:{jti}`: present while the refresh token is valid.
    pub fn refresh(&self, iss: &str, jti: &str) -> String {
        format!("{}refresh:{}:{}", self.prefix, issuer_hash(iss), jti)
    }

    /// `{p}rate:sub:{window}:` — what [`KeySchema::rate_subject`] puts before the subject.
    pub fn rate_subject_prefix(&self, window: u64) -> String {
        format!("{}rate:sub:{}:", self.prefix, window)
    }

    /// `{p}rate:sub:{window}:{sub}`: the subject's counter in one fixed window.
    pub fn rate_subject(&self, window: u64, sub: &str) -> String {
        format!("{}{}", self.rate_subject_prefix(window), sub)
    }

    /// `{p}rate:device:{window}:{len(sub)}:{sub}:{device}`: one device's counter.
    pub fn rate_device(&self, window: u64, sub: &str, device: &str) -> String {
        format!("{}rate:device:{}:{}:{}:{}", self.prefix, window, sub.len(), sub, device)
    }

    /// `{p}rate:session:{window}:{th}`: one session's counter.
    pub fn rate_session(&self, window: u64, token_hash: &str) -> String {
        format!("{}rate:session:{}:{}", self.prefix, window, token_hash)
    }
}

/// Lower-case hex of SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// `{ih}`: the first 16 hex digits of SHA-256 of the issuer. Every check of a JWT needs it for
/// one or two keys, and only configured issuers get that far: the last few are remembered.
pub fn issuer_hash(iss: &str) -> String {
    const REMEMBERED: usize = 8;
    thread_local! {
        static RECENT: std::cell::RefCell<Vec<(String, String)>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    RECENT.with(|recent| {
        if let Some((_, h)) = recent.borrow().iter().find(|(i, _)| i == iss) {
            return h.clone();
        }
        let mut h = sha256_hex(iss.as_bytes());
        h.truncate(16);
        let mut recent = recent.borrow_mut();
        if recent.len() >= REMEMBERED {
            recent.remove(0);
        }
        recent.push((iss.to_string(), h.clone()));
        h
    })
}

/// `{th}`: the full hex SHA-256 of an opaque session token (what Redis stores instead of it).
pub fn token_hash(token: &str) -> String {
    sha256_hex(token.as_bytes())
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_documented_schema() {
        let k = KeySchema::default();
        let ih = issuer_hash("https://issuer.example/");
        assert_eq!(ih.len(), 16);
        assert_eq!(k.revoked_jti("https://issuer.example/", "abc"), format!("edge-auth:revoked:jti:{ih}:abc"));
        assert_eq!(k.revoked_sub("https://issuer.example/", "u1"), format!("edge-auth:revoked:sub:{ih}:u1"));
        assert_eq!(k.refresh("https://issuer.example/", "r1"), format!("edge-auth:refresh:{ih}:r1"));
        assert_eq!(k.perms("u1"), "edge-auth:perms:u1");
        assert_eq!(k.sessions("u1"), "edge-auth:sessions:u1");
        assert_eq!(k.rate_subject(7, "u1"), "edge-auth:rate:sub:7:u1");
        assert_eq!(k.rate_device(7, "u1", "laptop"), "edge-auth:rate:device:7:2:u1:laptop");
        let th = token_hash("tok");
        assert_eq!(th, "1a7674eb4ee78df7e1ac439a93c3fa8e3c945784d4dec9fd8e3011738b2f1d62");
        assert_eq!(k.session(&th), format!("edge-auth:session:{th}"));
        assert_eq!(k.rate_session(7, &th), format!("edge-auth:rate:session:7:{th}"));
        assert_eq!(KeySchema::new("t1/").perms("x"), "t1/perms:x");
    }

    #[test]
    fn colons_in_components_do_not_collide() {
        let k = KeySchema::new("");
        // Issuers are hashed, so an issuer with a ':' cannot shift the jti.
        assert_ne!(k.revoked_jti("a:b", "c"), k.revoked_jti("a", "b:c"));
        assert_ne!(k.revoked_sub("a:b", "c"), k.revoked_sub("a", "b:c"));
        assert_ne!(k.rate_device(1, "a:b", "c"), k.rate_device(1, "a", "b:c"));
        // A subject named like another key type stays inside its own type.
        assert_ne!(k.perms("x"), k.sessions("x"));
        assert_ne!(k.rate_subject(1, "2:x"), k.rate_subject(12, "x"));
        assert_ne!(k.session("x"), k.sessions(""));
        // The tags are prefix-free.
        let tags = ["revoked:jti:", "revoked:sub:", "session:", "sessions:", "perms:", "refresh:", "rate:sub:", "rate:device:", "rate:session:"];
        for a in tags {
            for b in tags {
                if a != b {
                    assert!(!b.starts_with(a), "{a} is a prefix of {b}");
                }
            }
        }
    }
}
