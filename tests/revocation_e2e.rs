//! Revocation end to end: the built worker under `wrangler dev`, real redis-server behind the
//! real Upstash REST server, tokens revoked with the operator CLI (`edge-auth`) and with the
//! edge's logout endpoints.
//!
//! - `revoke-token` / `revoke-jti`: the very next request with that token is refused (401
//!   `revoked`); other tokens of the same subject still pass;
//! - `revoke-subject`: every earlier token of the subject is refused, one issued after passes;
//!   other subjects and the same subject at another issuer are untouched;
//! - `POST /auth/logout` revokes the presented token, `POST /auth/logout-all` the subject;
//! - refresh tokens: refused on normal routes, access tokens refused on the refresh route
//!   (`wrong_token_use`), for an issuer with `refresh_typ` and one with `refresh_claim`; a
//!   refresh token passes only while present in Redis (`refresh add` / `refresh revoke`);
//! - `perms set` reaches the origin in `X-Auth-Scopes` on the next request;
//! - Redis round trips per request, counted by the REST server: exactly 1 with the check on,
//!   0 on a public route, 0 on a cache hit (`REVOCATION_CACHE_SECS=60`); with a 2 s cache a
//!   revocation takes effect within that bound; a repeated request is replayed within its
//!   second (own request id, log line `replayed`) until a logout through the edge;
//! - `RATE_LIMIT=3/60`: the 4th request in a window is 429 `rate_limited` with `Retry-After`.
//!
//! Needs the built worker (`build/`) and the tools (`cargo build --workspace --bins`).

mod common;
mod rev_support;

use std::sync::RwLock;
use std::time::{Duration, Instant};

use common::Stack;
use rev_support::*;
use serde_json::json;

/// The tests on the `REVOCATION_CACHE_SECS=60` stack count its REST requests: one at a time.
static CACHE_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The `REVOCATION_CACHE_SECS=60` stack, held for this test alone.
fn cache_stack() -> (std::sync::MutexGuard<'static, ()>, &'static Stack) {
    (CACHE_LOCK.lock().unwrap_or_else(|p| p.into_inner()), shared_stack(&[("REVOCATION_CACHE_SECS", "60")]))
}

/// Tests on the base stack hold this for reading; the ones that count REST requests hold it for
/// writing, so nothing else talks to that stack's Redis meanwhile.
static BASE_LOCK: RwLock<()> = RwLock::new(());

fn base() -> &'static Stack {
    shared_stack(&[])
}

fn shared_guard() -> std::sync::RwLockReadGuard<'static, ()> {
    BASE_LOCK.read().unwrap_or_else(|p| p.into_inner())
}

fn exclusive_guard() -> std::sync::RwLockWriteGuard<'static, ()> {
    BASE_LOCK.write().unwrap_or_else(|p| p.into_inner())
}

/// REST requests counted by the stack's Upstash server since the last reset.
fn rest_requests(stack: &Stack) -> u64 {
    stack.upstash_stats()["requests"].as_u64().expect("stats.requests")
}

#[test]
fn revoke_token_and_revoke_jti_refuse_the_very_next_request_only_for_that_token() {
    let _g = shared_guard();
    let stack = base();
    let sub = unique("alice");
    let t1 = Tok::access(ISS_A, &sub).sign();
    let t2 = Tok::access(ISS_A, &sub).sign();
    let t3 = Tok::access(ISS_B, &sub);
    let t3s = t3.sign();
    for (t, what) in [(&t1, "t1"), (&t2, "t2"), (&t3s, "t3")] {
        assert_eq!(assert_passes(&get_with(stack, "/api/orders", t), what), "checked");
    }

    let out = cli_ok(stack, &["revoke-token", &t1]);
    assert!(out.starts_with("revoked jti "), "revoke-token printed {out:?}");
    assert_refused(&get_with(stack, "/api/orders", &t1), 401, "revoked", "t1 after revoke-token");
    assert_passes(&get_with(stack, "/api/orders", &t2), "t2 (same subject) after t1 was revoked");
    assert_passes(&get_with(stack, "/api/orders", &t3s), "t3 (same subject, other issuer)");

    let jti = t3.jti.clone().expect("jti");
    cli_ok(stack, &["revoke-jti", "--iss", ISS_B, "--jti", &jti, "--exp", &t3.exp.to_string()]);
    assert_refused(&get_with(stack, "/api/orders", &t3s), 401, "revoked", "t3 after revoke-jti");
    assert_passes(&get_with(stack, "/api/orders", &t2), "t2 after t3 was revoked");
    // The same jti at the other issuer is another token.
    let same_jti_other_issuer = Tok { jti: Some(jti), ..Tok::access(ISS_A, &sub) }.sign();
    assert_passes(&get_with(stack, "/api/orders", &same_jti_other_issuer), "same jti, issuer A");
    // Still refused on later requests (the entry lives until exp + leeway).
    assert_refused(&get_with(stack, "/other/path", &t1), 401, "revoked", "t1 again");
}

#[test]
fn a_token_minted_by_the_cli_passes_and_is_revoked_by_the_cli() {
    let _g = shared_guard();
    let stack = base();
    let sub = unique("mallory");
    let token = cli_ok(
        stack,
        &["mint", "--alg", "HS256", "--key", SECRET_A, "--kid", "a1", "--iss", ISS_A, "--sub", &sub, "--aud", AUD, "--exp-in", "600", "--jti", "auto"],
    );
    let reply = get_with(stack, "/api/x", &token);
    assert_eq!(assert_passes(&reply, "CLI-minted token"), "checked");
    assert_eq!(reply.origin_echo().header("x-auth-subject"), Some(sub.as_str()));
    cli_ok(stack, &["revoke-token", &token]);
    assert_refused(&get_with(stack, "/api/x", &token), 401, "revoked", "CLI-minted token after revoke-token");
}

#[test]
fn revoke_subject_refuses_every_earlier_token_and_a_later_one_passes() {
    let _g = shared_guard();
    let stack = base();
    let sub = unique("bob");
    let other = unique("carol");
    let n = now();
    let old1 = Tok::access(ISS_A, &sub).iat(Some(n - 30)).sign();
    let old2 = Tok::access(ISS_A, &sub).iat(Some(n - 10)).sign();
    let no_iat = Tok::access(ISS_A, &sub).iat(None).sign();
    let other_sub = Tok::access(ISS_A, &other).iat(Some(n - 30)).sign();
    let other_iss = Tok::access(ISS_B, &sub).iat(Some(n - 30)).sign();
    for (t, what) in [(&old1, "old1"), (&old2, "old2"), (&no_iat, "no iat"), (&other_sub, "other subject"), (&other_iss, "other issuer")] {
        assert_passes(&get_with(stack, "/api", t), what);
    }

    let out = cli_ok(stack, &["revoke-subject", "--iss", ISS_A, "--sub", &sub]);
    assert!(out.contains("issued before"), "revoke-subject printed {out:?}");
    assert_refused(&get_with(stack, "/api", &old1), 401, "revoked", "old1 after the cutoff");
    assert_refused(&get_with(stack, "/api", &old2), 401, "revoked", "old2 after the cutoff");
    assert_refused(&get_with(stack, "/api", &no_iat), 401, "revoked", "a token without iat after a cutoff");
    assert_passes(&get_with(stack, "/api", &other_sub), "another subject after the cutoff");
    assert_passes(&get_with(stack, "/api", &other_iss), "the same subject at another issuer");

    // Issued after the cutoff (the cutoff was taken before the CLI returned): passes.
    let fresh = Tok::access(ISS_A, &sub).iat(Some(now())).sign();
    assert_passes(&get_with(stack, "/api", &fresh), "a token issued after the cutoff");

    // An explicit cutoff in the past: tokens issued at or after it pass, earlier ones do not.
    let sub2 = unique("dave");
    let before = Tok::access(ISS_B, &sub2).iat(Some(n - 20)).sign();
    let after = Tok::access(ISS_B, &sub2).iat(Some(n - 5)).sign();
    cli_ok(stack, &["revoke-subject", "--iss", ISS_B, "--sub", &sub2, "--at", &(n - 5).to_string()]);
    assert_refused(&get_with(stack, "/api", &before), 401, "revoked", "iat before --at");
    assert_passes(&get_with(stack, "/api", &after), "iat equal to --at");
}

#[test]
fn logout_endpoint_revokes_the_presented_token_only() {
    let _g = shared_guard();
    let stack = base();
    let sub = unique("erin");
    let t1 = Tok::access(ISS_A, &sub).sign();
    let t2 = Tok::access(ISS_A, &sub).sign();
    assert_passes(&get_with(stack, "/api", &t1), "t1 before logout");

    let reply = stack.request("POST", "/auth/logout", &[("authorization", &bearer(&t1))], None);
    assert_eq!(reply.status, 200, "logout: {}", reply.text());
    assert_eq!(reply.json(), json!({"revoked": "token"}));
    assert_eq!(reply.header("cache-control"), Some("no-store"));

    assert_refused(&get_with(stack, "/api", &t1), 401, "revoked", "t1 after logout");
    assert_passes(&get_with(stack, "/api", &t2), "t2 after t1 logged out");
    // The cookie is a token source too.
    assert_refused(&stack.get("/api", &[("cookie", &format!("session={t1}"))]), 401, "revoked", "t1 by cookie after logout");

    // Logout needs a valid credential.
    let forged = Tok::access(ISS_A, &sub).sign().replace('.', ".x");
    let reply = stack.request("POST", "/auth/logout", &[("authorization", &bearer(&forged))], None);
    assert_eq!(reply.status, 401, "logout with a broken token: {}", reply.text());
    let reply = stack.request("POST", "/auth/logout", &[], None);
    assert_refused(&reply, 401, "missing_token", "logout without a token");
}

#[test]
fn logout_all_sets_the_subject_cutoff() {
    let _g = shared_guard();
    let stack = base();
    let sub = unique("frank");
    let n = now();
    let t1 = Tok::access(ISS_B, &sub).iat(Some(n - 20)).sign();
    let t2 = Tok::access(ISS_B, &sub).iat(Some(n - 10)).sign();
    let other = Tok::access(ISS_B, &unique("grace")).iat(Some(n - 10)).sign();
    assert_passes(&get_with(stack, "/api", &t2), "t2 before logout-all");

    let reply = stack.request("POST", "/auth/logout-all", &[("authorization", &bearer(&t1))], None);
    assert_eq!(reply.status, 200, "logout-all: {}", reply.text());
    assert_eq!(reply.json(), json!({"revoked": "subject"}));

    assert_refused(&get_with(stack, "/api", &t1), 401, "revoked", "t1 after logout-all");
    assert_refused(&get_with(stack, "/api", &t2), 401, "revoked", "t2 after logout-all");
    assert_passes(&get_with(stack, "/api", &other), "another subject after logout-all");
    let fresh = Tok::access(ISS_B, &sub).iat(Some(now())).sign();
    assert_passes(&get_with(stack, "/api", &fresh), "a token issued after logout-all");
}

#[test]
fn logout_all_also_ends_the_presented_token_issued_in_the_same_second() {
    let _g = shared_guard();
    let stack = base();
    let sub = unique("gus");
    // Issued "now": the cutoff (now, whole seconds) alone would not cover it (iat < cutoff).
    let mut fresh = None;
    for _ in 0..5 {
        let n = now();
        let t = Tok::access(ISS_A, &sub).iat(Some(n)).sign();
        let reply = stack.request("POST", "/auth/logout-all", &[("authorization", &bearer(&t))], None);
        assert_eq!(reply.status, 200, "logout-all: {}", reply.text());
        if now() == n {
            fresh = Some(t);
            break;
        }
    }
    let fresh = fresh.expect("could not log out within the second the token was issued");
    assert_refused(&get_with(stack, "/api", &fresh), 401, "revoked", "the token that asked to log out everywhere");
}

#[test]
fn refresh_and_access_tokens_are_only_accepted_on_their_own_routes() {
    let _g = shared_guard();
    let stack = base();
    for iss in [ISS_A, ISS_B] {
        let sub = unique("henry");
        let access = Tok::access(iss, &sub).sign();
        let rt = Tok::refresh(iss, &sub);
        let rts = rt.sign();
        let jti = rt.jti.clone().expect("jti");

        assert_refused(&get_with(stack, "/api/orders", &rts), 401, "wrong_token_use", &format!("{iss}: refresh token on a normal route"));
        assert_refused(&get_with(stack, "/refresh/token", &access), 401, "wrong_token_use", &format!("{iss}: access token on the refresh route"));
        // Not registered in Redis: refused even on its own route.
        assert_refused(&get_with(stack, "/refresh/token", &rts), 401, "revoked", &format!("{iss}: unregistered refresh token"));

        cli_ok(stack, &["refresh", "add", "--iss", iss, "--jti", &jti, "--ttl", "600"]);
        let reply = get_with(stack, "/refresh/token", &rts);
        assert_eq!(assert_passes(&reply, &format!("{iss}: registered refresh token")), "checked");
        assert_eq!(reply.origin_echo().header("x-auth-subject"), Some(sub.as_str()));
        // Still not usable as an access token.
        assert_refused(&get_with(stack, "/api/orders", &rts), 401, "wrong_token_use", &format!("{iss}: registered refresh token on a normal route"));

        let out = cli_ok(stack, &["refresh", "revoke", "--iss", iss, "--jti", &jti]);
        assert!(out.ends_with("revoked"), "refresh revoke printed {out:?}");
        assert_refused(&get_with(stack, "/refresh/token", &rts), 401, "revoked", &format!("{iss}: refresh token after refresh revoke"));
        assert_passes(&get_with(stack, "/api/orders", &access), &format!("{iss}: the subject's access token is untouched"));
    }
}

#[test]
fn permissions_set_by_the_cli_reach_the_origin_on_the_next_request() {
    let _g = shared_guard();
    let stack = base();
    let sub = unique("ivan");
    let token = Tok::access(ISS_A, &sub).claim("scope", json!("read")).sign();
    assert_eq!(origin_scopes(&get_with(stack, "/api", &token)), ["read"]);

    cli_ok(stack, &["perms", "set", "--sub", &sub, "orders:write", "billing:read"]);
    assert_eq!(origin_scopes(&get_with(stack, "/api", &token)), ["billing:read", "orders:write", "read"]);
    assert_eq!(cli_ok(stack, &["perms", "get", "--sub", &sub]), "billing:read\norders:write");

    cli_ok(stack, &["perms", "set", "--sub", &sub, "admin"]);
    assert_eq!(origin_scopes(&get_with(stack, "/api", &token)), ["admin", "read"]);
    cli_ok(stack, &["perms", "set", "--sub", &sub]);
    assert_eq!(origin_scopes(&get_with(stack, "/api", &token)), ["read"]);
}

#[test]
fn exactly_one_redis_round_trip_per_checked_request_and_none_on_a_public_route() {
    let _g = exclusive_guard();
    let stack = base();
    let sub = unique("judy");
    let token = Tok::access(ISS_A, &sub).sign();
    let session = login(stack, &sub, "laptop", &[]);
    let rt = Tok::refresh(ISS_B, &sub);
    cli_ok(stack, &["refresh", "add", "--iss", ISS_B, "--jti", rt.jti.as_deref().unwrap_or(""), "--ttl", "600"]);
    let rts = rt.sign();
    // Warm the verified-token cache: it must not change the count either way.
    assert_passes(&get_with(stack, "/api", &token), "warm-up");

    for (path, cred, what) in [("/api/items", &token, "access token"), ("/s/items", &session, "session"), ("/refresh/t", &rts, "refresh token")] {
        stack.upstash_stats_reset();
        for i in 0..5 {
            assert_eq!(assert_passes(&get_with(stack, path, cred), &format!("{what} #{i}")), "checked");
        }
        assert_eq!(rest_requests(stack), 5, "{what}: REST requests for 5 checked requests");
    }

    // A revoked token also costs exactly one.
    cli_ok(stack, &["revoke-token", &token]);
    stack.upstash_stats_reset();
    for _ in 0..3 {
        assert_refused(&get_with(stack, "/api/items", &token), 401, "revoked", "revoked token");
    }
    assert_eq!(rest_requests(stack), 3, "REST requests for 3 revoked requests");

    // No credential check, no Redis.
    stack.upstash_stats_reset();
    for _ in 0..3 {
        assert_eq!(stack.get("/public/x", &[]).status, 200);
    }
    // A bad signature is refused before Redis is asked.
    let forged = format!("{}x", Tok::access(ISS_A, &sub).sign());
    assert_eq!(get_with(stack, "/api/items", &forged).status, 401);
    assert_eq!(rest_requests(stack), 0, "REST requests for public and forged requests");
    assert_no_panic(stack);
}

#[test]
fn a_cache_hit_costs_no_round_trip() {
    let (_g, stack) = cache_stack();
    let sub = unique("kate");
    let token = Tok::access(ISS_A, &sub).sign();
    let session = login(stack, &sub, "tablet", &["--perm", "p1"]);
    for (path, cred, what) in [("/api/a", &token, "access token"), ("/s/a", &session, "session")] {
        stack.upstash_stats_reset();
        assert_eq!(assert_passes(&get_with(stack, path, cred), what), "checked");
        for i in 0..5 {
            assert_eq!(assert_passes(&get_with(stack, path, cred), &format!("{what} #{i}")), "cached");
        }
        assert_eq!(rest_requests(stack), 1, "{what}: REST requests for 1 checked + 5 cached requests");
    }
    // The cached answer keeps the permissions read with it.
    assert_eq!(origin_scopes(&get_with(stack, "/s/a", &session)), ["p1"]);

    // Logout through this isolate forgets its own cache entry at once.
    let reply = stack.request("POST", "/auth/logout", &[("authorization", &bearer(&token))], None);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_refused(&get_with(stack, "/api/a", &token), 401, "revoked", "token logged out through the edge, cache on");
}

#[test]
fn a_repeated_request_is_replayed_within_its_second_and_a_logout_ends_that_at_once() {
    let (_g, stack) = cache_stack();
    let sub = unique("mia");
    let token = Tok::access(ISS_A, &sub).sign();
    let path = format!("/api/replay-{sub}");
    stack.upstash_stats_reset();
    assert_eq!(assert_passes(&get_with(stack, &path, &token), "first"), "checked");

    // Bursts of the same request: the first one decided from the caches is kept, and the ones
    // after it in the same second are answered from it without entering wasm.
    let mut ids = std::collections::HashSet::new();
    let mut replayed = None;
    for _burst in 0..5 {
        let rids: Vec<String> = (0..10)
            .map(|i| {
                let reply = get_with(stack, &path, &token);
                assert_eq!(assert_passes(&reply, &format!("repeat {i}")), "cached");
                let echo = reply.origin_echo();
                assert_eq!(echo.header("x-auth-subject"), Some(sub.as_str()));
                assert_eq!(echo.header("authorization"), None, "the credential is never forwarded");
                echo.header("x-auth-request-id").expect("request id").to_string()
            })
            .collect();
        for rid in rids {
            assert!(ids.insert(rid.clone()), "request id {rid} used twice");
            let line = stack.wait_for_log_record("a repeated request", |r| r["request_id"] == rid.as_str());
            if line["replayed"] == true {
                replayed = Some(line);
            }
        }
        if replayed.is_some() {
            break;
        }
    }
    let line = replayed.expect("no request of five bursts of ten was replayed");
    assert_eq!(line["decision"], "forward", "{line}");
    assert_eq!(line["status"], 200, "{line}");
    assert_eq!(line["subject"], sub.as_str(), "{line}");
    assert_eq!(line["revocation"], "cached", "{line}");
    assert_eq!(line["token_cache_hit"], true, "{line}");
    assert_eq!(line["redis_round_trips"], 0, "{line}");
    assert_eq!(rest_requests(stack), 1, "REST requests: the first request only");

    // A logout through the edge drops every kept decision: the very next request is refused.
    let reply = stack.request("POST", "/auth/logout", &[("authorization", &bearer(&token))], None);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_refused(&get_with(stack, &path, &token), 401, "revoked", "the same request right after logout");
    assert_no_panic(stack);
}

#[test]
fn with_a_short_cache_a_revocation_takes_effect_within_its_bound() {
    const CACHE_SECS: u64 = 2;
    let stack = shared_stack(&[("REVOCATION_CACHE_SECS", "2")]);
    let sub = unique("leo");
    let token = Tok::access(ISS_A, &sub).sign();
    assert_eq!(assert_passes(&get_with(stack, "/api", &token), "first"), "checked");
    assert_eq!(assert_passes(&get_with(stack, "/api", &token), "second"), "cached");

    cli_ok(stack, &["revoke-token", &token]);
    let revoked_at = Instant::now();
    let mut passed_after = 0;
    let refused_after = poll(Duration::from_secs(CACHE_SECS + 3), Duration::from_millis(100), || {
        let reply = get_with(stack, "/api", &token);
        if reply.status == 200 {
            // Only a cached answer may still let it through.
            assert_eq!(assert_passes(&reply, "revoked token within the cache bound"), "cached");
            passed_after += 1;
            None
        } else {
            assert_refused(&reply, 401, "revoked", "revoked token once the cache entry expired");
            Some(revoked_at.elapsed())
        }
    })
    .expect("the revoked token still passed 5 s after revocation (cache 2 s)");
    // Entries are valid for CACHE_SECS whole seconds from the second they were read.
    assert!(refused_after <= Duration::from_millis(CACHE_SECS * 1000 + 1200), "refused only after {refused_after:?}");
    // Once refused, always refused: a revoked answer is never cached as "not revoked".
    for _ in 0..5 {
        assert_refused(&get_with(stack, "/api", &token), 401, "revoked", "revoked token, later");
    }
    eprintln!("revocation took effect after {refused_after:?} ({passed_after} cached passes)");
}

#[test]
fn rate_limit_refuses_the_fourth_request_in_a_window_with_retry_after() {
    let stack = shared_stack(&[("RATE_LIMIT", "3/60")]);
    // Stay clear of a window boundary: the counter is per fixed 60 s window.
    if now() % 60 >= 50 {
        sleep_until(now() - now() % 60 + 60, 100);
    }
    let sub = unique("mia");
    let token = Tok::access(ISS_A, &sub).sign();
    let other = Tok::access(ISS_A, &unique("nina")).sign();
    for i in 0..3 {
        assert_passes(&get_with(stack, "/api", &token), &format!("request {i}"));
    }
    let reply = get_with(stack, "/api", &token);
    assert_refused(&reply, 429, "rate_limited", "4th request");
    let retry: u64 = reply.header("retry-after").expect("Retry-After on 429").parse().expect("numeric Retry-After");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    // Another token of the same subject shares the counter; another subject does not.
    assert_refused(&get_with(stack, "/api", &Tok::access(ISS_A, &sub).sign()), 429, "rate_limited", "same subject, new token");
    assert_passes(&get_with(stack, "/api", &other), "another subject");

    // Sessions are counted per subject too.
    let ssub = unique("omar");
    let session = login(stack, &ssub, "phone", &[]);
    for i in 0..3 {
        assert_passes(&get_with(stack, "/s/x", &session), &format!("session request {i}"));
    }
    let reply = get_with(stack, "/s/x", &session);
    assert_refused(&reply, 429, "rate_limited", "4th session request");
    assert!(reply.header("retry-after").is_some(), "Retry-After on a session 429");
    assert_no_panic(stack);
}
