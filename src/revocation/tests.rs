//! Behaviour of the per-request check with a fake clock (`now` argument) and a fake Upstash
//! endpoint: a tiny in-memory Redis for plain commands, switchable to every failure shape, and
//! canned replies for the session Lua script (which is run against a real Redis in
//! `tools/tests/cli.rs`).

use futures::executor::block_on;
use serde_json::{json, Value};

use super::fake::{Fake, Val};
use super::*;
use crate::error::Reason;
use crate::http::{FetchError, HttpResponse};
use crate::identity::RevocationStatus;

const ISS: &str = "https://issuer.example/";
const NOW: u64 = 1_700_000_000;

fn cfg() -> RevocationConfig {
    RevocationConfig::with_endpoint("https://redis.example", "tok")
}

fn jwt(sub: &str, jti: Option<&str>, iat: Option<u64>) -> Credential {
    Credential::Jwt(JwtCredential {
        issuer: ISS.into(),
        subject: sub.into(),
        jti: jti.map(Into::into),
        iat,
        exp: iat.map(|i| i + 3600),
        is_refresh: false,
        device: None,
    })
}

fn refresh(jti: Option<&str>) -> Credential {
    match jwt("u1", jti, Some(NOW - 10)) {
        Credential::Jwt(mut j) => {
            j.is_refresh = true;
            Credential::Jwt(j)
        }
        c => c,
    }
}

fn check(r: &Revocation, f: &Fake, c: &Credential, now: u64) -> Result<CheckOutcome, crate::error::Refusal> {
    block_on(r.check(c, now, f))
}

fn reason(res: Result<CheckOutcome, crate::error::Refusal>) -> Reason {
    res.expect_err("expected a refusal").reason
}

fn resp(status: u16, body: &str) -> Result<HttpResponse, FetchError> {
    Ok(HttpResponse { status, headers: vec![], body: body.as_bytes().to_vec() })
}

// ---------- JWT ----------

#[test]
fn valid_jwt_is_checked_in_one_round_trip() {
    let (r, f) = (Revocation::new(cfg()), Fake::new());
    let out = check(&r, &f, &jwt("u1", Some("j1"), Some(NOW - 5)), NOW).unwrap();
    assert_eq!(out.status, RevocationStatus::Checked { at: NOW, cached: false });
    assert_eq!(out.round_trips, 1);
    assert_eq!(f.calls(), 1);
    let req = &f.requests.borrow()[0];
    assert_eq!(req.url, "https://redis.example/pipeline");
    assert_eq!(req.timeout_ms, 1000);
    assert!(req.headers.contains(&("authorization".into(), "Bearer tok".into())));
    let k = &r.config().keys;
    assert_eq!(
        f.last_commands(),
        vec![
            vec!["GET".to_string(), k.revoked_jti(ISS, "j1")],
            vec!["GET".to_string(), k.revoked_sub(ISS, "u1")],
            vec!["SMEMBERS".to_string(), k.perms("u1")],
        ]
    );
}

#[test]
fn revoked_jti_is_refused_at_once() {
    let (r, f) = (Revocation::new(cfg()), Fake::new());
    let token = jwt("u1", Some("j1"), Some(NOW - 5));
    assert!(check(&r, &f, &token, NOW).is_ok());
    f.apply(r.revoke_jwt_request(ISS, "u1", "j1", NOW + 3600, NOW, 60));
    let refusal = check(&r, &f, &token, NOW + 1).unwrap_err();
    assert_eq!(refusal.reason, Reason::Revoked);
    assert_eq!(refusal.to_response("api").status, 401);
    // Another token of the same subject is unaffected.
    assert!(check(&r, &f, &jwt("u1", Some("j2"), Some(NOW - 5)), NOW + 1).is_ok());
}

#[test]
fn subject_cutoff_revokes_older_tokens_and_tokens_without_iat() {
    let (r, f) = (Revocation::new(cfg()), Fake::new());
    f.apply(r.revoke_subject_request(ISS, "u1", NOW, None));
    assert_eq!(reason(check(&r, &f, &jwt("u1", Some("a"), Some(NOW - 1)), NOW)), Reason::Revoked);
    assert_eq!(reason(check(&r, &f, &jwt("u1", None, None), NOW)), Reason::Revoked);
    assert!(check(&r, &f, &jwt("u1", Some("b"), Some(NOW)), NOW).is_ok());
    assert!(check(&r, &f, &jwt("u1", Some("c"), Some(NOW + 5)), NOW + 5).is_ok());
    assert!(check(&r, &f, &jwt("u2", Some("d"), Some(NOW - 1)), NOW).is_ok(), "other subjects unaffected");
    // Same subject at another issuer is unaffected.
    let mut other = match jwt("u1", Some("e"), Some(NOW - 1)) {
        Credential::Jwt(j) => j,
        _ => unreachable!(),
    };
    other.issuer = "https://other.example/".into();
    assert!(check(&r, &f, &Credential::Jwt(other), NOW).is_ok());
}

#[test]
fn garbage_cutoff_revokes_rather_than_admits() {
    let (r, f) = (Revocation::new(cfg()), Fake::new());
    f.data.borrow_mut().insert(r.config().keys.revoked_sub(ISS, "u1"), Val::Str("tomorrow".into()));
    assert_eq!(reason(check(&r, &f, &jwt("u1", Some("a"), Some(NOW)), NOW)), Reason::Revoked);
}

#[test]
fn jwt_without_jti_checks_only_the_cutoff() {
    let (r, f) = (Revocation::new(cfg()), Fake::new());
    assert!(check(&r, &f, &jwt("u1", None, Some(NOW)), NOW).is_ok());
    assert_eq!(f.last_commands().len(), 2);
    assert!(check(&r, &f, &jwt("u1", Some(""), Some(NOW)), NOW).is_ok());
    assert_eq!(f.last_commands().len(), 2, "empty jti counts as none");
}

#[test]
fn permissions_come_from_redis_sorted() {
    let (r, f) = (Revocation::new(cfg()), Fake::new());
    f.apply(pipeline_request_of(&r, writes::set_perms_plain(&r.config().keys, "u1", &["orders:write", "admin"])));
    let out = check(&r, &f, &jwt("u1", Some("j"), Some(NOW)), NOW).unwrap();
    assert_eq!(out.permissions, vec!["admin".to_string(), "orders:write".to_string()]);
}

#[test]
fn refresh_tokens_must_be_present() {
    let (r, f) = (Revocation::new(cfg()), Fake::new());
    assert_eq!(reason(check(&r, &f, &refresh(Some("r1")), NOW)), Reason::Revoked);
    assert_eq!(f.last_commands().last().unwrap()[0], "EXISTS");
    f.apply(pipeline_request_of(&r, writes::add_refresh(&r.config().keys, ISS, "r1", 3600)));
    assert!(check(&r, &f, &refresh(Some("r1")), NOW).is_ok());
    f.apply(pipeline_request_of(&r, writes::revoke_refresh(&r.config().keys, ISS, "r1")));
    assert_eq!(reason(check(&r, &f, &refresh(Some("r1")), NOW)), Reason::Revoked);
    let before = f.calls();
    assert_eq!(reason(check(&r, &f, &refresh(None), NOW)), Reason::Revoked);
    assert_eq!(f.calls(), before, "a refresh token without jti is refused without a call");
}

#[test]
fn rate_limit_counts_per_subject_per_window() {
    let mut c = cfg();
    c.rate_limit = Some(RateLimit { requests: 3, window_secs: 60 });
    let (r, f) = (Revocation::new(c), Fake::new());
    let start = 1_700_000_080; // 40 s into a 60 s window
    for i in 0..3 {
        assert!(check(&r, &f, &jwt("u1", Some("j"), Some(NOW)), start + i).is_ok(), "request {i}");
    }
    let refusal = check(&r, &f, &jwt("u1", Some("j"), Some(NOW)), start + 3).unwrap_err();
    assert_eq!(refusal.reason, Reason::RateLimited);
    assert_eq!(refusal.retry_after, Some(17));
    assert_eq!(refusal.to_response("api").status, 429);
    assert!(check(&r, &f, &jwt("u2", Some("j"), Some(NOW)), start + 3).is_ok(), "other subject has its own counter");
    assert!(check(&r, &f, &jwt("u1", Some("j"), Some(NOW)), start + 20).is_ok(), "next window");
    assert_eq!(f.calls(), 6, "still one round trip per request");
    let cmds = f.last_commands();
    assert_eq!(cmds[cmds.len() - 2][0], "SET");
    assert_eq!(cmds[cmds.len() - 2][3..], ["EX", "60", "NX"]);
    assert_eq!(cmds[cmds.len() - 1], vec!["INCR".to_string(), r.config().keys.rate_subject(start / 60 + 1, "u1")]);
}

#[test]
fn rate_limit_by_device_uses_the_device_key() {
    let mut c = cfg();
    c.rate_limit = Some(RateLimit { requests: 1, window_secs: 10 });
    c.rate_limit_key = RateLimitKey::Device;
    let (r, f) = (Revocation::new(c), Fake::new());
    let on = |d: &str| {
        Credential::Jwt(JwtCredential { issuer: ISS.into(), subject: "u1".into(), jti: None, iat: Some(NOW), exp: None, is_refresh: false, device: Some(d.into()) })
    };
    assert!(check(&r, &f, &on("phone"), NOW).is_ok());
    assert!(check(&r, &f, &on("laptop"), NOW).is_ok());
    assert_eq!(reason(check(&r, &f, &on("phone"), NOW)), Reason::RateLimited);
    assert_eq!(f.last_commands().last().unwrap()[1], r.config().keys.rate_device(NOW / 10, "u1", "phone"));
}

// ---------- failure policy and breaker ----------

fn failure_shapes() -> Vec<(&'static str, Result<HttpResponse, FetchError>)> {
    vec![
        ("timeout", Err(FetchError::Timeout)),
        ("network", Err(FetchError::Network("refused".into()))),
        ("500", resp(500, "")),
        ("502", resp(502, "<html>bad gateway</html>")),
        ("401", resp(401, r#"{"error":"Unauthorized"}"#)),
        ("garbage", resp(200, "\u{1}\u{2}not json")),
        ("empty array", resp(200, "[]")),
        ("error entry", resp(200, r#"[{"result":null},{"error":"ERR oom"},{"result":[]}]"#)),
        ("wrong types", resp(200, r#"[{"result":null},{"result":null},{"result":"notalist"}]"#)),
        ("whole error", resp(200, r#"{"error":"ERR max daily request limit exceeded"}"#)),
    ]
}

#[test]
fn every_store_failure_fails_closed_by_default() {
    for (name, shape) in failure_shapes() {
        let mut c = cfg();
        c.breaker_failures = 0;
        let (r, f) = (Revocation::new(c), Fake::new());
        f.fail(shape);
        let refusal = check(&r, &f, &jwt("u1", Some("j"), Some(NOW)), NOW).unwrap_err();
        assert_eq!(refusal.reason, Reason::RevocationUnavailable, "{name}");
        assert_eq!(refusal.to_response("api").status, 503, "{name}");
        assert!(refusal.retry_after.is_some(), "{name}");
        assert!(r.last_failure().is_some(), "{name}");
    }
}

fn open_cfg() -> RevocationConfig {
    let mut c = cfg();
    c.failure_policy = FailurePolicy::Open;
    c.fail_open_max_secs = 300;
    c
}

#[test]
fn fail_open_skips_only_jwts_and_only_within_the_window() {
    for (name, shape) in failure_shapes() {
        let (r, f) = (Revocation::new(open_cfg()), Fake::new());
        // Never seen healthy by this isolate: closed.
        f.fail(shape.clone());
        assert_eq!(reason(check(&r, &f, &jwt("u1", Some("j"), Some(NOW)), NOW)), Reason::RevocationUnavailable, "{name}");
        f.heal();
        assert!(check(&r, &f, &jwt("u1", Some("j"), Some(NOW)), NOW).is_ok());
        f.fail(shape);
        let out = check(&r, &f, &jwt("u1", Some("j"), Some(NOW)), NOW + 10).unwrap();
        assert_eq!(out.status, RevocationStatus::Skipped, "{name}");
        assert!(out.permissions.is_empty());
        // Refresh tokens and sessions cannot be confirmed, so they fail closed.
        assert_eq!(reason(check(&r, &f, &refresh(Some("r")), NOW + 10)), Reason::RevocationUnavailable, "{name}");
        assert_eq!(reason(check(&r, &f, &session_cred(), NOW + 10)), Reason::RevocationUnavailable, "{name}");
        // Past REVOCATION_FAIL_OPEN_MAX_SECS since last healthy: closed again.
        assert_eq!(reason(check(&r, &f, &jwt("u1", Some("j"), Some(NOW)), NOW + 301)), Reason::RevocationUnavailable, "{name}");
    }
}

#[test]
fn breaker_stops_calling_a_dead_store_then_probes_once_and_recovers() {
    let mut c = cfg();
    c.breaker_failures = 3;
    c.breaker_cooldown_secs = 10;
    let (r, f) = (Revocation::new(c), Fake::new());
    let t = jwt("u1", Some("j"), Some(NOW));
    f.fail(Err(FetchError::Timeout));
    for i in 0..3 {
        assert_eq!(reason(check(&r, &f, &t, NOW + i)), Reason::RevocationUnavailable);
    }
    assert_eq!(f.calls(), 3);
    // Open: answered without calling, Retry-After = rest of the cooldown.
    let refusal = check(&r, &f, &t, NOW + 4).unwrap_err();
    assert_eq!((refusal.reason, refusal.retry_after), (Reason::RevocationUnavailable, Some(8)));
    assert_eq!(f.calls(), 3);
    // Cooldown over, store still dead: one probe, then open again.
    assert_eq!(reason(check(&r, &f, &t, NOW + 12)), Reason::RevocationUnavailable);
    assert_eq!(f.calls(), 4);
    assert_eq!(reason(check(&r, &f, &t, NOW + 13)), Reason::RevocationUnavailable);
    assert_eq!(f.calls(), 4);
    // Store back: the next probe succeeds and service resumes by itself.
    f.heal();
    let out = check(&r, &f, &t, NOW + 22).unwrap();
    assert_eq!((out.round_trips, f.calls()), (1, 5));
    for i in 0..5 {
        assert!(check(&r, &f, &t, NOW + 23 + i).is_ok());
    }
    assert_eq!(f.calls(), 10);
}

#[test]
fn fail_open_while_breaker_is_open_makes_no_call() {
    let mut c = open_cfg();
    c.breaker_failures = 1;
    let (r, f) = (Revocation::new(c), Fake::new());
    let t = jwt("u1", Some("j"), Some(NOW));
    assert!(check(&r, &f, &t, NOW).is_ok());
    f.fail(resp(503, ""));
    assert_eq!(check(&r, &f, &t, NOW + 1).unwrap().status, RevocationStatus::Skipped);
    let out = check(&r, &f, &t, NOW + 2).unwrap();
    assert_eq!((out.status, out.round_trips, f.calls()), (RevocationStatus::Skipped, 0, 2));
}

// ---------- staleness cache ----------

fn cached_cfg(secs: u64) -> RevocationConfig {
    let mut c = cfg();
    c.cache_secs = secs;
    c
}

#[test]
fn cache_reuses_not_revoked_within_its_bound() {
    let (r, f) = (Revocation::new(cached_cfg(5)), Fake::new());
    let t = jwt("u1", Some("j"), Some(NOW));
    assert!(check(&r, &f, &t, NOW).is_ok());
    let out = check(&r, &f, &t, NOW + 4).unwrap();
    assert_eq!((out.status, out.round_trips, f.calls()), (RevocationStatus::Checked { at: NOW, cached: true }, 0, 1));
    // A revocation made elsewhere shows up once the entry is older than REVOCATION_CACHE_SECS.
    f.apply(pipeline_request_of(&r, writes::revoke_jti(&r.config().keys, ISS, "j", NOW + 3600, NOW, 0)));
    assert!(check(&r, &f, &t, NOW + 4).is_ok(), "within the documented maximum delay");
    assert_eq!(reason(check(&r, &f, &t, NOW + 5)), Reason::Revoked);
    // Revoked answers are never cached.
    assert_eq!(reason(check(&r, &f, &t, NOW + 6)), Reason::Revoked);
    assert_eq!(f.calls(), 4);
}

#[test]
fn cache_off_asks_every_time_and_own_revocation_evicts() {
    let (r, f) = (Revocation::new(cfg()), Fake::new());
    let t = jwt("u1", Some("j"), Some(NOW));
    check(&r, &f, &t, NOW).unwrap();
    check(&r, &f, &t, NOW).unwrap();
    assert_eq!(f.calls(), 2);

    let (r, f) = (Revocation::new(cached_cfg(60)), Fake::new());
    check(&r, &f, &t, NOW).unwrap();
    f.apply(r.revoke_jwt_request(ISS, "u1", "j", NOW + 3600, NOW, 0));
    assert_eq!(reason(check(&r, &f, &t, NOW + 1)), Reason::Revoked, "this isolate's own revocation applies at once");
    check(&r, &f, &jwt("u2", None, Some(NOW)), NOW).unwrap();
    f.apply(r.revoke_subject_request(ISS, "u2", NOW + 1, None));
    assert_eq!(reason(check(&r, &f, &jwt("u2", None, Some(NOW)), NOW + 1)), Reason::Revoked);
}

#[test]
fn cached_cutoff_still_applies_to_each_tokens_iat() {
    let (r, f) = (Revocation::new(cached_cfg(60)), Fake::new());
    f.apply(r.revoke_subject_request(ISS, "u1", NOW, None));
    check(&r, &f, &jwt("u1", None, Some(NOW + 1)), NOW + 1).unwrap();
    assert_eq!(reason(check(&r, &f, &jwt("u1", None, Some(NOW - 1)), NOW + 2)), Reason::Revoked);
    assert_eq!(f.calls(), 2, "answered from the cached cutoff");
}

#[test]
fn rate_limit_disables_the_cache() {
    let mut c = cached_cfg(60);
    c.rate_limit = Some(RateLimit { requests: 100, window_secs: 60 });
    let (r, f) = (Revocation::new(c), Fake::new());
    let t = jwt("u1", Some("j"), Some(NOW));
    check(&r, &f, &t, NOW).unwrap();
    check(&r, &f, &t, NOW).unwrap();
    assert_eq!(f.calls(), 2);
}

// ---------- sessions ----------

const TOKEN: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

fn session_cred() -> Credential {
    Credential::Session { token: TOKEN.into() }
}

fn session_json(created: u64, expires: u64) -> String {
    json!({"sub":"u1","device":"phone","roles":["user"],"permissions":["b","a"],"created":created,"expires":expires,"ttl":3600}).to_string()
}

fn found(raw: &str, perms: &[&str], count: i64, renewed: i64) -> Value {
    json!([{ "result": [1, raw, perms, count, renewed] }])
}

#[test]
fn session_is_one_eval_and_returns_the_session() {
    let mut c = cfg();
    c.session_sliding_secs = 1800;
    c.session_max_lifetime_secs = 86400;
    let (r, f) = (Revocation::new(c), Fake::new());
    f.canned(vec![found(&session_json(NOW - 100, NOW + 80000), &["c", "a"], -1, 1800)]);
    let out = check(&r, &f, &session_cred(), NOW).unwrap();
    let s = out.session.unwrap();
    assert_eq!((s.subject.as_str(), s.device.as_deref(), s.roles.clone()), ("u1", Some("phone"), vec!["user".to_string()]));
    assert_eq!((s.created, s.expires), (NOW - 100, NOW + 80000));
    assert_eq!(s.token_hash, keys::token_hash(TOKEN));
    assert_eq!(out.permissions, vec!["a", "b", "c"]);
    assert_eq!((out.round_trips, out.status), (1, RevocationStatus::Checked { at: NOW, cached: false }));
    let cmds = f.last_commands();
    assert_eq!(cmds.len(), 1);
    let k = &r.config().keys;
    assert_eq!(cmds[0][0], "EVAL");
    assert_eq!(cmds[0][1], scripts::SESSION_CHECK);
    assert_eq!(cmds[0][2..4], ["2".to_string(), k.session(&keys::token_hash(TOKEN))]);
    assert_eq!(cmds[0][5..10], [NOW.to_string(), "1800".into(), "86400".into(), k.perms_prefix(), "".into()]);
    assert!(!cmds[0].iter().any(|a| a == TOKEN), "the raw token never goes to Redis");
}

#[test]
fn unknown_expired_or_malformed_sessions_are_not_found() {
    let (r, f) = (Revocation::new(cfg()), Fake::new());
    f.canned(vec![
        json!([{ "result": [0] }]),
        json!([{ "result": [2] }]),
        found("{not json", &[], -1, 0),
        found(&session_json(NOW - 100, NOW), &[], -1, 0),
    ]);
    for _ in 0..4 {
        assert_eq!(reason(check(&r, &f, &session_cred(), NOW)), Reason::SessionNotFound);
    }
    let calls = f.calls();
    for bad in ["short", "has spaces in it and is long enough to pass length", "a.b.c-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"] {
        assert_eq!(reason(check(&r, &f, &Credential::Session { token: bad.into() }, NOW)), Reason::SessionNotFound);
    }
    assert_eq!(f.calls(), calls, "malformed tokens are refused without a call");
}

#[test]
fn session_past_max_lifetime_is_not_found() {
    let mut c = cfg();
    c.session_max_lifetime_secs = 1000;
    let (r, f) = (Revocation::new(c), Fake::new());
    f.canned(vec![found(&session_json(NOW - 1000, NOW + 5000), &[], -1, 0)]);
    assert_eq!(reason(check(&r, &f, &session_cred(), NOW)), Reason::SessionNotFound);
}

#[test]
fn session_garbage_reply_fails_closed() {
    let (r, f) = (Revocation::new(cfg()), Fake::new());
    f.canned(vec![json!([{ "result": [1, "x"] }]), json!([{ "result": "OK" }]), json!([{ "error": "ERR Error running script" }])]);
    for _ in 0..3 {
        assert_eq!(reason(check(&r, &f, &session_cred(), NOW)), Reason::RevocationUnavailable);
    }
}

#[test]
fn session_rate_limit() {
    let mut c = cfg();
    c.rate_limit = Some(RateLimit { requests: 2, window_secs: 60 });
    c.rate_limit_key = RateLimitKey::Device;
    let (r, f) = (Revocation::new(c), Fake::new());
    f.canned(vec![found(&session_json(NOW, NOW + 999), &[], 3, 0)]);
    let refusal = check(&r, &f, &session_cred(), NOW).unwrap_err();
    assert_eq!(refusal.reason, Reason::RateLimited);
    let cmds = f.last_commands();
    assert_eq!(cmds[0][4], r.config().keys.rate_session(NOW / 60, &keys::token_hash(TOKEN)));
    assert_eq!(cmds[0][9], "session");
}

#[test]
fn cached_session_renews_sliding_expiry_in_the_background_up_to_the_hard_end() {
    let mut c = cached_cfg(300);
    c.session_sliding_secs = 100;
    c.session_max_lifetime_secs = 0;
    let (r, f) = (Revocation::new(c), Fake::new());
    let expires = NOW + 260;
    f.canned(vec![found(&session_json(NOW - 10, expires), &[], -1, 100), json!([{ "result": [0] }])]);
    check(&r, &f, &session_cred(), NOW).unwrap();
    // Within half the sliding window: cached, nothing deferred.
    let out = check(&r, &f, &session_cred(), NOW + 40).unwrap();
    assert_eq!((out.round_trips, out.deferred.len()), (0, 0));
    // Later: cached answer plus a deferred renewal to the sliding TTL.
    let out = check(&r, &f, &session_cred(), NOW + 60).unwrap();
    assert_eq!((out.round_trips, out.status.clone()), (0, RevocationStatus::Checked { at: NOW, cached: true }));
    let key = r.config().keys.session(&keys::token_hash(TOKEN));
    assert_eq!(deferred_cmds(&out), vec![vec!["EXPIRE".to_string(), key.clone(), "100".into()]]);
    // Near the absolute end the renewal is capped there, and stops once it is reached.
    let out = check(&r, &f, &session_cred(), NOW + 200).unwrap();
    assert_eq!(deferred_cmds(&out), vec![vec!["EXPIRE".to_string(), key, "60".into()]]);
    assert_eq!(f.calls(), 1);
    // The cache entry ends at the hard end; Redis (which expired it) is asked again.
    assert_eq!(reason(check(&r, &f, &session_cred(), expires)), Reason::SessionNotFound);
    assert_eq!(f.calls(), 2);
}

#[test]
fn ending_a_session_evicts_it_from_this_isolates_cache() {
    let (r, f) = (Revocation::new(cached_cfg(300)), Fake::new());
    f.canned(vec![found(&session_json(NOW, NOW + 999), &[], -1, 0), json!([{ "result": [0] }])]);
    let s = check(&r, &f, &session_cred(), NOW).unwrap().session.unwrap();
    let req = r.end_session_request(&s).request;
    let cmds: Vec<Vec<String>> = serde_json::from_slice(req.body.as_ref().unwrap()).unwrap();
    assert_eq!(cmds, writes::delete_session(&r.config().keys, "u1", &keys::token_hash(TOKEN)));
    assert_eq!(reason(check(&r, &f, &session_cred(), NOW + 1)), Reason::SessionNotFound);
}

#[test]
fn every_write_declares_its_command_count_and_a_full_reply_is_a_success() {
    // Regression: logging out of one session sends two commands (DEL + ZREM) but its reply was
    // read as if it held one result, so every successful session logout answered 503.
    let (r, f) = (Revocation::new(cfg()), Fake::new());
    let mut session: Session = serde_json::from_str(&session_json(NOW, NOW + 999)).unwrap();
    session.token_hash = keys::token_hash(TOKEN);
    let key = r.config().keys.session(&session.token_hash);
    f.apply(pipeline_request_of(&r, vec![store::cmd(["SET", key.as_str(), "x"])]));
    let end = r.end_session_request(&session);
    assert_eq!(end.commands, 2);
    assert_eq!(block_on(end.send(&f)).unwrap(), vec![RedisValue::Int(1), RedisValue::Int(0)]);
    assert!(!f.data.borrow().contains_key(&key), "the session record was not deleted");
    // A reply with fewer results than commands is a failure, never a success.
    f.canned(vec![json!([{ "result": 1 }])]);
    assert!(block_on(r.end_session_request(&session).send(&f)).is_err());
    assert_eq!(r.revoke_jwt_request(ISS, "u1", "j", NOW + 60, NOW, 0).commands, 1);
    assert_eq!(r.revoke_subject_request(ISS, "u1", NOW, None).commands, 1);
    assert_eq!(r.end_all_sessions_request("u1").commands, 1);
}

#[test]
fn logout_everywhere_also_revokes_the_presented_token_issued_in_the_cutoff_second() {
    // Regression: logout-all set only the cutoff (iat < cutoff is revoked), so the token that
    // asked for it stayed valid when it had been issued in the same second.
    let (r, f) = (Revocation::new(cfg()), Fake::new());
    let presented = jwt("u1", Some("j1"), Some(NOW));
    let Credential::Jwt(p) = &presented else { unreachable!() };
    assert!(check(&r, &f, &presented, NOW).is_ok());
    let w = r.logout_everywhere_request(p, NOW, 60);
    assert_eq!(w.commands, 2);
    f.apply(w);
    assert_eq!(reason(check(&r, &f, &presented, NOW)), Reason::Revoked);
    assert_eq!(reason(check(&r, &f, &jwt("u1", Some("j0"), Some(NOW - 1)), NOW)), Reason::Revoked);
    // A token issued right after, in the same second (a new login), passes.
    assert!(check(&r, &f, &jwt("u1", Some("j2"), Some(NOW)), NOW).is_ok());

    // Without a jti the cutoff moves past the presented token's iat.
    let no_jti = jwt("u2", None, Some(NOW));
    let Credential::Jwt(p) = &no_jti else { unreachable!() };
    let w = r.logout_everywhere_request(p, NOW, 60);
    assert_eq!(w.commands, 1);
    f.apply(w);
    assert_eq!(reason(check(&r, &f, &no_jti, NOW)), Reason::Revoked);
    assert!(check(&r, &f, &jwt("u2", None, Some(NOW + 1)), NOW + 1).is_ok());
}

// ---------- helpers ----------

fn deferred_cmds(out: &CheckOutcome) -> Vec<Vec<String>> {
    out.deferred.iter().flat_map(|d| serde_json::from_slice::<Vec<Vec<String>>>(d.body.as_ref().unwrap()).unwrap()).collect()
}

fn pipeline_request_of(r: &Revocation, cmds: Vec<Command>) -> WriteRequest {
    WriteRequest { request: store::pipeline_request(&r.config().endpoint, &cmds), commands: cmds.len() }
}

/// `set_perms` is a Lua script; the fake stores the set directly with the same key.
mod writes {
    pub use crate::revocation::writes::*;
    use crate::revocation::{store::cmd, Command, KeySchema};

    pub fn set_perms_plain(keys: &KeySchema, sub: &str, perms: &[&str]) -> Vec<Command> {
        let mut c = cmd(["SADD".to_string(), keys.perms(sub)]);
        c.extend(perms.iter().map(|p| p.to_string()));
        vec![c]
    }
}
