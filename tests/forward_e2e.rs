//! Forwarding, end to end: the built worker under `wrangler dev`, in front of the echoing test
//! origin (which reports exactly what it received).
//!
//! - client-made identity: `X-Auth-*` headers in any letter case, a custom `CLAIM_HEADERS` name,
//!   duplicates, `X-Forwarded-For` / `Forwarded` / `X-Real-IP` forgeries never reach the origin
//!   as sent, on public and protected routes;
//! - CR / LF / NUL smuggled in header values (sent raw on a TCP socket) never become a header of
//!   their own at the origin; claim values with CR/LF arrive JSON-encoded on one line;
//! - the credential is removed from the header, the cookie (other cookies kept) and the query
//!   (other parameters kept, in order), and kept on a `keep_credential` rule;
//! - the signed assertion (`X-Auth-Assertion`, Ed25519 key per run) verifies with the edge's
//!   JWKS through `edge_auth_origin` for the request it came with, and is refused on another
//!   path, method, query or request id, after expiry and when tampered with; HS256 too;
//! - 8 MiB bodies (with Content-Length and chunked without it) arrive byte for byte;
//! - every request leaves one JSON log line (request id, rule, decision, reason, subject,
//!   timings) in wrangler's log, and no token appears anywhere in the stack's logs.
//!
//! Needs the built worker (`build/` or `EDGE_AUTH_BUNDLE_DIR`) and the tools
//! (`cargo build --workspace --bins`).

mod common;

use std::io::{Read, Write};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::{body_of, raw_exchange, sha256_hex, OriginEcho, Reply, Stack};
use edge_auth_origin::{Error as AssertionError, RequestBinding, Verifier};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const ISSUER: &str = "https://issuer.fwd.test";
const AUDIENCE: &str = "edge-api";

/// Secrets made once per test run, and the worker vars built from them.
struct Setup {
    jwt_secret: String,
    vars: Vec<(String, String)>,
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf)).expect("read /dev/urandom");
    buf
}

fn random_hex(bytes: usize) -> String {
    let raw: [u8; 32] = random_bytes();
    raw.iter().take(bytes).map(|b| format!("{b:02x}")).collect()
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let jwt_secret = random_hex(32);
        let seed: [u8; 32] = random_bytes();
        let issuers = json!([{
            "issuer": ISSUER,
            "audiences": [AUDIENCE],
            "hmac_secrets": [{"kid": "h1", "alg": "HS256", "secret_var": "JWT_SECRET"}],
        }]);
        let routes = json!([
            {"name": "public", "path": "/public/**", "auth": "public"},
            {"name": "keep", "path": "/keep/**", "auth": "jwt", "keep_credential": true},
            {"name": "api", "path": "/**", "auth": "jwt"},
        ]);
        let claim_headers = json!({"sub": "X-Auth-Subject", "iss": "X-Auth-Issuer", "email": "X-User-Email", "tenant": "X-Tenant-Id"});
        let vars = vec![
            ("ISSUERS".to_string(), issuers.to_string()),
            ("JWT_SECRET".to_string(), jwt_secret.clone()),
            ("TOKEN_SOURCES".to_string(), "header:authorization,cookie:session,query:access_token".to_string()),
            ("CLAIM_HEADERS".to_string(), claim_headers.to_string()),
            ("ROUTES".to_string(), routes.to_string()),
            ("ASSERTION_KEY".to_string(), URL_SAFE_NO_PAD.encode(seed)),
        ];
        Setup { jwt_secret, vars }
    })
}

/// The stack every test of this file shares (one Ed25519 assertion key per run).
fn stack() -> &'static Stack {
    let vars: Vec<(&str, &str)> = setup().vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Stack::shared(&vars)
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()
}

/// An HS256 access token of the configured issuer for `sub`, valid 10 minutes, with `extra`
/// claims merged in.
fn token(sub: &str, extra: Value) -> String {
    let t = now();
    let mut claims = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": t, "exp": t + 600, "jti": random_hex(12)});
    if let (Some(c), Value::Object(extra)) = (claims.as_object_mut(), extra) {
        c.extend(extra);
    }
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("h1".into());
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(setup().jwt_secret.as_bytes())).expect("mint")
}

/// The request target the origin received: path and query, as the assertion binds them.
fn target(echo: &OriginEcho) -> String {
    match &echo.query {
        Some(q) => format!("{}?{q}", echo.path),
        None => echo.path.clone(),
    }
}

/// Asserts the request reached the origin and returns what it saw.
fn forwarded(reply: &Reply) -> OriginEcho {
    assert_eq!(reply.status, 200, "expected the origin's echo; got {} {}", reply.status, reply.text());
    reply.origin_echo()
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP/1.1 on a socket: the only way to choose header letter case and to send CR/LF bytes.

/// A GET with `extra` raw header lines (each ending with CRLF) and `Connection: close`.
fn raw_get(stack: &Stack, target: &str, extra: &[u8]) -> Option<Reply> {
    let mut head = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n").into_bytes();
    head.extend_from_slice(extra);
    head.extend_from_slice(b"Connection: close\r\n\r\n");
    raw_exchange(stack, &head, |_| Ok(()))
}


// ---------------------------------------------------------------------------------------------
// Spoofed identity

/// Client-made identity and proxy headers, in assorted letter cases and duplicated.
const SPOOFED: &[(&str, &str)] = &[
    ("x-auth-subject", "spoof-lower"),
    ("X-AUTH-SUBJECT", "spoof-upper"),
    ("X-Auth-Subject", "spoof-dup-1"),
    ("X-Auth-Subject", "spoof-dup-2"),
    ("x-AuTh-IsSuEr", "https://evil.example"),
    ("X-Auth-Assertion", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9."),
    ("x-auth-scopes", "spoof-admin spoof-root"),
    ("X-Auth-Revocation", "spoof-checked"),
    ("X-Auth-Request-Id", "spoofed-request-id"),
    ("X-Auth-Claims", "eyJzdWIiOiJhZG1pbiJ9"),
    ("X-Auth-Role", "spoof-admin-role"),
    ("x-user-email", "ceo@evil.example"),
    ("X-USER-EMAIL", "cfo@evil.example"),
    ("X-Tenant-Id", "tenant-evil"),
    ("X-Forwarded-For", "6.6.6.6"),
    ("x-forwarded-for", "7.7.7.7, 8.8.8.8"),
    ("X-Forwarded-Host", "evil.example"),
    ("X-Forwarded-Proto", "https-evil"),
    ("X-Forwarded-Port", "spoof-port"),
    ("X-Real-IP", "6.6.6.6"),
    ("Forwarded", "for=6.6.6.6;host=evil.example;proto=https"),
];

fn spoofed_lines() -> Vec<u8> {
    SPOOFED.iter().flat_map(|(n, v)| format!("{n}: {v}\r\n").into_bytes()).collect()
}

/// Checks that nothing of [`SPOOFED`] reached the origin; returns the generated headers for
/// further checks.
fn assert_no_spoofed_header_arrived(echo: &OriginEcho) {
    for (name, value) in &echo.headers {
        for (_, spoofed) in SPOOFED {
            assert!(!value.contains(spoofed), "the origin got the client's {spoofed:?} in {name}: {value:?}; all: {:?}", echo.headers);
        }
        assert!(!value.contains("evil.example"), "{name}: {value:?}");
        assert!(!value.contains("6.6.6.6") && !value.contains("7.7.7.7"), "{name}: {value:?}");
    }
    for absent in ["x-auth-role", "x-auth-claims", "x-forwarded-port", "x-real-ip", "forwarded"] {
        assert!(echo.header(absent).is_none(), "{absent} reached the origin: {:?}", echo.headers);
    }
    for single in ["x-auth-assertion", "x-auth-request-id", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"] {
        assert!(echo.header_all(single).len() <= 1, "{single} arrived more than once: {:?}", echo.header_all(single));
    }
    // The test connects over loopback: the runtime's client IP, not the client's claim.
    assert_eq!(echo.header_all("x-forwarded-for"), vec!["127.0.0.1"], "{:?}", echo.headers);
    assert_eq!(echo.header("x-forwarded-proto"), Some("http"), "{:?}", echo.headers);
    let rid = echo.header("x-auth-request-id").expect("the edge sets X-Auth-Request-Id");
    assert_ne!(rid, "spoofed-request-id");
}

#[test]
fn spoofed_identity_headers_in_any_case_never_reach_a_public_route() {
    let stack = stack();
    let reply = raw_get(stack, "/public/profile?x=1", &spoofed_lines()).expect("an answer");
    let echo = forwarded(&reply);
    assert_eq!(echo.path, "/public/profile");
    assert_no_spoofed_header_arrived(&echo);
    for absent in ["x-auth-subject", "x-auth-issuer", "x-auth-scopes", "x-auth-revocation", "x-user-email", "x-tenant-id"] {
        assert!(echo.header(absent).is_none(), "public route: {absent} reached the origin: {:?}", echo.headers);
    }
    // The edge's own assertion replaced the forged one, and says "no caller".
    let assertion = echo.header("x-auth-assertion").expect("assertion on a public route");
    let claims = verify_assertion(stack, assertion, &echo).expect("the assertion the origin got verifies");
    assert_eq!(claims.sub, None);
    assert_eq!(claims.cred, None);
}

#[test]
fn spoofed_identity_headers_in_any_case_never_reach_a_protected_route() {
    let stack = stack();
    let sub = format!("user-{}", random_hex(4));
    let tok = token(&sub, json!({"email": "alice@example.test", "scope": "orders:read orders:write"}));
    let mut extra = format!("Authorization: Bearer {tok}\r\n").into_bytes();
    extra.extend(spoofed_lines());
    let reply = raw_get(stack, "/api/orders", &extra).expect("an answer");
    let echo = forwarded(&reply);
    assert_no_spoofed_header_arrived(&echo);
    assert_eq!(echo.header_all("x-auth-subject"), vec![sub.as_str()]);
    assert_eq!(echo.header_all("x-auth-issuer"), vec![ISSUER]);
    assert_eq!(echo.header_all("x-user-email"), vec!["alice@example.test"]);
    assert_eq!(echo.header_all("x-auth-scopes"), vec!["orders:read orders:write"]);
    assert_eq!(echo.header_all("x-auth-revocation"), vec!["not-required"]);
    // The token has no `tenant` claim: the client's X-Tenant-Id is gone and nothing replaces it.
    assert!(echo.header("x-tenant-id").is_none(), "{:?}", echo.headers);
    assert!(echo.header("authorization").is_none(), "the credential reached the origin");
}

#[test]
fn spoofed_headers_sent_by_an_ordinary_client_are_replaced_too() {
    // The same through reqwest (lower-case names), on both kinds of route in one go.
    let stack = stack();
    let sub = format!("user-{}", random_hex(4));
    let auth = format!("Bearer {}", token(&sub, json!({})));
    let mut headers: Vec<(&str, &str)> = SPOOFED.to_vec();
    let public = forwarded(&stack.get("/public/x", &headers));
    assert_no_spoofed_header_arrived(&public);
    assert!(public.header("x-auth-subject").is_none());
    headers.push(("authorization", &auth));
    let protected = forwarded(&stack.get("/api/x", &headers));
    assert_no_spoofed_header_arrived(&protected);
    assert_eq!(protected.header_all("x-auth-subject"), vec![sub.as_str()]);
}

/// Headers that proxies set and origins believe: the client IP (`True-Client-IP`, `Client-IP`…),
/// any `X-Forwarded-*` (`X-Forwarded-Prefix` moves an app's base path, `X-Forwarded-Uri` is
/// what forward-auth proxies check) and URL rewrites (`X-Original-URL` / `X-Rewrite-URL` make
/// IIS and Symfony serve another path than the one the gateway routed).
const PROXY_SET: &[(&str, &str)] = &[
    ("True-Client-IP", "6.6.6.6"),
    ("X-Client-IP", "6.6.6.6"),
    ("Client-IP", "6.6.6.6"),
    ("X-Cluster-Client-IP", "6.6.6.6"),
    ("X-Forwarded-Prefix", "/spoof-prefix"),
    ("X-Forwarded-Uri", "/private/spoof-uri"),
    ("X-Forwarded-Ssl", "spoof-on"),
    ("X-Forwarded-Scheme", "spoof-scheme"),
    ("X-Forwarded-Server", "spoof-server"),
    ("X-Forwarded-Method", "spoof-method"),
    ("X-Original-URL", "/private/spoof-original"),
    ("X-Rewrite-URL", "/private/spoof-rewrite"),
];

#[test]
fn proxy_set_client_ip_forwarding_and_rewrite_headers_never_reach_the_origin() {
    let stack = stack();
    let auth = format!("Bearer {}", token("proxy-user", json!({})));
    for (path, with_token) in [("/public/p", false), ("/api/p", true)] {
        let mut headers: Vec<(&str, &str)> = PROXY_SET.to_vec();
        if with_token {
            headers.push(("authorization", &auth));
        }
        let echo = forwarded(&stack.get(path, &headers));
        let leaked: Vec<&(String, String)> =
            echo.headers.iter().filter(|(_, v)| v.contains("6.6.6.6") || v.contains("spoof")).collect();
        assert!(leaked.is_empty(), "{path}: client-set proxy headers reached the origin: {leaked:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// CR / LF

/// Header lines that try to smuggle identity headers (`X-Auth-Subject`, the custom
/// `X-User-Email`) through the value of a harmless header: bare LF, bare CR, CR LF followed by
/// a fold, NUL, and an empty line made of bare LFs.
///
/// A runtime may read a bare LF as a line end (RFC 9112 §2.2): then the smuggled line is a
/// header the edge sees too, and strips. What must never happen is a value that the edge takes
/// for part of `X-Note` but the origin splits into a header of its own.
const SMUGGLING: &[(&str, &[u8])] = &[
    ("bare LF", b"X-Note: a\nX-Auth-Subject: admin\r\nX-Trace: t\nX-User-Email: smuggled@evil.example\r\n"),
    ("bare CR", b"X-Note: a\rX-Auth-Subject: admin\r\nX-Trace: t\rX-User-Email: smuggled@evil.example\r\n"),
    ("obs-fold", b"X-Note: a\r\n X-Auth-Subject: admin\r\nX-Trace: t\r\n\tX-User-Email: smuggled@evil.example\r\n"),
    ("NUL", b"X-Note: a\0X-Auth-Subject: admin\r\nX-Trace: t\0X-User-Email: smuggled@evil.example\r\n"),
    ("LF LF", b"X-Note: a\n\nX-Auth-Subject: admin\r\n"),
];

/// The origin got no smuggled identity and no header value carrying CR, LF or NUL.
fn assert_nothing_smuggled(what: &str, echo: &OriginEcho, sub: Option<&str>) {
    for (name, value) in &echo.headers {
        assert!(!value.contains(['\r', '\n', '\0']), "{what}: {name} arrived with a control byte: {value:?}");
        assert_ne!(value, "smuggled@evil.example", "{what}: the smuggled value arrived as {name}");
    }
    assert!(echo.header("x-user-email").is_none(), "{what}: {:?}", echo.headers);
    match sub {
        None => assert!(echo.header("x-auth-subject").is_none(), "{what}: {:?}", echo.headers),
        Some(s) => assert_eq!(echo.header_all("x-auth-subject"), vec![s], "{what}"),
    }
}

#[test]
fn cr_lf_and_nul_in_header_values_never_split_into_headers() {
    let stack = stack();
    let sub = format!("user-{}", random_hex(4));
    let auth = format!("Authorization: Bearer {}\r\n", token(&sub, json!({})));
    let mut outcomes = Vec::new();
    for (what, lines) in SMUGGLING {
        for (route, path, who) in [("public", "/public/smuggle", None), ("protected", "/api/smuggle", Some(sub.as_str()))] {
            let mut extra = Vec::new();
            if who.is_some() {
                extra.extend_from_slice(auth.as_bytes());
            }
            extra.extend_from_slice(lines);
            let label = format!("{what} on the {route} route");
            match raw_get(stack, path, &extra) {
                // Rejected by the runtime or the worker: fine, as long as it is a refusal.
                None => outcomes.push(format!("{label}: connection closed")),
                Some(r) if (400..500).contains(&r.status) => outcomes.push(format!("{label}: {}", r.status)),
                Some(r) => {
                    let echo = forwarded(&r);
                    assert_eq!(echo.path, path, "{label}");
                    assert_nothing_smuggled(&label, &echo, who);
                    outcomes.push(format!("{label}: forwarded, x-note={:?} x-trace={:?}", echo.header("x-note"), echo.header("x-trace")));
                }
            }
        }
    }
    eprintln!("CR/LF outcomes:\n  {}", outcomes.join("\n  "));
}

#[test]
fn cr_lf_in_the_request_line_is_refused() {
    let stack = stack();
    for target in ["/public/a\r\nX-Auth-Subject: admin", "/public/a\nX-Auth-Subject: admin", "/public/a\rb"] {
        let head = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        if let Some(r) = raw_exchange(stack, head.as_bytes(), |_| Ok(())) {
            if r.status == 200 {
                let echo = r.origin_echo();
                assert_nothing_smuggled(&format!("{target:?}"), &echo, None);
                assert!(!echo.path.contains(['\r', '\n']), "{target:?} reached the origin as {:?}", echo.path);
            } else {
                assert!((400..500).contains(&r.status), "{target:?}: {} {}", r.status, r.text());
            }
        }
    }
}

#[test]
fn claim_values_with_cr_lf_arrive_json_encoded_on_one_line() {
    let stack = stack();
    let sub = "eve\r\nX-Auth-Role: admin";
    let email = "eve@example.test\nX-Smuggled: yes";
    let tok = token(sub, json!({"email": email, "tenant": "caf\u{e9}\u{0}"}));
    let echo = forwarded(&stack.get("/api/claims", &[("authorization", &format!("Bearer {tok}"))]));
    assert!(echo.header("x-auth-role").is_none() && echo.header("x-smuggled").is_none(), "{:?}", echo.headers);
    let subject = echo.header("x-auth-subject").expect("subject header");
    assert!(subject.starts_with('"'), "a value with control bytes must arrive JSON-encoded: {subject:?}");
    assert_eq!(serde_json::from_str::<String>(subject).expect("JSON string"), sub);
    let got_email = echo.header("x-user-email").expect("email header");
    assert_eq!(serde_json::from_str::<String>(got_email).expect("JSON string"), email);
    assert_eq!(echo.header("x-tenant-id"), Some(r#""caf\u00e9\u0000""#));
    for (name, value) in &echo.headers {
        assert!(value.bytes().all(|b| (0x20..0x7f).contains(&b) || b == b'\t'), "{name}: {value:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// The credential

#[test]
fn the_credential_is_removed_from_header_cookie_and_query() {
    let stack = stack();
    let sub = format!("user-{}", random_hex(4));
    let tok = token(&sub, json!({}));

    let echo = forwarded(&stack.get("/api/h", &[("authorization", &format!("Bearer {tok}")), ("cookie", "theme=dark")]));
    assert!(echo.header("authorization").is_none(), "{:?}", echo.headers);
    assert_eq!(echo.header("cookie"), Some("theme=dark"));
    assert_eq!(echo.header("x-auth-subject"), Some(sub.as_str()));

    let cookie = format!("theme=dark; session={tok}; lang=fr-CH; z=\"q\"");
    let echo = forwarded(&stack.get("/api/c", &[("cookie", &cookie)]));
    assert_eq!(echo.header_all("cookie"), vec!["theme=dark; lang=fr-CH; z=\"q\""]);
    assert_eq!(echo.header("x-auth-subject"), Some(sub.as_str()));

    let echo = forwarded(&stack.get("/api/c", &[("cookie", &format!("session={tok}"))]));
    assert!(echo.header("cookie").is_none(), "an empty Cookie header was sent: {:?}", echo.header("cookie"));

    let echo = forwarded(&stack.get(&format!("/api/q?b=2&access_token={tok}&a=1&a=3&empty=&sp=x%20y"), &[]));
    assert_eq!(echo.query.as_deref(), Some("b=2&a=1&a=3&empty=&sp=x%20y"));
    assert_eq!(echo.header("x-auth-subject"), Some(sub.as_str()));
    // The assertion is bound to the query the origin got, without the token.
    let claims = verify_assertion(stack, echo.header("x-auth-assertion").expect("assertion"), &echo).expect("assertion verifies");
    assert_eq!(claims.qsh.as_deref(), Some(edge_auth_origin::query_hash("b=2&a=1&a=3&empty=&sp=x%20y").as_str()));

    let echo = forwarded(&stack.get(&format!("/api/q?access_token={tok}"), &[]));
    assert_eq!(echo.query, None, "the origin got a query although the token was the only parameter");

    for (name, value) in &echo.headers {
        assert!(!value.contains(&tok), "the token reached the origin in {name}");
    }
}

#[test]
fn the_same_token_sent_in_several_places_is_removed_from_all_of_them() {
    let stack = stack();
    let sub = format!("user-{}", random_hex(4));
    let tok = token(&sub, json!({}));
    let bearer = format!("Bearer {tok}");
    let cookie = format!("theme=dark; session={tok}");
    let path = format!("/api/everywhere?page=1&access_token={tok}&access%5Ftoken={tok}");
    let echo = forwarded(&stack.get(&path, &[("authorization", &bearer), ("cookie", &cookie)]));
    assert_eq!(echo.header("x-auth-subject"), Some(sub.as_str()));
    assert!(echo.header("authorization").is_none(), "{:?}", echo.headers);
    assert_eq!(echo.header("cookie"), Some("theme=dark"));
    assert_eq!(echo.query.as_deref(), Some("page=1"));
    for (name, value) in &echo.headers {
        assert!(!value.contains(&tok), "the token reached the origin in {name}");
    }
}

#[test]
fn a_keep_credential_rule_forwards_the_credential_where_it_was() {
    let stack = stack();
    let sub = format!("user-{}", random_hex(4));
    let tok = token(&sub, json!({}));
    let bearer = format!("Bearer {tok}");

    let echo = forwarded(&stack.get("/keep/h", &[("authorization", &bearer)]));
    assert_eq!(echo.header("authorization"), Some(bearer.as_str()));
    assert_eq!(echo.header("x-auth-subject"), Some(sub.as_str()));

    let cookie = format!("theme=dark; session={tok}");
    let echo = forwarded(&stack.get("/keep/c", &[("cookie", &cookie)]));
    assert_eq!(echo.header("cookie"), Some(cookie.as_str()));

    let query = format!("b=2&access_token={tok}&a=1");
    let echo = forwarded(&stack.get(&format!("/keep/q?{query}"), &[]));
    assert_eq!(echo.query.as_deref(), Some(query.as_str()));
    assert_eq!(echo.header("x-auth-subject"), Some(sub.as_str()));
}

// ---------------------------------------------------------------------------------------------
// The signed assertion

fn jwks(stack: &Stack) -> String {
    let reply = stack.get("/.well-known/edge-auth/jwks.json", &[]);
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.text()
}

/// Verifies `token` with the edge's JWKS for the request the origin received.
fn verify_assertion(stack: &Stack, token: &str, echo: &OriginEcho) -> Result<edge_auth_origin::AssertionClaims, AssertionError> {
    let verifier = Verifier::from_jwks_json(&jwks(stack)).expect("the edge's JWKS holds an Ed25519 key");
    let t = target(echo);
    let binding = RequestBinding { method: &echo.method, path_and_query: &t, request_id: echo.header("x-auth-request-id") };
    verifier.verify(token, &binding, now(), 5)
}

/// `token` with its payload changed by `edit`, the signature left as it was.
fn tampered(token: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut parts = token.split('.');
    let (h, p, s) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
    edit(&mut claims);
    format!("{h}.{}.{s}", URL_SAFE_NO_PAD.encode(claims.to_string()))
}

#[test]
fn the_assertion_verifies_for_its_own_request_only() {
    let stack = stack();
    let keys: Value = serde_json::from_str(&jwks(stack)).expect("JWKS JSON");
    let jwk = &keys["keys"][0];
    assert_eq!(jwk["kty"], "OKP");
    assert_eq!(jwk["crv"], "Ed25519");
    assert!(jwk.get("d").is_none(), "the JWKS publishes the private key: {keys}");
    let verifier = Verifier::from_jwks_json(&keys.to_string()).expect("verifier from the edge's JWKS");

    let sub = format!("user-{}", random_hex(4));
    let tok = token(&sub, json!({"scope": "orders:read", "email": "a@example.test"}));
    let echo = forwarded(&stack.request(
        "POST",
        "/api/orders/7?b=2&a=1",
        &[("authorization", &format!("Bearer {tok}")), ("x-auth-assertion", "forged")],
        Some(b"{}".to_vec()),
    ));
    let assertions = echo.header_all("x-auth-assertion");
    assert_eq!(assertions.len(), 1, "{assertions:?}");
    let assertion = assertions[0];
    let header = jsonwebtoken::decode_header(assertion).expect("assertion header");
    assert_eq!(header.kid.as_deref(), jwk["kid"].as_str(), "the assertion names the JWKS key");
    assert_eq!(header.typ.as_deref(), Some(edge_auth_origin::TYP));

    let rid = echo.header("x-auth-request-id").expect("request id");
    let path_and_query = target(&echo);
    assert_eq!(path_and_query, "/api/orders/7?b=2&a=1");
    let bound = RequestBinding { method: "POST", path_and_query: &path_and_query, request_id: Some(rid) };
    let t = now();
    let claims = verifier.verify(assertion, &bound, t, 5).expect("accepted for the request it came with");
    assert_eq!(claims.sub.as_deref(), Some(sub.as_str()));
    assert_eq!(claims.htm, "POST");
    assert_eq!(claims.path, "/api/orders/7");
    assert_eq!(claims.rid, rid);
    assert_eq!(claims.cred.as_deref(), Some("access"));
    assert!(claims.has_scope("orders:read"), "{:?}", claims.scopes);
    assert_eq!(claims.claims.get("email"), Some(&json!("a@example.test")));
    assert_eq!(claims.rev.as_ref().map(|r| r.status.as_str()), Some("not-required"));
    assert!(claims.exp > claims.iat && claims.exp - claims.iat <= 300, "{claims:?}");

    let replay = |method: &str, pq: &str, rid: Option<&str>, at: u64| {
        verifier.verify(assertion, &RequestBinding { method, path_and_query: pq, request_id: rid }, at, 5)
    };
    assert_eq!(replay("POST", "/api/orders/8?b=2&a=1", Some(rid), t), Err(AssertionError::PathMismatch));
    assert_eq!(replay("POST", "/api/admin?b=2&a=1", None, t), Err(AssertionError::PathMismatch));
    assert_eq!(replay("DELETE", &path_and_query, Some(rid), t), Err(AssertionError::MethodMismatch));
    assert_eq!(replay("GET", &path_and_query, None, t), Err(AssertionError::MethodMismatch));
    assert_eq!(replay("POST", "/api/orders/7?b=2&a=2", Some(rid), t), Err(AssertionError::QueryMismatch));
    assert_eq!(replay("POST", "/api/orders/7", Some(rid), t), Err(AssertionError::QueryMismatch));
    assert_eq!(replay("POST", &path_and_query, Some("another-request"), t), Err(AssertionError::RequestIdMismatch));
    assert_eq!(replay("POST", &path_and_query, Some(rid), claims.exp + 6), Err(AssertionError::Expired));
    assert!(replay("POST", &path_and_query, Some(rid), claims.exp).is_ok(), "valid until exp (with leeway)");

    for (what, forged) in [
        ("sub", tampered(assertion, |c| c["sub"] = json!("admin"))),
        ("scopes", tampered(assertion, |c| c["scopes"] = json!(["orders:read", "admin"]))),
        ("path", tampered(assertion, |c| c["path"] = json!("/api/orders/8"))),
        ("exp", tampered(assertion, |c| c["exp"] = json!(claims.exp + 100))),
    ] {
        let pq = if what == "path" { "/api/orders/8?b=2&a=1" } else { &path_and_query };
        let r = verifier.verify(&forged, &RequestBinding { method: "POST", path_and_query: pq, request_id: Some(rid) }, t, 5);
        assert_eq!(r, Err(AssertionError::BadSignature), "tampered {what}");
    }
    // A signature from another key, with the edge's kid.
    let other_seed: [u8; 32] = random_bytes();
    let other = AssertionForge::new(other_seed);
    let forged = other.resign(assertion, jwk["kid"].as_str().unwrap());
    assert_eq!(verifier.verify(&forged, &bound, t, 5), Err(AssertionError::BadSignature));
}

/// Re-signs an assertion's header and payload with another Ed25519 key (an attacker's).
struct AssertionForge(Vec<u8>);

impl AssertionForge {
    fn new(seed: [u8; 32]) -> Self {
        // PKCS#8 v1 wrapping of an Ed25519 seed (RFC 8410).
        let mut der = vec![0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
        der.extend_from_slice(&seed);
        AssertionForge(der)
    }

    fn resign(&self, assertion: &str, kid: &str) -> String {
        let payload = assertion.split('.').nth(1).unwrap();
        let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(edge_auth_origin::TYP.into());
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(&self.0)).expect("sign")
    }
}

#[test]
fn an_hs256_assertion_verifies_with_the_shared_secret_only() {
    let secret = random_hex(32);
    let mut vars: Vec<(&str, &str)> = setup().vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    vars.retain(|(k, _)| *k != "ASSERTION_KEY");
    vars.extend([("ASSERTION_KEY", secret.as_str()), ("ASSERTION_ALG", "HS256"), ("ASSERTION_AUDIENCE", "orders-service")]);
    let stack = Stack::start(&vars);

    let published: Value = serde_json::from_str(&jwks(&stack)).expect("JWKS JSON");
    assert_eq!(published, json!({"keys": []}), "a shared secret must never be published");

    let sub = format!("user-{}", random_hex(4));
    let tok = token(&sub, json!({}));
    let echo = forwarded(&stack.get("/api/hs?x=1", &[("authorization", &format!("Bearer {tok}"))]));
    let assertion = echo.header("x-auth-assertion").expect("assertion");
    assert_eq!(jsonwebtoken::decode_header(assertion).expect("header").alg, Algorithm::HS256);
    let pq = target(&echo);
    let bound = RequestBinding { method: "GET", path_and_query: &pq, request_id: echo.header("x-auth-request-id") };
    let verifier = Verifier::hs256(secret.as_bytes()).expect("verifier").with_audience("orders-service");
    let claims = verifier.verify(assertion, &bound, now(), 5).expect("accepted with the shared secret");
    assert_eq!(claims.sub.as_deref(), Some(sub.as_str()));
    assert_eq!(claims.aud.as_deref(), Some("orders-service"));

    let wrong = Verifier::hs256(random_hex(32).as_bytes()).expect("verifier").with_audience("orders-service");
    assert_eq!(wrong.verify(assertion, &bound, now(), 5), Err(AssertionError::BadSignature));
    let no_aud = Verifier::hs256(secret.as_bytes()).expect("verifier");
    assert_eq!(no_aud.verify(assertion, &bound, now(), 5), Err(AssertionError::WrongAudience));
    let other_path = RequestBinding { method: "GET", path_and_query: "/api/hs?x=2", request_id: None };
    assert_eq!(verifier.verify(assertion, &other_path, now(), 5), Err(AssertionError::QueryMismatch));
    let forged = tampered(assertion, |c| c["sub"] = json!("admin"));
    assert_eq!(verifier.verify(&forged, &bound, now(), 5), Err(AssertionError::BadSignature));
    assert_eq!(verifier.verify(assertion, &bound, claims.exp + 6, 5), Err(AssertionError::Expired));
}

// ---------------------------------------------------------------------------------------------
// Large bodies

const EIGHT_MIB: usize = 8 * 1024 * 1024;

#[test]
fn an_8_mib_body_with_content_length_arrives_unchanged() {
    let stack = stack();
    let tok = token("uploader", json!({}));
    let body = body_of(EIGHT_MIB, 0x9e37_79b9);
    let echo = forwarded(&stack.request(
        "PUT",
        "/api/upload?name=big.bin",
        &[("authorization", &format!("Bearer {tok}")), ("content-type", "application/octet-stream")],
        Some(body.clone()),
    ));
    assert_eq!(echo.method, "PUT");
    assert_eq!(echo.body_length, EIGHT_MIB as u64);
    assert_eq!(echo.body_sha256, sha256_hex(&body));
    assert_eq!(echo.header("x-auth-subject"), Some("uploader"));
}

#[test]
fn an_8_mib_chunked_body_without_content_length_arrives_unchanged() {
    let stack = stack();
    let tok = token("streamer", json!({}));
    let body = body_of(EIGHT_MIB + 12345, 0x1234_5678);
    for (path, auth) in [("/api/stream", Some(&tok)), ("/public/stream", None)] {
        let mut head = format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n");
        if let Some(t) = auth {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        head.push_str("\r\n");
        let reply = raw_exchange(stack, head.as_bytes(), |conn| {
            // Uneven chunk sizes, so no boundary lines up with anything.
            let mut at = 0;
            let mut size = 1;
            while at < body.len() {
                let end = (at + size).min(body.len());
                conn.write_all(format!("{:x}\r\n", end - at).as_bytes())?;
                conn.write_all(&body[at..end])?;
                conn.write_all(b"\r\n")?;
                at = end;
                size = (size * 3 + 7) % 200_000 + 1;
            }
            conn.write_all(b"0\r\n\r\n")
        })
        .expect("an answer");
        let echo = forwarded(&reply);
        assert_eq!(echo.path, path);
        assert_eq!(echo.body_length, body.len() as u64, "{path}");
        assert_eq!(echo.body_sha256, sha256_hex(&body), "{path}");
        if auth.is_some() {
            assert_eq!(echo.header("x-auth-subject"), Some("streamer"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Observability

/// The text of every file under the stack's logs dir (recursively; binary files lossy):
/// the worker's log, wrangler's own debug log, every child's output.
fn log_texts(stack: &Stack) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from(&stack.info.logs_dir)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.push(String::from_utf8_lossy(&bytes).into_owned());
            }
        }
    }
    out
}

fn wait_for_record(stack: &Stack, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    stack.wait_for_log_record(what, pred)
}

#[test]
fn every_request_leaves_one_json_log_line_and_no_token() {
    let stack = stack();
    let nonce = random_hex(6);
    let sub = format!("logged-{nonce}");
    let good = token(&sub, json!({}));
    let t = now();
    let expired = {
        let claims = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": t - 7200, "exp": t - 3600});
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("h1".into());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(setup().jwt_secret.as_bytes())).unwrap()
    };
    let forged = {
        let mut parts: Vec<&str> = good.split('.').collect();
        let sig = "A".repeat(parts[2].len());
        parts[2] = &sig;
        parts.join(".")
    };

    // Forwarded: header token, then cookie token.
    let echo = forwarded(&stack.get(&format!("/api/logged-{nonce}"), &[("authorization", &format!("Bearer {good}"))]));
    let rid = echo.header("x-auth-request-id").expect("request id").to_string();
    let cookie_echo = forwarded(&stack.get(&format!("/api/logged-cookie-{nonce}"), &[("cookie", &format!("session={good}"))]));
    let cookie_rid = cookie_echo.header("x-auth-request-id").expect("request id").to_string();
    let in_query = token(&sub, json!({}));
    forwarded(&stack.get(&format!("/api/logged-query-{nonce}?access_token={in_query}&page=2"), &[]));
    // Refused: expired, bad signature, none.
    stack
        .get(&format!("/api/expired-{nonce}"), &[("authorization", &format!("Bearer {expired}"))])
        .assert_refusal(401, "expired");
    stack
        .get(&format!("/api/forged-{nonce}"), &[("authorization", &format!("Bearer {forged}"))])
        .assert_refusal(401, "bad_signature");
    stack.get(&format!("/api/none-{nonce}"), &[]).assert_refusal(401, "missing_token");
    // Public.
    let public = forwarded(&stack.get(&format!("/public/logged-{nonce}"), &[]));
    let public_rid = public.header("x-auth-request-id").expect("request id").to_string();

    let line = wait_for_record(stack, "the forwarded request", |r| r["request_id"] == rid);
    assert_eq!(line["rule"], "api", "{line}");
    assert_eq!(line["decision"], "forward", "{line}");
    assert_eq!(line["status"], 200, "{line}");
    assert_eq!(line["subject"], sub.as_str(), "{line}");
    assert_eq!(line["method"], "GET", "{line}");
    assert_eq!(line["path"], format!("/api/logged-{nonce}"), "{line}");
    assert!(line.get("reason").is_none(), "{line}");
    for timing in ["verify_ms", "origin_ms", "total_ms"] {
        assert!(line[timing].as_f64().is_some_and(|v| v >= 0.0), "{timing} missing: {line}");
    }
    assert!(line["token_cache_hit"].is_boolean(), "{line}");
    let line = wait_for_record(stack, "the cookie request", |r| r["request_id"] == cookie_rid);
    assert_eq!(line["subject"], sub.as_str(), "{line}");

    let path_is = |p: String| move |r: &Value| r["path"] == p.as_str();
    let line = wait_for_record(stack, "the expired token", path_is(format!("/api/expired-{nonce}")));
    assert_eq!((&line["decision"], &line["reason"], &line["status"], &line["rule"]), (&json!("refuse"), &json!("expired"), &json!(401), &json!("api")), "{line}");
    assert!(line["total_ms"].as_f64().is_some(), "{line}");
    assert!(line["request_id"].as_str().is_some_and(|r| !r.is_empty()), "{line}");
    let line = wait_for_record(stack, "the forged token", path_is(format!("/api/forged-{nonce}")));
    assert_eq!((&line["reason"], &line["status"]), (&json!("bad_signature"), &json!(401)), "{line}");
    let line = wait_for_record(stack, "no token", path_is(format!("/api/none-{nonce}")));
    assert_eq!((&line["reason"], &line["status"]), (&json!("missing_token"), &json!(401)), "{line}");
    let line = wait_for_record(stack, "the public request", |r| r["request_id"] == public_rid);
    assert_eq!((&line["rule"], &line["decision"]), (&json!("public"), &json!("forward")), "{line}");
    assert!(line.get("subject").is_none(), "{line}");

    let lines_for_rid = stack.log_records().into_iter().filter(|r| r["request_id"] == rid).count();
    assert_eq!(lines_for_rid, 1, "one line per request");

    // No token, not even a part of one (the signature), anywhere in the logs.
    let texts = log_texts(stack);
    for (what, tok) in [("valid", &good), ("query", &in_query), ("expired", &expired), ("forged", &forged)] {
        let sig = tok.rsplit('.').next().unwrap();
        for text in &texts {
            assert!(!text.contains(tok.as_str()), "the {what} token is in the logs:\n{}", context_of(text, tok));
            assert!(!text.contains(sig), "the {what} token's signature is in the logs");
        }
    }
}

/// The lines of `text` that contain `needle`, for a failure message.
fn context_of(text: &str, needle: &str) -> String {
    text.lines().filter(|l| l.contains(needle)).map(|l| l.chars().take(300).collect::<String>()).collect::<Vec<_>>().join("\n")
}

#[test]
fn log_requests_refusals_logs_refused_requests_only() {
    let mut vars: Vec<(&str, &str)> = setup().vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    vars.push(("LOG_REQUESTS", "refusals"));
    let stack = Stack::start(&vars);
    let nonce = random_hex(6);
    let good = token(&format!("quiet-{nonce}"), json!({}));
    let echo = forwarded(&stack.get(&format!("/api/quiet-{nonce}"), &[("authorization", &format!("Bearer {good}"))]));
    let rid = echo.header("x-auth-request-id").expect("request id").to_string();
    let public = forwarded(&stack.get(&format!("/public/quiet-{nonce}"), &[]));
    let public_rid = public.header("x-auth-request-id").expect("request id").to_string();
    stack.get(&format!("/api/refused-{nonce}"), &[]).assert_refusal(401, "missing_token");

    // Lines are written in request order: once the refusal's is there, earlier ones would be too.
    let line = stack.wait_for_log_record("the refusal", |r| r["path"] == format!("/api/refused-{nonce}").as_str());
    assert_eq!((&line["decision"], &line["reason"], &line["status"]), (&json!("refuse"), &json!("missing_token"), &json!(401)), "{line}");
    let records = stack.log_records();
    assert!(!records.iter().any(|r| r["request_id"] == rid.as_str() || r["request_id"] == public_rid.as_str()), "forwarded requests were logged: {records:?}");
}
