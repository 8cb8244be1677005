//! Opaque sessions end to end: sessions created with the operator CLI (`edge-auth session
//! create` prints the opaque token), presented to the built worker under `wrangler dev` on a
//! route with `"auth": "session"`, checked in real Redis behind the real Upstash REST server.
//!
//! - a session passes (Authorization or the `session` cookie) with its roles and permissions
//!   in `X-Auth-Scopes` at the origin, and the token itself is not forwarded;
//! - `perms set` takes effect on the next request;
//! - `session kick` (one device), `session kick-all`, `POST /auth/logout` and
//!   `POST /auth/logout-all` end sessions: the next request is 401 `session_not_found`;
//! - a short `--ttl` expires the session;
//! - sliding expiry (`SESSION_SLIDING_SECS`) renews an active session's Redis TTL and stops at
//!   `SESSION_MAX_LIFETIME_SECS`; answered from the cache, the renewal still happens (after
//!   the response, in `waitUntil`);
//! - `MAX_SESSIONS_PER_SUBJECT`: `evict_oldest` ends the oldest session, `refuse` makes the CLI
//!   refuse a new login.
//!
//! Needs the built worker (`build/`) and the tools (`cargo build --workspace --bins`).

mod common;
mod rev_support;

use std::time::Duration;

use common::Stack;
use rev_support::*;
use serde_json::{json, Value};

fn base() -> &'static Stack {
    shared_stack(&[])
}

/// `edge-auth session list --sub <sub> --json`, one JSON object per session, oldest first.
fn list(stack: &Stack, sub: &str) -> Vec<Value> {
    cli_ok(stack, &["session", "list", "--sub", sub, "--json"])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("session list line {l:?}: {e}")))
        .collect()
}

fn devices(stack: &Stack, sub: &str) -> Vec<String> {
    list(stack, sub).iter().map(|s| s["device"].as_str().unwrap_or("").to_string()).collect()
}

/// The Redis TTL of the session's key in milliseconds (-2: gone).
fn pttl(stack: &Stack, token: &str) -> i64 {
    stack.redis_cmd(&["PTTL", &session_key(token)]).as_i64().expect("PTTL is an integer")
}

/// The Redis TTL of the session's key (-2: gone).
fn ttl(stack: &Stack, token: &str) -> i64 {
    stack.redis_cmd(&["TTL", &session_key(token)]).as_i64().expect("TTL is an integer")
}

#[test]
fn a_session_passes_with_its_permissions_and_perms_set_applies_on_the_next_request() {
    let stack = base();
    let sub = unique("alice");
    let token = login(stack, &sub, "laptop", &["--perm", "orders:read", "--perm", "orders:write", "--role", "admin"]);

    let reply = get_with(stack, "/s/orders?x=1", &token);
    assert_eq!(assert_passes(&reply, "session by Authorization"), "checked");
    let echo = reply.origin_echo();
    assert_eq!(echo.header("x-auth-subject"), Some(sub.as_str()));
    assert_eq!(echo.path, "/s/orders");
    assert_eq!(origin_scopes(&reply), ["admin", "orders:read", "orders:write"]);
    for (name, value) in &echo.headers {
        assert!(!value.contains(&token), "the session token reached the origin in {name}");
    }

    let reply = stack.get("/s/orders", &[("cookie", &format!("theme=dark; session={token}"))]);
    assert_passes(&reply, "session by cookie");
    let echo = reply.origin_echo();
    for (name, value) in &echo.headers {
        assert!(!value.contains(&token), "the session token reached the origin in {name}");
    }

    // Subject permissions from Redis join the session's own, from the very next request.
    cli_ok(stack, &["perms", "set", "--sub", &sub, "billing:read"]);
    assert_eq!(origin_scopes(&get_with(stack, "/s/orders", &token)), ["admin", "billing:read", "orders:read", "orders:write"]);
    cli_ok(stack, &["perms", "set", "--sub", &sub, "reports:read", "billing:read"]);
    assert_eq!(origin_scopes(&get_with(stack, "/s/orders", &token)), ["admin", "billing:read", "orders:read", "orders:write", "reports:read"]);
    cli_ok(stack, &["perms", "set", "--sub", &sub]);
    assert_eq!(origin_scopes(&get_with(stack, "/s/orders", &token)), ["admin", "orders:read", "orders:write"]);

    // Unknown, malformed and JWT credentials are not sessions.
    let unknown = "A".repeat(43);
    assert_refused(&get_with(stack, "/s/orders", &unknown), 401, "session_not_found", "an unknown session token");
    assert_refused(&get_with(stack, "/s/orders", "short"), 401, "session_not_found", "a malformed session token");
    let jwt = Tok::access(ISS_A, &sub).sign();
    assert_refused(&get_with(stack, "/s/orders", &jwt), 401, "session_not_found", "a JWT on a session route");
    assert_refused(&stack.get("/s/orders", &[]), 401, "missing_token", "no credential");
    assert_no_panic(stack);
}

#[test]
fn kick_ends_one_device_and_kick_all_ends_the_rest() {
    let stack = base();
    let sub = unique("bob");
    let laptop = login(stack, &sub, "laptop", &[]);
    let phone = login(stack, &sub, "phone", &[]);
    let other = login(stack, &unique("carol"), "laptop", &[]);
    assert_eq!(devices(stack, &sub), ["laptop", "phone"]);
    for (t, what) in [(&laptop, "laptop"), (&phone, "phone")] {
        assert_passes(&get_with(stack, "/s/x", t), what);
    }

    let out = cli_ok(stack, &["session", "kick", "--sub", &sub, "--device", "laptop"]);
    assert!(out.starts_with("ended 1 session"), "kick printed {out:?}");
    assert_refused(&get_with(stack, "/s/x", &laptop), 401, "session_not_found", "kicked laptop");
    assert_passes(&get_with(stack, "/s/x", &phone), "phone after the laptop was kicked");
    assert_eq!(devices(stack, &sub), ["phone"]);

    let out = cli_ok(stack, &["session", "kick-all", "--sub", &sub]);
    assert!(out.starts_with("ended 1 session"), "kick-all printed {out:?}");
    assert_refused(&get_with(stack, "/s/x", &phone), 401, "session_not_found", "phone after kick-all");
    assert!(devices(stack, &sub).is_empty());
    assert_passes(&get_with(stack, "/s/x", &other), "another subject's session");
}

#[test]
fn logout_endpoints_end_one_session_or_all_of_the_subjects() {
    let stack = base();
    let sub = unique("dave");
    let a = login(stack, &sub, "a", &[]);
    let b = login(stack, &sub, "b", &[]);
    let c = login(stack, &sub, "c", &[]);

    let reply = stack.request("POST", "/auth/logout", &[("cookie", &format!("session={a}"))], None);
    assert_eq!(reply.status, 200, "logout: {}", reply.text());
    assert_eq!(reply.json(), json!({"revoked": "session"}));
    assert_refused(&get_with(stack, "/s/x", &a), 401, "session_not_found", "session after logout");
    assert_passes(&get_with(stack, "/s/x", &b), "another device after logout");
    assert_eq!(devices(stack, &sub), ["b", "c"]);

    let reply = stack.request("POST", "/auth/logout-all", &[("authorization", &bearer(&b))], None);
    assert_eq!(reply.status, 200, "logout-all: {}", reply.text());
    assert_eq!(reply.json(), json!({"revoked": "sessions"}));
    assert_refused(&get_with(stack, "/s/x", &b), 401, "session_not_found", "b after logout-all");
    assert_refused(&get_with(stack, "/s/x", &c), 401, "session_not_found", "c after logout-all");
    assert!(devices(stack, &sub).is_empty());

    // A session that is gone cannot log out.
    let reply = stack.request("POST", "/auth/logout", &[("authorization", &bearer(&a))], None);
    assert_refused(&reply, 401, "session_not_found", "logout with an ended session");
}

#[test]
fn a_short_ttl_expires_the_session() {
    let stack = base();
    let sub = unique("erin");
    let short = login(stack, &sub, "kiosk", &["--ttl", "2", "--max-lifetime", "0"]);
    let long = login(stack, &sub, "laptop", &["--ttl", "600"]);
    let created = now();
    assert_passes(&get_with(stack, "/s/x", &short), "short session, fresh");
    let t = ttl(stack, &short);
    assert!((1..=2).contains(&t), "TTL of the short session: {t}");

    sleep_until(created + 3, 200);
    assert_refused(&get_with(stack, "/s/x", &short), 401, "session_not_found", "short session after its TTL");
    assert_eq!(ttl(stack, &short), -2, "the expired session is gone from Redis");
    assert_passes(&get_with(stack, "/s/x", &long), "the subject's other session");
    assert_eq!(devices(stack, &sub), ["laptop"]);
}

#[test]
fn evict_oldest_ends_the_oldest_session_at_the_limit() {
    let stack = base();
    let sub = unique("frank");
    let env = [("MAX_SESSIONS_PER_SUBJECT", "2"), ("SESSION_LIMIT_POLICY", "evict_oldest")];
    let create = |device: &str| {
        let out = cli(stack, &["session", "create", "--sub", &sub, "--device", device], &env);
        assert!(out.status.success(), "create {device}: {}", String::from_utf8_lossy(&out.stderr));
        (String::from_utf8_lossy(&out.stdout).trim().to_string(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let (s1, _) = create("d1");
    let (s2, _) = create("d2");
    assert_passes(&get_with(stack, "/s/x", &s1), "s1");
    assert_passes(&get_with(stack, "/s/x", &s2), "s2");

    let (s3, note) = create("d3");
    assert!(note.contains("evicted 1 oldest session"), "create at the limit said {note:?}");
    assert_refused(&get_with(stack, "/s/x", &s1), 401, "session_not_found", "the oldest session after a third login");
    assert_passes(&get_with(stack, "/s/x", &s2), "s2 after a third login");
    assert_passes(&get_with(stack, "/s/x", &s3), "s3");
    assert_eq!(devices(stack, &sub), ["d2", "d3"]);

    let (s4, _) = create("d4");
    assert_refused(&get_with(stack, "/s/x", &s2), 401, "session_not_found", "s2 after a fourth login");
    assert_passes(&get_with(stack, "/s/x", &s3), "s3 after a fourth login");
    assert_passes(&get_with(stack, "/s/x", &s4), "s4");
}

#[test]
fn refuse_policy_makes_the_cli_refuse_a_login_at_the_limit() {
    let stack = base();
    let sub = unique("grace");
    let env = [("MAX_SESSIONS_PER_SUBJECT", "2"), ("SESSION_LIMIT_POLICY", "refuse")];
    let args = |device: &'static str| -> Vec<String> { ["session", "create", "--sub", &sub, "--device", device].iter().map(|s| s.to_string()).collect() };
    let run = |device: &'static str| {
        let a = args(device);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        cli(stack, &refs, &env)
    };
    let r1 = run("d1");
    let r2 = run("d2");
    assert!(r1.status.success() && r2.status.success());
    let (r1, r2) = (String::from_utf8_lossy(&r1.stdout).trim().to_string(), String::from_utf8_lossy(&r2.stdout).trim().to_string());

    let refused = run("d3");
    assert!(!refused.status.success(), "a third login was accepted: {}", String::from_utf8_lossy(&refused.stdout));
    assert!(refused.stdout.is_empty(), "a refused login printed a token");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.starts_with("edge-auth: error:") && err.contains("already has 2 session(s)"), "stderr: {err}");
    assert_passes(&get_with(stack, "/s/x", &r1), "r1 after a refused login");
    assert_passes(&get_with(stack, "/s/x", &r2), "r2 after a refused login");
    assert_eq!(devices(stack, &sub), ["d1", "d2"]);

    // Room again after a logout.
    cli_ok(stack, &["session", "kick", "--sub", &sub, "--device", "d1"]);
    let r3 = run("d3");
    assert!(r3.status.success(), "login after a kick: {}", String::from_utf8_lossy(&r3.stderr));
    assert_passes(&get_with(stack, "/s/x", String::from_utf8_lossy(&r3.stdout).trim()), "r3");
}

#[test]
fn sliding_expiry_renews_an_active_session_and_stops_at_the_maximum_lifetime() {
    const SLIDING: i64 = 6;
    const MAX_LIFE: u64 = 10;
    let stack = shared_stack(&[("SESSION_SLIDING_SECS", "6"), ("SESSION_MAX_LIFETIME_SECS", "10")]);
    let sub = unique("henry");
    // The CLI reads SESSION_MAX_LIFETIME_SECS like the worker: expires = created + 10.
    let out = cli(stack, &["session", "create", "--sub", &sub, "--device", "d", "--ttl", "6"], &[("SESSION_MAX_LIFETIME_SECS", "10")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let listed = list(stack, &sub);
    let created = listed[0]["created"].as_u64().expect("created");
    let hard_end = created + MAX_LIFE;
    assert_eq!(listed[0]["expires"].as_u64(), Some(hard_end));

    // Unused, the TTL runs down (milliseconds: `created` is the whole second of creation).
    sleep_until(created + 2, 300);
    let before = pttl(stack, &token);
    assert!(before <= (SLIDING - 1) * 1000 - 200, "TTL before use: {before} ms");
    // A request renews it to the sliding window.
    assert_passes(&get_with(stack, "/s/x", &token), "at +2 s");
    let after = pttl(stack, &token);
    assert!(after >= SLIDING * 1000 - 500, "TTL after a request at +2 s: {after} ms (before: {before} ms)");

    // Keep using it: each request renews, but never past created + max lifetime.
    let mut last_ok = 0;
    for at in [4u64, 6, 8] {
        sleep_until(created + at, 300);
        let t = now();
        if t >= hard_end {
            break;
        }
        assert_passes(&get_with(stack, "/s/x", &token), &format!("at +{at} s"));
        let ttl_now = ttl(stack, &token);
        let cap = (hard_end - t) as i64;
        assert!(ttl_now <= cap.min(SLIDING), "at +{at} s: TTL {ttl_now} beyond the cap {cap}");
        assert!(ttl_now >= cap.min(SLIDING) - 2, "at +{at} s: TTL {ttl_now} not renewed (cap {cap})");
        last_ok = at;
    }
    assert!(last_ok >= 6, "the session was used until +{last_ok} s only");
    // At +8 s the TTL is capped at the 2 s left, not renewed to the 6 s window.
    assert!(ttl(stack, &token) <= 3, "TTL near the end of the maximum lifetime: {}", ttl(stack, &token));

    sleep_until(hard_end, 300);
    assert_refused(&get_with(stack, "/s/x", &token), 401, "session_not_found", "active session past its maximum lifetime");

    // Without sliding use, a session ends at its TTL even though its lifetime is longer.
    let idle = cli(stack, &["session", "create", "--sub", &unique("ivan"), "--device", "d", "--ttl", "1"], &[("SESSION_MAX_LIFETIME_SECS", "10")]);
    let idle = String::from_utf8_lossy(&idle.stdout).trim().to_string();
    std::thread::sleep(Duration::from_millis(2200));
    assert_refused(&get_with(stack, "/s/x", &idle), 401, "session_not_found", "idle session past its TTL");
    assert_no_panic(stack);
}

#[test]
fn a_session_answered_from_the_cache_is_still_renewed_after_the_response() {
    // The renewal of a cached session is deferred to `waitUntil`: it must still reach Redis.
    let stack = shared_stack(&[("SESSION_SLIDING_SECS", "4"), ("REVOCATION_CACHE_SECS", "60")]);
    let sub = unique("judy");
    let token = login(stack, &sub, "d", &["--ttl", "4"]);
    let created = now();
    assert_eq!(assert_passes(&get_with(stack, "/s/x", &token), "first use"), "checked");

    sleep_until(created + 3, 100);
    let before = ttl(stack, &token);
    assert!((0..=2).contains(&before), "TTL 3 s after a 4 s renewal: {before}");
    assert_eq!(assert_passes(&get_with(stack, "/s/x", &token), "use from the cache"), "cached");
    let renewed = poll(Duration::from_secs(2), Duration::from_millis(50), || {
        let t = ttl(stack, &token);
        (t >= 3).then_some(t)
    });
    assert!(renewed.is_some(), "the cached session's TTL was not renewed after the response (TTL {})", ttl(stack, &token));

    // Past its initial 4 s TTL the key is still in Redis thanks to the renewal.
    sleep_until(created + 5, 200);
    assert_eq!(assert_passes(&get_with(stack, "/s/x", &token), "use after the initial TTL"), "cached");
    assert!(ttl(stack, &token) > 0, "the session key is gone from Redis");
}
