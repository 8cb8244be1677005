//! The per-request check: every Redis question one request needs, asked in ONE round trip,
//! with the failure policy, the circuit breaker and the staleness cache around it.
//!
//! - JWT: one `POST /pipeline` with `GET revoked:jti`, `GET revoked:sub`, `SMEMBERS perms`,
//!   (`EXISTS refresh` for refresh tokens), (`SET rate 0 EX w NX` + `INCR rate` when rate limited).
//! - Opaque session: one `EVAL` of [`super::scripts::SESSION_CHECK`] (read, sliding renewal,
//!   permissions, rate counter), because the subject is only known once the session is read.
//!
//! Failure policy: when the store cannot answer (timeout, network, 5xx, 401, garbage, an
//! `{"error"}` entry, or the breaker is open) the default is to refuse with 503
//! `revocation_unavailable`. With `REVOCATION_FAILURE_POLICY=open`, an access-token JWT passes
//! as [`RevocationStatus::Skipped`] — but only while this isolate last saw the store healthy at
//! most `REVOCATION_FAIL_OPEN_MAX_SECS` ago (an isolate that never saw it healthy fails closed).
//! Sessions and refresh tokens always fail closed: their validity IS the Redis record.

use std::cell::{Cell, RefCell};

use crate::error::{Reason, Refusal};
use crate::http::{HttpClient, HttpRequest};
use crate::identity::RevocationStatus;

use super::breaker::{Breaker, Gate};
use super::cache::{Cache, CacheKey, Cached};
use super::config::{FailurePolicy, RateLimitKey, RevocationConfig};
use super::keys::token_hash;
use super::scripts;
use super::session::{looks_like_session_token, Session};
use super::store::{cmd, parse_pipeline, pipeline_request, Command, RedisValue, StoreError};
use super::writes;

/// A verified JWT, as far as revocation needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtCredential {
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// `jti`, if the token has one (an empty string counts as none).
    pub jti: Option<String>,
    /// `iat`, if present (a token without it is revoked by any subject cutoff).
    pub iat: Option<u64>,
    /// `exp`, if present.
    pub exp: Option<u64>,
    /// A refresh token: it must be present in Redis (`{p}refresh:…`).
    pub is_refresh: bool,
    /// A device id from the token (e.g. a `sid`/`device` claim), for `RATE_LIMIT_KEY=device`;
    /// `None` falls back to the subject.
    pub device: Option<String>,
}

/// The credential to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A JWT whose signature and claims were already verified.
    Jwt(JwtCredential),
    /// An opaque session token, as presented (it is hashed here, never stored).
    Session { token: String },
}

/// The result of a check that lets the request through.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckOutcome {
    /// `Checked { at, cached }` or `Skipped` (fail-open).
    pub status: RevocationStatus,
    /// Permissions from Redis: the subject's `{p}perms:{sub}` set, plus the session's own
    /// `permissions` for opaque tokens (deduplicated, sorted).
    pub permissions: Vec<String>,
    /// For opaque tokens: the session (subject, device, roles, permissions, created, expires).
    pub session: Option<Session>,
    /// Requests to run after the response without adding latency (`ctx.waitUntil`), e.g. a
    /// sliding-expiry renewal for a session answered from the cache.
    pub deferred: Vec<HttpRequest>,
    /// REST calls made (0 on a cache hit or when the breaker is open, else 1).
    pub round_trips: u32,
}

/// The per-isolate revocation checker: configuration plus breaker, cache and health state.
/// Build once per isolate and share (single-threaded; interior mutability).
#[derive(Debug)]
pub struct Revocation {
    config: RevocationConfig,
    breaker: Breaker,
    cache: RefCell<Cache>,
    last_healthy: Cell<Option<u64>>,
    last_failure: RefCell<Option<StoreError>>,
}

/// A store failure with the `Retry-After` to answer with and the calls made.
struct Unavailable {
    error: StoreError,
    retry_after: u64,
    round_trips: u32,
}

struct JwtAnswer {
    jti_revoked: bool,
    cutoff: Option<u64>,
    permissions: Vec<String>,
    refresh_present: bool,
    count: Option<i64>,
}

enum SessionAnswer {
    NotFound,
    Found { session: Session, permissions: Vec<String>, count: Option<i64>, renewed: bool },
}

impl Revocation {
    /// A checker with fresh per-isolate state.
    pub fn new(config: RevocationConfig) -> Self {
        let breaker = Breaker::new(config.breaker_failures, config.breaker_cooldown_secs);
        Revocation { config, breaker, cache: RefCell::new(Cache::default()), last_healthy: Cell::new(None), last_failure: RefCell::new(None) }
    }

    /// The configuration.
    pub fn config(&self) -> &RevocationConfig {
        &self.config
    }

    /// The most recent store failure (for the log line; never contains secrets).
    pub fn last_failure(&self) -> Option<StoreError> {
        self.last_failure.borrow().clone()
    }

    /// Checks `cred` at `now` (Unix seconds). `Err` carries the refusal to answer with:
    /// `Revoked`, `SessionNotFound`, `RateLimited` (+ Retry-After) or `RevocationUnavailable`
    /// (+ Retry-After).
    pub async fn check<C: HttpClient>(&self, cred: &Credential, now: u64, client: &C) -> Result<CheckOutcome, Refusal> {
        match cred {
            Credential::Jwt(jwt) => self.check_jwt(jwt, now, client).await,
            Credential::Session { token } => self.check_session(token, now, client).await,
        }
    }

    fn cache_enabled(&self) -> bool {
        self.config.cache_secs > 0 && self.config.rate_limit.is_none()
    }

    async fn check_jwt<C: HttpClient>(&self, jwt: &JwtCredential, now: u64, client: &C) -> Result<CheckOutcome, Refusal> {
        let keys = &self.config.keys;
        let jti = jwt.jti.as_deref().filter(|j| !j.is_empty());
        if jwt.is_refresh && jti.is_none() {
            // A refresh token must be registered by jti; without one it cannot be present.
            return Err(Refusal::new(Reason::Revoked));
        }
        // Built only when the staleness cache is on (its strings are copies).
        let cache_key = self
            .cache_enabled()
            .then(|| CacheKey::Jwt { iss: jwt.issuer.clone(), sub: jwt.subject.clone(), jti: jti.map(str::to_string), refresh: jwt.is_refresh });
        if let Some(cache_key) = &cache_key {
            let hit = self.cache.borrow_mut().get(cache_key, now);
            if let Some((Cached::Jwt { cutoff, permissions }, at)) = hit {
                if revoked_by_cutoff(cutoff, jwt.iat) {
                    return Err(Refusal::new(Reason::Revoked));
                }
                return Ok(outcome(RevocationStatus::Checked { at, cached: true }, permissions, None, 0));
            }
        }

        let mut cmds: Vec<Command> = Vec::with_capacity(6);
        if let Some(jti) = jti {
            cmds.push(cmd(["GET".to_string(), keys.revoked_jti(&jwt.issuer, jti)]));
        }
        cmds.push(cmd(["GET".to_string(), keys.revoked_sub(&jwt.issuer, &jwt.subject)]));
        cmds.push(cmd(["SMEMBERS".to_string(), keys.perms(&jwt.subject)]));
        if let (true, Some(jti)) = (jwt.is_refresh, jti) {
            cmds.push(cmd(["EXISTS".to_string(), keys.refresh(&jwt.issuer, jti)]));
        }
        let rate = self.config.rate_limit.map(|rl| {
            let window = now / rl.window_secs;
            let key = match (self.config.rate_limit_key, jwt.device.as_deref()) {
                (RateLimitKey::Device, Some(device)) => keys.rate_device(window, &jwt.subject, device),
                _ => keys.rate_subject(window, &jwt.subject),
            };
            cmds.push(cmd(["SET".to_string(), key.clone(), "0".into(), "EX".into(), rl.window_secs.to_string(), "NX".into()]));
            cmds.push(cmd(["INCR".to_string(), key]));
            (rl, window)
        });

        let has_jti = jti.is_some();
        let is_refresh = jwt.is_refresh;
        let answer = self
            .ask(&cmds, now, client, |v| {
                let mut it = v.iter();
                let mut next = || it.next().ok_or(StoreError::Malformed("missing result"));
                let jti_revoked = if has_jti { !next()?.is_nil() } else { false };
                let cutoff = parse_cutoff(next()?);
                let permissions = next()?.as_strings().ok_or(StoreError::Malformed("permissions are not a list of strings"))?;
                let refresh_present = if is_refresh { next()?.as_int().ok_or(StoreError::Malformed("EXISTS is not an integer"))? > 0 } else { true };
                let count = if rate.is_some() {
                    next()?;
                    Some(next()?.as_int().ok_or(StoreError::Malformed("INCR is not an integer"))?)
                } else {
                    None
                };
                Ok(JwtAnswer { jti_revoked, cutoff, permissions, refresh_present, count })
            })
            .await;
        let answer = match answer {
            Ok(a) => a,
            Err(u) => return self.unavailable(u, !jwt.is_refresh, now),
        };
        if answer.jti_revoked || revoked_by_cutoff(answer.cutoff, jwt.iat) || !answer.refresh_present {
            return Err(Refusal::new(Reason::Revoked));
        }
        if let (Some((rl, window)), Some(count)) = (rate, answer.count) {
            if count > rl.requests as i64 {
                return Err(rate_limited(rl.window_secs, window, now));
            }
        }
        let mut permissions = answer.permissions;
        permissions.sort();
        permissions.dedup();
        if let Some(cache_key) = cache_key {
            let value = Cached::Jwt { cutoff: answer.cutoff, permissions: permissions.clone() };
            self.cache.borrow_mut().put(cache_key, value, now, now.saturating_add(self.config.cache_secs));
        }
        Ok(outcome(RevocationStatus::Checked { at: now, cached: false }, permissions, None, 1))
    }

    async fn check_session<C: HttpClient>(&self, token: &str, now: u64, client: &C) -> Result<CheckOutcome, Refusal> {
        if !looks_like_session_token(token) {
            return Err(Refusal::new(Reason::SessionNotFound));
        }
        let cfg = &self.config;
        let keys = &cfg.keys;
        let th = token_hash(token);
        let cache_key = CacheKey::Session(th.clone());
        if self.cache_enabled() {
            let hit = self.cache.borrow_mut().get(&cache_key, now);
            if let Some((Cached::Session { session, permissions, renewed_at }, at)) = hit {
                let hard_end = session.hard_end(cfg.session_max_lifetime_secs);
                if now >= hard_end {
                    return Err(Refusal::new(Reason::SessionNotFound));
                }
                let mut deferred = Vec::new();
                let sliding = cfg.session_sliding_secs;
                if sliding > 0 && now >= renewed_at.saturating_add((sliding / 2).max(1)) {
                    let ttl = sliding.min(hard_end - now).max(1);
                    deferred.push(pipeline_request(&cfg.endpoint, &[cmd(["EXPIRE".to_string(), keys.session(&th), ttl.to_string()])]));
                    self.cache.borrow_mut().set_renewed(&cache_key, now);
                }
                let mut out = outcome(RevocationStatus::Checked { at, cached: true }, permissions, Some(session), 0);
                out.deferred = deferred;
                return Ok(out);
            }
        }

        let (mode, window_secs, window) = match cfg.rate_limit {
            None => ("", 0, 0),
            Some(rl) => {
                let mode = if cfg.rate_limit_key == RateLimitKey::Device { "session" } else { "sub" };
                (mode, rl.window_secs, now / rl.window_secs)
            }
        };
        let eval = cmd([
            "EVAL".to_string(),
            scripts::SESSION_CHECK.into(),
            "2".into(),
            keys.session(&th),
            keys.rate_session(window, &th),
            now.to_string(),
            cfg.session_sliding_secs.to_string(),
            cfg.session_max_lifetime_secs.to_string(),
            keys.perms_prefix(),
            mode.into(),
            keys.rate_subject_prefix(window),
            window_secs.to_string(),
        ]);
        let answer = self.ask(&[eval], now, client, |v| parse_session_answer(v.first(), &th)).await;
        let (mut session, perms, count, renewed) = match answer {
            Ok(SessionAnswer::Found { session, permissions, count, renewed }) => (session, permissions, count, renewed),
            Ok(SessionAnswer::NotFound) => return Err(Refusal::new(Reason::SessionNotFound)),
            Err(u) => return self.unavailable(u, false, now),
        };
        let hard_end = session.hard_end(cfg.session_max_lifetime_secs);
        if now >= hard_end {
            return Err(Refusal::new(Reason::SessionNotFound));
        }
        if let (Some(rl), Some(count)) = (cfg.rate_limit, count) {
            if count > rl.requests as i64 {
                return Err(rate_limited(rl.window_secs, window, now));
            }
        }
        session.token_hash = th;
        let mut permissions: Vec<String> = perms.into_iter().chain(session.permissions.iter().cloned()).collect();
        permissions.sort();
        permissions.dedup();
        if self.cache_enabled() {
            let value = Cached::Session { session: session.clone(), permissions: permissions.clone(), renewed_at: if renewed { now } else { session.created } };
            let until = now.saturating_add(cfg.cache_secs).min(hard_end);
            self.cache.borrow_mut().put(cache_key, value, now, until);
        }
        Ok(outcome(RevocationStatus::Checked { at: now, cached: false }, permissions, Some(session), 1))
    }

    /// One round trip through the breaker; `interpret` turns the results into an answer (a
    /// reply it cannot read counts as a store failure).
    async fn ask<C: HttpClient, T>(
        &self,
        cmds: &[Command],
        now: u64,
        client: &C,
        interpret: impl FnOnce(&[RedisValue]) -> Result<T, StoreError>,
    ) -> Result<T, Unavailable> {
        if let Gate::Reject { retry_after } = self.breaker.gate(now) {
            return Err(Unavailable { error: StoreError::CircuitOpen, retry_after, round_trips: 0 });
        }
        let result = match client.send(pipeline_request(&self.config.endpoint, cmds)).await {
            Ok(resp) => parse_pipeline(&resp, cmds.len()).and_then(|v| interpret(&v)),
            Err(e) => Err(StoreError::from(e)),
        };
        match result {
            Ok(t) => {
                self.breaker.on_success();
                self.last_healthy.set(Some(now));
                Ok(t)
            }
            Err(error) => {
                self.breaker.on_failure(now);
                let retry_after = if self.breaker.is_open() { self.config.breaker_cooldown_secs.max(1) } else { 1 };
                Err(Unavailable { error, retry_after, round_trips: 1 })
            }
        }
    }

    /// The failure policy: `Skipped` when fail-open applies, else 503 with Retry-After.
    fn unavailable(&self, u: Unavailable, may_fail_open: bool, now: u64) -> Result<CheckOutcome, Refusal> {
        *self.last_failure.borrow_mut() = Some(u.error);
        if may_fail_open && self.config.failure_policy == FailurePolicy::Open {
            if let Some(healthy) = self.last_healthy.get() {
                if now.saturating_sub(healthy) <= self.config.fail_open_max_secs {
                    return Ok(outcome(RevocationStatus::Skipped, Vec::new(), None, u.round_trips));
                }
            }
        }
        Err(Refusal::new(Reason::RevocationUnavailable).retry_after(u.retry_after))
    }

    // ---- writes that also update this isolate's cache ----

    /// Revokes one JWT (blacklists `iss`/`jti` until `exp` + `leeway`). One pipeline request.
    pub fn revoke_jwt_request(&self, iss: &str, sub: &str, jti: &str, exp: u64, now: u64, leeway: u64) -> WriteRequest {
        self.cache.borrow_mut().forget(|k, _| matches!(k, CacheKey::Jwt { iss: i, jti: Some(j), sub: s, .. } if i == iss && j == jti && s == sub));
        self.write(writes::revoke_jti(&self.config.keys, iss, jti, exp, now, leeway))
    }

    /// Logout everywhere for a JWT subject: cutoff = `cutoff` (usually now). One request.
    pub fn revoke_subject_request(&self, iss: &str, sub: &str, cutoff: u64, ttl: Option<u64>) -> WriteRequest {
        self.cache.borrow_mut().forget(|k, _| matches!(k, CacheKey::Jwt { iss: i, sub: s, .. } if i == iss && s == sub));
        self.write(writes::revoke_subject(&self.config.keys, iss, sub, cutoff, ttl))
    }

    /// Logout everywhere with a verified JWT (`token`): the subject cutoff at `now`, AND the
    /// presented token itself revoked. Cutoffs are whole seconds and spare `iat` == cutoff (so
    /// that a login right after the logout works), which would spare the presented token when
    /// it was issued in the same second: so its `jti` is blacklisted as well, or, without a
    /// `jti`, the cutoff moves past its `iat`. One request.
    pub fn logout_everywhere_request(&self, token: &JwtCredential, now: u64, leeway: u64) -> WriteRequest {
        let jti = token.jti.as_deref().filter(|j| !j.is_empty());
        let cutoff = match (jti, token.iat) {
            (None, Some(iat)) => now.max(iat.saturating_add(1)),
            _ => now,
        };
        let (iss, sub) = (token.issuer.as_str(), token.subject.as_str());
        self.cache.borrow_mut().forget(|k, _| matches!(k, CacheKey::Jwt { iss: i, sub: s, .. } if i == iss && s == sub));
        let mut commands = writes::revoke_subject(&self.config.keys, iss, sub, cutoff, None);
        if let Some(jti) = jti {
            commands.extend(writes::revoke_jti(&self.config.keys, iss, jti, token.exp.unwrap_or(now), now, leeway));
        }
        self.write(commands)
    }

    /// Ends one session (logout of this device): deletes it and its entry in the subject's set.
    pub fn end_session_request(&self, session: &Session) -> WriteRequest {
        let th = session.token_hash.clone();
        self.cache.borrow_mut().forget(|k, _| *k == CacheKey::Session(th.clone()));
        self.write(writes::delete_session(&self.config.keys, &session.subject, &session.token_hash))
    }

    /// Ends every session of `sub` (logout everywhere for sessions).
    pub fn end_all_sessions_request(&self, sub: &str) -> WriteRequest {
        self.cache.borrow_mut().forget(|_, v| matches!(v, Cached::Session { session, .. } if session.subject == sub));
        self.write(writes::kick_all(&self.config.keys, sub))
    }

    fn write(&self, commands: Vec<Command>) -> WriteRequest {
        WriteRequest { request: pipeline_request(&self.config.endpoint, &commands), commands: commands.len() }
    }
}

/// A revocation write ready to send: the one pipeline request and the number of commands in
/// it, which is the number of results a successful reply must hold (so a caller cannot get it
/// wrong).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteRequest {
    /// The `POST /pipeline` request.
    pub request: HttpRequest,
    /// Commands in the request.
    pub commands: usize,
}

impl WriteRequest {
    /// Sends it (one round trip) and reads the reply: `Ok` with one result per command when
    /// every command succeeded; any failure shape is an error.
    pub async fn send<C: HttpClient>(self, client: &C) -> Result<Vec<RedisValue>, StoreError> {
        let resp = client.send(self.request).await.map_err(StoreError::from)?;
        parse_pipeline(&resp, self.commands)
    }
}

fn outcome(status: RevocationStatus, permissions: Vec<String>, session: Option<Session>, round_trips: u32) -> CheckOutcome {
    CheckOutcome { status, permissions, session, deferred: Vec::new(), round_trips }
}

fn rate_limited(window_secs: u64, window: u64, now: u64) -> Refusal {
    let window_end = window.saturating_add(1).saturating_mul(window_secs);
    Refusal::new(Reason::RateLimited).retry_after(window_end.saturating_sub(now).max(1))
}

/// A stored cutoff: nil = none; a value that is not a non-negative integer revokes everything
/// (the operator meant to revoke; never read garbage as "not revoked").
fn parse_cutoff(v: &RedisValue) -> Option<u64> {
    if v.is_nil() {
        return None;
    }
    Some(match v.as_int() {
        Some(i) if i >= 0 => i as u64,
        _ => u64::MAX,
    })
}

/// `iat` < cutoff is revoked; a token without `iat` is revoked by any cutoff.
fn revoked_by_cutoff(cutoff: Option<u64>, iat: Option<u64>) -> bool {
    match (cutoff, iat) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(c), Some(iat)) => iat < c,
    }
}

fn parse_session_answer(v: Option<&RedisValue>, th: &str) -> Result<SessionAnswer, StoreError> {
    let bad = StoreError::Malformed("unexpected session-check result");
    let Some(RedisValue::Array(items)) = v else { return Err(bad) };
    match items.first().and_then(RedisValue::as_int) {
        Some(0) | Some(2) if items.len() == 1 => Ok(SessionAnswer::NotFound),
        Some(1) if items.len() == 5 => {
            let raw = items[1].as_str().ok_or(bad.clone())?;
            let permissions = items[2].as_strings().ok_or(bad.clone())?;
            let count = items[3].as_int().ok_or(bad.clone())?;
            let renewed = items[4].as_int().ok_or(bad.clone())? > 0;
            // A record that does not parse cannot authenticate anyone.
            let Ok(mut session) = serde_json::from_str::<Session>(raw) else { return Ok(SessionAnswer::NotFound) };
            session.token_hash = th.to_string();
            Ok(SessionAnswer::Found { session, permissions, count: (count >= 0).then_some(count), renewed })
        }
        _ => Err(bad),
    }
}
