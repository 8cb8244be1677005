//! The `edge-auth` CLI and the worker's revocation core against a REAL redis-server behind the
//! REAL `upstash-rest-server`. What the CLI writes is read back by `edge_auth::revocation`'s
//! per-request check (the code the worker runs), so these tests prove both speak one schema,
//! and they run the Lua scripts on a real Redis.
//!
//! The REST server binary is taken from `UPSTASH_SERVER_BIN`, else this package's
//! `upstash-rest-server`, else `$CARGO_TARGET_DIR/debug/upstash-rest-server`; if none exists the
//! tests FAIL (they are never skipped).

mod support;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use edge_auth::error::Reason;
use edge_auth::http::{FetchError, HttpClient, HttpRequest, HttpResponse};
use edge_auth::identity::RevocationStatus;
use edge_auth::revocation::{CheckOutcome, Credential, JwtCredential, RateLimit, RateLimitKey, Revocation, RevocationConfig};
use serde_json::Value;
use support::Proc;

const TOKEN: &str = "cli-test-token-7Hq";
const CLI: &str = env!("CARGO_BIN_EXE_edge-auth");
const ISS: &str = "https://issuer.example/";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn free_port() -> u16 {
    edge_auth_tools::stack::probe::free_port().expect("a free port")
}

fn server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("UPSTASH_SERVER_BIN") {
        return PathBuf::from(p);
    }
    if let Some(p) = option_env!("CARGO_BIN_EXE_upstash-rest-server") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("target"));
    target.join("debug").join("upstash-rest-server")
}

/// redis-server + upstash-rest-server, both on free ports, both killed on drop.
struct Stack {
    redis: Option<Proc>,
    _server: Proc,
    url: String,
}

impl Stack {
    fn start() -> Stack {
        let (redis, port) = support::start_redis();
        let args = ["--connect-timeout-ms", "500", "--command-timeout-ms", "2000"];
        let (server, url) = support::start_server(&server_bin(), &format!("redis://127.0.0.1:{port}"), TOKEN, &args);
        Stack { redis: Some(redis), _server: server, url }
    }

    /// Runs the CLI against this stack.
    fn cli(&self, args: &[&str]) -> Output {
        Command::new(CLI)
            .args(args)
            .env("UPSTASH_REDIS_REST_URL", &self.url)
            .env("UPSTASH_REDIS_REST_TOKEN", TOKEN)
            .env_remove("REDIS_PREFIX")
            .env_remove("MAX_SESSIONS_PER_SUBJECT")
            .env_remove("SESSION_LIMIT_POLICY")
            .env_remove("SESSION_MAX_LIFETIME_SECS")
            .output()
            .unwrap()
    }

    /// Runs the CLI and requires success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(out.status.success(), "edge-auth {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn config(&self) -> RevocationConfig {
        RevocationConfig::with_endpoint(&self.url, TOKEN)
    }
}

/// The worker's `HttpClient`, implemented with reqwest for the host.
struct Reqwest(reqwest::Client);

impl HttpClient for Reqwest {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, FetchError> {
        let mut b = self.0.request(req.method.parse().unwrap(), &req.url).timeout(Duration::from_millis(req.timeout_ms.into()));
        for (n, v) in &req.headers {
            b = b.header(n, v);
        }
        let resp = b.body(req.body.unwrap_or_default()).send().await.map_err(|e| if e.is_timeout() { FetchError::Timeout } else { FetchError::Network(e.to_string()) })?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| FetchError::Network(e.to_string()))?.to_vec();
        Ok(HttpResponse { status, headers: vec![], body })
    }
}

fn check(r: &Revocation, cred: &Credential, at: u64) -> Result<CheckOutcome, Reason> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(r.check(cred, at, &Reqwest(reqwest::Client::new()))).map_err(|refusal| refusal.reason)
}

fn jwt(sub: &str, jti: Option<&str>, iat: u64) -> Credential {
    Credential::Jwt(JwtCredential { issuer: ISS.into(), subject: sub.into(), jti: jti.map(Into::into), iat: Some(iat), exp: Some(iat + 3600), is_refresh: false, device: None })
}

fn claims_of(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn session(token: &str) -> Credential {
    Credential::Session { token: token.trim().to_string() }
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn revoke_token_and_revoke_jti_stop_the_worker_check() {
    let s = Stack::start();
    let r = Revocation::new(s.config());
    let t = s.ok(&["mint", "--key", "dev-secret", "--iss", ISS, "--sub", "alice", "--exp-in", "600"]);
    let claims = claims_of(t.trim());
    let jti = claims["jti"].as_str().unwrap().to_string();
    let iat = claims["iat"].as_u64().unwrap();
    let cred = jwt("alice", Some(&jti), iat);
    assert!(matches!(check(&r, &cred, now()).unwrap().status, RevocationStatus::Checked { cached: false, .. }));

    let out = s.cli(&["revoke-token", t.trim()]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("WITHOUT verifying"), "says it did not verify");
    assert_eq!(check(&r, &cred, now()), Err(Reason::Revoked));

    let other = jwt("alice", Some("other-jti"), iat);
    assert!(check(&r, &other, now()).is_ok());
    s.ok(&["revoke-jti", "--iss", ISS, "--jti", "other-jti", "--exp", &(now() + 60).to_string()]);
    assert_eq!(check(&r, &other, now()), Err(Reason::Revoked));
}

#[test]
fn revoke_subject_cuts_off_older_tokens() {
    let s = Stack::start();
    let r = Revocation::new(s.config());
    let t = now();
    s.ok(&["revoke-subject", "--iss", ISS, "--sub", "bob", "--at", &t.to_string()]);
    assert_eq!(check(&r, &jwt("bob", Some("a"), t - 1), t), Err(Reason::Revoked));
    assert!(check(&r, &jwt("bob", Some("b"), t), t).is_ok());
    assert!(check(&r, &jwt("carol", Some("c"), t - 1), t).is_ok());
}

#[test]
fn perms_set_get_and_seen_by_the_check() {
    let s = Stack::start();
    let r = Revocation::new(s.config());
    s.ok(&["perms", "set", "--sub", "dave", "orders:write", "admin"]);
    assert_eq!(s.ok(&["perms", "get", "--sub", "dave"]), "admin\norders:write\n");
    assert_eq!(check(&r, &jwt("dave", None, now()), now()).unwrap().permissions, vec!["admin", "orders:write"]);
    s.ok(&["perms", "set", "--sub", "dave"]);
    assert_eq!(s.ok(&["perms", "get", "--sub", "dave"]), "");
}

#[test]
fn refresh_tokens_live_only_while_registered() {
    let s = Stack::start();
    let r = Revocation::new(s.config());
    let cred = Credential::Jwt(JwtCredential { issuer: ISS.into(), subject: "erin".into(), jti: Some("rt-1".into()), iat: Some(now()), exp: None, is_refresh: true, device: None });
    assert_eq!(check(&r, &cred, now()), Err(Reason::Revoked));
    s.ok(&["refresh", "add", "--iss", ISS, "--jti", "rt-1", "--ttl", "600"]);
    assert!(check(&r, &cred, now()).is_ok());
    assert!(s.ok(&["refresh", "revoke", "--iss", ISS, "--jti", "rt-1"]).contains("revoked"));
    assert_eq!(check(&r, &cred, now()), Err(Reason::Revoked));
}

#[test]
fn session_create_check_list_kick() {
    let s = Stack::start();
    let r = Revocation::new(s.config());
    s.ok(&["perms", "set", "--sub", "frank", "billing:read"]);
    let phone = s.ok(&["session", "create", "--sub", "frank", "--device", "phone", "--perm", "orders:read", "--role", "user"]);
    let laptop = s.ok(&["session", "create", "--sub", "frank", "--device", "laptop"]);
    assert_eq!(phone.trim().len(), 43, "32 random bytes, base64url");

    let out = check(&r, &session(&phone), now()).unwrap();
    let sess = out.session.unwrap();
    assert_eq!((sess.subject.as_str(), sess.device.as_deref(), sess.roles.clone()), ("frank", Some("phone"), vec!["user".to_string()]));
    assert_eq!(out.permissions, vec!["billing:read", "orders:read"]);

    let listed: Vec<Value> = s.ok(&["session", "list", "--sub", "frank", "--json"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let devices: Vec<&str> = listed.iter().map(|l| l["device"].as_str().unwrap()).collect();
    assert_eq!(devices, vec!["phone", "laptop"]);
    assert!(!s.ok(&["session", "list", "--sub", "frank"]).contains(phone.trim()), "the token is never listed");

    assert!(s.ok(&["session", "kick", "--sub", "frank", "--device", "phone"]).contains("ended 1"));
    assert_eq!(check(&r, &session(&phone), now()), Err(Reason::SessionNotFound));
    assert!(check(&r, &session(&laptop), now()).is_ok());
    assert!(s.ok(&["session", "kick-all", "--sub", "frank"]).contains("ended 1"));
    assert_eq!(check(&r, &session(&laptop), now()), Err(Reason::SessionNotFound));
    assert_eq!(s.ok(&["session", "list", "--sub", "frank", "--json"]), "");
    assert_eq!(check(&r, &session("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), now()), Err(Reason::SessionNotFound));
}

#[test]
fn session_limit_evicts_oldest_or_refuses() {
    let s = Stack::start();
    let r = Revocation::new(s.config());
    let first = s.ok(&["session", "create", "--sub", "gina", "--device", "d1", "--max-sessions", "2"]);
    let second = s.ok(&["session", "create", "--sub", "gina", "--device", "d2", "--max-sessions", "2"]);
    let out = s.cli(&["session", "create", "--sub", "gina", "--device", "d3", "--max-sessions", "2"]);
    assert!(out.status.success());
    assert!(stderr_of(&out).contains("evicted 1"));
    let third = String::from_utf8(out.stdout).unwrap();
    assert_eq!(check(&r, &session(&first), now()), Err(Reason::SessionNotFound), "oldest evicted");
    assert!(check(&r, &session(&second), now()).is_ok());
    assert!(check(&r, &session(&third), now()).is_ok());

    let out = s.cli(&["session", "create", "--sub", "gina", "--device", "d4", "--max-sessions", "2", "--limit-policy", "refuse"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no token printed");
    let err = stderr_of(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("already has 2 session(s)"), "{err}");
    assert_eq!(s.ok(&["session", "list", "--sub", "gina", "--json"]).lines().count(), 2);
}

#[test]
fn sliding_expiry_renews_up_to_the_absolute_maximum() {
    let s = Stack::start();
    let tok = s.ok(&["session", "create", "--sub", "hank", "--device", "d", "--ttl", "30", "--max-lifetime", "1000"]);
    let ttl_left = || -> i64 {
        let line = s.ok(&["session", "list", "--sub", "hank", "--json"]);
        serde_json::from_str::<Value>(line.trim()).unwrap()["ttl_left"].as_i64().unwrap()
    };
    assert!(ttl_left() <= 30);
    let mut c = s.config();
    c.session_sliding_secs = 600;
    let r = Revocation::new(c.clone());
    check(&r, &session(&tok), now()).unwrap();
    assert!((590..=600).contains(&ttl_left()), "renewed to the sliding window: {}", ttl_left());
    // A use 900 s after creation renews only to the 1000 s cap.
    let created = now();
    check(&r, &session(&tok), created + 900).unwrap();
    assert!((90..=101).contains(&ttl_left()), "capped at the absolute end: {}", ttl_left());
    // Past the cap the session is gone even though Redis still holds it.
    assert_eq!(check(&r, &session(&tok), created + 1001), Err(Reason::SessionNotFound));
    // SESSION_MAX_LIFETIME_SECS caps it further.
    c.session_max_lifetime_secs = 100;
    let r = Revocation::new(c);
    check(&r, &session(&tok), created).unwrap();
    assert!(ttl_left() <= 100, "{}", ttl_left());
    assert_eq!(check(&r, &session(&tok), created + 101), Err(Reason::SessionNotFound));
}

#[test]
fn rate_limit_on_real_redis_for_jwts_and_sessions() {
    let s = Stack::start();
    for key in [RateLimitKey::Subject, RateLimitKey::Device] {
        let mut c = s.config();
        c.keys = edge_auth::revocation::KeySchema::new(format!("rl-{key:?}:"));
        c.rate_limit = Some(RateLimit { requests: 2, window_secs: 3600 });
        c.rate_limit_key = key;
        let r = Revocation::new(c);
        let t = now();
        assert!(check(&r, &jwt("ivy", None, t), t).is_ok());
        assert!(check(&r, &jwt("ivy", None, t), t).is_ok());
        assert_eq!(check(&r, &jwt("ivy", None, t), t), Err(Reason::RateLimited));
        let tok = s.ok(&["--prefix", &format!("rl-{key:?}:"), "session", "create", "--sub", "jack", "--device", "d"]);
        assert!(check(&r, &session(&tok), t).is_ok());
        assert!(check(&r, &session(&tok), t).is_ok());
        assert_eq!(check(&r, &session(&tok), t), Err(Reason::RateLimited));
    }
}

#[test]
fn redis_down_fails_closed_and_recovers() {
    let mut s = Stack::start();
    let mut c = s.config();
    c.breaker_failures = 0;
    let r = Revocation::new(c);
    let cred = jwt("kim", Some("j"), now());
    assert!(check(&r, &cred, now()).is_ok());
    drop(s.redis.take());
    thread::sleep(Duration::from_millis(100));
    assert_eq!(check(&r, &cred, now()), Err(Reason::RevocationUnavailable));
    let out = s.cli(&["perms", "get", "--sub", "kim"]);
    assert!(!out.status.success());
    assert_eq!(stderr_of(&out).lines().count(), 1, "{}", stderr_of(&out));
}

#[test]
fn unreachable_server_or_bad_token_is_a_one_line_error() {
    let port = free_port();
    let out = Command::new(CLI)
        .args(["--url", &format!("http://127.0.0.1:{port}"), "--token", "x", "revoke-jti", "--iss", "i", "--jti", "j", "--exp", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("edge-auth: error:") && err.contains("unreachable"), "{err}");

    let s = Stack::start();
    let out = Command::new(CLI).args(["--url", &s.url, "--token", "wrong", "perms", "get", "--sub", "x"]).output().unwrap();
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(err.contains("401") && err.lines().count() == 1, "{err}");

    let out = s.cli(&["revoke-token", "not-a-jwt"]);
    assert!(!out.status.success());
    assert!(stderr_of(&out).contains("not a compact JWT"));
    let out = s.cli(&["session", "create", "--sub", "x", "--device", "d", "--limit-policy", "lru"]);
    assert!(!out.status.success());
    assert!(stderr_of(&out).contains("--limit-policy"), "{}", stderr_of(&out));
}

#[test]
fn mint_signs_with_every_key_family() {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    let dir = std::env::temp_dir().join(format!("edge-auth-cli-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let openssl = |args: &[&str]| {
        let st = Command::new("openssl").args(args).current_dir(&dir).stderr(Stdio::null()).status().expect("openssl is needed to make test keys");
        assert!(st.success(), "openssl {args:?}");
    };
    openssl(&["genpkey", "-algorithm", "ed25519", "-out", "ed.pem"]);
    openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "ec.pem"]);
    openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "rsa.pem"]);
    for name in ["ed", "ec", "rsa"] {
        openssl(&["pkey", "-in", &format!("{name}.pem"), "-pubout", "-out", &format!("{name}.pub")]);
    }
    for (alg, name) in [(Algorithm::EdDSA, "ed"), (Algorithm::ES256, "ec"), (Algorithm::RS256, "rsa"), (Algorithm::PS256, "rsa")] {
        let key = dir.join(format!("{name}.pem"));
        let out = Command::new(CLI)
            .args(["mint", "--alg", &format!("{alg:?}"), "--key", key.to_str().unwrap(), "--kid", "k1", "--iss", ISS, "--sub", "u", "--aud", "api", "--typ", "at+jwt", "--claim", "scope=a b"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{alg:?}: {}", stderr_of(&out));
        let token = String::from_utf8(out.stdout).unwrap();
        let public = std::fs::read(dir.join(format!("{name}.pub"))).unwrap();
        let dk = match name {
            "ed" => DecodingKey::from_ed_pem(&public),
            "ec" => DecodingKey::from_ec_pem(&public),
            _ => DecodingKey::from_rsa_pem(&public),
        }
        .unwrap();
        let mut v = Validation::new(alg);
        v.set_audience(&["api"]);
        v.set_issuer(&[ISS]);
        let data = jsonwebtoken::decode::<Value>(token.trim(), &dk, &v).unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(data.header.kid.as_deref(), Some("k1"));
        assert_eq!(data.header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(data.claims["scope"], "a b");
        assert_eq!(data.claims["jti"].as_str().unwrap().len(), 32);
    }
    // A PEM key of the wrong family is a one-line error.
    let out = Command::new(CLI).args(["mint", "--alg", "ES256", "--key", dir.join("rsa.pem").to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success());
    assert_eq!(stderr_of(&out).lines().count(), 1, "{}", stderr_of(&out));
    let _ = std::fs::remove_dir_all(&dir);
}
