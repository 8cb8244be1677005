//! The JWT entry point the gateway calls: configuration ([`JwtConfig`]), per-isolate state
//! ([`Verifier`]) and the result ([`VerifiedToken`]).
//!
//! Order of checks for a token: size → verified-token cache → compact JWS structure and header
//! → payload is a JSON object → `iss` picks the issuer → issuer's algorithm allow-list → key by
//! `kid`/alg (remote keys, one refetch on unknown `kid`) → signature → claims.

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::{Map, Value};

use super::claims::TimeClaims;
use super::crypto::{verify_signature, CryptoError, SignatureVerifier};
use super::extract::{extract_token, parse_token_sources, ExtractedToken, TokenSource, DEFAULT_TOKEN_SOURCES};
use super::header::{parse_jws, parse_object, Algorithm};
use super::issuer::{parse_issuers, IssuerConfig};
use super::jwks_cache::{JwksSettings, JwksSource, JwksStore, NoJwksStore};
use super::keys::{select, Selection, VerifyingKey};
use super::token_cache::{TokenCache, DEFAULT_TOKEN_CACHE_SIZE};
use crate::error::{Reason, Refusal};
use crate::http::{HttpClient, RequestHead};
use crate::vars::{get_trimmed, get_u64, ConfigError, Vars};

/// Everything the JWT verifier is configured with.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// Trusted issuers (`ISSUERS`, JSON array). Default none: every token is `UnknownIssuer`.
    pub issuers: Vec<IssuerConfig>,
    /// Where tokens are looked for, in order (`TOKEN_SOURCES`, default `header:authorization`).
    pub token_sources: Vec<TokenSource>,
    /// Longest accepted token in bytes (`MAX_TOKEN_BYTES`, default 8192).
    pub max_token_bytes: usize,
    /// Default clock skew in seconds for issuers without `leeway` (`JWT_LEEWAY`, default 60).
    pub leeway: u64,
    /// JWKS cache timing (`JWKS_MIN_TTL`, `JWKS_MAX_TTL`, `JWKS_MAX_STALE`,
    /// `JWKS_REFETCH_COOLDOWN`, `JWKS_FETCH_TIMEOUT_MS`).
    pub jwks: JwksSettings,
    /// Entries of the verified-token cache (`VERIFIED_TOKEN_CACHE_SIZE`, default 1024, 0 = off).
    pub token_cache_size: usize,
    /// Claim holding scopes (`SCOPE_CLAIM`). Default none: `scope` (space-separated) and `scp`.
    pub scope_claim: Option<String>,
}

impl JwtConfig {
    /// Reads the configuration; errors name the variable or `ISSUERS[i].field`.
    pub fn from_vars(vars: &dyn Vars) -> Result<JwtConfig, ConfigError> {
        let leeway = get_u64(vars, "JWT_LEEWAY", 60)?;
        let max_token_bytes = get_u64(vars, "MAX_TOKEN_BYTES", 8192)?;
        if max_token_bytes == 0 {
            return Err(ConfigError::new("MAX_TOKEN_BYTES", "must be greater than 0"));
        }
        let token_sources = parse_token_sources(&get_trimmed(vars, "TOKEN_SOURCES").unwrap_or_else(|| DEFAULT_TOKEN_SOURCES.into()))
            .map_err(|e| ConfigError::new("TOKEN_SOURCES", e))?;
        let jwks = JwksSettings {
            min_ttl: get_u64(vars, "JWKS_MIN_TTL", 60)?,
            max_ttl: get_u64(vars, "JWKS_MAX_TTL", 86_400)?,
            max_stale: get_u64(vars, "JWKS_MAX_STALE", 86_400)?,
            refetch_cooldown: get_u64(vars, "JWKS_REFETCH_COOLDOWN", 30)?,
            fetch_timeout_ms: u32::try_from(get_u64(vars, "JWKS_FETCH_TIMEOUT_MS", 3000)?)
                .ok()
                .filter(|t| *t > 0)
                .ok_or_else(|| ConfigError::new("JWKS_FETCH_TIMEOUT_MS", "must be between 1 and 4294967295"))?,
        };
        if jwks.min_ttl > jwks.max_ttl {
            return Err(ConfigError::new("JWKS_MIN_TTL", "must not exceed JWKS_MAX_TTL"));
        }
        let issuers = match get_trimmed(vars, "ISSUERS") {
            Some(text) => parse_issuers(&text, leeway, vars)?,
            None => Vec::new(),
        };
        let token_cache_size = usize::try_from(get_u64(vars, "VERIFIED_TOKEN_CACHE_SIZE", DEFAULT_TOKEN_CACHE_SIZE as u64)?)
            .map_err(|_| ConfigError::new("VERIFIED_TOKEN_CACHE_SIZE", "too large"))?;
        Ok(JwtConfig {
            issuers,
            token_sources,
            max_token_bytes: usize::try_from(max_token_bytes).unwrap_or(usize::MAX),
            leeway,
            jwks,
            token_cache_size,
            scope_claim: get_trimmed(vars, "SCOPE_CLAIM"),
        })
    }
}

/// A token whose signature and claims verified.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    /// `iss`.
    pub issuer: String,
    /// `sub`, when present.
    pub subject: Option<String>,
    /// `jti`, when present.
    pub jti: Option<String>,
    pub iat: Option<u64>,
    pub exp: Option<u64>,
    pub nbf: Option<u64>,
    /// All claims of the payload.
    pub claims: Map<String, Value>,
    /// From `SCOPE_CLAIM` if configured, else `scope` (space-separated) and `scp` (array or
    /// string); duplicates removed, order kept.
    pub scopes: Vec<String>,
    /// The issuer's refresh rule (`refresh_typ` / `refresh_claim`) matched.
    pub is_refresh: bool,
    /// The signature check was skipped thanks to the verified-token cache.
    pub cache_hit: bool,
    /// Algorithm of the token.
    pub alg: Algorithm,
    /// `kid` of the token header, when present.
    pub kid: Option<String>,
}

/// A JWKS refresh to run in the background (`ctx.wait_until`) with [`Verifier::run_background_refresh`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksRefresh {
    issuer: usize,
}

#[derive(Debug, Clone)]
struct Checked {
    issuer: usize,
    alg: Algorithm,
    kid: Option<String>,
    typ: Option<String>,
    claims: Map<String, Value>,
}

/// Per-isolate verifier state: configuration, JWKS caches, verified-token cache. Single-threaded
/// (interior mutability); share it with `Rc`.
pub struct Verifier<S: JwksStore = NoJwksStore> {
    config: JwtConfig,
    sources: Vec<Option<JwksSource>>,
    tokens: TokenCache<Checked>,
    store: S,
    pending: RefCell<Vec<JwksRefresh>>,
}

impl Verifier<NoJwksStore> {
    /// A verifier without a shared JWKS store.
    pub fn new(config: JwtConfig) -> Self {
        Verifier::with_store(config, NoJwksStore)
    }
}

impl<S: JwksStore> Verifier<S> {
    /// A verifier that shares fetched JWKS documents through `store`.
    pub fn with_store(config: JwtConfig, store: S) -> Self {
        let sources = config
            .issuers
            .iter()
            .map(|i| i.jwks.clone().map(|loc| JwksSource::new(&i.issuer, loc, i.algorithms.clone(), config.jwks)))
            .collect();
        let tokens = TokenCache::new(config.token_cache_size);
        Verifier { config, sources, tokens, store, pending: RefCell::new(Vec::new()) }
    }

    /// The configuration.
    pub fn config(&self) -> &JwtConfig {
        &self.config
    }

    /// Finds the request's token in the configured locations ([`extract_token`]).
    pub fn extract(&self, head: &RequestHead) -> Result<ExtractedToken, Refusal> {
        extract_token(head, &self.config.token_sources, self.config.max_token_bytes)
    }

    /// Background JWKS refreshes that became due; the glue runs each with
    /// [`Verifier::run_background_refresh`] inside `waitUntil`. Call after every `verify`.
    pub fn take_background_refreshes(&self) -> Vec<JwksRefresh> {
        std::mem::take(&mut *self.pending.borrow_mut())
    }

    /// Runs one background JWKS refresh. Failures keep the cached keys (stale-if-error);
    /// the error text (no secrets) is returned for the log.
    pub async fn run_background_refresh<H: HttpClient>(&self, refresh: &JwksRefresh, now: u64, http: &H) -> Result<(), String> {
        match self.sources.get(refresh.issuer).and_then(Option::as_ref) {
            Some(src) => src.refresh(now, http, &self.store).await,
            None => Ok(()),
        }
    }

    /// Verifies `token` at time `now` (Unix seconds).
    pub async fn verify<C: SignatureVerifier, H: HttpClient>(
        &self,
        token: &str,
        now: u64,
        crypto: &C,
        http: &H,
    ) -> Result<VerifiedToken, Refusal> {
        if token.len() > self.config.max_token_bytes {
            return Err(Reason::TokenTooLarge.into());
        }
        if let Some(hit) = self.tokens.get(token, now) {
            return self.finish(&hit, now, true).map_err(Refusal::from);
        }
        let jws = parse_jws(token)?;
        let claims = parse_object(&jws.payload).ok_or(Reason::MalformedToken)?;
        let iss = match claims.get("iss") {
            Some(Value::String(s)) => s,
            None => return Err(Reason::MissingClaim.into()),
            Some(_) => return Err(Reason::InvalidClaim.into()),
        };
        let idx = self.config.issuers.iter().position(|i| i.issuer == *iss).ok_or(Reason::UnknownIssuer)?;
        let alg = jws.header.alg;
        if !self.config.issuers[idx].accepts(alg) {
            return Err(Reason::AlgorithmNotAllowed.into());
        }
        let candidates = self.candidates(idx, jws.header.kid.as_deref(), alg, now, http).await?;
        let mut verified = false;
        for key in &candidates {
            match verify_signature(crypto, key, alg, jws.signing_input.as_bytes(), &jws.signature).await {
                Ok(true) => {
                    verified = true;
                    break;
                }
                Ok(false) | Err(CryptoError::InvalidKey(_)) => {}
                Err(_) => return Err(Reason::Internal.into()),
            }
        }
        if !verified {
            return Err(Reason::BadSignature.into());
        }
        let checked = Checked { issuer: idx, alg, kid: jws.header.kid.clone(), typ: jws.header.typ.clone(), claims };
        let out = self.finish(&checked, now, false)?;
        if let Some(exp) = out.exp {
            self.tokens.insert(token, exp, now, checked);
        }
        Ok(out)
    }

    /// The keys a token may be verified with (clones: no cache borrow is held across awaits).
    async fn candidates<H: HttpClient>(
        &self,
        idx: usize,
        kid: Option<&str>,
        alg: Algorithm,
        now: u64,
        http: &H,
    ) -> Result<Vec<VerifyingKey>, Refusal> {
        let issuer = &self.config.issuers[idx];
        let source = self.sources.get(idx).and_then(Option::as_ref);
        let mut remote: Option<Rc<Vec<VerifyingKey>>> = None;
        let mut remote_error: Option<Refusal> = None;
        if let Some(src) = source {
            match src.keys(now, http, &self.store).await {
                Ok(k) => {
                    if k.refresh_due {
                        self.pending.borrow_mut().push(JwksRefresh { issuer: idx });
                    }
                    remote = Some(k.keys);
                }
                Err(e) => remote_error = Some(e),
            }
        }
        let pick = |remote: Option<&Rc<Vec<VerifyingKey>>>| -> Result<Option<Vec<VerifyingKey>>, Refusal> {
            let all = issuer.static_keys.iter().chain(remote.into_iter().flat_map(|r| r.iter()));
            match select(all, kid, alg) {
                Selection::Candidates(v) => Ok(Some(v.into_iter().cloned().collect())),
                Selection::AlgorithmNotAllowed => Err(Reason::AlgorithmNotAllowed.into()),
                Selection::Ambiguous => Err(Reason::UnknownKey.into()),
                Selection::NoKey => Ok(None),
            }
        };
        if let Some(found) = pick(remote.as_ref())? {
            return Ok(found);
        }
        if let Some(e) = remote_error {
            return Err(e);
        }
        if let Some(src) = source {
            if let Some(fresh) = src.refetch_for_unknown_kid(now, http, &self.store).await {
                if let Some(found) = pick(Some(&fresh))? {
                    return Ok(found);
                }
            }
        }
        Err(Reason::UnknownKey.into())
    }

    fn finish(&self, c: &Checked, now: u64, cache_hit: bool) -> Result<VerifiedToken, Reason> {
        let issuer = self.config.issuers.get(c.issuer).ok_or(Reason::Internal)?;
        let is_refresh = issuer.is_refresh(c.typ.as_deref(), &c.claims);
        let TimeClaims { exp, nbf, iat } = issuer.validation.validate(c.typ.as_deref(), is_refresh, &c.claims, now)?;
        let text = |name: &str| c.claims.get(name).and_then(Value::as_str).map(str::to_string);
        Ok(VerifiedToken {
            issuer: issuer.issuer.clone(),
            subject: text("sub"),
            jti: text("jti"),
            iat,
            exp,
            nbf,
            scopes: scopes(&c.claims, self.config.scope_claim.as_deref()),
            claims: c.claims.clone(),
            is_refresh,
            cache_hit,
            alg: c.alg,
            kid: c.kid.clone(),
        })
    }
}

/// Scopes of a token: the configured claim, or `scope` then `scp`; a string is split on
/// whitespace, an array contributes its strings.
pub fn scopes(claims: &Map<String, Value>, scope_claim: Option<&str>) -> Vec<String> {
    let names: Vec<&str> = match scope_claim {
        Some(n) => vec![n],
        None => vec!["scope", "scp"],
    };
    let mut out: Vec<String> = Vec::new();
    let mut push = |s: &str| {
        if !s.is_empty() && !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    };
    for name in names {
        match claims.get(name) {
            Some(Value::String(s)) => s.split_whitespace().for_each(&mut push),
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).for_each(&mut push),
            _ => {}
        }
    }
    out
}
