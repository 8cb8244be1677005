//! The one file that names the `worker` crate: it reads config once per isolate, wires
//! `fetch` and WebCrypto behind the core's traits, runs the gateway, and either sends the
//! request on to the origin or answers with the gateway's refusal.

mod drive;
pub(crate) mod promise;

use std::cell::RefCell;
use std::rc::Rc;

use sha2::Digest;
use wasm_bindgen::JsCast;
use worker::{Context, Env};

use crate::error::{Reason, Refusal};
use crate::gateway::{Decision, Gateway, Incoming, Io, Outcome, SELFTEST_PATH};
use crate::http::{flatten_pairs, FetchError, HttpClient, HttpRequest, HttpResponse, RequestHead};
use crate::jwt::jwks_cache::{JwksStore, StoredDoc};
use crate::jwt::vectors;
use crate::jwt::webcrypto::WebCryptoVerifier;
use crate::log::{LogRequests, RequestLog};
use crate::vars::{ConfigError, Vars};

/// `js/runtime.js`: the loops over headers and the fetch plumbing, run on the JavaScript side
/// so that each step costs one crossing (see that file for the wire format).
#[wasm_bindgen::prelude::wasm_bindgen(module = "/js/runtime.js")]
extern "C" {
    #[wasm_bindgen(js_name = originRequest, catch)]
    fn js_origin_request(req: &web_sys::Request, url: &str, remove: &str, set: &str) -> Result<web_sys::Request, wasm_bindgen::JsValue>;
    #[wasm_bindgen(js_name = forwardAndLog, catch)]
    fn js_forward_and_log(
        req: &web_sys::Request,
        url: &str,
        remove: &str,
        set: &str,
        log_head: &str,
        started: f64,
        log_mode: u8,
    ) -> Result<js_sys::Promise, wasm_bindgen::JsValue>;
    #[wasm_bindgen(js_name = rememberDecision)]
    fn js_remember_decision(head: &str, second: f64, url: &str, remove: &str, set: &str, rid_header: &str, log_tail: &str, log_mode: u8);
    // `catch` also gives it a wasm-bindgen shim: imported directly, it made wasm-bindgen list
    // the runtime module twice in the import object (an esbuild duplicate-key warning).
    #[wasm_bindgen(js_name = forgetDecisions, catch)]
    fn js_forget_decisions() -> Result<(), wasm_bindgen::JsValue>;
    #[wasm_bindgen(js_name = setOriginFailure)]
    fn js_set_origin_failure(status: u16, reason: &str, headers: &str, body: &str);
    #[wasm_bindgen(js_name = send)]
    fn js_send(method: &str, url: &str, headers: &str, body: Option<Vec<u8>>, timeout_ms: u32) -> js_sys::Promise;
}

thread_local! {
    /// Parsed once per isolate; a bad config stays bad until the next deploy.
    static GATEWAY: RefCell<Option<Rc<Result<Gateway<CacheJwksStore>, ConfigError>>>> = const { RefCell::new(None) };
    /// WebCrypto verifier: imported CryptoKeys are cached for the isolate's life.
    static CRYPTO: Rc<WebCryptoVerifier> = Rc::new(WebCryptoVerifier::new());
    /// Whether an Analytics Engine dataset is bound as `AUTH_ANALYTICS`.
    static ANALYTICS_BOUND: std::cell::OnceCell<bool> = const { std::cell::OnceCell::new() };
}

struct EnvVars<'a>(&'a Env);

impl Vars for EnvVars<'_> {
    fn get(&self, name: &str) -> Option<String> {
        // Secrets and plain vars are both string bindings.
        self.0.var(name).ok().map(|v| v.to_string())
    }
}

fn gateway(env: &Env) -> Rc<Result<Gateway<CacheJwksStore>, ConfigError>> {
    GATEWAY.with(|cell| {
        cell.borrow_mut()
            .get_or_insert_with(|| {
                let gw = Gateway::with_store(&EnvVars(env), CacheJwksStore);
                if let Ok(gw) = &gw {
                    // The answer `forwardAndLog` gives when the origin cannot be reached.
                    let refusal = Refusal::new(Reason::OriginUnreachable);
                    let r = refusal.to_response(gw.realm());
                    let headers = flatten_pairs(r.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
                    js_set_origin_failure(r.status, refusal.reason.id(), &headers, &r.body);
                }
                Rc::new(gw)
            })
            .clone()
    })
}

/// Shares fetched JWKS and discovery documents across isolates of this colo through the
/// Workers Cache API. The entry outlives freshness by `JWKS_MAX_STALE`-like slack so that
/// stale-if-error works for a fresh isolate too; the JWKS cache decides what is fresh.
pub struct CacheJwksStore;

/// `worker::Cache::default()` unwraps `caches`; make sure the runtime has it first.
fn caches_available() -> bool {
    js_sys::Reflect::has(&js_sys::global(), &"caches".into()).unwrap_or(false)
}

const JWKS_CACHE_SLACK_SECS: u64 = 86_400;

fn jwks_cache_key(url: &str) -> String {
    let hex = hex::encode(sha2::Sha256::digest(url.as_bytes()));
    format!("https://edge-auth.internal/jwks/{hex}")
}

impl JwksStore for CacheJwksStore {
    async fn load(&self, url: &str) -> Option<StoredDoc> {
        if !caches_available() {
            return None;
        }
        let cache = worker::Cache::default();
        let mut resp = cache.get(jwks_cache_key(url), true).await.ok()??;
        let num = |h: &str| resp.headers().get(h).ok().flatten().and_then(|v| v.parse::<u64>().ok());
        let (fetched_at, max_age) = (num("x-fetched-at")?, num("x-max-age")?);
        let body = resp.text().await.ok()?;
        Some(StoredDoc { body, fetched_at, max_age })
    }

    async fn save(&self, url: &str, doc: &StoredDoc) {
        let headers = worker::Headers::new();
        let ttl = doc.max_age.saturating_add(JWKS_CACHE_SLACK_SECS);
        let _ = headers.set("cache-control", &format!("public, max-age={ttl}"));
        let _ = headers.set("x-fetched-at", &doc.fetched_at.to_string());
        let _ = headers.set("x-max-age", &doc.max_age.to_string());
        if !caches_available() {
            return;
        }
        let Ok(resp) = worker::Response::ok(doc.body.clone()).map(|r| r.with_headers(headers)) else {
            return;
        };
        let _ = worker::Cache::default().put(jwks_cache_key(url), resp).await;
    }
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// Outbound HTTP through the runtime's `fetch`, with a timeout (`send` in `js/runtime.js`). Of
/// the response headers only `cache-control` (JWKS freshness) reaches the core.
pub struct WorkerFetch;

impl HttpClient for WorkerFetch {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, FetchError> {
        let headers = flatten_pairs(req.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        let answer = promise::settled(&js_send(req.method, &req.url, &headers, req.body, req.timeout_ms)).await.map_err(fetch_error)?;
        let answer: js_sys::Array = answer.unchecked_into();
        let status = answer.get(0).as_f64().unwrap_or(0.0) as u16;
        let cache_control = answer.get(1).as_string().filter(|v| !v.is_empty());
        let body = js_sys::Uint8Array::new(&answer.get(2)).to_vec();
        Ok(HttpResponse { status, headers: cache_control.map(|v| ("cache-control".to_string(), v)).into_iter().collect(), body })
    }
}

/// `send` rejects with the error's name.
fn fetch_error(e: wasm_bindgen::JsValue) -> FetchError {
    let name = e.as_string().unwrap_or_default();
    if name == "TimeoutError" || name == "AbortError" {
        FetchError::Timeout
    } else {
        FetchError::Network(name)
    }
}

fn plain_response(status: u16, headers: &[(String, String)], body: &str) -> worker::Result<web_sys::Response> {
    let h = web_sys::Headers::new()?;
    for (n, v) in headers {
        h.set(n, v)?;
    }
    let init = web_sys::ResponseInit::new();
    init.set_status(status);
    init.set_headers(&h);
    Ok(web_sys::Response::new_with_opt_str_and_init(Some(body), &init)?)
}

fn refusal_response(realm: &str, refusal: &Refusal) -> worker::Result<web_sys::Response> {
    let r = refusal.to_response(realm);
    plain_response(r.status, &r.headers, &r.body)
}

/// The worker's `fetch` handler, exported directly rather than through `#[event(fetch)]`: the
/// macro's `worker::Request` conversion reads `method`, `url`, `headers` and the whole `cf`
/// object on every request, and the gateway reads what it needs itself (measured: the `cf`
/// conversion alone was ~2% of the worker's CPU).
///
/// The handler runs under [`drive::to_promise`]: a request decided without I/O (a cached
/// token, a public route, a refusal) is answered in this call, and one that waits on Redis, a
/// JWKS or WebCrypto resumes in the microtask in which that promise settled.
///
/// `js/entry.js` calls it with what it already read of the request (`readRequest` in
/// `js/runtime.js`): `head`, the request in the core's one-string form (`RequestHead::from_flat`,
/// every header but `cf-ray`), `request_id` (`cf-ray` when usable, else random) and `started`
/// (`Date.now()`), after trying to replay an earlier decision for the same head.
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn fetch(req: web_sys::Request, env: Env, ctx: worker::worker_sys::Context, head: String, request_id: String, started: f64) -> js_sys::Promise {
    drive::to_promise(async move { settle(handle(req, env, Context::new(ctx), head, request_id, started).await) })
}

/// The handler's answer (a `Response`, or a promise of one) or, on an internal error, a 500.
fn settle(answer: worker::Result<wasm_bindgen::JsValue>) -> wasm_bindgen::JsValue {
    answer.unwrap_or_else(|e| {
        worker::console_error!("{}", e);
        refusal_response("edge-auth", &Refusal::new(Reason::Internal)).map(Into::into).unwrap_or(wasm_bindgen::JsValue::NULL)
    })
}

async fn handle(raw: web_sys::Request, env: Env, ctx: Context, flat_head: String, rid: String, started: f64) -> worker::Result<wasm_bindgen::JsValue> {
    let gw = gateway(&env);
    let gw = match gw.as_ref() {
        Ok(gw) => gw,
        Err(err) => {
            // The field and message go to the log; the client sees a generic 500.
            let mut log = RequestLog::new("-", &raw.method(), "");
            log.refused(&Refusal::new(Reason::ConfigInvalid));
            log.config_error = Some(err.to_string());
            log.total_ms = now_ms() - started;
            worker::console_log!("{}", log.to_json());
            return Ok(refusal_response("edge-auth", &Refusal::new(Reason::ConfigInvalid))?.into());
        }
    };
    let Some(head) = RequestHead::from_flat(&flat_head) else {
        return Ok(refusal_response(gw.realm(), &Refusal::new(Reason::MalformedRequest))?.into());
    };
    if gw.selftest_enabled() && head.path == SELFTEST_PATH && head.method == "POST" {
        return Ok(selftest(&raw, head.query.as_deref().unwrap_or("")).await?.into());
    }
    let now = (started / 1000.0) as u64;
    let crypto = CRYPTO.with(|c| c.clone());
    let req = Incoming { head: &head, now, request_id: &rid, client_ip: head.header("cf-connecting-ip") };
    let Decision { outcome, mut log, background, replayable, forgets_replays } =
        gw.decide(req, &Io { crypto: &*crypto, http: &WorkerFetch, clock: &now_ms }).await;
    if forgets_replays {
        js_forget_decisions()?;
    }
    if !background.is_empty() {
        let verifier = gw.verifier();
        ctx.wait_until(async move {
            for r in background.requests {
                let _ = WorkerFetch.send(r).await;
            }
            for j in background.jwks {
                let _ = verifier.run_background_refresh(&j, now, &WorkerFetch).await;
            }
        });
    }
    let analytics = analytics_bound(&env);
    let result = match outcome {
        Outcome::Refuse(refusal) => refusal_response(gw.realm(), &refusal),
        Outcome::Serve { status, body } => plain_response(
            status,
            &[("content-type".into(), "application/json".into()), ("cache-control".into(), "no-store".into())],
            &body,
        ),
        Outcome::Forward(plan) if !analytics && !gw.server_timing() => {
            // The common case: the runtime sends the request on and completes the log line
            // when the origin answers; nothing here waits for the origin.
            let (remove, set) = plan_wire(&plan);
            let log_mode = match gw.log_requests() {
                LogRequests::None => 0,
                LogRequests::Refusals => 1,
                LogRequests::All => 2,
            };
            if replayable {
                remember(&flat_head, now, &plan, &remove, &log, &gw.request_id_header(), log_mode);
            }
            return Ok(js_forward_and_log(&raw, &plan.url, &remove, &set, &log.json_head(), started, log_mode)?.into());
        }
        Outcome::Forward(plan) => {
            let origin_started = now_ms();
            let sent = forward(&raw, &plan).await;
            log.origin_ms = Some(now_ms() - origin_started);
            match sent {
                Ok(resp) => {
                    log.status = resp.status();
                    Ok(resp)
                }
                Err(_) => {
                    let refusal = Refusal::new(Reason::OriginUnreachable);
                    log.refused(&refusal);
                    refusal_response(gw.realm(), &refusal)
                }
            }
        }
    };
    log.total_ms = now_ms() - started;
    if gw.log_requests().wants(&log) {
        worker::console_log!("{}", log.to_json());
    }
    if analytics {
        record_analytics(&env, &log);
    }
    let resp = match result {
        Ok(resp) if gw.server_timing() => with_header(resp, "server-timing", &log.server_timing()),
        other => other,
    }?;
    Ok(resp.into())
}

/// Whether an Analytics Engine dataset is bound as `AUTH_ANALYTICS` (fixed per deployment:
/// looked up once per isolate).
fn analytics_bound(env: &Env) -> bool {
    ANALYTICS_BOUND.with(|b| *b.get_or_init(|| env.analytics_engine("AUTH_ANALYTICS").is_ok()))
}

/// Writes one data point per request to the Workers Analytics Engine dataset bound as
/// `AUTH_ANALYTICS`, when it is bound: index = rule; blobs = decision, reason, rule,
/// credential; doubles = status, total ms, Redis round trips.
fn record_analytics(env: &Env, log: &RequestLog) {
    let Ok(dataset) = env.analytics_engine("AUTH_ANALYTICS") else { return };
    let rule = log.rule.as_deref().unwrap_or("-");
    let _ = worker::AnalyticsEngineDataPointBuilder::new()
        .indexes([rule])
        .blobs([log.decision, log.reason.unwrap_or("-"), rule, log.credential.unwrap_or("-")])
        .doubles([f64::from(log.status), log.total_ms, f64::from(log.redis_round_trips.unwrap_or(0))])
        .write_to(&dataset);
}

/// The origin's response with one more header (its own headers are immutable).
fn with_header(resp: web_sys::Response, name: &str, value: &str) -> worker::Result<web_sys::Response> {
    let headers = web_sys::Headers::new_with_headers(&resp.headers())?;
    headers.set(name, value)?;
    let init = web_sys::ResponseInit::new();
    init.set_status(resp.status());
    init.set_status_text(&resp.status_text());
    init.set_headers(&headers);
    Ok(web_sys::Response::new_with_opt_readable_stream_and_init(resp.body().as_ref(), &init)?)
}

/// `POST /__edge-auth/vectors?kind=wycheproof|rfc7520&name=<file stem>` with the vector file as
/// the body: runs it through the production verifier (WebCrypto) and answers the report.
/// Only when `SELFTEST_ENDPOINT=true`.
async fn selftest(raw: &web_sys::Request, query: &str) -> worker::Result<web_sys::Response> {
    let param = |k: &str| query.split('&').find_map(|kv| kv.strip_prefix(k).and_then(|r| r.strip_prefix('='))).unwrap_or("");
    let text = promise::settled(&raw.text()?).await?.as_string().unwrap_or_default();
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(&text) else {
        return plain_response(400, &[], "body is not JSON");
    };
    let crypto = CRYPTO.with(|c| c.clone());
    let name = param("name");
    let report = if param("kind") == "rfc7520" {
        vectors::run_rfc7520(name, &doc, &*crypto).await
    } else {
        vectors::run_wycheproof(name, &doc, &*crypto).await
    };
    let body = serde_json::json!({
        "summary": report.summary(),
        "valid_ok": report.valid_ok,
        "invalid_rejected": report.invalid_rejected,
        "acceptable_accepted": report.acceptable_accepted,
        "acceptable_rejected": report.acceptable_rejected,
        "deviations": report.deviations,
        "skipped": report.skipped.len(),
        "failures": report.failures,
    });
    plain_response(200, &[("content-type".into(), "application/json".into())], &body.to_string())
}

/// Hands a replayable decision (`Decision::replayable`) to `js/runtime.js`, which reuses it,
/// within the same second, for requests with exactly the same head: the same plan with the
/// replay's own request id, and the same log line marked `replayed`.
fn remember(flat_head: &str, now: u64, plan: &crate::forward::ForwardPlan, remove: &str, log: &RequestLog, rid_header: &str, log_mode: u8) {
    let (Some(set), Some(tail)) = (plan.set_headers_without(rid_header), log.replay_tail()) else { return };
    js_remember_decision(flat_head, now as f64, &plan.url, remove, &flatten_pairs(set), rid_header, &tail, log_mode);
}

/// The plan's deletions and settings in `js/runtime.js`'s wire format.
fn plan_wire(plan: &crate::forward::ForwardPlan) -> (String, String) {
    let remove = plan.remove_headers.iter().filter(|n| !n.contains('\n')).map(String::as_str).collect::<Vec<_>>().join("\n");
    let set = flatten_pairs(plan.set_headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    (remove, set)
}

/// Sends the request on (`originRequest` in `js/runtime.js`: the runtime's own Request reused,
/// body streamed, only the URL and the headers named by the plan changed) and waits for the
/// origin's answer.
async fn forward(orig: &web_sys::Request, plan: &crate::forward::ForwardPlan) -> Result<web_sys::Response, wasm_bindgen::JsValue> {
    let (remove, set) = plan_wire(plan);
    let out = js_origin_request(orig, &plan.url, &remove, &set)?;
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let resp = promise::settled(&global.fetch_with_request(&out)).await?;
    resp.dyn_into()
}
