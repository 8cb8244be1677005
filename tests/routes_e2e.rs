//! Route rules, end to end: the built worker under `wrangler dev` with a real Redis behind the
//! Upstash REST server, in front of the echoing test origin. Tokens are EdDSA, signed with a key
//! made for this run and trusted through an inline JWKS in `ISSUERS`.
//!
//! - a public rule needs no token; a protected one answers 401 without one;
//! - a missing scope answers 403 `insufficient_scope` with `scope=` in `WWW-Authenticate`;
//! - Redis permissions (`{prefix}perms:<sub>`) satisfy the scopes of a `jwt+revocation` rule,
//!   read on every request (adding and removing one takes effect at once);
//! - a request no rule matches answers 403 `no_route` (also a method no rule lists);
//! - CORS preflights pass without a token only on a rule with `allow_preflight`;
//! - methods and hosts (exact and `*.` wildcard) select rules;
//! - path tricks (`/public/../private`, `//private`, `%2e%2e`, `%2F`, `\`, `;`, case) never get a
//!   protected path to the origin without a token.
//!
//! Needs the built worker (`build/` or `EDGE_AUTH_BUNDLE_DIR`) and the tools
//! (`cargo build --workspace --bins`).

mod common;

use std::io::Read;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::{raw_exchange, OriginEcho, Reply, Stack};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const ISSUER: &str = "https://issuer.routes.test";
const AUDIENCE: &str = "routes-api";

struct Setup {
    /// PKCS#8 DER of this run's Ed25519 signing key.
    signing_der: Vec<u8>,
    vars: Vec<(String, String)>,
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf)).expect("read /dev/urandom");
    buf
}

fn random_hex() -> String {
    random_bytes::<6>().iter().map(|b| format!("{b:02x}")).collect()
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let seed: [u8; 32] = random_bytes();
        let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key().to_bytes();
        // PKCS#8 v1 wrapping of an Ed25519 seed (RFC 8410), what jsonwebtoken signs with.
        let mut signing_der = vec![0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
        signing_der.extend_from_slice(&seed);
        let issuers = json!([{
            "issuer": ISSUER,
            "audiences": [AUDIENCE],
            "jwks": {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(public), "kid": "e1", "alg": "EdDSA"}]},
        }]);
        let routes = json!([
            {"name": "cors", "path": "/cors/**", "methods": ["GET", "PUT"], "auth": "jwt", "allow_preflight": true},
            {"name": "nocors", "path": "/nocors/**", "auth": "jwt"},
            {"name": "public", "path": "/public/**", "auth": "public"},
            {"name": "admin", "path": "/admin/**", "auth": "jwt+revocation", "scopes_all": ["admin:write"]},
            {"name": "reports", "path": "/reports/**", "auth": "jwt", "scopes_any": ["reports:read", "reports:admin"]},
            {"name": "items-write", "path": "/items/**", "methods": ["POST", "PUT", "patch"], "auth": "jwt", "scopes_all": ["items:write"]},
            {"name": "items-read", "path": "/items/**", "methods": ["GET"], "auth": "public"},
            {"name": "tenants", "host": "*.tenants.test", "path": "/host/**", "auth": "public"},
            {"name": "api-host", "host": "api.example.test", "path": "/host/**", "auth": "jwt"},
            {"name": "user-posts", "path": "/users/*/posts", "auth": "public"},
            {"name": "private", "path": "/private/**", "auth": "jwt"},
        ]);
        let vars = vec![("ISSUERS".to_string(), issuers.to_string()), ("ROUTES".to_string(), routes.to_string())];
        Setup { signing_der, vars }
    })
}

fn stack() -> &'static Stack {
    let vars: Vec<(&str, &str)> = setup().vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Stack::shared(&vars)
}

/// An EdDSA access token for `sub` with `scope` (space-separated; none when empty).
fn token(sub: &str, scope: &str) -> String {
    let t = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs();
    let mut claims = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": t, "exp": t + 600, "jti": random_hex()});
    if !scope.is_empty() {
        claims["scope"] = json!(scope);
    }
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("e1".into());
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(&setup().signing_der)).expect("mint")
}

fn bearer(tok: &str) -> String {
    format!("Bearer {tok}")
}

fn forwarded(reply: &Reply) -> OriginEcho {
    assert_eq!(reply.status, 200, "expected the origin's echo; got {} {}", reply.status, reply.text());
    reply.origin_echo()
}

fn www_authenticate(reply: &Reply) -> &str {
    reply.header("www-authenticate").unwrap_or_else(|| panic!("no WWW-Authenticate on {} {}", reply.status, reply.text()))
}

/// Sends raw request bytes and reads one answer; `None` if the server closed without answering.
fn raw(stack: &Stack, request: &[u8]) -> Option<Reply> {
    raw_exchange(stack, request, |_| Ok(()))
}

/// A raw `GET` with this request target and `Host`, optionally with a bearer token.
fn raw_get(stack: &Stack, target: &str, host: &str, token: Option<&str>) -> Option<Reply> {
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let req = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n");
    raw(stack, req.as_bytes())
}

/// The worker's JSON log line for request `rid` (waits up to 10 s for it to be written).
fn log_line(stack: &Stack, rid: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(std::path::Path::new(&stack.info.logs_dir).join("wrangler.stdout.log")).unwrap_or_default();
        let found = text
            .lines()
            .filter_map(|l| l.find('{').and_then(|i| serde_json::from_str::<Value>(&l[i..]).ok()))
            .find(|v| v["request_id"] == rid);
        if let Some(v) = found {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "no log line for {rid}\n{}", stack.diagnostics());
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------------

#[test]
fn public_rule_needs_no_token_and_protected_rule_answers_401_without_one() {
    let stack = stack();
    let echo = forwarded(&stack.get("/public/page", &[]));
    assert_eq!(echo.path, "/public/page");
    assert!(echo.header("x-auth-subject").is_none());

    for path in ["/private/data", "/nocors/x", "/reports/q", "/admin/users"] {
        let reply = stack.get(path, &[]);
        reply.assert_refusal(401, "missing_token");
        assert!(www_authenticate(&reply).starts_with("Bearer realm=\"edge-auth\""), "{path}: {}", www_authenticate(&reply));
    }
    let reply = stack.get("/private/data", &[("authorization", "Bearer not.a.token")]);
    reply.assert_refusal(401, "malformed_token");
    assert!(www_authenticate(&reply).contains("error=\"invalid_token\""), "{}", www_authenticate(&reply));

    let sub = format!("reader-{}", random_hex());
    let echo = forwarded(&stack.get("/private/data", &[("authorization", &bearer(&token(&sub, "")))]));
    assert_eq!(echo.header("x-auth-subject"), Some(sub.as_str()));
    assert_eq!(echo.header("x-auth-revocation"), Some("not-required"));
}

#[test]
fn a_missing_scope_answers_403_insufficient_scope_naming_the_scope() {
    let stack = stack();
    let sub = format!("analyst-{}", random_hex());

    let reply = stack.get("/reports/q1", &[("authorization", &bearer(&token(&sub, "profile reports:write")))]);
    let body = reply.assert_refusal(403, "insufficient_scope");
    assert_eq!(body["error"], "insufficient_scope");
    let www = www_authenticate(&reply);
    assert!(www.contains("error=\"insufficient_scope\""), "{www}");
    assert!(www.contains("scope=\"reports:read reports:admin\""), "{www}");

    // Any one of scopes_any is enough.
    let echo = forwarded(&stack.get("/reports/q1", &[("authorization", &bearer(&token(&sub, "reports:admin")))]));
    assert_eq!(echo.header("x-auth-scopes"), Some("reports:admin"));

    let reply = stack.request("POST", "/items/9", &[("authorization", &bearer(&token(&sub, "items:read")))], Some(b"x".to_vec()));
    reply.assert_refusal(403, "insufficient_scope");
    assert!(www_authenticate(&reply).contains("scope=\"items:write\""), "{}", www_authenticate(&reply));
}

#[test]
fn redis_permissions_satisfy_the_scopes_of_a_jwt_revocation_rule() {
    let stack = stack();
    let sub = format!("operator-{}", random_hex());
    let auth = bearer(&token(&sub, "profile"));
    let perms_key = format!("edge-auth:perms:{sub}");

    let reply = stack.get("/admin/users", &[("authorization", &auth)]);
    reply.assert_refusal(403, "insufficient_scope");
    assert!(www_authenticate(&reply).contains("scope=\"admin:write\""), "{}", www_authenticate(&reply));

    stack.redis_cmd(&["SADD", &perms_key, "admin:write", "billing:read"]);
    let echo = forwarded(&stack.get("/admin/users", &[("authorization", &auth)]));
    assert_eq!(echo.header("x-auth-subject"), Some(sub.as_str()));
    assert_eq!(echo.header("x-auth-revocation"), Some("checked"));
    let scopes: Vec<&str> = echo.header("x-auth-scopes").unwrap_or("").split(' ').collect();
    for s in ["profile", "admin:write", "billing:read"] {
        assert!(scopes.contains(&s), "{s} missing from X-Auth-Scopes {scopes:?}");
    }

    // The log line says how revocation was checked: one Redis round trip, timed.
    let rid = echo.header("x-auth-request-id").expect("request id");
    let line = log_line(stack, rid);
    assert_eq!((&line["rule"], &line["decision"], &line["revocation"]), (&json!("admin"), &json!("forward"), &json!("checked")), "{line}");
    assert_eq!(line["redis_round_trips"], 1, "{line}");
    assert!(line["redis_ms"].as_f64().is_some() && line["verify_ms"].as_f64().is_some(), "{line}");
    assert_eq!(line["subject"], sub.as_str(), "{line}");

    // Permissions are read on every request: taking one away refuses the next request.
    stack.redis_cmd(&["SREM", &perms_key, "admin:write"]);
    stack.get("/admin/users", &[("authorization", &auth)]).assert_refusal(403, "insufficient_scope");

    // Another subject's permissions do not count.
    let other = bearer(&token(&format!("{sub}-other"), "profile"));
    stack.redis_cmd(&["SADD", &perms_key, "admin:write"]);
    stack.get("/admin/users", &[("authorization", &other)]).assert_refusal(403, "insufficient_scope");
    forwarded(&stack.get("/admin/users", &[("authorization", &auth)]));
}

#[test]
fn a_request_no_rule_matches_answers_403_no_route() {
    let stack = stack();
    let auth = bearer(&token(&format!("wanderer-{}", random_hex()), "items:write"));
    for (method, path) in [("GET", "/nowhere"), ("GET", "/"), ("DELETE", "/items/1"), ("GET", "/users/1/2/posts"), ("GET", "/publicity")] {
        for headers in [vec![], vec![("authorization", auth.as_str())]] {
            let reply = stack.request(method, path, &headers, None);
            reply.assert_refusal(403, "no_route");
        }
    }
}

#[test]
fn methods_select_the_rule() {
    let stack = stack();
    let sub = format!("writer-{}", random_hex());
    let auth = bearer(&token(&sub, "items:write"));

    // GET is public on /items, writes need the scope.
    let echo = forwarded(&stack.get("/items/7", &[]));
    assert!(echo.header("x-auth-subject").is_none());
    stack.request("POST", "/items/7", &[], Some(b"{}".to_vec())).assert_refusal(401, "missing_token");
    for method in ["POST", "PUT", "PATCH"] {
        let echo = forwarded(&stack.request(method, "/items/7", &[("authorization", &auth)], Some(b"{}".to_vec())));
        assert_eq!(echo.method, method);
        assert_eq!(echo.header("x-auth-subject"), Some(sub.as_str()), "{method}");
    }
    // HEAD is not implied by GET.
    assert_eq!(stack.request("HEAD", "/items/7", &[], None).status, 403);

    let echo = forwarded(&stack.get("/users/42/posts", &[]));
    assert_eq!(echo.path, "/users/42/posts");
}

#[test]
fn cors_preflights_pass_only_where_allowed() {
    let stack = stack();
    let preflight = |path: &str, method: &str| {
        stack.request(
            "OPTIONS",
            path,
            &[("origin", "https://app.example.test"), ("access-control-request-method", method), ("access-control-request-headers", "authorization")],
            None,
        )
    };
    // Allowed: reaches the origin without a token, with no identity.
    for method in ["PUT", "GET"] {
        let echo = forwarded(&preflight("/cors/things", method));
        assert_eq!(echo.method, "OPTIONS");
        assert_eq!(echo.header("access-control-request-method"), Some(method));
        assert!(echo.header("x-auth-subject").is_none());
    }
    // A method the rule does not list is not asked about there.
    preflight("/cors/things", "DELETE").assert_refusal(403, "no_route");
    // An OPTIONS that is not a preflight (no Access-Control-Request-Method) gets no pass.
    stack.request("OPTIONS", "/cors/things", &[("origin", "https://app.example.test")], None).assert_refusal(403, "no_route");
    // Without allow_preflight the preflight needs a token like any request.
    preflight("/nocors/things", "PUT").assert_refusal(401, "missing_token");
    // The real request still needs the token.
    stack.request("PUT", "/cors/things", &[("origin", "https://app.example.test")], Some(b"x".to_vec())).assert_refusal(401, "missing_token");
    let sub = format!("cors-{}", random_hex());
    let echo = forwarded(&stack.request("PUT", "/cors/things", &[("authorization", &bearer(&token(&sub, "")))], Some(b"x".to_vec())));
    assert_eq!(echo.header("x-auth-subject"), Some(sub.as_str()));
}

#[test]
fn hosts_select_the_rule() {
    let stack = stack();
    let sub = format!("hosted-{}", random_hex());
    let tok = token(&sub, "");

    // `*.tenants.test`: any subdomain, any depth, any letter case; not the bare domain.
    for host in ["acme.tenants.test", "eu.acme.tenants.test", "ACME.Tenants.Test"] {
        let reply = raw_get(stack, "/host/page", host, None).expect("an answer");
        let echo = forwarded(&reply);
        assert!(echo.header("x-auth-subject").is_none(), "{host}");
    }
    // Exact host: the jwt rule applies.
    let reply = raw_get(stack, "/host/page", "api.example.test", None).expect("an answer");
    reply.assert_refusal(401, "missing_token");
    let echo = forwarded(&raw_get(stack, "/host/page", "api.example.test", Some(&tok)).expect("an answer"));
    assert_eq!(echo.header("x-auth-subject"), Some(sub.as_str()));
    // Any other host: no rule.
    for host in ["tenants.test", "api.example.test.evil.test", "evil-tenants.test", "127.0.0.1"] {
        let reply = raw_get(stack, "/host/page", host, Some(&tok)).expect("an answer");
        reply.assert_refusal(403, "no_route");
    }
}

#[test]
fn path_tricks_never_reach_a_protected_path_without_a_token() {
    let stack = stack();
    // Baselines: the public path is served, the protected one is not.
    forwarded(&raw_get(stack, "/public/x", "127.0.0.1", None).expect("an answer"));
    raw_get(stack, "/private/x", "127.0.0.1", None).expect("an answer").assert_refusal(401, "missing_token");

    let tricks = [
        "/public/../private/x",
        "/public/./../private/x",
        "/public/x/../../private/x",
        "/public/%2e%2e/private/x",
        "/public/%2E%2E/private/x",
        "/public/.%2e/private/x",
        "/public/%2e./private/x",
        "/public/%252e%252e/private/x",
        "/public/..%2Fprivate/x",
        "/public/..%2fprivate/x",
        "/public%2F..%2Fprivate/x",
        "/public/%2F../private/x",
        "/public/..%5Cprivate/x",
        "/public/..\\private/x",
        "/public\\..\\private\\x",
        "/public/..;/private/x",
        "/public;/../private/x",
        "//private/x",
        "///private/x",
        "/public//private/x",
        "/./private/x",
        "/private/./x",
        "/PRIVATE/x",
        "/Private/x",
        "/private./x",
        "/private%2e/x",
        "/private%20/x",
        "/%70rivate/x",
        "/private%2Fx",
        "/public/%00/../private/x",
        "http://127.0.0.1/public/../private/x",
        "http://127.0.0.1//private/x",
    ];
    let mut seen = Vec::new();
    for trick in tricks {
        let started = std::time::Instant::now();
        let answer = raw_get(stack, trick, "127.0.0.1", None);
        let label = format!("GET {trick} ({} ms)", started.elapsed().as_millis());
        let Some(reply) = answer else {
            seen.push(format!("{label}: connection closed"));
            continue;
        };
        if reply.status == 200 {
            // Only acceptable if the origin got a path under /public that is not a way up: the
            // runtime resolved the trick to a public resource (`/public/%00/../private/x` is
            // `/public/private/x`).
            let echo = reply.origin_echo();
            let lower = echo.path.to_ascii_lowercase();
            let way_up = ["..", "%2e", "%2f", "%5c", "\\", "//", ";"].iter().any(|t| lower.contains(t));
            assert!(
                lower.starts_with("/public/") && !way_up,
                "{label} reached the origin as {:?} without a token",
                echo.path
            );
            seen.push(format!("{label}: forwarded as {}", echo.path));
            continue;
        }
        // workerd under wrangler dev answers an absolute-form target with its own plain-text
        // 500 before the worker runs ("invalid URL"): a refusal too.
        let runtime_500 = reply.status == 500 && reply.text() == "Internal Server Error";
        assert!(
            [400, 401, 403, 404].contains(&reply.status) || runtime_500,
            "{label}: unexpected {} {}",
            reply.status,
            reply.text()
        );
        if let Ok(body) = serde_json::from_slice::<Value>(&reply.body) {
            assert!(body.get("method").is_none(), "{label}: an origin answer came back: {body}");
            seen.push(format!("{label}: {} {}", reply.status, body["reason"].as_str().unwrap_or("(runtime)")));
        } else {
            seen.push(format!("{label}: {} (runtime, not JSON)", reply.status));
        }
    }
    // The protected path's own 401 must win over "forwarded" for the plain and encoded forms.
    raw_get(stack, "/%70rivate/x", "127.0.0.1", None).expect("an answer").assert_refusal(401, "missing_token");
    eprintln!("path tricks:\n  {}", seen.join("\n  "));
}
