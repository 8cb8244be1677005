//! Revocation and session settings, read from wrangler vars and secrets.

use crate::vars::{get_trimmed, get_u64, ConfigError, Vars};

use super::keys::{KeySchema, DEFAULT_PREFIX};

/// Where the Upstash REST endpoint is and how to authenticate to it.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Base URL without trailing `/`, e.g. `https://eu1-x.upstash.io`.
    pub url: String,
    /// Bearer token (secret; never printed by `Debug`).
    pub token: String,
    /// Each REST call is abandoned after this many milliseconds.
    pub timeout_ms: u32,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("url", &self.url).field("token", &"<redacted>").field("timeout_ms", &self.timeout_ms).finish()
    }
}

impl Endpoint {
    /// Checks and normalises a REST base URL (`http(s)://host[:port][/path]`, trailing `/` removed).
    /// `field` names the setting in the error.
    pub fn parse_url(field: &str, url: &str) -> Result<String, ConfigError> {
        let url = url.trim();
        let lower = url.to_ascii_lowercase();
        let rest = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://"));
        match rest {
            Some(r) if !r.is_empty() && !r.starts_with('/') && !url.contains(['?', '#', ' ']) => {
                Ok(url.trim_end_matches('/').to_string())
            }
            _ => Err(ConfigError::new(field, "expected an absolute http(s) URL without query, e.g. https://eu1-xyz.upstash.io")),
        }
    }
}

/// What to do when the revocation store cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Refuse with 503 `revocation_unavailable` (default).
    Closed,
    /// Let otherwise valid access tokens through, marked `Skipped`, for at most
    /// `REVOCATION_FAIL_OPEN_MAX_SECS` after the store was last seen healthy.
    Open,
}

/// What `MAX_SESSIONS_PER_SUBJECT` does when a subject is at its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionLimitPolicy {
    /// Delete the subject's oldest sessions to make room (default).
    EvictOldest,
    /// Refuse to create the new session.
    Refuse,
}

impl SessionLimitPolicy {
    /// Parses `evict_oldest` or `refuse`; `field` names the setting in the error.
    pub fn parse(field: &str, v: &str) -> Result<Self, ConfigError> {
        match v.trim().to_ascii_lowercase().as_str() {
            "evict_oldest" => Ok(SessionLimitPolicy::EvictOldest),
            "refuse" => Ok(SessionLimitPolicy::Refuse),
            other => Err(ConfigError::new(field, format!("expected evict_oldest or refuse, got {other:?}"))),
        }
    }
}

/// Which identity a rate-limit counter belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitKey {
    /// One counter per subject (default).
    Subject,
    /// One counter per device: the session for opaque tokens, the token's device (if the
    /// glue provides one) for JWTs, else the subject.
    Device,
}

/// `RATE_LIMIT`: at most `requests` per fixed window of `window_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u64,
    pub window_secs: u64,
}

impl RateLimit {
    /// Parses `N/SECS`, e.g. `100/60`; both numbers > 0.
    pub fn parse(field: &str, v: &str) -> Result<Self, ConfigError> {
        let bad = || ConfigError::new(field, format!("expected REQUESTS/SECONDS such as 100/60, got {v:?}"));
        let (n, s) = v.trim().split_once('/').ok_or_else(bad)?;
        let requests: u64 = n.trim().parse().map_err(|_| bad())?;
        let window_secs: u64 = s.trim().parse().map_err(|_| bad())?;
        if requests == 0 || window_secs == 0 {
            return Err(bad());
        }
        Ok(RateLimit { requests, window_secs })
    }
}

/// Everything the revocation/session core needs. Built once per isolate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationConfig {
    /// `UPSTASH_REDIS_REST_URL` (required), `UPSTASH_REDIS_REST_TOKEN` (secret, required),
    /// `REVOCATION_TIMEOUT_MS` (default 1000).
    pub endpoint: Endpoint,
    /// `REDIS_PREFIX` (default `edge-auth:`).
    pub keys: KeySchema,
    /// `REVOCATION_FAILURE_POLICY`: `closed` (default) or `open`.
    pub failure_policy: FailurePolicy,
    /// `REVOCATION_FAIL_OPEN_MAX_SECS` (default 300; must be > 0 when the policy is `open`):
    /// fail-open stops this long after the store was last seen healthy by this isolate.
    pub fail_open_max_secs: u64,
    /// `REVOCATION_CACHE_SECS` (default 0 = always ask): how long a "not revoked" answer (and the
    /// permissions read with it) may be reused by this isolate. This is the maximum delay before
    /// a revocation takes effect. Not used while a rate limit is on (the counter needs the call).
    pub cache_secs: u64,
    /// `CIRCUIT_BREAKER_FAILURES` (default 5; 0 = breaker off): consecutive failures that open it.
    pub breaker_failures: u32,
    /// `CIRCUIT_BREAKER_COOLDOWN_SECS` (default 10): how long it stays open before one probe.
    pub breaker_cooldown_secs: u64,
    /// `SESSION_SLIDING_SECS` (default 0 = off): each use renews the session's TTL to this.
    pub session_sliding_secs: u64,
    /// `SESSION_MAX_LIFETIME_SECS` (default 2592000 = 30 days; 0 = only the session's own
    /// `expires`): absolute cap since creation; sliding renewal stops there.
    pub session_max_lifetime_secs: u64,
    /// `MAX_SESSIONS_PER_SUBJECT` (default 0 = unlimited).
    pub max_sessions_per_subject: u32,
    /// `SESSION_LIMIT_POLICY`: `evict_oldest` (default) or `refuse`.
    pub session_limit_policy: SessionLimitPolicy,
    /// `RATE_LIMIT` (default off), e.g. `100/60`.
    pub rate_limit: Option<RateLimit>,
    /// `RATE_LIMIT_KEY`: `subject` (default) or `device`.
    pub rate_limit_key: RateLimitKey,
}

impl RevocationConfig {
    /// Reads the settings. `Ok(None)` when neither `UPSTASH_REDIS_REST_URL` nor
    /// `UPSTASH_REDIS_REST_TOKEN` is set (no revocation store configured); an error naming the
    /// field when only one is, or when any value is invalid.
    pub fn from_vars(vars: &dyn Vars) -> Result<Option<Self>, ConfigError> {
        let url = get_trimmed(vars, "UPSTASH_REDIS_REST_URL");
        let token = get_trimmed(vars, "UPSTASH_REDIS_REST_TOKEN");
        let (url, token) = match (url, token) {
            (None, None) => return Ok(None),
            (Some(_), None) => return Err(ConfigError::new("UPSTASH_REDIS_REST_TOKEN", "required when UPSTASH_REDIS_REST_URL is set (set it as a secret)")),
            (None, Some(_)) => return Err(ConfigError::new("UPSTASH_REDIS_REST_URL", "required when UPSTASH_REDIS_REST_TOKEN is set")),
            (Some(u), Some(t)) => (u, t),
        };
        let url = Endpoint::parse_url("UPSTASH_REDIS_REST_URL", &url)?;
        let timeout_ms = get_u64(vars, "REVOCATION_TIMEOUT_MS", 1000)?;
        if timeout_ms == 0 || timeout_ms > 60_000 {
            return Err(ConfigError::new("REVOCATION_TIMEOUT_MS", "expected 1..=60000 milliseconds"));
        }
        let prefix = vars.get("REDIS_PREFIX").map(|p| p.trim().to_string()).unwrap_or_else(|| DEFAULT_PREFIX.to_string());
        let failure_policy = match get_trimmed(vars, "REVOCATION_FAILURE_POLICY").map(|v| v.to_ascii_lowercase()) {
            None => FailurePolicy::Closed,
            Some(v) if v == "closed" => FailurePolicy::Closed,
            Some(v) if v == "open" => FailurePolicy::Open,
            Some(v) => return Err(ConfigError::new("REVOCATION_FAILURE_POLICY", format!("expected closed or open, got {v:?}"))),
        };
        let fail_open_max_secs = get_u64(vars, "REVOCATION_FAIL_OPEN_MAX_SECS", 300)?;
        if failure_policy == FailurePolicy::Open && fail_open_max_secs == 0 {
            return Err(ConfigError::new("REVOCATION_FAIL_OPEN_MAX_SECS", "must be > 0 when REVOCATION_FAILURE_POLICY=open"));
        }
        let breaker_failures = get_u64(vars, "CIRCUIT_BREAKER_FAILURES", 5)?;
        let breaker_failures = u32::try_from(breaker_failures).map_err(|_| ConfigError::new("CIRCUIT_BREAKER_FAILURES", "too large"))?;
        let max_sessions = get_u64(vars, "MAX_SESSIONS_PER_SUBJECT", 0)?;
        let max_sessions_per_subject = u32::try_from(max_sessions).map_err(|_| ConfigError::new("MAX_SESSIONS_PER_SUBJECT", "too large"))?;
        let session_limit_policy = match get_trimmed(vars, "SESSION_LIMIT_POLICY") {
            None => SessionLimitPolicy::EvictOldest,
            Some(v) => SessionLimitPolicy::parse("SESSION_LIMIT_POLICY", &v)?,
        };
        let rate_limit = match get_trimmed(vars, "RATE_LIMIT") {
            None => None,
            Some(v) if v.eq_ignore_ascii_case("off") => None,
            Some(v) => Some(RateLimit::parse("RATE_LIMIT", &v)?),
        };
        let rate_limit_key = match get_trimmed(vars, "RATE_LIMIT_KEY").map(|v| v.to_ascii_lowercase()) {
            None => RateLimitKey::Subject,
            Some(v) if v == "subject" => RateLimitKey::Subject,
            Some(v) if v == "device" => RateLimitKey::Device,
            Some(v) => return Err(ConfigError::new("RATE_LIMIT_KEY", format!("expected subject or device, got {v:?}"))),
        };
        Ok(Some(RevocationConfig {
            endpoint: Endpoint { url, token, timeout_ms: timeout_ms as u32 },
            keys: KeySchema::new(prefix),
            failure_policy,
            fail_open_max_secs,
            cache_secs: get_u64(vars, "REVOCATION_CACHE_SECS", 0)?,
            breaker_failures,
            breaker_cooldown_secs: get_u64(vars, "CIRCUIT_BREAKER_COOLDOWN_SECS", 10)?,
            session_sliding_secs: get_u64(vars, "SESSION_SLIDING_SECS", 0)?,
            session_max_lifetime_secs: get_u64(vars, "SESSION_MAX_LIFETIME_SECS", 2_592_000)?,
            max_sessions_per_subject,
            session_limit_policy,
            rate_limit,
            rate_limit_key,
        }))
    }

    /// A configuration with every default, for the given endpoint (tests and tools).
    pub fn with_endpoint(url: &str, token: &str) -> Self {
        RevocationConfig {
            endpoint: Endpoint { url: url.trim_end_matches('/').to_string(), token: token.to_string(), timeout_ms: 1000 },
            keys: KeySchema::default(),
            failure_policy: FailurePolicy::Closed,
            fail_open_max_secs: 300,
            cache_secs: 0,
            breaker_failures: 5,
            breaker_cooldown_secs: 10,
            session_sliding_secs: 0,
            session_max_lifetime_secs: 2_592_000,
            max_sessions_per_subject: 0,
            session_limit_policy: SessionLimitPolicy::EvictOldest,
            rate_limit: None,
            rate_limit_key: RateLimitKey::Subject,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: [(&str, &str); 2] = [("UPSTASH_REDIS_REST_URL", "https://r.example/"), ("UPSTASH_REDIS_REST_TOKEN", "s3cret")];

    fn with(extra: &[(&str, &str)]) -> Result<Option<RevocationConfig>, ConfigError> {
        let mut m: std::collections::HashMap<String, String> = BASE.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        for (k, v) in extra {
            m.insert(k.to_string(), v.to_string());
        }
        RevocationConfig::from_vars(&m)
    }

    fn field_of(r: Result<Option<RevocationConfig>, ConfigError>) -> String {
        r.unwrap_err().field
    }

    #[test]
    fn defaults() {
        let c = with(&[]).unwrap().unwrap();
        assert_eq!(c, RevocationConfig::with_endpoint("https://r.example", "s3cret"));
        assert_eq!(c.keys.prefix(), "edge-auth:");
        assert!(!format!("{c:?}").contains("s3cret"), "Debug must not print the token");
    }

    #[test]
    fn absent_store_is_none_and_half_configured_is_an_error() {
        assert_eq!(RevocationConfig::from_vars(&[("X", "1")]).unwrap(), None);
        assert_eq!(RevocationConfig::from_vars(&[("UPSTASH_REDIS_REST_URL", "https://x")]).unwrap_err().field, "UPSTASH_REDIS_REST_TOKEN");
        assert_eq!(RevocationConfig::from_vars(&[("UPSTASH_REDIS_REST_TOKEN", "t")]).unwrap_err().field, "UPSTASH_REDIS_REST_URL");
    }

    #[test]
    fn every_setting_is_parsed() {
        let c = with(&[
            ("REDIS_PREFIX", "app1:"),
            ("REVOCATION_TIMEOUT_MS", "250"),
            ("REVOCATION_FAILURE_POLICY", "OPEN"),
            ("REVOCATION_FAIL_OPEN_MAX_SECS", "60"),
            ("REVOCATION_CACHE_SECS", "5"),
            ("CIRCUIT_BREAKER_FAILURES", "3"),
            ("CIRCUIT_BREAKER_COOLDOWN_SECS", "20"),
            ("SESSION_SLIDING_SECS", "1800"),
            ("SESSION_MAX_LIFETIME_SECS", "86400"),
            ("MAX_SESSIONS_PER_SUBJECT", "3"),
            ("SESSION_LIMIT_POLICY", "refuse"),
            ("RATE_LIMIT", "100/60"),
            ("RATE_LIMIT_KEY", "device"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(c.keys.prefix(), "app1:");
        assert_eq!(c.endpoint.timeout_ms, 250);
        assert_eq!(c.failure_policy, FailurePolicy::Open);
        assert_eq!(c.fail_open_max_secs, 60);
        assert_eq!(c.cache_secs, 5);
        assert_eq!((c.breaker_failures, c.breaker_cooldown_secs), (3, 20));
        assert_eq!((c.session_sliding_secs, c.session_max_lifetime_secs), (1800, 86400));
        assert_eq!((c.max_sessions_per_subject, c.session_limit_policy), (3, SessionLimitPolicy::Refuse));
        assert_eq!(c.rate_limit, Some(RateLimit { requests: 100, window_secs: 60 }));
        assert_eq!(c.rate_limit_key, RateLimitKey::Device);
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field_of(with(&[("UPSTASH_REDIS_REST_URL", "redis://x")])), "UPSTASH_REDIS_REST_URL");
        assert_eq!(field_of(with(&[("REVOCATION_TIMEOUT_MS", "0")])), "REVOCATION_TIMEOUT_MS");
        assert_eq!(field_of(with(&[("REVOCATION_TIMEOUT_MS", "soon")])), "REVOCATION_TIMEOUT_MS");
        assert_eq!(field_of(with(&[("REVOCATION_FAILURE_POLICY", "maybe")])), "REVOCATION_FAILURE_POLICY");
        assert_eq!(
            field_of(with(&[("REVOCATION_FAILURE_POLICY", "open"), ("REVOCATION_FAIL_OPEN_MAX_SECS", "0")])),
            "REVOCATION_FAIL_OPEN_MAX_SECS"
        );
        assert_eq!(field_of(with(&[("REVOCATION_CACHE_SECS", "-1")])), "REVOCATION_CACHE_SECS");
        assert_eq!(field_of(with(&[("SESSION_LIMIT_POLICY", "lru")])), "SESSION_LIMIT_POLICY");
        for bad in ["100", "0/60", "100/0", "a/b", "100/60/2"] {
            assert_eq!(field_of(with(&[("RATE_LIMIT", bad)])), "RATE_LIMIT", "{bad}");
        }
        assert_eq!(field_of(with(&[("RATE_LIMIT_KEY", "ip")])), "RATE_LIMIT_KEY");
        let e = with(&[("UPSTASH_REDIS_REST_URL", "nope")]).unwrap_err();
        assert!(!e.to_string().contains("s3cret"));
    }
}
