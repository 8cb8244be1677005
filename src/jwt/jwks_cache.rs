//! Remote keys of one issuer (`jwks_uri` or OIDC discovery), cached per isolate.
//!
//! States, for a clock `now` (seconds):
//! - **fresh** (`now < fetched_at + ttl`, ttl = `Cache-Control: max-age` clamped to
//!   [`JwksSettings::min_ttl`, `JwksSettings::max_ttl`]): keys are served as they are.
//! - **stale** (up to `max_stale` seconds past freshness): keys are still served
//!   (stale-while-revalidate, and stale-if-error while the endpoint fails), and the caller is
//!   told a background refresh is due ([`CachedKeys::refresh_due`]) at most once per
//!   `refetch_cooldown`.
//! - **unusable** (no keys, or older than that): a shared store ([`JwksStore`]) is asked, then
//!   the endpoint is fetched while the request waits; failure → `KeysUnavailable` (503), and
//!   further synchronous fetches wait `refetch_cooldown`.
//!
//! A token whose `kid` is unknown triggers one synchronous refetch
//! ([`JwksSource::refetch_for_unknown_kid`]), unless any fetch was attempted less than
//! `refetch_cooldown` seconds ago.

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::Value;

use super::header::Algorithm;
use super::issuer::{acceptable_key_url, JwksLocation};
use super::jwk::{parse_jwks_bytes, JwkPolicy};
use super::keys::VerifyingKey;
use crate::error::{Reason, Refusal};
use crate::http::{HttpClient, HttpRequest};

/// Largest JWKS or discovery document read, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 512 * 1024;

/// Timing of the JWKS cache (from the global vars).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksSettings {
    /// Lower bound of freshness, seconds (`JWKS_MIN_TTL`, default 60).
    pub min_ttl: u64,
    /// Upper bound of freshness, seconds (`JWKS_MAX_TTL`, default 86400).
    pub max_ttl: u64,
    /// How long past freshness cached keys may still be used, seconds (`JWKS_MAX_STALE`, default 86400).
    pub max_stale: u64,
    /// Minimum seconds between two fetch attempts triggered by requests (`JWKS_REFETCH_COOLDOWN`, default 30).
    pub refetch_cooldown: u64,
    /// Timeout of one fetch, milliseconds (`JWKS_FETCH_TIMEOUT_MS`, default 3000).
    pub fetch_timeout_ms: u32,
}

impl Default for JwksSettings {
    fn default() -> Self {
        JwksSettings { min_ttl: 60, max_ttl: 86_400, max_stale: 86_400, refetch_cooldown: 30, fetch_timeout_ms: 3000 }
    }
}

/// A document kept in the cross-isolate store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDoc {
    /// The response body (JWKS or discovery JSON).
    pub body: String,
    /// When it was fetched (Unix seconds).
    pub fetched_at: u64,
    /// Its freshness in seconds (already clamped).
    pub max_age: u64,
}

/// A store shared between isolates (the glue implements it with the Workers Cache API), keyed
/// by URL. Loads that fail should return `None`; saves are best-effort.
#[allow(async_fn_in_trait)]
pub trait JwksStore {
    /// The stored document for `url`, if any.
    async fn load(&self, url: &str) -> Option<StoredDoc>;
    /// Stores the document for `url`.
    async fn save(&self, url: &str, doc: &StoredDoc);
}

/// The default store: nothing is shared.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoJwksStore;

impl JwksStore for NoJwksStore {
    async fn load(&self, _url: &str) -> Option<StoredDoc> {
        None
    }
    async fn save(&self, _url: &str, _doc: &StoredDoc) {}
}

/// Keys served to a request.
#[derive(Debug, Clone)]
pub struct CachedKeys {
    pub keys: Rc<Vec<VerifyingKey>>,
    /// The keys are stale: run a refresh in the background (`waitUntil`).
    pub refresh_due: bool,
}

/// The freshness lifetime from a `Cache-Control` value: `max-age`, or 0 when absent or
/// `no-store`/`no-cache` (the caller clamps it).
pub fn cache_max_age(cache_control: Option<&str>) -> u64 {
    let mut age = 0;
    for d in cache_control.unwrap_or("").split(',') {
        let d = d.trim().to_ascii_lowercase();
        if d == "no-store" || d == "no-cache" {
            return 0;
        }
        if let Some(v) = d.strip_prefix("max-age=") {
            age = v.trim_matches('"').parse().unwrap_or(0);
        }
    }
    age
}

#[derive(Debug)]
struct Loaded {
    keys: Rc<Vec<VerifyingKey>>,
    fetched_at: u64,
    ttl: u64,
}

#[derive(Debug, Default)]
struct State {
    loaded: Option<Loaded>,
    /// Last fetch attempt started (success or not).
    last_attempt: Option<u64>,
    /// Last failed fetch.
    last_failure: Option<u64>,
    /// When a background refresh was handed out and not finished yet.
    refresh_claimed_at: Option<u64>,
    /// The JWKS URL (fixed, or learned from discovery).
    jwks_url: Option<String>,
}

/// The remote key source of one issuer.
#[derive(Debug)]
pub struct JwksSource {
    issuer: String,
    location: JwksLocation,
    allow_list: Option<Vec<Algorithm>>,
    settings: JwksSettings,
    state: RefCell<State>,
}

impl JwksSource {
    /// A source with nothing cached yet.
    pub fn new(issuer: &str, location: JwksLocation, allow_list: Option<Vec<Algorithm>>, settings: JwksSettings) -> Self {
        let jwks_url = match &location {
            JwksLocation::Uri(u) => Some(u.clone()),
            JwksLocation::Discovery { .. } => None,
        };
        JwksSource {
            issuer: issuer.to_string(),
            location,
            allow_list,
            settings,
            state: RefCell::new(State { jwks_url, ..State::default() }),
        }
    }

    /// Keys usable now, fetching (or loading from `store`) when nothing usable is cached.
    pub async fn keys<H: HttpClient, S: JwksStore>(&self, now: u64, http: &H, store: &S) -> Result<CachedKeys, Refusal> {
        if let Some(k) = self.cached(now) {
            return Ok(k);
        }
        if self.load_from_store(now, store).await {
            if let Some(k) = self.cached(now) {
                return Ok(k);
            }
        }
        let recent_failure = self.state.borrow().last_failure.filter(|f| now < f.saturating_add(self.settings.refetch_cooldown));
        if let Some(f) = recent_failure {
            let wait = f.saturating_add(self.settings.refetch_cooldown).saturating_sub(now).max(1);
            return Err(Refusal::new(Reason::KeysUnavailable).retry_after(wait));
        }
        match self.fetch(now, http, store).await {
            Ok(()) => self
                .cached(now)
                .ok_or_else(|| Refusal::new(Reason::KeysUnavailable).retry_after(self.settings.refetch_cooldown.max(1))),
            Err(_) => Err(Refusal::new(Reason::KeysUnavailable).retry_after(self.settings.refetch_cooldown.max(1))),
        }
    }

    /// Cached keys if fresh or within the stale window; claims a background refresh when stale.
    fn cached(&self, now: u64) -> Option<CachedKeys> {
        let (keys, stale) = {
            let st = self.state.borrow();
            let l = st.loaded.as_ref()?;
            let fresh_until = l.fetched_at.saturating_add(l.ttl);
            if now < fresh_until {
                (l.keys.clone(), false)
            } else if now < fresh_until.saturating_add(self.settings.max_stale) {
                (l.keys.clone(), true)
            } else {
                return None;
            }
        };
        let refresh_due = stale && self.claim_refresh(now);
        Some(CachedKeys { keys, refresh_due })
    }

    /// Marks a background refresh as handed out, unless one is in flight or a fetch was
    /// attempted within the cooldown.
    fn claim_refresh(&self, now: u64) -> bool {
        let mut st = self.state.borrow_mut();
        let hold = self.settings.refetch_cooldown.max(u64::from(self.settings.fetch_timeout_ms) / 1000 + 1);
        if st.refresh_claimed_at.is_some_and(|t| now < t.saturating_add(hold)) {
            return false;
        }
        if st.last_attempt.is_some_and(|t| now < t.saturating_add(self.settings.refetch_cooldown)) {
            return false;
        }
        st.refresh_claimed_at = Some(now);
        true
    }

    /// The background refresh (run it in `waitUntil`). Errors keep the cached keys.
    pub async fn refresh<H: HttpClient, S: JwksStore>(&self, now: u64, http: &H, store: &S) -> Result<(), String> {
        let r = self.fetch(now, http, store).await;
        self.state.borrow_mut().refresh_claimed_at = None;
        r
    }

    /// One synchronous refetch because a token's `kid` is unknown. `None` when a fetch was
    /// attempted within `refetch_cooldown` or the fetch failed.
    pub async fn refetch_for_unknown_kid<H: HttpClient, S: JwksStore>(
        &self,
        now: u64,
        http: &H,
        store: &S,
    ) -> Option<Rc<Vec<VerifyingKey>>> {
        let cooling = self.state.borrow().last_attempt.is_some_and(|t| now < t.saturating_add(self.settings.refetch_cooldown));
        if cooling {
            return None;
        }
        self.fetch(now, http, store).await.ok()?;
        self.state.borrow().loaded.as_ref().map(|l| l.keys.clone())
    }

    /// Loads the JWKS from the shared store when it is still usable. Returns whether keys were installed.
    async fn load_from_store<S: JwksStore>(&self, now: u64, store: &S) -> bool {
        let known = self.state.borrow().jwks_url.clone();
        let url = match known {
            Some(u) => u,
            None => match self.discovery_from_store(now, store).await {
                Some(u) => u,
                None => return false,
            },
        };
        let doc = match store.load(&url).await {
            Some(d) => d,
            None => return false,
        };
        if now >= doc.fetched_at.saturating_add(doc.max_age).saturating_add(self.settings.max_stale) {
            return false;
        }
        let policy = JwkPolicy { allow_symmetric: false, allow_list: self.allow_list.as_deref() };
        match parse_jwks_bytes(doc.body.as_bytes(), policy) {
            Ok(set) => {
                let ttl = doc.max_age.clamp(self.settings.min_ttl, self.settings.max_ttl.max(self.settings.min_ttl));
                self.state.borrow_mut().loaded = Some(Loaded { keys: Rc::new(set.keys), fetched_at: doc.fetched_at, ttl });
                true
            }
            Err(_) => false,
        }
    }

    async fn discovery_from_store<S: JwksStore>(&self, _now: u64, store: &S) -> Option<String> {
        let JwksLocation::Discovery { config_url } = &self.location else { return None };
        let doc = store.load(config_url).await?;
        let url = self.jwks_uri_from_discovery(doc.body.as_bytes()).ok()?;
        self.state.borrow_mut().jwks_url = Some(url.clone());
        Some(url)
    }

    fn jwks_uri_from_discovery(&self, body: &[u8]) -> Result<String, String> {
        let doc: Value = serde_json::from_slice(body).map_err(|_| "discovery document is not JSON")?;
        if doc.get("issuer").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err("discovery document names another issuer".into());
        }
        let uri = doc.get("jwks_uri").and_then(Value::as_str).ok_or("discovery document has no jwks_uri")?;
        if !acceptable_key_url(uri) {
            return Err("discovery jwks_uri is not https".into());
        }
        Ok(uri.to_string())
    }

    async fn get<H: HttpClient>(&self, url: &str, http: &H) -> Result<(Vec<u8>, u64), String> {
        let req = HttpRequest {
            method: "GET",
            url: url.to_string(),
            headers: vec![("accept".to_string(), "application/json".to_string())],
            body: None,
            timeout_ms: self.settings.fetch_timeout_ms,
        };
        let resp = http.send(req).await.map_err(|e| format!("fetch failed: {e:?}"))?;
        if resp.status != 200 {
            return Err(format!("status {}", resp.status));
        }
        if resp.body.len() > MAX_DOCUMENT_BYTES {
            return Err("document too large".into());
        }
        let ttl = cache_max_age(resp.header("cache-control"))
            .clamp(self.settings.min_ttl, self.settings.max_ttl.max(self.settings.min_ttl));
        Ok((resp.body, ttl))
    }

    async fn resolve_url<H: HttpClient, S: JwksStore>(&self, now: u64, http: &H, store: &S) -> Result<String, String> {
        let known = self.state.borrow().jwks_url.clone();
        if let Some(u) = known {
            return Ok(u);
        }
        let JwksLocation::Discovery { config_url } = &self.location else {
            return Err("no JWKS URL".into());
        };
        let (body, ttl) = self.get(config_url, http).await?;
        let url = self.jwks_uri_from_discovery(&body)?;
        self.state.borrow_mut().jwks_url = Some(url.clone());
        if let Ok(text) = String::from_utf8(body) {
            store.save(config_url, &StoredDoc { body: text, fetched_at: now, max_age: ttl }).await;
        }
        Ok(url)
    }

    /// Fetches the JWKS now and installs it. A malformed document is a failure (old keys stay).
    async fn fetch<H: HttpClient, S: JwksStore>(&self, now: u64, http: &H, store: &S) -> Result<(), String> {
        self.state.borrow_mut().last_attempt = Some(now);
        let result = async {
            let url = self.resolve_url(now, http, store).await?;
            let (body, ttl) = self.get(&url, http).await?;
            let policy = JwkPolicy { allow_symmetric: false, allow_list: self.allow_list.as_deref() };
            let set = parse_jwks_bytes(&body, policy)?;
            self.state.borrow_mut().loaded = Some(Loaded { keys: Rc::new(set.keys), fetched_at: now, ttl });
            if let Ok(text) = String::from_utf8(body) {
                store.save(&url, &StoredDoc { body: text, fetched_at: now, max_age: ttl }).await;
            }
            Ok::<(), String>(())
        }
        .await;
        let mut st = self.state.borrow_mut();
        match &result {
            Ok(()) => st.last_failure = None,
            Err(_) => st.last_failure = Some(now),
        }
        result
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::http::{FetchError, HttpResponse};
    use futures::executor::block_on;
    use std::cell::Cell;
    use std::collections::HashMap;

    /// A scripted endpoint: `responses[url]` is served (or fails when `down`); every request is recorded.
    #[derive(Default)]
    pub(crate) struct FakeHttp {
        pub responses: RefCell<HashMap<String, HttpResponse>>,
        pub down: Cell<bool>,
        pub requests: RefCell<Vec<HttpRequest>>,
    }

    impl FakeHttp {
        pub fn serve(&self, url: &str, body: &str, cache_control: &str) {
            let headers = vec![("cache-control".to_string(), cache_control.to_string())];
            self.responses.borrow_mut().insert(url.to_string(), HttpResponse { status: 200, headers, body: body.as_bytes().to_vec() });
        }
        pub fn count(&self) -> usize {
            self.requests.borrow().len()
        }
    }

    impl HttpClient for FakeHttp {
        async fn send(&self, req: HttpRequest) -> Result<HttpResponse, FetchError> {
            self.requests.borrow_mut().push(req.clone());
            if self.down.get() {
                return Err(FetchError::Timeout);
            }
            self.responses
                .borrow()
                .get(&req.url)
                .cloned()
                .ok_or_else(|| FetchError::Network("no route".into()))
        }
    }

    /// An in-memory shared store.
    #[derive(Default)]
    pub(crate) struct MemStore(pub RefCell<HashMap<String, StoredDoc>>);

    impl JwksStore for MemStore {
        async fn load(&self, url: &str) -> Option<StoredDoc> {
            self.0.borrow().get(url).cloned()
        }
        async fn save(&self, url: &str, doc: &StoredDoc) {
            self.0.borrow_mut().insert(url.to_string(), doc.clone());
        }
    }

    const URL: &str = "https://id.example/jwks.json";
    pub(crate) fn jwks(kids: &[&str]) -> String {
        let keys: Vec<Value> = kids
            .iter()
            .map(|k| {
                serde_json::json!({"kty":"OKP","crv":"Ed25519","kid":k,"x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"})
            })
            .collect();
        serde_json::json!({ "keys": keys }).to_string()
    }
    fn kids(k: &CachedKeys) -> Vec<String> {
        k.keys.iter().filter_map(|k| k.kid.clone()).collect()
    }
    fn source() -> JwksSource {
        JwksSource::new("https://id.example", JwksLocation::Uri(URL.into()), None, JwksSettings::default())
    }

    #[test]
    fn max_age_parsing() {
        assert_eq!(cache_max_age(Some("public, max-age=300, must-revalidate")), 300);
        assert_eq!(cache_max_age(Some("no-store")), 0);
        assert_eq!(cache_max_age(Some("max-age=abc")), 0);
        assert_eq!(cache_max_age(None), 0);
    }

    #[test]
    fn fresh_then_stale_while_revalidate() {
        let http = FakeHttp::default();
        http.serve(URL, &jwks(&["a"]), "max-age=300");
        let src = source();
        let t0 = 1_000_000;
        let k = block_on(src.keys(t0, &http, &NoJwksStore)).unwrap();
        assert_eq!((kids(&k), k.refresh_due, http.count()), (vec!["a".to_string()], false, 1));
        assert_eq!(http.requests.borrow()[0].timeout_ms, 3000);
        // Fresh: no fetch.
        let k = block_on(src.keys(t0 + 299, &http, &NoJwksStore)).unwrap();
        assert_eq!((k.refresh_due, http.count()), (false, 1));
        // Stale: served at once, refresh handed out once.
        let k = block_on(src.keys(t0 + 300, &http, &NoJwksStore)).unwrap();
        assert_eq!((k.refresh_due, http.count()), (true, 1));
        let k = block_on(src.keys(t0 + 301, &http, &NoJwksStore)).unwrap();
        assert!(!k.refresh_due, "a refresh is already in flight");
        http.serve(URL, &jwks(&["a", "b"]), "max-age=300");
        block_on(src.refresh(t0 + 301, &http, &NoJwksStore)).unwrap();
        let k = block_on(src.keys(t0 + 302, &http, &NoJwksStore)).unwrap();
        assert_eq!((kids(&k), k.refresh_due), (vec!["a".to_string(), "b".to_string()], false));
    }

    #[test]
    fn ttl_is_clamped() {
        let http = FakeHttp::default();
        http.serve(URL, &jwks(&["a"]), "max-age=5");
        let src = source();
        block_on(src.keys(0, &http, &NoJwksStore)).unwrap();
        assert!(!block_on(src.keys(59, &http, &NoJwksStore)).unwrap().refresh_due);
        assert!(block_on(src.keys(60, &http, &NoJwksStore)).unwrap().refresh_due);
        let http = FakeHttp::default();
        http.serve(URL, &jwks(&["a"]), "max-age=9999999");
        let src = source();
        block_on(src.keys(0, &http, &NoJwksStore)).unwrap();
        assert!(!block_on(src.keys(86_399, &http, &NoJwksStore)).unwrap().refresh_due);
        assert!(block_on(src.keys(86_400, &http, &NoJwksStore)).unwrap().refresh_due);
    }

    #[test]
    fn stale_if_error_then_keys_unavailable() {
        let http = FakeHttp::default();
        http.serve(URL, &jwks(&["a"]), "max-age=60");
        let src = source();
        block_on(src.keys(0, &http, &NoJwksStore)).unwrap();
        http.down.set(true);
        // Stale and the endpoint is down: the background refresh fails, keys keep being served.
        let k = block_on(src.keys(100, &http, &NoJwksStore)).unwrap();
        assert!(k.refresh_due);
        assert!(block_on(src.refresh(100, &http, &NoJwksStore)).is_err());
        let k = block_on(src.keys(110, &http, &NoJwksStore)).unwrap();
        assert_eq!(kids(&k), vec!["a".to_string()]);
        assert!(!k.refresh_due, "cooldown after the failed attempt");
        assert!(block_on(src.keys(130, &http, &NoJwksStore)).unwrap().refresh_due);
        // Up to max_stale past freshness (60 + 86400).
        assert!(block_on(src.keys(60 + 86_399, &http, &NoJwksStore)).is_ok());
        let before = http.count();
        let e = block_on(src.keys(60 + 86_400, &http, &NoJwksStore)).unwrap_err();
        assert_eq!(e.reason, Reason::KeysUnavailable);
        assert_eq!(e.reason.status(), 503);
        assert_eq!(http.count(), before + 1, "one synchronous attempt");
        // Within the cooldown no further synchronous fetch happens.
        let e = block_on(src.keys(60 + 86_410, &http, &NoJwksStore)).unwrap_err();
        assert_eq!((e.reason, e.retry_after), (Reason::KeysUnavailable, Some(20)));
        assert_eq!(http.count(), before + 1);
        http.down.set(false);
        assert!(block_on(src.keys(60 + 86_430, &http, &NoJwksStore)).is_ok());
    }

    #[test]
    fn no_keys_and_fetch_fails_is_503() {
        let http = FakeHttp::default();
        http.down.set(true);
        let e = block_on(source().keys(0, &http, &NoJwksStore)).unwrap_err();
        assert_eq!(e.reason, Reason::KeysUnavailable);
        // A malformed document is a failure too.
        let http = FakeHttp::default();
        http.serve(URL, "<html>", "max-age=60");
        assert_eq!(block_on(source().keys(0, &http, &NoJwksStore)).unwrap_err().reason, Reason::KeysUnavailable);
    }

    #[test]
    fn unknown_kid_refetch_respects_cooldown() {
        let http = FakeHttp::default();
        http.serve(URL, &jwks(&["a"]), "max-age=3600");
        let src = source();
        block_on(src.keys(0, &http, &NoJwksStore)).unwrap();
        http.serve(URL, &jwks(&["b"]), "max-age=3600");
        assert!(block_on(src.refetch_for_unknown_kid(10, &http, &NoJwksStore)).is_none(), "cooldown after the first fetch");
        assert_eq!(http.count(), 1);
        let keys = block_on(src.refetch_for_unknown_kid(30, &http, &NoJwksStore)).unwrap();
        assert_eq!(keys[0].kid.as_deref(), Some("b"));
        assert_eq!(http.count(), 2);
        assert!(block_on(src.refetch_for_unknown_kid(40, &http, &NoJwksStore)).is_none());
        assert_eq!(http.count(), 2);
    }

    #[test]
    fn shared_store_feeds_a_cold_isolate() {
        let http = FakeHttp::default();
        http.serve(URL, &jwks(&["a"]), "max-age=600");
        let store = MemStore::default();
        block_on(source().keys(0, &http, &store)).unwrap();
        assert_eq!(store.0.borrow()[URL].max_age, 600);
        // A second isolate: no fetch, keys from the store, freshness from the stored time.
        let other = source();
        let k = block_on(other.keys(100, &http, &store)).unwrap();
        assert_eq!((kids(&k), k.refresh_due, http.count()), (vec!["a".to_string()], false, 1));
        assert!(block_on(other.keys(600, &http, &store)).unwrap().refresh_due);
    }

    #[test]
    fn discovery_resolves_and_checks_issuer() {
        let cfg = "https://id.example/.well-known/openid-configuration";
        let http = FakeHttp::default();
        http.serve(cfg, &serde_json::json!({"issuer":"https://id.example","jwks_uri":URL}).to_string(), "max-age=60");
        http.serve(URL, &jwks(&["a"]), "max-age=60");
        let loc = JwksLocation::Discovery { config_url: cfg.into() };
        let src = JwksSource::new("https://id.example", loc.clone(), None, JwksSettings::default());
        let k = block_on(src.keys(0, &http, &NoJwksStore)).unwrap();
        assert_eq!(kids(&k), vec!["a".to_string()]);
        let http = FakeHttp::default();
        http.serve(cfg, &serde_json::json!({"issuer":"https://evil.example","jwks_uri":URL}).to_string(), "max-age=60");
        http.serve(URL, &jwks(&["a"]), "max-age=60");
        let src = JwksSource::new("https://id.example", loc, None, JwksSettings::default());
        assert_eq!(block_on(src.keys(0, &http, &NoJwksStore)).unwrap_err().reason, Reason::KeysUnavailable);
    }
}
