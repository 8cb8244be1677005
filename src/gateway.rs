//! The filter: given a request head, decide to forward it (with a plan), to refuse it, or to
//! answer it at the edge (the assertion JWKS, logout). Ok(plan) forwards, Err(refusal)
//! answers — the glue only carries the decision out.
//!
//! Order per request: edge endpoints → route rule → CORS preflight → credential extraction →
//! verification (JWT or session) → token use and issuer allowed by the rule → revocation (one
//! Redis round trip or none) → scopes → forwarding plan (+ signed assertion).

use std::cell::Cell;
use std::rc::Rc;

use crate::assertion::{self, AssertionConfig};
use crate::error::{Reason, Refusal};
use crate::forward::{self, ForwardConfig, ForwardPlan};
use crate::http::{HttpClient, HttpRequest, RequestHead};
use crate::identity::{CredentialKind, CredentialLocation, Identity, RevocationStatus};
use crate::jwt::crypto::SignatureVerifier;
use crate::jwt::jwks_cache::{JwksStore, NoJwksStore};
use crate::jwt::{JwksRefresh, JwtConfig, VerifiedToken, Verifier};
use crate::log::{LogRequests, RequestLog};
use crate::revocation::{Credential, JwtCredential, Revocation, RevocationConfig, Session};
use crate::routes::{AuthMode, RouteTable, Rule};
use crate::vars::{get_bool, get_trimmed, ConfigError, Vars};

/// Path where the edge publishes the public key of its signed assertion.
pub const ASSERTION_JWKS_PATH: &str = assertion::JWKS_PATH;

/// What the glue must do with the request.
#[derive(Debug)]
pub enum Outcome {
    /// Send the request on, changed as the plan says.
    Forward(ForwardPlan),
    /// Answer with this refusal.
    Refuse(Refusal),
    /// Answer at the edge with a JSON body (JWKS, logout).
    Serve { status: u16, body: String },
}

/// Work to run after the response (`ctx.waitUntil`): Redis writes such as sliding-session
/// renewal, and JWKS refreshes that became due.
#[derive(Debug, Default)]
pub struct Background {
    pub requests: Vec<HttpRequest>,
    pub jwks: Vec<JwksRefresh>,
}

impl Background {
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty() && self.jwks.is_empty()
    }
}

/// One request as the gateway sees it.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub head: &'a RequestHead,
    /// Unix seconds, for every validity decision.
    pub now: u64,
    /// The id the log line, the forwarded `X-Auth-Request-Id` and the assertion carry.
    pub request_id: &'a str,
    /// The client address the platform reported (`CF-Connecting-IP`), if any.
    pub client_ip: Option<&'a str>,
}

/// What deciding may call on: signature checks, outbound HTTP (Redis REST, JWKS), and a
/// millisecond clock used for timings only.
pub struct Io<'a, C, H> {
    pub crypto: &'a C,
    pub http: &'a H,
    pub clock: &'a dyn Fn() -> f64,
}

/// The gateway's decision for one request, with its log line and background work.
#[derive(Debug)]
pub struct Decision {
    pub outcome: Outcome,
    pub log: RequestLog,
    pub background: Background,
    /// Whether the same decision may be reused, within the same second `now`, for a request
    /// whose head is byte-for-byte the same (see [`Decision::can_replay`]).
    pub replayable: bool,
    /// Whether this request changed per-isolate state that other requests' decisions read (a
    /// logout forgets cached revocation answers): decisions kept for reuse must be dropped.
    pub forgets_replays: bool,
}

impl Decision {
    /// A decision is replayable when it is a forward that was reached without any I/O and
    /// without work left behind: no Redis or JWKS request, no signature check (the token came
    /// from the verified-token cache, or the route is public), revocation either not required
    /// or answered from the staleness cache (never a fail-open skip), nothing for `waitUntil`,
    /// and no signed assertion (it is signed per request). Such a decision is a function of the
    /// request head, the second `now`, the request id and this isolate's caches; within that
    /// second every cache entry it read stays valid (each is valid for whole seconds), so
    /// deciding again for the same head would give the same plan with another request id,
    /// unless a logout through this isolate forgets entries ([`Decision::forgets_replays`]).
    fn can_replay(&self, sent: u32, assertion: bool) -> bool {
        matches!(self.outcome, Outcome::Forward(_))
            && sent == 0
            && !assertion
            && self.background.is_empty()
            && self.log.token_cache_hit != Some(false)
            && self.log.revocation.is_none_or(|r| r == "cached")
    }
}

/// Edge endpoints for logging out (`LOGOUT_PATH`, `LOGOUT_ALL_PATH`; `POST` only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutConfig {
    /// `LOGOUT_PATH` (default `/auth/logout`): revokes the presented credential (blacklists the
    /// JWT's `jti`, or deletes the session). Empty string disables it.
    pub path: Option<String>,
    /// `LOGOUT_ALL_PATH` (default `/auth/logout-all`): sets the subject cutoff (every token of
    /// the subject issued before now is void) or ends every session of the subject.
    pub all_path: Option<String>,
}

/// Per-isolate gateway: validated configuration and per-isolate caches.
pub struct Gateway<S: JwksStore = NoJwksStore> {
    realm: String,
    routes: RouteTable,
    forward: ForwardConfig,
    jwt: Rc<Verifier<S>>,
    revocation: Option<Rc<Revocation>>,
    assertion: Option<AssertionConfig>,
    logout: LogoutConfig,
    /// `SELFTEST_ENDPOINT` (default false): enables `POST /__edge-auth/vectors`, which runs
    /// signature test vectors through the production verifier. For tests only.
    selftest: bool,
    /// `SERVER_TIMING` (default false): add a `Server-Timing` header (verify, redis, origin,
    /// total) to every response.
    server_timing: bool,
    /// `LOG_REQUESTS` (default `all`): which requests get a log line.
    log_requests: LogRequests,
}

/// Path of the test-vector endpoint (enabled only by `SELFTEST_ENDPOINT=true`).
pub const SELFTEST_PATH: &str = "/__edge-auth/vectors";

fn optional_path(vars: &dyn Vars, name: &str, default: &str) -> Result<Option<String>, ConfigError> {
    match vars.get(name) {
        Some(v) if v.trim().is_empty() => Ok(None),
        Some(v) if !v.trim().starts_with('/') => Err(ConfigError::new(name, "must start with /")),
        Some(v) => Ok(Some(v.trim().to_string())),
        None => Ok(Some(default.to_string())),
    }
}

impl Gateway<NoJwksStore> {
    /// Reads and validates the whole configuration; the error names the wrong field.
    pub fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        Gateway::with_store(vars, NoJwksStore)
    }
}

impl<S: JwksStore> Gateway<S> {
    /// Like [`Gateway::from_vars`], sharing fetched JWKS documents through `store`.
    pub fn with_store(vars: &dyn Vars, store: S) -> Result<Self, ConfigError> {
        let forward = ForwardConfig::from_vars(vars)?;
        let routes = RouteTable::from_vars(vars)?;
        let jwt = JwtConfig::from_vars(vars)?;
        let revocation = RevocationConfig::from_vars(vars)?;
        for (i, rule) in routes.rules().iter().enumerate() {
            if rule.auth.checks_revocation() && revocation.is_none() {
                return Err(ConfigError::new(
                    "UPSTASH_REDIS_REST_URL",
                    format!("required: route {} (ROUTES[{i}]) uses auth {}", rule.name, rule.auth.as_str()),
                ));
            }
            if matches!(rule.auth, AuthMode::Jwt | AuthMode::JwtRevocation | AuthMode::Refresh) && jwt.issuers.is_empty() {
                return Err(ConfigError::new(
                    "ISSUERS",
                    format!("required: route {} (ROUTES[{i}]) uses auth {}", rule.name, rule.auth.as_str()),
                ));
            }
        }
        let assertion = AssertionConfig::from_vars(vars)?;
        let logout = LogoutConfig {
            path: optional_path(vars, "LOGOUT_PATH", "/auth/logout")?,
            all_path: optional_path(vars, "LOGOUT_ALL_PATH", "/auth/logout-all")?,
        };
        Ok(Gateway {
            realm: get_trimmed(vars, "AUTH_REALM").unwrap_or_else(|| "edge-auth".to_string()),
            routes,
            forward,
            jwt: Rc::new(Verifier::with_store(jwt, store)),
            revocation: revocation.map(|c| Rc::new(Revocation::new(c))),
            assertion,
            logout,
            selftest: get_bool(vars, "SELFTEST_ENDPOINT", false)?,
            server_timing: get_bool(vars, "SERVER_TIMING", false)?,
            log_requests: LogRequests::from_vars(vars)?,
        })
    }

    /// `realm` of `WWW-Authenticate` (`AUTH_REALM`, default `edge-auth`).
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The JWT verifier (shared with background JWKS refreshes).
    pub fn verifier(&self) -> Rc<Verifier<S>> {
        self.jwt.clone()
    }

    /// The header that carries the request id to the origin (`{HEADER_PREFIX}Request-Id`).
    pub fn request_id_header(&self) -> String {
        self.forward.request_id_header()
    }

    /// Whether responses carry `Server-Timing`.
    pub fn server_timing(&self) -> bool {
        self.server_timing
    }

    /// Which requests get a log line.
    pub fn log_requests(&self) -> LogRequests {
        self.log_requests
    }

    /// Whether the test-vector endpoint is on.
    pub fn selftest_enabled(&self) -> bool {
        self.selftest
    }

    /// Decides what happens to one request.
    pub async fn decide<C: SignatureVerifier, H: HttpClient>(&self, req: Incoming<'_>, io: &Io<'_, C, H>) -> Decision {
        let mut log = RequestLog::new(req.request_id, &req.head.method, &req.head.path);
        let mut background = Background::default();
        let counting = Counting { inner: io.http, sent: Cell::new(0) };
        let io = Io { crypto: io.crypto, http: &counting, clock: io.clock };
        let outcome = match self.run(req, &io, &mut log, &mut background).await {
            Ok(outcome) => outcome,
            Err(refusal) => {
                log.refused(&refusal);
                Outcome::Refuse(refusal)
            }
        };
        if let Outcome::Serve { status, .. } = &outcome {
            log.decision = "serve";
            log.status = *status;
        }
        background.jwks.extend(self.jwt.take_background_refreshes());
        let forgets_replays = self.is_logout(req.head);
        let mut decision = Decision { outcome, log, background, replayable: false, forgets_replays };
        decision.replayable = decision.can_replay(counting.sent.get(), self.assertion.is_some());
        decision
    }

    async fn run<C: SignatureVerifier, H: HttpClient>(
        &self,
        req: Incoming<'_>,
        io: &Io<'_, C, H>,
        log: &mut RequestLog,
        background: &mut Background,
    ) -> Result<Outcome, Refusal> {
        let Incoming { head, now, request_id, client_ip } = req;
        let (crypto, http, clock) = (io.crypto, io.http, io.clock);
        // Edge endpoints.
        if head.path == ASSERTION_JWKS_PATH && head.method == "GET" {
            if let Some(cfg) = &self.assertion {
                return Ok(Outcome::Serve { status: 200, body: assertion::jwks_json(cfg) });
            }
        }
        if self.is_logout(head) {
            let all = self.logout.all_path.as_deref() == Some(head.path.as_str());
            return self.logout(head, now, all, crypto, http, log).await;
        }

        let rule = self.routes.resolve(head).map_err(Refusal::from)?;
        log.rule = Some(rule.name.clone());
        if rule.auth == AuthMode::Public || rule.lets_preflight_through(head) {
            return Ok(Outcome::Forward(self.plan(head, rule, None, None, request_id, client_ip, now)));
        }

        let extracted = self.jwt.extract(head)?;
        let (identity, credential) = if rule.auth == AuthMode::Session {
            let identity = self.session_identity(&extracted.token, now, http, clock, log, background).await?;
            (identity, extracted.location)
        } else {
            let started = clock();
            let verified = self.jwt.verify(&extracted.token, now, crypto, http).await;
            log.verify_ms = Some(clock() - started);
            let verified = verified?;
            log.token_cache_hit = Some(verified.cache_hit);
            log.subject = verified.subject.clone();
            log.credential = Some(if verified.is_refresh { "refresh_token" } else { "access_token" });
            if !rule.allows_issuer(&verified.issuer) {
                return Err(Reason::UnknownIssuer.into());
            }
            if verified.is_refresh != (rule.auth == AuthMode::Refresh) {
                return Err(Reason::WrongTokenUse.into());
            }
            let mut identity = jwt_identity(verified);
            if rule.auth.checks_revocation() {
                let cred = jwt_credential(&identity);
                let outcome = self.check_revocation(&cred, now, http, clock, log).await?;
                identity.permissions = outcome.permissions;
                identity.revocation = outcome.status;
                background.requests.extend(outcome.deferred);
            }
            (identity, extracted.location)
        };
        rule.check_scopes(&identity)?;
        Ok(Outcome::Forward(self.plan(head, rule, Some(&identity), Some(&credential), request_id, client_ip, now)))
    }

    /// Whether the request is for a logout endpoint (`POST` to `LOGOUT_PATH` / `LOGOUT_ALL_PATH`).
    fn is_logout(&self, head: &RequestHead) -> bool {
        let path = Some(head.path.as_str());
        head.method == "POST" && (self.logout.path.as_deref() == path || self.logout.all_path.as_deref() == path)
    }

    async fn check_revocation<H: HttpClient>(
        &self,
        cred: &Credential,
        now: u64,
        http: &H,
        clock: &dyn Fn() -> f64,
        log: &mut RequestLog,
    ) -> Result<crate::revocation::CheckOutcome, Refusal> {
        let rev = self.revocation.as_ref().ok_or(Reason::ConfigInvalid)?;
        let started = clock();
        let counting = Counting { inner: http, sent: Cell::new(0) };
        let outcome = rev.check(cred, now, &counting).await;
        log.redis_ms = Some(clock() - started);
        log.redis_round_trips = Some(counting.sent.get());
        if let Ok(o) = &outcome {
            log.revocation = Some(forward::revocation_value(&o.status));
        }
        outcome
    }

    async fn session_identity<H: HttpClient>(
        &self,
        token: &str,
        now: u64,
        http: &H,
        clock: &dyn Fn() -> f64,
        log: &mut RequestLog,
        background: &mut Background,
    ) -> Result<Identity, Refusal> {
        log.credential = Some("session");
        let cred = Credential::Session { token: token.to_string() };
        let outcome = self.check_revocation(&cred, now, http, clock, log).await?;
        let session: Session = outcome.session.ok_or(Reason::SessionNotFound)?;
        log.subject = Some(session.subject.clone());
        background.requests.extend(outcome.deferred);
        let mut claims = serde_json::Map::new();
        claims.insert("sub".into(), session.subject.clone().into());
        if let Some(d) = &session.device {
            claims.insert("device".into(), d.clone().into());
        }
        claims.insert("roles".into(), session.roles.clone().into());
        claims.insert("created".into(), session.created.into());
        claims.insert("expires".into(), session.expires.into());
        Ok(Identity {
            kind: CredentialKind::Session,
            subject: session.subject.clone(),
            issuer: "session".to_string(),
            claims: Rc::new(claims),
            scopes: session.roles.clone(),
            permissions: outcome.permissions,
            device: session.device.clone(),
            revocation: outcome.status,
        })
    }

    /// `POST LOGOUT_PATH` / `LOGOUT_ALL_PATH`: verifies the presented credential, then revokes it
    /// (or the subject) with one Redis write. The credential is never forwarded.
    async fn logout<C: SignatureVerifier, H: HttpClient>(
        &self,
        head: &RequestHead,
        now: u64,
        all: bool,
        crypto: &C,
        http: &H,
        log: &mut RequestLog,
    ) -> Result<Outcome, Refusal> {
        log.rule = Some(if all { "logout-all" } else { "logout" }.to_string());
        let rev = self.revocation.as_ref().ok_or(Reason::NoRoute)?;
        let extracted = self.jwt.extract(head)?;
        let token = extracted.token.as_str();
        let (write, revoked, check_trips) = if crate::revocation::session::looks_like_session_token(token) {
            let outcome = rev.check(&Credential::Session { token: token.to_string() }, now, http).await?;
            let check_trips = outcome.round_trips;
            let session = outcome.session.ok_or(Reason::SessionNotFound)?;
            log.subject = Some(session.subject.clone());
            if all {
                (rev.end_all_sessions_request(&session.subject), "sessions", check_trips)
            } else {
                (rev.end_session_request(&session), "session", check_trips)
            }
        } else {
            let v = self.jwt.verify(token, now, crypto, http).await?;
            log.subject = v.subject.clone();
            let sub = v.subject.clone().ok_or(Reason::MissingClaim)?;
            if all {
                let token = JwtCredential {
                    issuer: v.issuer.clone(),
                    subject: sub,
                    jti: v.jti.clone(),
                    iat: v.iat,
                    exp: v.exp,
                    is_refresh: v.is_refresh,
                    device: None,
                };
                (rev.logout_everywhere_request(&token, now, self.jwt.config().leeway), "subject", 0)
            } else {
                let jti = v.jti.clone().filter(|j| !j.is_empty()).ok_or(Reason::MissingClaim)?;
                let exp = v.exp.unwrap_or(now);
                (rev.revoke_jwt_request(&v.issuer, &sub, &jti, exp, now, self.jwt.config().leeway), "token", 0)
            }
        };
        log.redis_round_trips = Some(check_trips + 1);
        write.send(http).await.map_err(|_| Refusal::new(Reason::RevocationUnavailable))?;
        Ok(Outcome::Serve { status: 200, body: serde_json::json!({ "revoked": revoked }).to_string() })
    }

    #[allow(clippy::too_many_arguments)]
    fn plan(
        &self,
        head: &RequestHead,
        rule: &Rule,
        identity: Option<&Identity>,
        credential: Option<&CredentialLocation>,
        request_id: &str,
        client_ip: Option<&str>,
        now: u64,
    ) -> ForwardPlan {
        let mut plan = forward::plan(&self.forward, head, identity, credential, rule.keep_credential, request_id, client_ip);
        if let Some(cfg) = &self.assertion {
            let header = assertion::for_plan(cfg, &self.forward, &plan, &head.method, identity, request_id, now);
            plan.set_headers.push(header);
        }
        plan
    }
}

/// Counts the HTTP calls a check makes (the log's `redis_round_trips` is measured, not assumed).
struct Counting<'a, H> {
    inner: &'a H,
    sent: Cell<u32>,
}

impl<H: HttpClient> HttpClient for Counting<'_, H> {
    async fn send(&self, req: HttpRequest) -> Result<crate::http::HttpResponse, crate::http::FetchError> {
        self.sent.set(self.sent.get() + 1);
        self.inner.send(req).await
    }
}

fn jwt_identity(v: VerifiedToken) -> Identity {
    let device = ["sid", "device"].iter().find_map(|k| v.claims.get(*k).and_then(|d| d.as_str()).map(str::to_string));
    Identity {
        kind: if v.is_refresh { CredentialKind::RefreshToken } else { CredentialKind::AccessToken },
        subject: v.subject.clone().unwrap_or_default(),
        issuer: v.issuer.clone(),
        claims: v.claims,
        scopes: v.scopes,
        permissions: Vec::new(),
        device,
        revocation: RevocationStatus::NotRequired,
    }
}

fn jwt_credential(id: &Identity) -> Credential {
    let num = |k: &str| id.claims.get(k).and_then(|v| v.as_u64());
    Credential::Jwt(JwtCredential {
        issuer: id.issuer.clone(),
        subject: id.subject.clone(),
        jti: id.claims.get("jti").and_then(|v| v.as_str()).map(str::to_string),
        iat: num("iat"),
        exp: num("exp"),
        is_refresh: id.kind == CredentialKind::RefreshToken,
        device: id.device.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{FetchError, HttpResponse};
    use crate::jwt::host_crypto::HostVerifier;
    use crate::revocation::fake::Fake;
    use futures::executor::block_on;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use std::collections::HashMap;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_800_000_000;

    /// No outbound HTTP is expected in these tests; any call fails.
    struct NoHttp;
    impl HttpClient for NoHttp {
        async fn send(&self, _req: HttpRequest) -> Result<HttpResponse, FetchError> {
            Err(FetchError::Network("no network in this test".into()))
        }
    }

    fn vars(extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut v: HashMap<String, String> = [
            ("ORIGIN_URL", "https://origin.internal/base"),
            ("SECRET", SECRET),
            (
                "ISSUERS",
                r#"[{"issuer":"https://id.test","audiences":["api"],"hmac_secrets":[{"alg":"HS256","secret_var":"SECRET"}],"refresh_typ":"refresh+jwt"}]"#,
            ),
            (
                "ROUTES",
                r#"[{"name":"pub","path":"/public/**","auth":"public"},
                    {"name":"admin","path":"/admin/**","auth":"jwt","scopes_all":["admin"]},
                    {"name":"api","path":"/api/**","auth":"jwt"}]"#,
            ),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, val) in extra {
            v.insert(k.to_string(), val.to_string());
        }
        v
    }

    fn token(typ: &str, scope: &str) -> String {
        let mut h = Header::new(jsonwebtoken::Algorithm::HS256);
        h.typ = Some(typ.into());
        let claims = serde_json::json!({"iss":"https://id.test","aud":"api","sub":"alice","exp":NOW+600,"iat":NOW,"scope":scope});
        encode(&h, &claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
    }

    fn head(method: &str, path: &str, headers: &[(&str, &str)]) -> RequestHead {
        RequestHead {
            method: method.into(),
            scheme: "https".into(),
            host: "edge.test".into(),
            path: path.into(),
            query: None,
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        }
    }

    fn decide(gw: &Gateway, h: &RequestHead) -> Decision {
        let req = Incoming { head: h, now: NOW, request_id: "rid-1", client_ip: Some("203.0.113.9") };
        block_on(gw.decide(req, &Io { crypto: &HostVerifier, http: &NoHttp, clock: &|| 0.0 }))
    }

    fn refused(d: &Decision) -> Reason {
        match &d.outcome {
            Outcome::Refuse(r) => r.reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn valid_token_forwards_with_identity_and_without_spoofed_headers() {
        let gw = Gateway::from_vars(&vars(&[])).unwrap();
        let auth = format!("Bearer {}", token("JWT", "read"));
        let d = decide(&gw, &head("GET", "/api/orders", &[("authorization", &auth), ("x-auth-subject", "mallory")]));
        let Outcome::Forward(plan) = &d.outcome else { panic!("{:?}", d.outcome) };
        assert_eq!(plan.url, "https://origin.internal/base/api/orders");
        assert_eq!(plan.set_header("X-Auth-Subject"), Some("alice"));
        assert!(plan.remove_headers.iter().any(|h| h == "x-auth-subject"));
        assert!(plan.remove_headers.iter().any(|h| h == "authorization"));
        assert_eq!(d.log.rule.as_deref(), Some("api"));
        assert_eq!(d.log.subject.as_deref(), Some("alice"));
    }

    #[test]
    fn refusals_map_to_reasons() {
        let gw = Gateway::from_vars(&vars(&[])).unwrap();
        assert_eq!(refused(&decide(&gw, &head("GET", "/api/x", &[]))), Reason::MissingToken);
        assert_eq!(refused(&decide(&gw, &head("GET", "/elsewhere", &[]))), Reason::NoRoute);
        let auth = format!("Bearer {}", token("JWT", "read"));
        let d = decide(&gw, &head("GET", "/admin/x", &[("authorization", &auth)]));
        assert_eq!(refused(&d), Reason::InsufficientScope);
        assert_eq!(d.log.reason, Some("insufficient_scope"));
        let refresh = format!("Bearer {}", token("refresh+jwt", "read"));
        assert_eq!(refused(&decide(&gw, &head("GET", "/api/x", &[("authorization", &refresh)]))), Reason::WrongTokenUse);
    }

    #[test]
    fn public_routes_forward_without_credential_but_still_strip() {
        let gw = Gateway::from_vars(&vars(&[])).unwrap();
        let d = decide(&gw, &head("GET", "/public/a", &[("X-Auth-Subject", "mallory")]));
        let Outcome::Forward(plan) = &d.outcome else { panic!("{:?}", d.outcome) };
        assert!(plan.remove_headers.iter().any(|h| h == "x-auth-subject"));
        assert_eq!(plan.set_header("X-Auth-Subject"), None);
    }

    #[test]
    fn config_errors_name_the_field() {
        let err = Gateway::from_vars(&vars(&[("ROUTES", r#"[{"path":"/**","auth":"jwt+revocation"}]"#)])).err().unwrap();
        assert_eq!(err.field, "UPSTASH_REDIS_REST_URL");
        let err = Gateway::from_vars(&vars(&[("ORIGIN_URL", "not a url")])).err().unwrap();
        assert_eq!(err.field, "ORIGIN_URL");
        let err = Gateway::from_vars(&vars(&[("LOGOUT_PATH", "logout")])).err().unwrap();
        assert_eq!(err.field, "LOGOUT_PATH");
        let mut v = vars(&[]);
        v.remove("ISSUERS");
        assert_eq!(Gateway::from_vars(&v).err().unwrap().field, "ISSUERS");
    }

    fn decide_with(gw: &Gateway, h: &RequestHead, http: &Fake) -> Decision {
        let req = Incoming { head: h, now: NOW, request_id: "rid-1", client_ip: Some("203.0.113.9") };
        block_on(gw.decide(req, &Io { crypto: &HostVerifier, http, clock: &|| 0.0 }))
    }

    const REVOCATION: [(&str, &str); 3] = [
        ("UPSTASH_REDIS_REST_URL", "https://redis.internal"),
        ("UPSTASH_REDIS_REST_TOKEN", "t"),
        ("ROUTES", r#"[{"name":"pub","path":"/public/**","auth":"public"},{"name":"api","path":"/api/**","auth":"jwt+revocation"}]"#),
    ];

    #[test]
    fn only_forwards_decided_without_io_from_valid_cache_entries_are_replayable() {
        let auth = format!("Bearer {}", token("JWT", "read"));
        let api = head("GET", "/api/orders", &[("authorization", &auth)]);

        // JWT routes: the first two requests verify the signature (the token cache stores a
        // token the second time it verifies); the next comes from the cache.
        let gw = Gateway::from_vars(&vars(&[])).unwrap();
        for i in 0..2 {
            assert!(!decide(&gw, &api).replayable, "request {i}: signature checked");
        }
        let d = decide(&gw, &api);
        assert_eq!(d.log.token_cache_hit, Some(true));
        assert!(d.replayable && !d.forgets_replays);
        assert!(decide(&gw, &head("GET", "/public/a", &[])).replayable, "public route");
        assert!(!decide(&gw, &head("GET", "/api/x", &[])).replayable, "refusal");
        assert!(!decide(&gw, &head("GET", "/admin/x", &[("authorization", &auth)])).replayable, "scope refusal");

        // Revocation on every request: never replayable.
        let redis = Fake::new();
        let gw = Gateway::from_vars(&vars(&REVOCATION)).unwrap();
        for _ in 0..3 {
            let d = decide_with(&gw, &api, &redis);
            assert_eq!(d.log.revocation, Some("checked"));
            assert!(!d.replayable);
        }
        assert_eq!(redis.calls(), 3);

        // With the staleness cache: the checked request is not, the cached one is.
        let mut v = REVOCATION.to_vec();
        v.push(("REVOCATION_CACHE_SECS", "60"));
        let gw = Gateway::from_vars(&vars(&v)).unwrap();
        assert!(!decide_with(&gw, &api, &redis).replayable, "checked in Redis");
        let d = decide_with(&gw, &api, &redis);
        assert_eq!((d.log.revocation, d.log.token_cache_hit), (Some("cached"), Some(false)));
        assert!(!d.replayable, "signature checked");
        let d = decide_with(&gw, &api, &redis);
        assert_eq!((d.log.revocation, d.log.token_cache_hit), (Some("cached"), Some(true)));
        assert!(d.replayable);

        // Fail-open: a request let through without an answer from Redis never is, even once the
        // open breaker stops asking.
        let mut v = REVOCATION.to_vec();
        v.extend([("REVOCATION_FAILURE_POLICY", "open"), ("CIRCUIT_BREAKER_FAILURES", "1")]);
        let gw = Gateway::from_vars(&vars(&v)).unwrap();
        let redis = Fake::new();
        assert_eq!(decide_with(&gw, &api, &redis).log.revocation, Some("checked"));
        redis.fail(Err(FetchError::Network("connection refused".into())));
        for i in 0..3 {
            let d = decide_with(&gw, &api, &redis);
            assert_eq!(d.log.revocation, Some("skipped"), "request {i}");
            assert!(!d.replayable, "request {i}: fail-open skip");
        }
        assert_eq!(redis.calls(), 2, "the breaker opened after one failure");

        // A signed assertion is signed per request.
        let seed = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, [7u8; 32]);
        let gw = Gateway::from_vars(&vars(&[("ASSERTION_KEY", &seed)])).unwrap();
        decide(&gw, &api);
        decide(&gw, &api);
        let d = decide(&gw, &api);
        assert_eq!(d.log.token_cache_hit, Some(true));
        assert!(!d.replayable, "assertion");
    }

    #[test]
    fn a_logout_forgets_replays_whatever_its_outcome() {
        let gw = Gateway::from_vars(&vars(&REVOCATION)).unwrap();
        let redis = Fake::new();
        let auth = format!("Bearer {}", token("JWT", "read"));
        for path in ["/auth/logout", "/auth/logout-all"] {
            assert!(decide_with(&gw, &head("POST", path, &[("authorization", &auth)]), &redis).forgets_replays, "{path}");
            assert!(decide_with(&gw, &head("POST", path, &[]), &redis).forgets_replays, "{path} refused");
            assert!(!decide_with(&gw, &head("GET", path, &[]), &redis).forgets_replays, "GET {path}");
        }
        assert!(!decide_with(&gw, &head("POST", "/api/x", &[("authorization", &auth)]), &redis).forgets_replays);
    }

    #[test]
    fn assertion_jwks_is_served_at_the_edge() {
        let seed = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, [7u8; 32]);
        let gw = Gateway::from_vars(&vars(&[("ASSERTION_KEY", &seed)])).unwrap();
        let d = decide(&gw, &head("GET", ASSERTION_JWKS_PATH, &[]));
        let Outcome::Serve { status: 200, body } = &d.outcome else { panic!("{:?}", d.outcome) };
        assert!(body.contains("\"kty\":\"OKP\""), "{body}");
        assert_eq!(d.log.decision, "serve");
    }
}
