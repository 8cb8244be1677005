//! The signed assertion: a short-lived JWT the edge adds to every forwarded request so the origin
//! can check that the request passed the gateway and what the gateway decided, bound to that one
//! request (method, path and query as forwarded, request id).
//!
//! Configuration (the assertion is off when `ASSERTION_KEY` is unset):
//! - `ASSERTION_KEY` (secret): Ed25519 private key as a base64url 32-byte seed or a PKCS#8 PEM;
//!   with `ASSERTION_ALG=HS256`, the HMAC secret itself (its bytes, at least 32);
//! - `ASSERTION_ALG`: `EdDSA` (default) or `HS256`;
//! - `ASSERTION_TTL`: lifetime in seconds (default 30, 1..=300);
//! - `ASSERTION_ISSUER`: `iss` (default `edge-auth`); `ASSERTION_AUDIENCE`: `aud` (default none);
//! - `ASSERTION_HEADER`: header name (default `{HEADER_PREFIX}Assertion`, i.e. `X-Auth-Assertion`).
//!
//! Token: header `{"alg", "typ": "edge-auth-assertion+jwt", "kid"}` (no `kid` for HS256); claims
//! `iss`, `aud`?, `sub`?, `iat`, `exp`, `jti` = `rid` = request id, `htm` (method), `path` (path as
//! forwarded, percent-encoded), `qsh` (base64url SHA-256 of the forwarded query string, absent
//! when there is no query), and when the caller was identified: `cred` (`access`, `refresh`,
//! `session`), `scopes` (array), `claims` (the `CLAIM_HEADERS` claims), `rev`
//! (`{"status": "checked"|"cached"|"skipped"|"not-required", "checked": bool, "cached": bool,
//! "at": unix-seconds?}`). The public key is served as a JWKS ([`jwks_json`]).

pub mod key;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::forward::config::{check_header_name, header_prefix};
use crate::forward::{ForwardConfig, ForwardPlan};
use crate::identity::{CredentialKind, Identity, RevocationStatus};
use crate::vars::{get_trimmed, get_u64, ConfigError, Vars};

pub use key::AssertionKey;

/// The JWS `typ` of an assertion; verifiers should require it.
pub const TYP: &str = "edge-auth-assertion+jwt";
/// Default `ASSERTION_TTL` (seconds).
pub const DEFAULT_TTL: u64 = 30;
/// Default `ASSERTION_ISSUER`.
pub const DEFAULT_ISSUER: &str = "edge-auth";
/// Where the lead serves [`jwks_json`].
pub const JWKS_PATH: &str = "/.well-known/edge-auth/jwks.json";

/// Assertion settings. Build with [`AssertionConfig::from_vars`].
#[derive(Debug, Clone)]
pub struct AssertionConfig {
    /// `ASSERTION_KEY` + `ASSERTION_ALG`.
    pub key: AssertionKey,
    /// `ASSERTION_HEADER` (default `{HEADER_PREFIX}Assertion`).
    pub header: String,
    /// `ASSERTION_TTL` (default 30 s).
    pub ttl: u64,
    /// `ASSERTION_ISSUER` (default `edge-auth`).
    pub issuer: String,
    /// `ASSERTION_AUDIENCE` (default none: no `aud` claim).
    pub audience: Option<String>,
    kid: Option<String>,
    header_b64: String,
}

impl AssertionConfig {
    /// Reads the `ASSERTION_*` variables; `Ok(None)` when `ASSERTION_KEY` is unset.
    pub fn from_vars(vars: &dyn Vars) -> Result<Option<AssertionConfig>, ConfigError> {
        let Some(secret) = get_trimmed(vars, "ASSERTION_KEY") else { return Ok(None) };
        let key = match get_trimmed(vars, "ASSERTION_ALG").map(|a| a.to_ascii_uppercase()).as_deref() {
            None | Some("EDDSA") => AssertionKey::ed25519(&secret),
            Some("HS256") => AssertionKey::hs256(secret.as_bytes()),
            Some(other) => return Err(ConfigError::new("ASSERTION_ALG", format!("expected EdDSA or HS256, got {other:?}"))),
        }
        .map_err(|m| ConfigError::new("ASSERTION_KEY", m))?;
        let header = match get_trimmed(vars, "ASSERTION_HEADER") {
            Some(h) => {
                check_header_name(&h).map_err(|m| ConfigError::new("ASSERTION_HEADER", m))?;
                h
            }
            None => format!("{}Assertion", header_prefix(vars)?),
        };
        let ttl = get_u64(vars, "ASSERTION_TTL", DEFAULT_TTL)?;
        if !(1..=300).contains(&ttl) {
            return Err(ConfigError::new("ASSERTION_TTL", "must be between 1 and 300 seconds"));
        }
        let issuer = get_trimmed(vars, "ASSERTION_ISSUER").unwrap_or_else(|| DEFAULT_ISSUER.to_string());
        let audience = get_trimmed(vars, "ASSERTION_AUDIENCE");
        Ok(Some(AssertionConfig::new(key, header, ttl, issuer, audience)))
    }

    /// Builds a configuration directly (tests, tools).
    pub fn new(key: AssertionKey, header: String, ttl: u64, issuer: String, audience: Option<String>) -> AssertionConfig {
        let kid = key.kid();
        let mut h = json!({"alg": key.alg(), "typ": TYP});
        if let Some(kid) = &kid {
            h["kid"] = Value::String(kid.clone());
        }
        let header_b64 = URL_SAFE_NO_PAD.encode(h.to_string());
        AssertionConfig { key, header, ttl, issuer, audience, kid, header_b64 }
    }

    /// The `kid` of the signing key (RFC 7638 thumbprint; `None` for HS256).
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }
}

/// What one assertion says about one request.
#[derive(Debug, Clone, Copy)]
pub struct AssertionRequest<'a> {
    /// The method forwarded.
    pub method: &'a str,
    /// Path and query exactly as the origin receives them ([`ForwardPlan::path_and_query`]).
    pub path_and_query: &'a str,
    /// The request id (also sent as `{prefix}Request-Id`).
    pub request_id: &'a str,
    /// The caller, `None` on public routes.
    pub identity: Option<&'a Identity>,
    /// Claim names to copy into `claims` (the `CLAIM_HEADERS` claims).
    pub claim_names: &'a [(String, String)],
}

/// Signs the assertion for `req` at `now` (Unix seconds); returns the compact JWS.
pub fn sign(cfg: &AssertionConfig, req: &AssertionRequest<'_>, now: u64) -> String {
    let (path, query) = match req.path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q).filter(|q| !q.is_empty())),
        None => (req.path_and_query, None),
    };
    let mut c = Map::new();
    c.insert("iss".into(), json!(cfg.issuer));
    if let Some(aud) = &cfg.audience {
        c.insert("aud".into(), json!(aud));
    }
    c.insert("iat".into(), json!(now));
    c.insert("exp".into(), json!(now.saturating_add(cfg.ttl)));
    c.insert("jti".into(), json!(req.request_id));
    c.insert("rid".into(), json!(req.request_id));
    c.insert("htm".into(), json!(req.method));
    c.insert("path".into(), json!(path));
    if let Some(q) = query {
        c.insert("qsh".into(), json!(query_hash(q)));
    }
    if let Some(id) = req.identity {
        c.insert("sub".into(), json!(id.subject));
        c.insert(
            "cred".into(),
            json!(match id.kind {
                CredentialKind::AccessToken => "access",
                CredentialKind::RefreshToken => "refresh",
                CredentialKind::Session => "session",
            }),
        );
        let scopes = crate::forward::scopes_value(id);
        c.insert("scopes".into(), json!(scopes.split(' ').filter(|s| !s.is_empty()).collect::<Vec<_>>()));
        let mut claims = Map::new();
        for (name, _) in req.claim_names {
            let v = id.claims.get(name).cloned().or_else(|| match name.as_str() {
                "sub" => Some(json!(id.subject)),
                "iss" => Some(json!(id.issuer)),
                _ => None,
            });
            if let Some(v) = v {
                claims.insert(name.clone(), v);
            }
        }
        c.insert("claims".into(), Value::Object(claims));
        c.insert("rev".into(), rev_claim(&id.revocation));
    }
    let payload = URL_SAFE_NO_PAD.encode(Value::Object(c).to_string());
    let input = format!("{}.{payload}", cfg.header_b64);
    let sig = URL_SAFE_NO_PAD.encode(cfg.key.sign(input.as_bytes()));
    format!("{input}.{sig}")
}

/// The assertion header for a forwarding plan: `(header name, token)`; add it to the plan's
/// `set_headers`.
pub fn for_plan(
    cfg: &AssertionConfig,
    fwd: &ForwardConfig,
    plan: &ForwardPlan,
    method: &str,
    identity: Option<&Identity>,
    request_id: &str,
    now: u64,
) -> (String, String) {
    let req = AssertionRequest {
        method,
        path_and_query: plan.path_and_query(),
        request_id,
        identity,
        claim_names: &fwd.claim_headers,
    };
    (cfg.header.clone(), sign(cfg, &req, now))
}

/// base64url (no padding) SHA-256 of the raw query string (without `?`): the `qsh` claim.
pub fn query_hash(query: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(query.as_bytes()))
}

fn rev_claim(status: &RevocationStatus) -> Value {
    match status {
        RevocationStatus::Checked { at, cached } => json!({
            "status": if *cached { "cached" } else { "checked" }, "checked": true, "cached": cached, "at": at,
        }),
        RevocationStatus::Skipped => json!({"status": "skipped", "checked": false, "cached": false}),
        RevocationStatus::NotRequired => json!({"status": "not-required", "checked": false, "cached": false}),
    }
}

/// The JWKS the lead serves at [`JWKS_PATH`]: the Ed25519 public key with its thumbprint `kid`;
/// `{"keys":[]}` for HS256 (a shared secret is never published).
pub fn jwks_json(cfg: &AssertionConfig) -> String {
    let keys: Vec<Value> = cfg.key.public_jwk().into_iter().collect();
    json!({ "keys": keys }).to_string()
}

#[cfg(test)]
mod tests;
