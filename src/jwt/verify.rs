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
    /// All claims of the payload (shared with the verified-token cache).
    pub claims: Rc<Map<String, Value>>,
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
    claims: Rc<Map<String, Value>>,
}

/// Per-isolate verifier state: configuration, JWKS caches, verified-token cache. Single-threaded
/// (interior mutability); share it with `Rc`.
pub struct Verifier<S: JwksStore = NoJwksStore> {
    config: JwtConfig,
    sources: Vec<Option<JwksSource>>,
    /// Shared, not copied, on a hit: the claims are read again, never changed.
    tokens: TokenCache<Rc<Checked>>,
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
        let checked = Checked { issuer: idx, alg, kid: jws.header.kid.clone(), typ: jws.header.typ.clone(), claims: Rc::new(claims) };
        let out = self.finish(&checked, now, false)?;
        if let Some(exp) = out.exp {
            self.tokens.offer(token, exp, now, Rc::new(checked));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::header::b64url_encode;
    use crate::jwt::host_crypto::HostVerifier;
    use crate::jwt::jwks_cache::tests::FakeHttp;
    use futures::executor::block_on;
    use serde_json::json;
    use std::collections::HashMap;

    const NOW: u64 = 1_700_000_000;
    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    const ED1_PRIV: &str = "302e020100300506032b657004220420b7ec1a8cbb20bdb5973f4b7217ecc21b8bd19c084048da7acfa74a893ae011da";
    const ED1_X: &str = "qemTesJ2qT2UY7VjJ4NxSoS6XXHgqUHEd5M1tATLX7I";
    const ED2_PRIV: &str = "302e020100300506032b65700422042012a06fa5ebc89931ae0d598d93c1a83f8c349dc2c355e83eb44fd387a83f0fc2";
    const ED2_X: &str = "IPGkAux8ZI_R_SGXB6yDJIX-UNSSQDTfO8eSKxjKyM8";
    const EC_PRIV: &str = "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b020101042065c92e9ce902953d289fc741f8dd961ab43255717ac59778a6005abd913f5394a1440342000467fd8507e312654f6f343c60d1ca628b1b864528d6eb8b18ab9e0a238ab99e4a59267ed89e51c081d8a68b89a40fcf69b6bd6358efd996a68b46495796876e88";
    const EC_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEZ/2FB+MSZU9vNDxg0cpiixuGRSjW\n64sYq54KI4q5nkpZJn7YnlHAgdimi4mkD89ptr1jWO/ZlqaLRklXloduiA==\n-----END PUBLIC KEY-----\n";
    const JWKS_URL: &str = "https://id.example/jwks.json";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// Signs arbitrary header and payload JSON.
    fn sign(header: Value, payload: Value, alg: Algorithm) -> String {
        use jsonwebtoken::{crypto, EncodingKey};
        let input = format!("{}.{}", b64url_encode(header.to_string().as_bytes()), b64url_encode(payload.to_string().as_bytes()));
        let (key, jalg) = match alg {
            Algorithm::HS256 => (EncodingKey::from_secret(SECRET.as_bytes()), jsonwebtoken::Algorithm::HS256),
            Algorithm::ES256 => (EncodingKey::from_ec_der(&hex(EC_PRIV)), jsonwebtoken::Algorithm::ES256),
            _ => unreachable!(),
        };
        format!("{input}.{}", crypto::sign(input.as_bytes(), &key, jalg).unwrap())
    }
    fn sign_ed(priv_hex: &str, header: Value, payload: Value) -> String {
        let input = format!("{}.{}", b64url_encode(header.to_string().as_bytes()), b64url_encode(payload.to_string().as_bytes()));
        let key = jsonwebtoken::EncodingKey::from_ed_der(&hex(priv_hex));
        format!("{input}.{}", jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::EdDSA).unwrap())
    }
    fn claims(iss: &str) -> Value {
        json!({"iss": iss, "aud": "api", "sub": "u1", "exp": NOW + 600, "iat": NOW - 5, "jti": "j1", "scope": "read write", "scp": ["write", "admin"]})
    }
    fn jwks_doc(keys: &[(&str, &str)]) -> String {
        let keys: Vec<Value> = keys.iter().map(|(kid, x)| json!({"kty":"OKP","crv":"Ed25519","kid":kid,"x":x})).collect();
        json!({ "keys": keys }).to_string()
    }

    fn verifier(extra: &[(&str, &str)]) -> Verifier {
        let issuers = json!([
            {"issuer": "https://static.example", "audiences": ["api"],
             "hmac_secrets": [{"kid": "h1", "alg": "HS256", "secret_var": "JWT_SECRET"}],
             "pem_keys": [{"kid": "e1", "pem": EC_PEM}],
             "refresh_typ": "refresh+jwt", "typ": "at+jwt"},
            {"issuer": "https://id.example", "audiences": ["api", "web"], "jwks_uri": JWKS_URL,
             "refresh_claim": {"name": "token_use", "value": "refresh"}}
        ]);
        let mut vars: HashMap<String, String> =
            [("ISSUERS", issuers.to_string().as_str()), ("JWT_SECRET", SECRET)].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        for (k, v) in extra {
            vars.insert(k.to_string(), v.to_string());
        }
        Verifier::new(JwtConfig::from_vars(&vars).unwrap())
    }
    fn run(v: &Verifier, token: &str, now: u64, http: &FakeHttp) -> Result<VerifiedToken, Reason> {
        block_on(v.verify(token, now, &HostVerifier, http)).map_err(|r| r.reason)
    }
    fn at() -> Value {
        json!({"alg": "HS256", "kid": "h1", "typ": "at+jwt"})
    }

    #[test]
    fn hmac_and_pem_keys_verify() {
        let v = verifier(&[]);
        let http = FakeHttp::default();
        let t = run(&v, &sign(at(), claims("https://static.example"), Algorithm::HS256), NOW, &http).unwrap();
        assert_eq!(t.issuer, "https://static.example");
        assert_eq!((t.subject.as_deref(), t.jti.as_deref(), t.exp, t.iat), (Some("u1"), Some("j1"), Some(NOW + 600), Some(NOW - 5)));
        assert_eq!(t.scopes, vec!["read", "write", "admin"]);
        assert_eq!((t.alg, t.is_refresh, t.cache_hit), (Algorithm::HS256, false, false));
        let es = sign(json!({"alg":"ES256","kid":"e1","typ":"at+jwt"}), claims("https://static.example"), Algorithm::ES256);
        assert_eq!(run(&v, &es, NOW, &http).unwrap().alg, Algorithm::ES256);
        assert_eq!(http.count(), 0);
    }

    #[test]
    fn refusals_map_to_reasons() {
        let v = verifier(&[]);
        let http = FakeHttp::default();
        let good = sign(at(), claims("https://static.example"), Algorithm::HS256);
        let mut tampered = good.clone();
        tampered.pop();
        tampered.push(if good.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(run(&v, &tampered, NOW, &http), Err(Reason::BadSignature));
        assert_eq!(run(&v, &sign(at(), claims("https://other.example"), Algorithm::HS256), NOW, &http), Err(Reason::UnknownIssuer));
        assert_eq!(run(&v, &sign(at(), json!({"aud":"api"}), Algorithm::HS256), NOW, &http), Err(Reason::MissingClaim));
        assert_eq!(run(&v, &sign(at(), json!(["not", "object"]), Algorithm::HS256), NOW, &http), Err(Reason::MalformedToken));
        assert_eq!(run(&v, &good, NOW + 700, &http), Err(Reason::Expired));
        let wrong_kid = sign(json!({"alg":"HS256","kid":"zz","typ":"at+jwt"}), claims("https://static.example"), Algorithm::HS256);
        assert_eq!(run(&v, &wrong_kid, NOW, &http), Err(Reason::UnknownKey));
        // The EC key's kid with HS256: the EC key is pinned to ES256.
        let confused = sign(json!({"alg":"HS256","kid":"e1","typ":"at+jwt"}), claims("https://static.example"), Algorithm::HS256);
        assert_eq!(run(&v, &confused, NOW, &http), Err(Reason::AlgorithmNotAllowed));
        let none = format!("{}.{}.", b64url_encode(br#"{"alg":"none"}"#), b64url_encode(claims("https://static.example").to_string().as_bytes()));
        assert_eq!(run(&v, &none, NOW, &http), Err(Reason::AlgorithmNotAllowed));
        let jwt_typ = sign(json!({"alg":"HS256","kid":"h1","typ":"JWT"}), claims("https://static.example"), Algorithm::HS256);
        assert_eq!(run(&v, &jwt_typ, NOW, &http), Err(Reason::WrongType));
        let crit = sign(json!({"alg":"HS256","kid":"h1","crit":["x"],"x":1}), claims("https://static.example"), Algorithm::HS256);
        assert_eq!(run(&v, &crit, NOW, &http), Err(Reason::UnsupportedCritical));
        assert_eq!(run(&v, "a.b.c.d.e", NOW, &http), Err(Reason::EncryptedToken));
        let big = "a".repeat(8193);
        assert_eq!(run(&v, &big, NOW, &http), Err(Reason::TokenTooLarge));
        let mut c = claims("https://static.example");
        c["exp"] = json!((NOW + 600).to_string());
        assert_eq!(run(&v, &sign(at(), c, Algorithm::HS256), NOW, &http), Err(Reason::InvalidClaim));
        let mut c = claims("https://static.example");
        c["aud"] = json!("other");
        assert_eq!(run(&v, &sign(at(), c, Algorithm::HS256), NOW, &http), Err(Reason::WrongAudience));
        // An embedded jwk header is ignored: the attacker's key is never used.
        let jwk_hdr = sign_ed(ED2_PRIV, json!({"alg":"EdDSA","jwk":{"kty":"OKP","crv":"Ed25519","x":ED2_X}}), claims("https://static.example"));
        assert_eq!(run(&v, &jwk_hdr, NOW, &http), Err(Reason::UnknownKey));
    }

    #[test]
    fn refresh_tokens_are_recognised() {
        let v = verifier(&[]);
        let http = FakeHttp::default();
        let rt = sign(json!({"alg":"HS256","kid":"h1","typ":"refresh+jwt"}), claims("https://static.example"), Algorithm::HS256);
        assert!(run(&v, &rt, NOW, &http).unwrap().is_refresh);
        http.serve(JWKS_URL, &jwks_doc(&[("k1", ED1_X)]), "max-age=300");
        let mut c = claims("https://id.example");
        c["token_use"] = json!("refresh");
        assert!(run(&v, &sign_ed(ED1_PRIV, json!({"alg":"EdDSA","kid":"k1"}), c), NOW, &http).unwrap().is_refresh);
    }

    #[test]
    fn verified_token_cache_skips_only_the_signature() {
        let v = verifier(&[]);
        let http = FakeHttp::default();
        let t = sign(at(), claims("https://static.example"), Algorithm::HS256);
        assert!(!run(&v, &t, NOW, &http).unwrap().cache_hit);
        assert!(!run(&v, &t, NOW, &http).unwrap().cache_hit, "stored the second time it verifies");
        assert!(run(&v, &t, NOW + 1, &http).unwrap().cache_hit);
        // The entry ends at exp: within the leeway the token is verified again, not served from cache.
        assert!(!run(&v, &t, NOW + 600, &http).unwrap().cache_hit);
        assert_eq!(run(&v, &t, NOW + 660, &http), Err(Reason::Expired));
        let off = verifier(&[("VERIFIED_TOKEN_CACHE_SIZE", "0")]);
        run(&off, &t, NOW, &http).unwrap();
        assert!(!run(&off, &t, NOW, &http).unwrap().cache_hit);
    }

    #[test]
    fn jwks_rotation_without_failed_requests() {
        let v = verifier(&[]);
        let http = FakeHttp::default();
        http.serve(JWKS_URL, &jwks_doc(&[("k1", ED1_X)]), "max-age=300");
        let t1 = sign_ed(ED1_PRIV, json!({"alg":"EdDSA","kid":"k1"}), claims("https://id.example"));
        assert!(run(&v, &t1, NOW, &http).is_ok());
        assert_eq!(http.count(), 1);
        // The IdP rotates: k2 appears, k1 stays for a while.
        http.serve(JWKS_URL, &jwks_doc(&[("k1", ED1_X), ("k2", ED2_X)]), "max-age=300");
        let mut c = claims("https://id.example");
        c["jti"] = json!("j2");
        let t2 = sign_ed(ED2_PRIV, json!({"alg":"EdDSA","kid":"k2"}), c);
        // Within the cooldown of the first fetch a new kid is unknown…
        assert_eq!(run(&v, &t2, NOW + 10, &http), Err(Reason::UnknownKey));
        // …after it, one refetch finds it.
        assert!(run(&v, &t2, NOW + 30, &http).is_ok());
        assert_eq!(http.count(), 2);
        assert!(run(&v, &t2, NOW + 31, &http).is_ok());
        assert_eq!(http.count(), 2);
        // k1 is removed; at the next refresh its tokens stop verifying.
        http.serve(JWKS_URL, &jwks_doc(&[("k2", ED2_X)]), "max-age=300");
        let mut c = claims("https://id.example");
        c["jti"] = json!("j3");
        let t1b = sign_ed(ED1_PRIV, json!({"alg":"EdDSA","kid":"k1"}), c);
        assert!(run(&v, &t1b, NOW + 340, &http).is_ok(), "stale keys served while revalidating");
        let due = v.take_background_refreshes();
        assert_eq!(due.len(), 1);
        block_on(v.run_background_refresh(&due[0], NOW + 340, &http)).unwrap();
        assert!(v.take_background_refreshes().is_empty());
        let mut c = claims("https://id.example");
        c["jti"] = json!("j4");
        let t1c = sign_ed(ED1_PRIV, json!({"alg":"EdDSA","kid":"k1"}), c);
        assert_eq!(run(&v, &t1c, NOW + 341, &http), Err(Reason::UnknownKey));
    }

    #[test]
    fn keys_unavailable_is_503() {
        let v = verifier(&[]);
        let http = FakeHttp::default();
        http.down.set(true);
        let t = sign_ed(ED1_PRIV, json!({"alg":"EdDSA","kid":"k1"}), claims("https://id.example"));
        let e = block_on(v.verify(&t, NOW, &HostVerifier, &http)).unwrap_err();
        assert_eq!((e.reason, e.reason.status()), (Reason::KeysUnavailable, 503));
        assert_eq!(http.requests.borrow()[0].timeout_ms, 3000);
    }

    #[test]
    fn scope_claim_and_defaults() {
        let c = json!({"scope": "a b  a", "scp": "c", "roles": ["x", "y"]});
        let m = c.as_object().unwrap();
        assert_eq!(scopes(m, None), vec!["a", "b", "c"]);
        assert_eq!(scopes(m, Some("roles")), vec!["x", "y"]);
    }

    #[test]
    fn config_defaults_and_errors() {
        let cfg = JwtConfig::from_vars(&HashMap::<String, String>::new()).unwrap();
        assert_eq!((cfg.max_token_bytes, cfg.leeway, cfg.token_cache_size), (8192, 60, 1024));
        assert_eq!(cfg.jwks, JwksSettings::default());
        assert_eq!(cfg.token_sources, vec![TokenSource::Authorization]);
        let e = JwtConfig::from_vars(&[("JWT_LEEWAY", "soon")]).unwrap_err();
        assert_eq!(e.field, "JWT_LEEWAY");
        let e = JwtConfig::from_vars(&[("TOKEN_SOURCES", "body:x")]).unwrap_err();
        assert_eq!(e.field, "TOKEN_SOURCES");
        let e = JwtConfig::from_vars(&[("JWKS_MIN_TTL", "100"), ("JWKS_MAX_TTL", "50")]).unwrap_err();
        assert_eq!(e.field, "JWKS_MIN_TTL");
        let e = JwtConfig::from_vars(&[("ISSUERS", r#"[{"issuer":"https://x","jwks_uri":"https://x/j"}]"#)]).unwrap_err();
        assert_eq!(e.field, "ISSUERS[0].audiences");
    }
}
