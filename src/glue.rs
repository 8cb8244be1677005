//! The one file that names the `worker` crate: it reads config once per isolate, wires
//! `fetch` and WebCrypto behind the core's traits, runs the gateway, and either sends the
//! request on to the origin or answers with the gateway's refusal.

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use worker::{event, Context, Env};

use crate::error::{Reason, Refusal};
use crate::gateway::{Gateway, Outcome};
use crate::http::{FetchError, HttpClient, HttpRequest, HttpResponse, RequestHead};
use crate::log::RequestLog;
use crate::vars::{ConfigError, Vars};

thread_local! {
    /// Parsed once per isolate; a bad config stays bad until the next deploy.
    static GATEWAY: RefCell<Option<Rc<Result<Gateway, ConfigError>>>> = const { RefCell::new(None) };
}

struct EnvVars<'a>(&'a Env);

impl Vars for EnvVars<'_> {
    fn get(&self, name: &str) -> Option<String> {
        // Secrets and plain vars are both string bindings.
        self.0.var(name).ok().map(|v| v.to_string())
    }
}

fn gateway(env: &Env) -> Rc<Result<Gateway, ConfigError>> {
    GATEWAY.with(|cell| {
        cell.borrow_mut()
            .get_or_insert_with(|| Rc::new(Gateway::from_vars(&EnvVars(env))))
            .clone()
    })
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// Outbound HTTP through the runtime's `fetch`, with a timeout.
pub struct WorkerFetch;

impl HttpClient for WorkerFetch {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, FetchError> {
        let init = web_sys::RequestInit::new();
        init.set_method(req.method);
        let headers = web_sys::Headers::new().map_err(|_| FetchError::Network("headers".into()))?;
        for (n, v) in &req.headers {
            headers.set(n, v).map_err(|_| FetchError::Network("header value".into()))?;
        }
        init.set_headers(&headers);
        if let Some(body) = &req.body {
            let arr = js_sys::Uint8Array::from(body.as_slice());
            init.set_body(&arr);
        }
        init.set_signal(Some(&web_sys::AbortSignal::timeout_with_u32(req.timeout_ms)));
        let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
        let resp = match JsFuture::from(global.fetch_with_str_and_init(&req.url, &init)).await {
            Ok(r) => r,
            Err(e) => return Err(fetch_error(e)),
        };
        let resp: web_sys::Response = resp.dyn_into().map_err(|_| FetchError::Network("not a response".into()))?;
        let mut out_headers = Vec::new();
        if let Ok(Some(iter)) = js_sys::try_iter(&resp.headers()) {
            for entry in iter.flatten() {
                let pair: js_sys::Array = entry.unchecked_into();
                out_headers.push((
                    pair.get(0).as_string().unwrap_or_default(),
                    pair.get(1).as_string().unwrap_or_default(),
                ));
            }
        }
        let buf = resp.array_buffer().map_err(|_| FetchError::Network("body".into()))?;
        let buf = JsFuture::from(buf).await.map_err(fetch_error)?;
        let body = js_sys::Uint8Array::new(&buf).to_vec();
        Ok(HttpResponse { status: resp.status(), headers: out_headers, body })
    }
}

fn fetch_error(e: wasm_bindgen::JsValue) -> FetchError {
    let name = js_sys::Reflect::get(&e, &"name".into()).ok().and_then(|v| v.as_string()).unwrap_or_default();
    if name == "TimeoutError" || name == "AbortError" {
        FetchError::Timeout
    } else {
        FetchError::Network(name)
    }
}

/// Reads what the core may see of the request: one pass over the headers.
fn request_head(req: &web_sys::Request) -> Option<RequestHead> {
    let (scheme, host, path, query) = RequestHead::split_url(&req.url())?;
    let mut headers = Vec::new();
    let iter = js_sys::try_iter(&req.headers()).ok()??;
    for entry in iter.flatten() {
        let pair: js_sys::Array = entry.unchecked_into();
        // The runtime gives lower-case names and joins repeated headers with ", ".
        headers.push((pair.get(0).as_string()?, pair.get(1).as_string()?));
    }
    Some(RequestHead { method: req.method(), scheme, host, path, query, headers })
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

fn refusal_response(gw: Option<&Gateway>, refusal: &Refusal) -> worker::Result<web_sys::Response> {
    let realm = gw.map(|g| g.realm()).unwrap_or("edge-auth");
    let r = refusal.to_response(realm);
    plain_response(r.status, &r.headers, &r.body)
}

#[event(fetch)]
async fn fetch(req: worker::Request, env: Env, _ctx: Context) -> worker::Result<web_sys::Response> {
    let started = now_ms();
    let raw: &web_sys::Request = req.inner();
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
            return refusal_response(None, &Refusal::new(Reason::ConfigInvalid));
        }
    };
    let Some(head) = request_head(raw) else {
        return refusal_response(Some(gw), &Refusal::new(Reason::MalformedRequest));
    };
    let client_ip = head.header("cf-connecting-ip").map(str::to_string);
    let now = (started / 1000.0) as u64;
    let (outcome, mut log) = gw.decide(&head, now, client_ip.as_deref(), &WorkerFetch).await;
    let result = match outcome {
        Outcome::Respond(refusal) => refusal_response(Some(gw), &refusal),
        Outcome::Forward(plan) => {
            let origin_started = now_ms();
            let sent = forward(raw, &plan).await;
            log.origin_ms = Some(now_ms() - origin_started);
            match sent {
                Ok(resp) => {
                    log.status = resp.status();
                    Ok(resp)
                }
                Err(_) => {
                    let refusal = Refusal::new(Reason::OriginUnreachable);
                    log.refused(&refusal);
                    refusal_response(Some(gw), &refusal)
                }
            }
        }
    };
    log.total_ms = now_ms() - started;
    worker::console_log!("{}", log.to_json());
    result
}

/// Sends the request on: the runtime's own Request is reused (body streamed, never buffered),
/// only the URL and the headers named by the plan change.
async fn forward(orig: &web_sys::Request, plan: &crate::gateway::ForwardPlan) -> Result<web_sys::Response, wasm_bindgen::JsValue> {
    let headers = web_sys::Headers::new_with_headers(&orig.headers())?;
    for name in &plan.remove_headers {
        headers.delete(name)?;
    }
    for (name, value) in &plan.set_headers {
        headers.set(name, value)?;
    }
    let init = web_sys::RequestInit::new();
    let method = orig.method();
    init.set_method(&method);
    init.set_headers(&headers);
    init.set_redirect(web_sys::RequestRedirect::Manual);
    if method != "GET" && method != "HEAD" {
        if let Some(body) = orig.body() {
            init.set_body(&body);
        }
    }
    let out = web_sys::Request::new_with_str_and_init(&plan.url, &init)?;
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let resp = JsFuture::from(global.fetch_with_request(&out)).await?;
    resp.dyn_into()
}
