//! Opaque session tokens and the session record stored under `{p}session:{sha256(token)}`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// Bytes of randomness in a new opaque token (the token is their base64url, 43 characters).
pub const TOKEN_BYTES: usize = 32;

/// Shortest and longest string accepted as an opaque token before any lookup.
const TOKEN_MIN_LEN: usize = 32;
const TOKEN_MAX_LEN: usize = 512;

/// A session as stored in Redis (JSON) and as returned by a successful check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The subject (`sub`).
    #[serde(rename = "sub")]
    pub subject: String,
    /// The device name given at login (`device`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Roles of the session (`roles`).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Permissions of the session (`permissions`).
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Creation time, Unix seconds (`created`).
    pub created: u64,
    /// Absolute expiry, Unix seconds (`expires`); sliding renewal never goes past it.
    pub expires: u64,
    /// The Redis TTL set at creation, seconds (`ttl`; informational).
    #[serde(default)]
    pub ttl: u64,
    /// SHA-256 hex of the opaque token: the session's id in Redis (not part of the JSON).
    #[serde(skip)]
    pub token_hash: String,
}

impl Session {
    /// The absolute end of the session: `expires`, capped at `created + max_lifetime` when
    /// `max_lifetime > 0`.
    pub fn hard_end(&self, max_lifetime: u64) -> u64 {
        if max_lifetime > 0 {
            self.expires.min(self.created.saturating_add(max_lifetime))
        } else {
            self.expires
        }
    }
}

/// Encodes fresh random bytes as an opaque session token (base64url without padding). The
/// caller supplies the randomness (WebCrypto in the worker, `rand` in the CLI).
pub fn token_from_random(bytes: &[u8; TOKEN_BYTES]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `token` can be an opaque session token at all (base64url alphabet, 32..=512
/// characters). Anything else is refused without asking Redis.
pub fn looks_like_session_token(token: &str) -> bool {
    (TOKEN_MIN_LEN..=TOKEN_MAX_LEN).contains(&token.len())
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_json_round_trips_with_the_documented_names() {
        let s = Session {
            subject: "u1".into(),
            device: Some("laptop".into()),
            roles: vec!["admin".into()],
            permissions: vec!["orders:read".into()],
            created: 100,
            expires: 200,
            ttl: 50,
            token_hash: "ignored".into(),
        };
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#"{"sub":"u1","device":"laptop","roles":["admin"],"permissions":["orders:read"],"created":100,"expires":200,"ttl":50}"#);
        let back: Session = serde_json::from_str(&json).unwrap();
        assert_eq!(back.token_hash, "");
        assert_eq!(back.subject, "u1");
        let minimal: Session = serde_json::from_str(r#"{"sub":"u","created":1,"expires":2}"#).unwrap();
        assert_eq!((minimal.device, minimal.roles.len(), minimal.ttl), (None, 0, 0));
        assert!(serde_json::from_str::<Session>(r#"{"sub":"u","created":1}"#).is_err());
    }

    #[test]
    fn hard_end_caps_at_max_lifetime() {
        let s: Session = serde_json::from_str(r#"{"sub":"u","created":100,"expires":1000}"#).unwrap();
        assert_eq!(s.hard_end(0), 1000);
        assert_eq!(s.hard_end(500), 600);
        assert_eq!(s.hard_end(5000), 1000);
    }

    #[test]
    fn tokens_are_43_char_base64url() {
        let t = token_from_random(&[0xfb; TOKEN_BYTES]);
        assert_eq!(t.len(), 43);
        assert!(looks_like_session_token(&t));
        assert!(!looks_like_session_token("short"));
        assert!(!looks_like_session_token(&"a".repeat(513)));
        assert!(!looks_like_session_token(&format!("{}.x", "a".repeat(40))));
        assert!(!looks_like_session_token(&format!("{}é", "a".repeat(40))));
    }
}
