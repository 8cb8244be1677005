//! Shared pieces of the revocation, session and Redis-fault end-to-end tests: the worker
//! configuration they run with, token minting (HS256, with `jsonwebtoken`), the operator CLI
//! (`edge-auth`, next to the launcher) and small request helpers.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::common::{Reply, Stack};

/// Issuer A: HS256 with kid `a1`; refresh tokens are told apart by the header `typ`.
pub const ISS_A: &str = "https://issuer-a.test";
/// Issuer B: HS256 without kid; refresh tokens carry `token_use=refresh`.
pub const ISS_B: &str = "https://issuer-b.test";
/// The audience both issuers are configured with.
pub const AUD: &str = "api";
/// HMAC secrets (≥ 32 bytes for HS256), given to the worker as vars `SECRET_A` / `SECRET_B`.
pub const SECRET_A: &str = "e2e-rev-secret-a-0123456789abcdefghijklmnop";
pub const SECRET_B: &str = "e2e-rev-secret-b-0123456789abcdefghijklmnop";
/// Header `typ` of issuer A's refresh tokens.
pub const REFRESH_TYP: &str = "refresh+jwt";

/// Routes of every stack here: `/refresh/**` (refresh tokens), `/s/**` (opaque sessions),
/// `/public/**`, everything else JWT + revocation.
pub const ROUTES: &str = r#"[
  {"name":"refresh","path":"/refresh/**","auth":"refresh"},
  {"name":"session","path":"/s/**","auth":"session"},
  {"name":"public","path":"/public/**","auth":"public"},
  {"name":"api","path":"/**","auth":"jwt+revocation"}
]"#;

/// The two issuers.
pub fn issuers() -> String {
    json!([
        {"issuer": ISS_A, "audiences": [AUD], "hmac_secrets": [{"kid": "a1", "alg": "HS256", "secret_var": "SECRET_A"}],
         "refresh_typ": REFRESH_TYP},
        {"issuer": ISS_B, "audiences": [AUD], "hmac_secrets": [{"alg": "HS256", "secret_var": "SECRET_B"}],
         "refresh_claim": {"name": "token_use", "value": "refresh"}}
    ])
    .to_string()
}

/// The vars every stack here starts from, plus `extra` (which override).
pub fn vars(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = vec![
        ("ISSUERS".into(), issuers()),
        ("SECRET_A".into(), SECRET_A.into()),
        ("SECRET_B".into(), SECRET_B.into()),
        ("ROUTES".into(), ROUTES.into()),
        ("TOKEN_SOURCES".into(), "header:authorization,cookie:session".into()),
    ];
    for (k, val) in extra {
        v.retain(|(name, _)| name != k);
        v.push((k.to_string(), val.to_string()));
    }
    v
}

/// `Stack::shared` with [`vars`]`(extra)`.
pub fn shared_stack(extra: &[(&str, &str)]) -> &'static Stack {
    let v = vars(extra);
    let refs: Vec<(&str, &str)> = v.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Stack::shared(&refs)
}

/// Unix seconds now.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A name no other test of this process uses (subjects, jtis, devices).
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// What to put in a test token.
#[derive(Clone, Debug)]
pub struct Tok {
    pub iss: &'static str,
    pub sub: String,
    pub jti: Option<String>,
    /// `None`: no `iat` claim.
    pub iat: Option<u64>,
    pub exp: u64,
    pub typ: &'static str,
    pub extra: Value,
}

impl Tok {
    /// An access token of `iss` for `sub`, issued now, valid 10 minutes, with a fresh jti.
    pub fn access(iss: &'static str, sub: &str) -> Tok {
        let n = now();
        Tok { iss, sub: sub.to_string(), jti: Some(unique("jti")), iat: Some(n), exp: n + 600, typ: "JWT", extra: json!({}) }
    }

    /// A refresh token of `iss` (issuer A: header typ; issuer B: `token_use` claim).
    pub fn refresh(iss: &'static str, sub: &str) -> Tok {
        let mut t = Tok::access(iss, sub);
        if iss == ISS_A {
            t.typ = REFRESH_TYP;
        } else {
            t.extra = json!({"token_use": "refresh"});
        }
        t
    }

    pub fn iat(mut self, iat: Option<u64>) -> Tok {
        self.iat = iat;
        self
    }

    pub fn claim(mut self, k: &str, v: Value) -> Tok {
        self.extra[k] = v;
        self
    }

    /// Signs it with the issuer's secret (HS256).
    pub fn sign(&self) -> String {
        let (secret, kid) = if self.iss == ISS_A { (SECRET_A, Some("a1".to_string())) } else { (SECRET_B, None) };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = kid;
        header.typ = Some(self.typ.to_string());
        let mut claims = json!({"iss": self.iss, "sub": self.sub, "aud": AUD, "exp": self.exp});
        if let Some(iat) = self.iat {
            claims["iat"] = iat.into();
        }
        if let Some(jti) = &self.jti {
            claims["jti"] = jti.clone().into();
        }
        if let Value::Object(m) = &self.extra {
            for (k, v) in m {
                claims[k] = v.clone();
            }
        }
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret.as_bytes())).expect("sign test token")
    }
}

/// `Authorization: Bearer <token>`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// `GET path` with `Authorization: Bearer token`.
pub fn get_with(stack: &Stack, path: &str, token: &str) -> Reply {
    stack.get(path, &[("authorization", &bearer(token))])
}

/// Asserts the request reached the origin (200 echo) and returns its `X-Auth-Revocation`.
pub fn assert_passes(reply: &Reply, what: &str) -> String {
    assert_eq!(reply.status, 200, "{what}: expected 200 from the origin, got {} {}", reply.status, reply.text());
    let echo = reply.origin_echo();
    echo.header("x-auth-revocation").unwrap_or_else(|| panic!("{what}: no X-Auth-Revocation at the origin: {:?}", echo.headers)).to_string()
}

/// Asserts a refusal with this status and reason, and (for 401/403) a `WWW-Authenticate`
/// naming the realm.
pub fn assert_refused(reply: &Reply, status: u16, reason: &str, what: &str) {
    assert_eq!(reply.status, status, "{what}: expected {status} {reason}, got {} {}", reply.status, reply.text());
    reply.assert_refusal(status, reason);
    if status == 401 {
        let www = reply.header("www-authenticate").unwrap_or_else(|| panic!("{what}: 401 without WWW-Authenticate"));
        assert!(www.starts_with("Bearer realm=\"edge-auth\""), "{what}: WWW-Authenticate {www:?}");
    }
}

/// `X-Auth-Scopes` at the origin, split on spaces and sorted.
pub fn origin_scopes(reply: &Reply) -> Vec<String> {
    let echo = reply.origin_echo();
    let mut v: Vec<String> = echo.header("x-auth-scopes").unwrap_or("").split_whitespace().map(str::to_string).collect();
    v.sort();
    v
}

/// The `edge-auth` CLI, next to the launcher in the target dir.
pub fn cli_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("test binary has no target dir");
    let bin = dir.join("edge-auth");
    assert!(bin.is_file(), "the operator CLI {} does not exist: build the tools first (`cargo build --workspace --bins`)", bin.display());
    bin
}

/// Runs `edge-auth args…` against the REST server at `url` with `token`, with `env` added;
/// no setting is inherited from the test's own environment.
pub fn cli_at(url: &str, token: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(cli_bin());
    cmd.args(args)
        .env("UPSTASH_REDIS_REST_URL", url)
        .env("UPSTASH_REDIS_REST_TOKEN", token)
        .env_remove("REDIS_PREFIX")
        .env_remove("SESSION_MAX_LIFETIME_SECS")
        .env_remove("MAX_SESSIONS_PER_SUBJECT")
        .env_remove("SESSION_LIMIT_POLICY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run edge-auth")
}

/// `edge-auth args…` against this stack's REST server.
pub fn cli(stack: &Stack, args: &[&str], env: &[(&str, &str)]) -> Output {
    cli_at(&stack.info.upstash, &stack.info.upstash_token, args, env)
}

/// Runs the CLI and asserts success; returns stdout (trimmed).
pub fn cli_ok(stack: &Stack, args: &[&str]) -> String {
    cli_ok_env(stack, args, &[])
}

/// Like [`cli_ok`] with extra environment.
pub fn cli_ok_env(stack: &Stack, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = cli(stack, args, env);
    assert!(
        out.status.success(),
        "edge-auth {args:?} failed ({}): stdout {:?} stderr {:?}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Creates a session with the CLI and returns its opaque token.
pub fn login(stack: &Stack, sub: &str, device: &str, extra: &[&str]) -> String {
    let mut args = vec!["session", "create", "--sub", sub, "--device", device];
    args.extend_from_slice(extra);
    let token = cli_ok(stack, &args);
    assert_eq!(token.len(), 43, "session create printed {token:?}");
    token
}

/// The Redis key of the session whose opaque token is `token` (default prefix).
pub fn session_key(token: &str) -> String {
    edge_auth::revocation::KeySchema::default().session(&edge_auth::revocation::keys::token_hash(token))
}

/// Polls `f` every `every` until it returns `Some`, for at most `limit`.
pub fn poll<T>(limit: Duration, every: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(t) = f() {
            return Some(t);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// Sleeps until the wall clock is at least `t` (Unix seconds) plus `extra_ms`.
pub fn sleep_until(t: u64, extra_ms: u64) {
    let target = Duration::from_secs(t) + Duration::from_millis(extra_ms);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    if let Some(d) = target.checked_sub(now) {
        std::thread::sleep(d);
    }
}

/// The worker's log (wrangler's stdout and stderr) so far.
pub fn worker_log(stack: &Stack) -> String {
    let dir = PathBuf::from(&stack.info.logs_dir);
    ["wrangler.stdout.log", "wrangler.stderr.log"].iter().map(|f| std::fs::read_to_string(dir.join(f)).unwrap_or_default()).collect::<Vec<_>>().join("\n")
}

/// Asserts the worker never panicked (a panic aborts the isolate and shows in its log).
pub fn assert_no_panic(stack: &Stack) {
    let log = worker_log(stack);
    assert!(log.contains("\"request_id\""), "no request log line in the worker's log (wrong log files?): {}", stack.info.logs_dir);
    for needle in ["panicked at", "RuntimeError: unreachable"] {
        assert!(!log.contains(needle), "the worker log shows {needle:?}:\n{}", log.lines().filter(|l| l.contains(needle)).take(5).collect::<Vec<_>>().join("\n"));
    }
}
