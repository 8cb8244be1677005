//! Who the gateway decided the caller is: the result of verification (JWT or session) plus what
//! the revocation store added. Route policy and forwarding read only this.

use std::rc::Rc;

use serde_json::{Map, Value};

/// How the credential was checked against the revocation store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevocationStatus {
    /// The route does not ask for a revocation check.
    NotRequired,
    /// The store answered "not revoked" at this time (Unix seconds); `cached` when the answer
    /// came from the per-isolate staleness cache.
    Checked { at: u64, cached: bool },
    /// The store could not answer and the fail-open policy let the request through.
    Skipped,
}

/// What kind of credential the caller presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// A JWT access token.
    AccessToken,
    /// A JWT refresh token.
    RefreshToken,
    /// An opaque session token looked up in Redis.
    Session,
}

/// Where in the request the credential was found (so forwarding can remove it from there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialLocation {
    /// `Authorization: Bearer …`.
    Authorization,
    /// A named request header (lower-case name), value is the bare token.
    Header(String),
    /// A named cookie.
    Cookie(String),
    /// A named query parameter.
    Query(String),
}

/// The caller, as decided by the gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub kind: CredentialKind,
    /// `sub` of the token or the session's subject.
    pub subject: String,
    /// `iss` of the token; for sessions, the configured session issuer name.
    pub issuer: String,
    /// The verified claims (for sessions, the session JSON's fields); shared with the
    /// verified-token cache, never changed.
    pub claims: Rc<Map<String, Value>>,
    /// Scopes/roles from the token (`scope`, `scp` or the configured claim).
    pub scopes: Vec<String>,
    /// Permissions from Redis (subject or session); they extend the token's scopes.
    pub permissions: Vec<String>,
    /// Device of the session, when known.
    pub device: Option<String>,
    pub revocation: RevocationStatus,
}

impl Identity {
    /// Whether the caller holds `scope` (from the token or from Redis permissions).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().chain(self.permissions.iter()).any(|s| s == scope)
    }
}
