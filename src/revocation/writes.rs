//! The commands that change revocation and session state, shared by the worker (logout
//! endpoints) and the operator CLI. Each function returns the commands for ONE pipeline
//! request (send them with [`super::store::pipeline_request`]); the `parse_*` functions read
//! the matching results.

use super::config::SessionLimitPolicy;
use super::keys::KeySchema;
use super::scripts;
use super::session::Session;
use super::store::{cmd, Command, RedisValue, StoreError};

/// Blacklists one JWT (`iss`, `jti`) until its `exp` plus `leeway` (at least 1 second).
pub fn revoke_jti(keys: &KeySchema, iss: &str, jti: &str, exp: u64, now: u64, leeway: u64) -> Vec<Command> {
    let ttl = exp.saturating_add(leeway).saturating_sub(now).max(1);
    vec![cmd(["SET".to_string(), keys.revoked_jti(iss, jti), "1".into(), "EX".into(), ttl.to_string()])]
}

/// Sets the subject's cutoff ("logout everywhere"): its tokens with `iat` < `cutoff` (or
/// without `iat`) are revoked. `ttl`: optional lifetime of the cutoff (the longest token
/// lifetime is enough); `None` keeps it forever.
pub fn revoke_subject(keys: &KeySchema, iss: &str, sub: &str, cutoff: u64, ttl: Option<u64>) -> Vec<Command> {
    let mut c = cmd(["SET".to_string(), keys.revoked_sub(iss, sub), cutoff.to_string()]);
    if let Some(ttl) = ttl {
        c.extend(["EX".to_string(), ttl.max(1).to_string()]);
    }
    vec![c]
}

/// Removes a subject's cutoff (undo `revoke_subject`).
pub fn clear_subject(keys: &KeySchema, iss: &str, sub: &str) -> Vec<Command> {
    vec![cmd(["DEL".to_string(), keys.revoked_sub(iss, sub)])]
}

/// Deletes one session and its entry in the subject's set (logout of one device).
pub fn delete_session(keys: &KeySchema, sub: &str, token_hash: &str) -> Vec<Command> {
    vec![
        cmd(["DEL".to_string(), keys.session(token_hash)]),
        cmd(["ZREM".to_string(), keys.sessions(sub), token_hash.to_string()]),
    ]
}

/// Deletes every session of `sub` on `device`. Result: integer count.
pub fn kick_device(keys: &KeySchema, sub: &str, device: &str) -> Vec<Command> {
    vec![cmd(["EVAL".to_string(), scripts::SESSION_KICK_DEVICE.into(), "1".into(), keys.sessions(sub), keys.session_prefix(), device.into()])]
}

/// Deletes every session of `sub`. Result: integer count.
pub fn kick_all(keys: &KeySchema, sub: &str) -> Vec<Command> {
    vec![cmd(["EVAL".to_string(), scripts::SESSION_KICK_ALL.into(), "1".into(), keys.sessions(sub), keys.session_prefix()])]
}

/// A new session record created at `now`: `expires` = now + `max_lifetime` (or + `ttl` when
/// `max_lifetime` is 0); the Redis TTL is `ttl` capped at `expires`. Roles and permissions
/// start empty (set the pub fields).
pub fn new_session(sub: &str, device: Option<&str>, token_hash: &str, now: u64, ttl: u64, max_lifetime: u64) -> Session {
    let ttl = ttl.max(1);
    let lifetime = if max_lifetime > 0 { max_lifetime } else { ttl };
    Session {
        subject: sub.to_string(),
        device: device.map(str::to_string),
        roles: Vec::new(),
        permissions: Vec::new(),
        created: now,
        expires: now.saturating_add(lifetime),
        ttl: ttl.min(lifetime),
        token_hash: token_hash.to_string(),
    }
}

/// Stores `session` (under `session.token_hash`) and adds it to the subject's set, enforcing
/// `max_sessions` (0 = unlimited) with `policy`, atomically. Read the result with
/// [`parse_create_session`].
pub fn create_session(keys: &KeySchema, session: &Session, max_sessions: u32, policy: SessionLimitPolicy) -> Vec<Command> {
    let json = serde_json::to_string(session).unwrap_or_default();
    let policy = match policy {
        SessionLimitPolicy::EvictOldest => "evict_oldest",
        SessionLimitPolicy::Refuse => "refuse",
    };
    vec![cmd([
        "EVAL".to_string(),
        scripts::SESSION_CREATE.into(),
        "2".into(),
        keys.session(&session.token_hash),
        keys.sessions(&session.subject),
        json,
        session.ttl.max(1).to_string(),
        session.created.to_string(),
        session.token_hash.clone(),
        max_sessions.to_string(),
        policy.into(),
        keys.session_prefix(),
    ])]
}

/// What [`create_session`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateOutcome {
    /// Created; `evicted` older sessions were deleted to respect the limit.
    Created { evicted: u32 },
    /// Refused: the subject already has `live` sessions (policy `refuse`).
    Refused { live: u32 },
}

/// Reads the result of [`create_session`].
pub fn parse_create_session(v: &RedisValue) -> Result<CreateOutcome, StoreError> {
    let bad = StoreError::Malformed("unexpected session-create result");
    let RedisValue::Array(items) = v else { return Err(bad) };
    let (Some(code), Some(n)) = (items.first().and_then(RedisValue::as_int), items.get(1).and_then(RedisValue::as_int)) else { return Err(bad) };
    let n = u32::try_from(n).map_err(|_| bad.clone())?;
    match code {
        1 => Ok(CreateOutcome::Created { evicted: n }),
        -1 => Ok(CreateOutcome::Refused { live: n }),
        _ => Err(bad),
    }
}

/// Lists the subject's live sessions (one command). Read with [`parse_list_sessions`].
pub fn list_sessions(keys: &KeySchema, sub: &str) -> Vec<Command> {
    vec![cmd(["EVAL".to_string(), scripts::SESSION_LIST.into(), "1".into(), keys.sessions(sub), keys.session_prefix()])]
}

/// One live session of a subject, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedSession {
    /// The session (with `token_hash` set).
    pub session: Session,
    /// Seconds until Redis expires it (-1: no TTL).
    pub ttl: i64,
}

/// Reads the result of [`list_sessions`]: oldest first. Records that do not parse are skipped.
pub fn parse_list_sessions(v: &RedisValue) -> Result<Vec<ListedSession>, StoreError> {
    let RedisValue::Array(items) = v else { return Err(StoreError::Malformed("unexpected session-list result")) };
    if items.len() % 4 != 0 {
        return Err(StoreError::Malformed("unexpected session-list result"));
    }
    let mut out = Vec::new();
    for chunk in items.chunks(4) {
        let (Some(hash), Some(raw), Some(ttl)) = (chunk[0].as_str(), chunk[2].as_str(), chunk[3].as_int()) else {
            return Err(StoreError::Malformed("unexpected session-list entry"));
        };
        if let Ok(mut session) = serde_json::from_str::<Session>(raw) {
            session.token_hash = hash.to_string();
            out.push(ListedSession { session, ttl });
        }
    }
    Ok(out)
}

/// Replaces the subject's permission set with `perms` (empty: removes it). Atomic.
pub fn set_perms(keys: &KeySchema, sub: &str, perms: &[String]) -> Vec<Command> {
    let mut c = cmd(["EVAL".to_string(), scripts::PERMS_SET.into(), "1".into(), keys.perms(sub)]);
    c.extend(perms.iter().cloned());
    vec![c]
}

/// Reads the subject's permissions (`SMEMBERS`; result: array of strings).
pub fn get_perms(keys: &KeySchema, sub: &str) -> Vec<Command> {
    vec![cmd(["SMEMBERS".to_string(), keys.perms(sub)])]
}

/// Registers a refresh token (`iss`, `jti`) as valid for `ttl` seconds.
pub fn add_refresh(keys: &KeySchema, iss: &str, jti: &str, ttl: u64) -> Vec<Command> {
    vec![cmd(["SET".to_string(), keys.refresh(iss, jti), "1".into(), "EX".into(), ttl.max(1).to_string()])]
}

/// Revokes a refresh token (removes it; result: 1 if it was present).
pub fn revoke_refresh(keys: &KeySchema, iss: &str, jti: &str) -> Vec<Command> {
    vec![cmd(["DEL".to_string(), keys.refresh(iss, jti)])]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k() -> KeySchema {
        KeySchema::new("p:")
    }

    #[test]
    fn revoke_jti_lives_until_exp_plus_leeway() {
        let c = revoke_jti(&k(), "iss", "j1", 1000, 900, 60);
        assert_eq!(c, vec![cmd(["SET", &k().revoked_jti("iss", "j1"), "1", "EX", "160"])]);
        // Already expired: still written, for one second.
        assert_eq!(revoke_jti(&k(), "iss", "j1", 10, 900, 0)[0][4], "1");
    }

    #[test]
    fn subject_cutoff_with_and_without_ttl() {
        assert_eq!(revoke_subject(&k(), "iss", "u", 500, None), vec![cmd(["SET", &k().revoked_sub("iss", "u"), "500"])]);
        assert_eq!(revoke_subject(&k(), "iss", "u", 500, Some(3600))[0][3..], ["EX", "3600"]);
    }

    #[test]
    fn delete_session_removes_record_and_set_entry() {
        assert_eq!(delete_session(&k(), "u", "h"), vec![cmd(["DEL", "p:session:h"]), cmd(["ZREM", "p:sessions:u", "h"])]);
    }

    #[test]
    fn new_session_expiry() {
        let s = new_session("u", Some("phone"), "h", 1000, 3600, 86400);
        assert_eq!((s.created, s.expires, s.ttl), (1000, 87400, 3600));
        let s = new_session("u", None, "h", 1000, 3600, 0);
        assert_eq!((s.expires, s.ttl), (4600, 3600));
        let s = new_session("u", None, "h", 1000, 9000, 600);
        assert_eq!((s.expires, s.ttl), (1600, 600));
    }

    #[test]
    fn create_session_command_carries_limit_and_policy() {
        let s = new_session("u", Some("d"), "h", 5, 60, 0);
        let c = &create_session(&k(), &s, 3, SessionLimitPolicy::Refuse)[0];
        assert_eq!(c[0], "EVAL");
        assert_eq!(c[2..5], ["2", "p:session:h", "p:sessions:u"]);
        assert_eq!(c[6..], ["60", "5", "h", "3", "refuse", "p:session:"]);
        let json: serde_json::Value = serde_json::from_str(&c[5]).unwrap();
        assert_eq!(json["sub"], "u");
        assert_eq!(json["device"], "d");
    }

    #[test]
    fn parses_script_results() {
        use RedisValue::*;
        assert_eq!(parse_create_session(&Array(vec![Int(1), Int(2)])).unwrap(), CreateOutcome::Created { evicted: 2 });
        assert_eq!(parse_create_session(&Array(vec![Int(-1), Int(3)])).unwrap(), CreateOutcome::Refused { live: 3 });
        assert!(parse_create_session(&Int(1)).is_err());
        assert!(parse_create_session(&Array(vec![Int(7), Int(0)])).is_err());
        let listed = parse_list_sessions(&Array(vec![
            Str("h1".into()),
            Str("10".into()),
            Str(r#"{"sub":"u","device":"a","created":10,"expires":99}"#.into()),
            Int(50),
            Str("h2".into()),
            Str("11".into()),
            Str("garbage".into()),
            Int(5),
        ]))
        .unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].session.token_hash, "h1");
        assert_eq!(listed[0].ttl, 50);
        assert!(parse_list_sessions(&Array(vec![Str("h1".into())])).is_err());
    }

    #[test]
    fn perms_set_passes_permissions_as_args() {
        let c = &set_perms(&k(), "u", &["a".into(), "b".into()])[0];
        assert_eq!(c[2..], ["1", "p:perms:u", "a", "b"]);
    }
}
