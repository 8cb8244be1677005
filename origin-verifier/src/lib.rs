//! Origin-side verification of the edge-auth signed assertion (`X-Auth-Assertion`).
//!
//! The edge signs, for every forwarded request, a short-lived JWT bound to that request (method,
//! path and query as forwarded, request id). An origin that verifies it knows the request passed
//! the gateway, and cannot be fooled by a request that bypassed the edge or by an assertion
//! replayed onto another request. Checks, in order:
//!
//! 1. header: `typ` is `edge-auth-assertion+jwt`; the key is chosen by `kid` (or the only key);
//!    `alg` must be the key's algorithm (no `none`, no HS256 with a public key);
//! 2. signature;
//! 3. `iat`/`exp` against `now` with `leeway`, and `exp - iat` at most the maximum lifetime;
//! 4. `iss` (default `edge-auth`) and `aud` (must equal the configured audience; must be absent
//!    when none is configured);
//! 5. binding: `htm` = method, `path` = path, `qsh` = SHA-256 of the query (both exactly as
//!    received, still percent-encoded), and `rid` = the request id when the caller gives one.
//!
//! Replay within the lifetime on the *same* method, path and query is not detected here; keep
//! the `jti` values seen during the last `ASSERTION_TTL` seconds if that matters.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The `typ` every assertion carries.
pub const TYP: &str = "edge-auth-assertion+jwt";
/// The issuer expected unless configured otherwise (the edge's `ASSERTION_ISSUER` default).
pub const DEFAULT_ISSUER: &str = "edge-auth";
/// Longest accepted `exp - iat` unless configured otherwise (the edge allows at most 300 s).
pub const DEFAULT_MAX_LIFETIME: u64 = 300;

/// The request an assertion arrived with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestBinding<'a> {
    /// The request method as received (`GET`).
    pub method: &'a str,
    /// The request target as received: path and query, still percent-encoded (`/a/b?x=1`).
    pub path_and_query: &'a str,
    /// The request id from `X-Auth-Request-Id`, if the origin wants it checked against `rid`.
    pub request_id: Option<&'a str>,
}

/// How the edge checked revocation (`rev`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// `checked`, `cached`, `skipped` or `not-required`.
    pub status: String,
    /// Whether the revocation store said "not revoked".
    pub checked: bool,
    /// Whether that answer came from the edge's short cache.
    pub cached: bool,
    /// When the store answered (Unix seconds).
    #[serde(default)]
    pub at: Option<u64>,
}

/// The verified claims of an assertion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssertionClaims {
    /// The edge (`ASSERTION_ISSUER`).
    pub iss: String,
    /// `ASSERTION_AUDIENCE`, if the edge sets one.
    #[serde(default)]
    pub aud: Option<String>,
    /// The caller's subject; absent on public routes.
    #[serde(default)]
    pub sub: Option<String>,
    /// Issued at (Unix seconds).
    pub iat: u64,
    /// Expires at (Unix seconds).
    pub exp: u64,
    /// Unique id (the request id).
    pub jti: String,
    /// The request id.
    pub rid: String,
    /// The method the assertion is bound to.
    pub htm: String,
    /// The path the assertion is bound to (percent-encoded, as forwarded).
    pub path: String,
    /// base64url SHA-256 of the forwarded query string; absent when there was no query.
    #[serde(default)]
    pub qsh: Option<String>,
    /// `access`, `refresh` or `session`; absent on public routes.
    #[serde(default)]
    pub cred: Option<String>,
    /// Token scopes and Redis permissions.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The claims the edge forwards (`CLAIM_HEADERS`).
    #[serde(default)]
    pub claims: Map<String, Value>,
    /// Revocation check; absent on public routes.
    #[serde(default)]
    pub rev: Option<Revocation>,
}

impl AssertionClaims {
    /// Whether the caller holds `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// Why an assertion was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The key set or secret given to the verifier is unusable.
    Keys(String),
    /// The token is not a well-formed JWT or lacks a required claim.
    Malformed,
    /// The `typ` header is not `edge-auth-assertion+jwt`.
    WrongType,
    /// No configured key matches the token's `kid` and `alg`.
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// `exp` has passed (beyond leeway).
    Expired,
    /// `iat` is in the future (beyond leeway).
    IssuedInFuture,
    /// `exp - iat` exceeds the maximum lifetime.
    LifetimeTooLong,
    /// `iss` is not the expected issuer.
    WrongIssuer,
    /// `aud` is not the expected audience (or present when none is expected).
    WrongAudience,
    /// The assertion was issued for another method.
    MethodMismatch,
    /// The assertion was issued for another path.
    PathMismatch,
    /// The assertion was issued for another query string.
    QueryMismatch,
    /// The assertion was issued for another request id.
    RequestIdMismatch,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Keys(m) => write!(f, "unusable verification keys: {m}"),
            other => write!(f, "assertion refused: {other:?}"),
        }
    }
}

impl std::error::Error for Error {}

struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// Keys and expectations for verifying assertions.
pub struct Verifier {
    keys: Vec<Key>,
    issuer: String,
    audience: Option<String>,
    max_lifetime: u64,
}

impl Verifier {
    /// Trusts the Ed25519 keys of a JWKS (the edge serves it at
    /// `/.well-known/edge-auth/jwks.json`). Other key types are ignored; none usable is an error.
    pub fn from_jwks(jwks: &JwkSet) -> Result<Verifier, Error> {
        let mut keys = Vec::new();
        for jwk in &jwks.keys {
            let AlgorithmParameters::OctetKeyPair(okp) = &jwk.algorithm else { continue };
            if okp.curve != EllipticCurve::Ed25519 {
                continue;
            }
            let key = DecodingKey::from_ed_components(&okp.x).map_err(|e| Error::Keys(e.to_string()))?;
            keys.push(Key { kid: jwk.common.key_id.clone(), alg: Algorithm::EdDSA, key });
        }
        if keys.is_empty() {
            return Err(Error::Keys("the JWKS holds no Ed25519 key".into()));
        }
        Ok(Verifier::with_keys(keys))
    }

    /// Parses a JWKS document and calls [`Verifier::from_jwks`].
    pub fn from_jwks_json(json: &str) -> Result<Verifier, Error> {
        let jwks: JwkSet = serde_json::from_str(json).map_err(|e| Error::Keys(e.to_string()))?;
        Verifier::from_jwks(&jwks)
    }

    /// Trusts one key for one algorithm (e.g. `DecodingKey::from_ed_pem`, `EdDSA`).
    pub fn from_decoding_key(key: DecodingKey, alg: Algorithm) -> Verifier {
        Verifier::with_keys(vec![Key { kid: None, alg, key }])
    }

    /// Trusts the edge's HS256 secret (`ASSERTION_KEY` with `ASSERTION_ALG=HS256`, at least 32
    /// bytes).
    pub fn hs256(secret: &[u8]) -> Result<Verifier, Error> {
        if secret.len() < 32 {
            return Err(Error::Keys("an HS256 secret needs at least 32 bytes".into()));
        }
        Ok(Verifier::from_decoding_key(DecodingKey::from_secret(secret), Algorithm::HS256))
    }

    fn with_keys(keys: Vec<Key>) -> Verifier {
        Verifier { keys, issuer: DEFAULT_ISSUER.into(), audience: None, max_lifetime: DEFAULT_MAX_LIFETIME }
    }

    /// Expected `iss` (default `edge-auth`).
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Verifier {
        self.issuer = issuer.into();
        self
    }

    /// Expected `aud` (default: the token must carry none).
    pub fn with_audience(mut self, audience: impl Into<String>) -> Verifier {
        self.audience = Some(audience.into());
        self
    }

    /// Longest accepted `exp - iat` in seconds (default 300).
    pub fn with_max_lifetime(mut self, seconds: u64) -> Verifier {
        self.max_lifetime = seconds;
        self
    }

    /// Verifies `token` for the request it arrived with; see the crate doc for the checks.
    pub fn verify(&self, token: &str, expected: &RequestBinding<'_>, now: u64, leeway: u64) -> Result<AssertionClaims, Error> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Error::Malformed)?;
        if header.typ.as_deref() != Some(TYP) {
            return Err(Error::WrongType);
        }
        let candidates: Vec<&Key> = self
            .keys
            .iter()
            .filter(|k| k.alg == header.alg)
            .filter(|k| match (&header.kid, &k.kid) {
                (Some(want), Some(have)) => want == have,
                (Some(_), None) | (None, _) => true,
            })
            .collect();
        let key = match candidates.as_slice() {
            [one] => *one,
            // Several keys and no kid: try none of them rather than guess.
            _ => return Err(Error::UnknownKey),
        };

        let mut validation = Validation::new(key.alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<AssertionClaims>(token, &key.key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::InvalidSignature => Error::BadSignature,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => Error::UnknownKey,
                _ => Error::Malformed,
            }
        })?;
        let c = data.claims;

        if c.exp.saturating_add(leeway) <= now {
            return Err(Error::Expired);
        }
        if c.iat > now.saturating_add(leeway) {
            return Err(Error::IssuedInFuture);
        }
        if c.exp < c.iat || c.exp - c.iat > self.max_lifetime {
            return Err(Error::LifetimeTooLong);
        }
        if c.iss != self.issuer {
            return Err(Error::WrongIssuer);
        }
        if c.aud != self.audience {
            return Err(Error::WrongAudience);
        }

        if c.htm != expected.method {
            return Err(Error::MethodMismatch);
        }
        let (path, query) = match expected.path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q).filter(|q| !q.is_empty())),
            None => (expected.path_and_query, None),
        };
        if c.path != path {
            return Err(Error::PathMismatch);
        }
        if c.qsh.as_deref() != query.map(query_hash).as_deref() {
            return Err(Error::QueryMismatch);
        }
        if let Some(rid) = expected.request_id {
            if c.rid != rid {
                return Err(Error::RequestIdMismatch);
            }
        }
        Ok(c)
    }
}

/// Verifies an assertion; same as [`Verifier::verify`].
pub fn verify_assertion(
    token: &str,
    verifier: &Verifier,
    expected: &RequestBinding<'_>,
    now: u64,
    leeway: u64,
) -> Result<AssertionClaims, Error> {
    verifier.verify(token, expected, now, leeway)
}

/// base64url (no padding) SHA-256 of a raw query string (without `?`): what `qsh` holds.
pub fn query_hash(query: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(query.as_bytes()))
}

/// The current Unix time in seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
