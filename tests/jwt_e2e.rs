//! Issue "JWT verification", end to end: the built worker under `wrangler dev`, real Redis, the
//! echoing origin, and tokens from implementations that are not this repository's code.
//!
//! - Every algorithm (HS256/384/512, RS256/384/512, PS256/384/512, ES256, ES384, EdDSA): tokens
//!   signed by npm `jose` (`tests/fixtures/jwt/mint.mjs`) with keys generated for this run,
//!   configured through `ISSUERS` as inline `jwks`, as `pem_keys` and as `hmac_secrets`; each
//!   reaches the origin (200) with `X-Auth-Subject`.
//! - A real OpenID provider (npm `oidc-provider`, `tests/fixtures/oidc/provider.mjs`) issues
//!   client-credentials JWT access tokens; the worker finds its keys through discovery.
//! - Key rotation against a JWKS server this test controls: a key published ahead is used at
//!   once; a key used before it is published fails only within `JWKS_REFETCH_COOLDOWN`; a
//!   removed key stops verifying; with the JWKS server down, cached keys keep verifying.
//! - Refusals with their documented status and reason id (`src/error.rs`): `alg: none`, RS→HS
//!   key confusion, tampering, time claims, issuer, audience, size, `crit`, JWE, missing and
//!   multiple tokens; a `jku` header is never fetched and an embedded `jwk` is never trusted.
//!
//! Needs `node` with the npm packages installed (`bash scripts/bootstrap`), the built worker
//! (`build/` or `EDGE_AUTH_BUNDLE_DIR`) and the tools (`cargo build --workspace --bins`).

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{Reply, Stack};
use serde_json::{json, Value};

const AUDIENCE: &str = "api";
const INLINE_ISS: &str = "https://inline.edge-auth.test";
const PEM_ISS: &str = "https://pem.edge-auth.test";
const HMAC_ISS: &str = "https://hmac.edge-auth.test";
const ROTATING_ISS: &str = "https://rotating.edge-auth.test";
const REMOTE_ISS: &str = "https://remote.edge-auth.test";
/// An issuer whose JWKS URL points at a closed port.
const UNREACHABLE_ISS: &str = "https://unreachable.edge-auth.test";
const OIDC_CLIENT: &str = "edge-auth-e2e-client";
const OIDC_RESOURCE: &str = "https://api.edge-auth.test";
const ASYMMETRIC: &[&str] = &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];
const HMAC: &[&str] = &["HS256", "HS384", "HS512"];
/// `JWKS_REFETCH_COOLDOWN` of the stack (seconds; the documented default is 30).
const COOLDOWN: u64 = 2;
/// `Cache-Control: max-age` of the rotating JWKS (the stack sets `JWKS_MIN_TTL=1` so it counts).
const ROTATING_MAX_AGE: u64 = 4;
/// Pre-minted tokens per rotating key (each request uses a fresh one: no verified-token cache).
const ROTATION_TOKENS: usize = 80;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

// ---------------------------------------------------------------------------------------------
// Independent minting (npm jose)

/// Runs `tests/fixtures/jwt/mint.mjs` with `spec`; returns its JSON output.
fn run_mint(spec: &Value) -> Value {
    let script = repo().join("tests/fixtures/jwt/mint.mjs");
    let mut child = Command::new("node")
        .arg(&script)
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node {}: {e} (install Node.js and run scripts/bootstrap)", script.display()));
    child.stdin.take().expect("stdin").write_all(spec.to_string().as_bytes()).expect("write spec");
    let out = child.wait_with_output().expect("mint.mjs output");
    assert!(out.status.success(), "mint.mjs failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("mint.mjs printed no JSON ({e})"))
}

/// Keys and labelled tokens from one `mint.mjs` run.
struct Minted {
    keys: Value,
    tokens: HashMap<String, String>,
}

impl Minted {
    fn token(&self, label: &str) -> &str {
        self.tokens.get(label).unwrap_or_else(|| panic!("no token {label:?} minted"))
    }
    fn jwk(&self, key: &str, kid: &str) -> Value {
        let mut jwk = self.keys[key]["jwk"].clone();
        assert!(jwk.is_object(), "no public JWK for key {key}");
        jwk["kid"] = json!(kid);
        jwk
    }
    fn jwks(&self, keys: &[(&str, &str)]) -> String {
        let keys: Vec<Value> = keys.iter().map(|(k, kid)| self.jwk(k, kid)).collect();
        json!({ "keys": keys }).to_string()
    }
    fn pem(&self, key: &str) -> &str {
        self.keys[key]["pem"].as_str().unwrap_or_else(|| panic!("no PEM for key {key}"))
    }
    fn secret(&self, key: &str) -> &str {
        self.keys[key]["secret"].as_str().unwrap_or_else(|| panic!("no secret for key {key}"))
    }
}

/// Standard claims for `iss`, valid now for ten minutes.
fn claims(iss: &str, sub: &str) -> Value {
    let now = unix_now();
    json!({"iss": iss, "sub": sub, "aud": AUDIENCE, "iat": now, "exp": now + 600, "jti": format!("jti-{sub}"), "scope": "read"})
}

/// The subject a valid token for (`issuer`, `alg`) carries.
fn subject(iss: &str, alg: &str) -> String {
    let host = iss.trim_start_matches("https://").split('.').next().unwrap_or("x");
    format!("{host}-{alg}")
}

/// Every key and token the tests need, minted in one run of `mint.mjs`.
fn mint_everything() -> Minted {
    let mut keys: Vec<Value> = Vec::new();
    for alg in ASYMMETRIC.iter().chain(HMAC) {
        keys.push(json!({"name": alg, "alg": alg}));
    }
    for (name, alg) in [("attacker", "EdDSA"), ("remote", "EdDSA"), ("rot1", "ES256"), ("rot2", "EdDSA"), ("rot3", "ES256")] {
        keys.push(json!({"name": name, "alg": alg}));
    }
    let mut tokens: Vec<(String, Value)> = Vec::new();
    let mut add = |label: String, spec: Value| tokens.push((label, spec));
    // One valid token per algorithm and key configuration.
    for alg in ASYMMETRIC {
        for (iss, prefix) in [(INLINE_ISS, "inline"), (PEM_ISS, "pem")] {
            add(
                format!("{prefix}-{alg}"),
                json!({"key": alg, "header": {"kid": format!("{prefix}-{alg}"), "typ": "JWT"}, "claims": claims(iss, &subject(iss, alg))}),
            );
        }
    }
    for alg in HMAC {
        add(format!("hmac-{alg}"), json!({"key": alg, "header": {"kid": format!("hmac-{alg}")}, "claims": claims(HMAC_ISS, &subject(HMAC_ISS, alg))}));
    }
    // Without a kid: the keys pinned to the token's alg are tried.
    add("nokid-ES384".into(), json!({"key": "ES384", "claims": claims(PEM_ISS, "nokid-ES384")}));
    add("nokid-HS512".into(), json!({"key": "HS512", "claims": claims(HMAC_ISS, "nokid-HS512")}));

    // Refusals.
    let now = unix_now();
    let rs = |c: Value| json!({"key": "RS256", "header": {"kid": "inline-RS256"}, "claims": c});
    add("none".into(), json!({"mode": "unsecured", "claims": claims(INLINE_ISS, "none")}));
    add("confusion-kid".into(), json!({"key": "RS256", "mode": "hs256_with_public_pem", "header": {"kid": "pem-RS256"}, "claims": claims(PEM_ISS, "confused")}));
    add("confusion-nokid".into(), json!({"key": "RS256", "mode": "hs256_with_public_pem", "claims": claims(PEM_ISS, "confused")}));
    add("confusion-inline".into(), json!({"key": "RS256", "mode": "hs256_with_public_pem", "header": {"kid": "inline-RS256"}, "claims": claims(INLINE_ISS, "confused")}));
    add("to-tamper".into(), rs(claims(INLINE_ISS, "tamper-victim")));
    let mut c = claims(INLINE_ISS, "expired");
    c["iat"] = json!(now - 3600);
    c["exp"] = json!(now - 600);
    add("expired".into(), rs(c));
    let mut c = claims(INLINE_ISS, "early");
    c["nbf"] = json!(now + 600);
    add("not-yet-valid".into(), rs(c));
    add("wrong-issuer".into(), rs(claims("https://evil.edge-auth.test", "evil")));
    let mut c = claims(INLINE_ISS, "other-aud");
    c["aud"] = json!("someone-else");
    add("wrong-audience".into(), rs(c));
    let mut c = claims(INLINE_ISS, "big");
    c["padding"] = json!("p".repeat(9000));
    add("oversize".into(), rs(c));
    add(
        "crit".into(),
        json!({"key": "RS256", "header": {"kid": "inline-RS256", "crit": ["urn:example:policy"], "urn:example:policy": "strict"},
               "crit": {"urn:example:policy": true}, "claims": claims(INLINE_ISS, "crit")}),
    );
    add("jwe".into(), json!({"mode": "jwe", "claims": claims(INLINE_ISS, "jwe")}));
    add("unreachable-keys".into(), json!({"key": "ES256", "header": {"kid": "k1"}, "claims": claims(UNREACHABLE_ISS, "nobody")}));
    // jku / embedded jwk (the jku URL is patched in below, once its server has a port).
    add("jku-attacker".into(), json!({"key": "attacker", "header": {"kid": "attacker-1", "jku": "JKU"}, "claims": claims(REMOTE_ISS, "jku-attacker")}));
    add("jku-attacker-known-kid".into(), json!({"key": "attacker", "header": {"kid": "remote-1", "jku": "JKU"}, "claims": claims(REMOTE_ISS, "jku-attacker-2")}));
    add("jku-legit".into(), json!({"key": "remote", "header": {"kid": "remote-1", "jku": "JKU"}, "claims": claims(REMOTE_ISS, "jku-legit")}));
    add("jwk-embedded".into(), json!({"key": "attacker", "mode": "embedded_jwk", "claims": claims(INLINE_ISS, "jwk-embedded")}));
    add("jwk-embedded-kid".into(), json!({"key": "attacker", "mode": "embedded_jwk", "header": {"kid": "attacker-1"}, "claims": claims(INLINE_ISS, "jwk-embedded-kid")}));
    add("jwk-embedded-known-kid".into(), json!({"key": "attacker", "mode": "embedded_jwk", "header": {"kid": "inline-EdDSA"}, "claims": claims(INLINE_ISS, "jwk-embedded-known")}));
    // Rotation: fresh tokens for every request.
    for key in ["rot1", "rot2", "rot3"] {
        for i in 0..ROTATION_TOKENS {
            add(format!("{key}-{i}"), json!({"key": key, "header": {"kid": key}, "claims": claims(ROTATING_ISS, &format!("{key}-{i}"))}));
        }
    }
    let jku = jku_server().url("/jwks.json");
    let (labels, specs): (Vec<String>, Vec<Value>) = tokens.into_iter().unzip();
    let specs: Vec<Value> = specs
        .into_iter()
        .map(|mut s| {
            if s["header"]["jku"] == "JKU" {
                s["header"]["jku"] = json!(jku);
            }
            s
        })
        .collect();
    let out = run_mint(&json!({"keys": keys, "tokens": specs}));
    let minted: Vec<String> = serde_json::from_value(out["tokens"].clone()).expect("tokens array");
    assert_eq!(minted.len(), labels.len());
    Minted { keys: out["keys"].clone(), tokens: labels.into_iter().zip(minted).collect() }
}

// ---------------------------------------------------------------------------------------------
// A JWKS server this test controls

/// A tiny HTTP server on 127.0.0.1 that answers every GET with the current document and counts
/// the requests it receives. [`KeyServer::shut_down`] closes its socket (connections refused).
struct KeyServer {
    port: u16,
    doc: Arc<Mutex<(String, String)>>,
    hits: Arc<Mutex<Vec<(Instant, String)>>>,
    down: Arc<AtomicBool>,
}

impl KeyServer {
    fn start(body: &str, cache_control: &str) -> KeyServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind key server");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let doc = Arc::new(Mutex::new((body.to_string(), cache_control.to_string())));
        let hits = Arc::new(Mutex::new(Vec::new()));
        let down = Arc::new(AtomicBool::new(false));
        let (d, h, stop) = (doc.clone(), hits.clone(), down.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => Self::answer(stream, &d, &h),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            drop(listener);
        });
        KeyServer { port, doc, hits, down }
    }

    fn answer(mut stream: TcpStream, doc: &Mutex<(String, String)>, hits: &Mutex<Vec<(Instant, String)>>) {
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut reader = BufReader::new(match stream.try_clone() {
            Ok(s) => s,
            Err(_) => return,
        });
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).is_err() {
            return;
        }
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(n) if n > 2 => continue,
                _ => break,
            }
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or("").to_string();
        hits.lock().unwrap_or_else(|p| p.into_inner()).push((Instant::now(), path));
        let (body, cache_control) = doc.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: {cache_control}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(body.as_bytes());
        let _ = stream.flush();
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
    fn serve(&self, body: &str) {
        self.doc.lock().unwrap_or_else(|p| p.into_inner()).0 = body.to_string();
    }
    fn hit_count(&self) -> usize {
        self.hits.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
    fn hit_times(&self) -> Vec<Instant> {
        self.hits.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(t, _)| *t).collect()
    }
    /// Stops accepting and closes the listening socket: connections are refused from now on.
    fn shut_down(&self) {
        self.down.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the key server on port {} still accepts connections", self.port);
    }
}

/// The server a `jku` header points at: it would serve the attacker's key, and must never be asked.
fn jku_server() -> &'static KeyServer {
    static JKU: OnceLock<KeyServer> = OnceLock::new();
    JKU.get_or_init(|| KeyServer::start(r#"{"keys":[]}"#, "max-age=300"))
}

/// A port on 127.0.0.1 where nothing listens, below 1024 where `bind(0)` never lands.
fn closed_port() -> u16 {
    for port in [1u16, 7, 9, 13, 19, 37, 79] {
        match TcpStream::connect(("127.0.0.1", port)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return port,
            _ => continue,
        }
    }
    panic!("no closed port below 1024 on 127.0.0.1");
}

// ---------------------------------------------------------------------------------------------
// The local OpenID provider

/// `tests/fixtures/oidc/provider.mjs` in its own process group.
struct OidcProvider {
    child: Child,
    issuer: String,
    pgid: i32,
    client_secret: String,
}

impl OidcProvider {
    fn start() -> OidcProvider {
        let client_secret = format!("secret-{}", b64(&std::process::id().to_be_bytes())) + "-0123456789abcdef";
        let script = repo().join("tests/fixtures/oidc/provider.mjs");
        let mut child = Command::new("node")
            .arg(&script)
            .args([OIDC_CLIENT, &client_secret, OIDC_RESOURCE, "ES256"])
            .current_dir(repo())
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run node {}: {e}", script.display()));
        let stdout = child.stdout.take().expect("stdout");
        // Drain stderr (warnings, server errors) so the provider never blocks on a full pipe.
        let stderr_text = Arc::new(Mutex::new(String::new()));
        if let Some(pipe) = child.stderr.take() {
            common::drain_into(pipe, stderr_text.clone());
        }
        let rx = common::first_line(stdout);
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let info: Value = match serde_json::from_str(line.trim()) {
            Ok(v) => v,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(200));
                let err = stderr_text.lock().unwrap_or_else(|p| p.into_inner()).clone();
                panic!("the OpenID provider did not start (is oidc-provider installed? run scripts/bootstrap): {line:?}\n{err}");
            }
        };
        let pgid = child.id() as i32;
        OidcProvider { child, issuer: info["issuer"].as_str().expect("issuer").to_string(), pgid, client_secret }
    }

    /// Live members of the provider's process group.
    fn group_members(&self) -> Vec<i32> {
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
            let Some(close) = stat.rfind(')') else { continue };
            let mut rest = stat[close + 1..].split_whitespace();
            let state = rest.next().unwrap_or("?");
            let pgrp: i32 = rest.nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
            if pgrp == self.pgid && state != "Z" && state != "X" {
                out.push(pid);
            }
        }
        out
    }

    /// SIGTERM to the whole process group, then waits for it to be gone.
    fn kill_group(&mut self) {
        let _ = Command::new("kill").args(["-TERM", "--", &format!("-{}", self.pgid)]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let _ = self.child.try_wait();
            if self.group_members().is_empty() {
                return;
            }
            if Instant::now() > deadline {
                let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.pgid)]).status();
                let _ = self.child.wait();
                panic!("the OpenID provider's process group survived SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A client-credentials access token from the provider.
fn oidc_token(issuer: &str, secret: &str, scope: &str) -> String {
    let client = reqwest::blocking::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().expect("client");
    let resp = client
        .post(format!("{issuer}/token"))
        .basic_auth(OIDC_CLIENT, Some(secret))
        .form(&[("grant_type", "client_credentials"), ("scope", scope), ("resource", OIDC_RESOURCE)])
        .send()
        .expect("token request");
    let status = resp.status();
    let body: Value = resp.json().expect("token response JSON");
    assert_eq!(status, 200, "token endpoint: {body}");
    body["access_token"].as_str().unwrap_or_else(|| panic!("no access_token: {body}")).to_string()
}

// ---------------------------------------------------------------------------------------------
// The shared fixture: keys, servers, provider and one stack

struct Fixture {
    stack: &'static Stack,
    minted: Minted,
    rotating: KeyServer,
    remote: KeyServer,
    oidc: Mutex<Option<OidcProvider>>,
    oidc_issuer: String,
    oidc_secret: String,
    /// Serialises the rotation test's phases against nothing else: only it touches `rotating`.
    rotation_lock: Mutex<()>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let minted = mint_everything();
        let rotating = KeyServer::start(&minted.jwks(&[("rot1", "rot1")]), &format!("max-age={ROTATING_MAX_AGE}"));
        let remote = KeyServer::start(&minted.jwks(&[("remote", "remote-1")]), "max-age=300");
        let oidc = OidcProvider::start();
        let inline_keys: Vec<Value> = ASYMMETRIC.iter().map(|a| minted.jwk(a, &format!("inline-{a}"))).collect();
        let pem_keys: Vec<Value> =
            ASYMMETRIC.iter().map(|a| json!({"kid": format!("pem-{a}"), "alg": a, "pem": minted.pem(a)})).collect();
        let hmac_secrets: Vec<Value> =
            HMAC.iter().map(|a| json!({"kid": format!("hmac-{a}"), "alg": a, "secret_var": format!("JWT_SECRET_{a}")})).collect();
        let issuers = json!([
            {"issuer": INLINE_ISS, "audiences": [AUDIENCE], "jwks": {"keys": inline_keys}},
            {"issuer": PEM_ISS, "audiences": [AUDIENCE], "pem_keys": pem_keys},
            {"issuer": HMAC_ISS, "audiences": [AUDIENCE], "hmac_secrets": hmac_secrets},
            {"issuer": ROTATING_ISS, "audiences": [AUDIENCE], "jwks_uri": rotating.url("/jwks.json")},
            {"issuer": REMOTE_ISS, "audiences": [AUDIENCE], "jwks_uri": remote.url("/keys")},
            {"issuer": UNREACHABLE_ISS, "audiences": [AUDIENCE], "jwks_uri": format!("http://127.0.0.1:{}/jwks.json", closed_port())},
            {"issuer": oidc.issuer, "audiences": [OIDC_RESOURCE], "discovery": true},
        ])
        .to_string();
        let cooldown = COOLDOWN.to_string();
        let secrets: Vec<(String, String)> = HMAC.iter().map(|a| (format!("JWT_SECRET_{a}"), minted.secret(a).to_string())).collect();
        let mut vars: Vec<(&str, &str)> = vec![
            ("ISSUERS", &issuers),
            ("TOKEN_SOURCES", "header:authorization,cookie:session"),
            ("JWKS_REFETCH_COOLDOWN", &cooldown),
            ("JWKS_MIN_TTL", "1"),
        ];
        for (k, v) in &secrets {
            vars.push((k, v));
        }
        let stack = Stack::shared(&vars);
        let (oidc_issuer, oidc_secret) = (oidc.issuer.clone(), oidc.client_secret.clone());
        Fixture {
            stack,
            minted,
            rotating,
            remote,
            oidc: Mutex::new(Some(oidc)),
            oidc_issuer,
            oidc_secret,
            rotation_lock: Mutex::new(()),
        }
    })
}

/// A GET with `Authorization: Bearer <token>`.
fn get_with(token: &str) -> Reply {
    fixture().stack.get("/api/resource", &[("authorization", &bearer(token))])
}

/// Asserts the request reached the origin as `sub` of `iss`.
fn assert_forwarded(reply: &Reply, sub: &str, iss: &str, what: &str) {
    assert_eq!(reply.status, 200, "{what}: {}", reply.text());
    let echo = reply.origin_echo();
    assert_eq!(echo.header("x-auth-subject"), Some(sub), "{what}");
    assert_eq!(echo.header("x-auth-issuer"), Some(iss), "{what}");
    assert!(echo.header("authorization").is_none(), "{what}: the credential was forwarded");
}

/// Asserts a 401 refusal with `reason` and the RFC 6750 `invalid_token` challenge.
fn assert_invalid_token(reply: &Reply, reason: &str, what: &str) {
    assert_eq!(reply.status, 401, "{what}: expected 401 {reason}, got {} {}", reply.status, reply.text());
    reply.assert_refusal(401, reason);
    let www = reply.header("www-authenticate").unwrap_or_default();
    assert!(www.starts_with(r#"Bearer realm="edge-auth", error="invalid_token""#), "{what}: WWW-Authenticate {www:?}");
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn every_algorithm_from_an_independent_signer_reaches_the_origin() {
    let f = fixture();
    let mut checked = 0;
    for alg in ASYMMETRIC {
        for (iss, prefix) in [(INLINE_ISS, "inline"), (PEM_ISS, "pem")] {
            let what = format!("{alg} via {prefix}");
            assert_forwarded(&get_with(f.minted.token(&format!("{prefix}-{alg}"))), &subject(iss, alg), iss, &what);
            checked += 1;
        }
    }
    for alg in HMAC {
        let what = format!("{alg} via hmac_secrets");
        assert_forwarded(&get_with(f.minted.token(&format!("hmac-{alg}"))), &subject(HMAC_ISS, alg), HMAC_ISS, &what);
        checked += 1;
    }
    assert_forwarded(&get_with(f.minted.token("nokid-ES384")), "nokid-ES384", PEM_ISS, "ES384 without kid");
    assert_forwarded(&get_with(f.minted.token("nokid-HS512")), "nokid-HS512", HMAC_ISS, "HS512 without kid");
    assert_eq!(checked, 21);
    // A second request with the same token still passes (verified-token cache).
    assert_forwarded(&get_with(f.minted.token("pem-PS384")), &subject(PEM_ISS, "PS384"), PEM_ISS, "PS384 again");
}

#[test]
fn refusals_carry_the_documented_status_and_reason() {
    let f = fixture();
    let t = |label: &str| f.minted.token(label).to_string();

    // alg none: refused as an algorithm that is never allowed (src/error.rs: "this includes none").
    assert!(t("none").ends_with('.'), "an unsecured JWT has an empty signature");
    assert_invalid_token(&get_with(&t("none")), "algorithm_not_allowed", "alg none");
    // RS→HS confusion: HS256 signed with the RSA public key's PEM as the secret.
    assert_invalid_token(&get_with(&t("confusion-kid")), "algorithm_not_allowed", "HS256 with an RSA key's kid (pem_keys)");
    assert_invalid_token(&get_with(&t("confusion-inline")), "algorithm_not_allowed", "HS256 with an RSA key's kid (jwks)");
    assert_invalid_token(&get_with(&t("confusion-nokid")), "unknown_key", "HS256 without kid at an issuer with no HMAC key");
    // Tampered payload: the subject changed, the signature kept.
    let good = t("to-tamper");
    let parts: Vec<&str> = good.split('.').collect();
    let mut payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
    payload["sub"] = json!("admin");
    let tampered = format!("{}.{}.{}", parts[0], b64(payload.to_string().as_bytes()), parts[2]);
    assert_invalid_token(&get_with(&tampered), "bad_signature", "tampered payload");
    assert_forwarded(&get_with(&good), "tamper-victim", INLINE_ISS, "the untampered token");
    // A flipped signature byte.
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).expect("b64");
    sig[10] ^= 1;
    assert_invalid_token(&get_with(&format!("{}.{}.{}", parts[0], parts[1], b64(&sig))), "bad_signature", "flipped signature bit");
    // Time, issuer, audience.
    assert_invalid_token(&get_with(&t("expired")), "expired", "expired");
    assert_invalid_token(&get_with(&t("not-yet-valid")), "not_yet_valid", "nbf in the future");
    assert_invalid_token(&get_with(&t("wrong-issuer")), "unknown_issuer", "unknown issuer");
    assert_invalid_token(&get_with(&t("wrong-audience")), "wrong_audience", "wrong audience");
    // Size, crit, JWE.
    assert!(t("oversize").len() > 8192);
    assert_invalid_token(&get_with(&t("oversize")), "token_too_large", "token over MAX_TOKEN_BYTES");
    assert_invalid_token(&get_with(&t("crit")), "unsupported_crit", "crit header");
    assert_eq!(t("jwe").split('.').count(), 5);
    assert_invalid_token(&get_with(&t("jwe")), "encrypted_token", "JWE");
    assert_invalid_token(&get_with("not-a-jwt"), "malformed_token", "garbage");
    // The issuer's JWKS cannot be fetched and nothing is cached: 503 with Retry-After, not 401.
    let reply = get_with(&t("unreachable-keys"));
    reply.assert_refusal(503, "keys_unavailable");
    let retry: u64 = reply.header("retry-after").and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!((1..=COOLDOWN).contains(&retry), "Retry-After {:?}", reply.header("retry-after"));

    // Missing token: 401 with a bare challenge, no error code (RFC 6750 §3.1).
    let reply = f.stack.get("/api/resource", &[]);
    reply.assert_refusal(401, "missing_token");
    assert_eq!(reply.header("www-authenticate"), Some(r#"Bearer realm="edge-auth""#));
    // Two different tokens (header and cookie): 400 multiple_tokens, invalid_request.
    let (a, b) = (t("hmac-HS256"), t("inline-ES256"));
    let reply = f.stack.get("/api/resource", &[("authorization", &bearer(&a)), ("cookie", &format!("session={b}"))]);
    reply.assert_refusal(400, "multiple_tokens");
    let www = reply.header("www-authenticate").unwrap_or_default();
    assert!(www.contains(r#"error="invalid_request""#), "WWW-Authenticate {www:?}");
    // The same token in both places is one credential.
    let reply = f.stack.get("/api/resource", &[("authorization", &bearer(&a)), ("cookie", &format!("session={a}"))]);
    assert_forwarded(&reply, &subject(HMAC_ISS, "HS256"), HMAC_ISS, "same token in header and cookie");
    // The cookie alone works too.
    let reply = f.stack.get("/api/resource", &[("cookie", &format!("theme=dark; session={b}"))]);
    assert_forwarded(&reply, &subject(INLINE_ISS, "ES256"), INLINE_ISS, "token in the session cookie");
}

#[test]
fn jku_is_never_fetched_and_an_embedded_jwk_is_never_trusted() {
    let f = fixture();
    let jku = jku_server();
    let t = |label: &str| f.minted.token(label).to_string();
    // jku at an issuer with remote keys: the issuer's configured jwks_uri is used, never the header's.
    assert_invalid_token(&get_with(&t("jku-attacker")), "unknown_key", "jku with the attacker's kid");
    assert_invalid_token(&get_with(&t("jku-attacker-known-kid")), "bad_signature", "jku with the issuer's kid, attacker's signature");
    assert_forwarded(&get_with(&t("jku-legit")), "jku-legit", REMOTE_ISS, "a genuine token that carries a jku");
    assert!(f.remote.hit_count() >= 1, "the issuer's own JWKS was never fetched");
    // Embedded jwk: the attacker's key in the header is ignored.
    assert_invalid_token(&get_with(&t("jwk-embedded")), "bad_signature", "embedded jwk, no kid (the issuer's EdDSA key is tried)");
    assert_invalid_token(&get_with(&t("jwk-embedded-kid")), "unknown_key", "embedded jwk with its own kid");
    assert_invalid_token(&get_with(&t("jwk-embedded-known-kid")), "bad_signature", "embedded jwk with the issuer's kid");
    // Background work (waitUntil) has had time to run; the jku server must still have no request.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(jku.hit_count(), 0, "the worker fetched the token's jku URL");
}

#[test]
fn openid_provider_tokens_verify_through_discovery() {
    let f = fixture();
    let first = oidc_token(&f.oidc_issuer, &f.oidc_secret, "read");
    let second = oidc_token(&f.oidc_issuer, &f.oidc_secret, "read write");
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(first.split('.').next().unwrap_or("")).expect("b64")).expect("json");
    assert_eq!(header["typ"], "at+jwt", "the provider issues RFC 9068 access tokens: {header}");
    assert_eq!(header["alg"], "ES256");

    let reply = get_with(&first);
    assert_forwarded(&reply, OIDC_CLIENT, &f.oidc_issuer, "oidc-provider access token");
    assert_eq!(reply.origin_echo().header("x-auth-scopes"), Some("read"));
    // Tampered provider token.
    let parts: Vec<&str> = first.split('.').collect();
    let mut payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
    payload["scope"] = json!("read write admin");
    let tampered = format!("{}.{}.{}", parts[0], b64(payload.to_string().as_bytes()), parts[2]);
    assert_invalid_token(&get_with(&tampered), "bad_signature", "tampered provider token");

    // The provider goes away (its whole process group); keys fetched through discovery stay cached.
    let mut provider = f.oidc.lock().unwrap_or_else(|p| p.into_inner()).take().expect("provider already stopped");
    assert!(!provider.group_members().is_empty());
    provider.kill_group();
    assert!(reqwest::blocking::Client::builder().no_proxy().build().expect("client").get(format!("{}/jwks", f.oidc_issuer)).send().is_err());
    let reply = get_with(&second);
    assert_forwarded(&reply, OIDC_CLIENT, &f.oidc_issuer, "second provider token after the provider stopped");
    assert_eq!(reply.origin_echo().header("x-auth-scopes"), Some("read write"));
}

/// Sends fresh tokens of `key` (`rot1`..`rot3`) from a shared counter.
struct RotationTokens {
    next: HashMap<&'static str, usize>,
}

impl RotationTokens {
    fn send(&mut self, key: &'static str) -> (Instant, Reply) {
        let i = self.next.entry(key).or_insert(0);
        assert!(*i < ROTATION_TOKENS, "ran out of pre-minted {key} tokens");
        let token = fixture().minted.token(&format!("{key}-{i}")).to_string();
        *i += 1;
        let sent = Instant::now();
        (sent, get_with(&token))
    }
}

#[test]
fn key_rotation_and_a_jwks_outage_cost_no_request_beyond_the_cooldown() {
    let f = fixture();
    let _serial = f.rotation_lock.lock().unwrap_or_else(|p| p.into_inner());
    let server = &f.rotating;
    let m = &f.minted;
    let mut tokens = RotationTokens { next: HashMap::new() };
    let cooldown = Duration::from_secs(COOLDOWN);
    // The worker's clock is whole seconds: allow one more second around every cooldown edge.
    let slack = Duration::from_secs(1);

    // 1. First use: one fetch.
    let (_, r) = tokens.send("rot1");
    assert_forwarded(&r, "rot1-0", ROTATING_ISS, "rot1 first");
    assert_eq!(server.hit_count(), 1, "first token: one JWKS fetch");

    // 2. The IdP publishes rot2 ahead of using it (the usual rotation). Once the cooldown since the
    //    last fetch has passed, the first rot2 token already verifies (one refetch for the new kid).
    server.serve(&m.jwks(&[("rot1", "rot1"), ("rot2", "rot2")]));
    std::thread::sleep(cooldown + Duration::from_millis(500));
    let (_, r) = tokens.send("rot2");
    assert_forwarded(&r, "rot2-0", ROTATING_ISS, "rot2, published ahead");
    let (_, r) = tokens.send("rot1");
    assert_forwarded(&r, "rot1-1", ROTATING_ISS, "rot1 still listed");
    let after_publish = server.hit_count();
    assert!((2..=3).contains(&after_publish), "JWKS fetches so far: {after_publish}");

    // 3. The IdP drops rot1 and starts signing with rot3 at once, without publishing ahead: rot3
    //    tokens may fail (unknown_key) only while a fetch happened within the cooldown.
    let published = Instant::now();
    server.serve(&m.jwks(&[("rot2", "rot2"), ("rot3", "rot3")]));
    let mut failures: Vec<Instant> = Vec::new();
    let mut first_ok: Option<Instant> = None;
    while first_ok.is_none() && published.elapsed() < cooldown + slack + Duration::from_secs(3) {
        let (sent, r) = tokens.send("rot3");
        if r.status == 200 {
            first_ok = Some(sent);
        } else {
            assert_invalid_token(&r, "unknown_key", "rot3 before the refetch");
            failures.push(sent);
        }
        let (_, r) = tokens.send("rot2");
        assert_eq!(r.status, 200, "rot2 must never fail during the rotation: {}", r.text());
        std::thread::sleep(Duration::from_millis(200));
    }
    let first_ok = first_ok.unwrap_or_else(|| panic!("rot3 never verified ({} failures)", failures.len()));
    assert!(
        first_ok.duration_since(published) <= cooldown + slack + Duration::from_secs(1),
        "rot3 verified only {:?} after it appeared",
        first_ok.duration_since(published)
    );
    let hits = server.hit_times();
    for failed in &failures {
        let cooling = hits.iter().any(|h| *h <= *failed + Duration::from_millis(500) && failed.duration_since(*h) < cooldown + slack);
        assert!(cooling, "a rot3 request failed {:?} after rot3 appeared with no fetch within the cooldown", failed.duration_since(published));
    }
    let fetches = hits.iter().skip(after_publish).filter(|h| **h <= first_ok + Duration::from_millis(500)).count();
    assert!(fetches <= 2, "{fetches} JWKS fetches for one new kid: the cooldown does not hold");
    // However many requests carry unknown kids (one every ~200 ms here), fetches are a cooldown
    // apart (the worker counts whole seconds; half a second more for request latency).
    for pair in hits.windows(2) {
        let gap = pair[1].duration_since(pair[0]);
        assert!(gap + slack + Duration::from_millis(500) >= cooldown, "two JWKS fetches only {gap:?} apart");
    }
    println!("rotation: rot3 verified {:?} after it appeared; {} refused meanwhile; {fetches} fetches", first_ok.duration_since(published), failures.len());
    for _ in 0..3 {
        let (_, r) = tokens.send("rot3");
        assert_eq!(r.status, 200, "rot3 after its first success: {}", r.text());
    }
    // rot1 was removed and the keys were refetched: fresh rot1 tokens are refused.
    let (_, r) = tokens.send("rot1");
    assert_invalid_token(&r, "unknown_key", "rot1 after its removal");

    // 4. The JWKS server goes down. Through freshness, staleness and failing background refreshes,
    //    cached keys keep verifying.
    server.shut_down();
    let down_at = Instant::now();
    let mut sent = 0;
    while down_at.elapsed() < Duration::from_secs(ROTATING_MAX_AGE + COOLDOWN + 2) {
        for key in ["rot2", "rot3"] {
            let (_, r) = tokens.send(key);
            assert_eq!(r.status, 200, "{key} with the JWKS server down ({:?} in): {}", down_at.elapsed(), r.text());
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(400));
    }
    assert!(sent >= 10);
    // An unknown kid while the server is down is still a key problem (401), not an outage (503).
    let (_, r) = tokens.send("rot1");
    assert_invalid_token(&r, "unknown_key", "rot1 with the JWKS server down");
}
