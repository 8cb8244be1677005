//! The HTTP side: routing, authentication, body limits and responses.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value as Json};

use super::auth::TokenCheck;
use super::backend::{Backend, BackendError, TransactionOutcome};
use super::command::{parse_batch, parse_single, Command};
use super::fault::{Fault, FaultSwitch};
use super::reply::{entry, error_text, top_level, Encoding};
use super::stats::Stats;

/// Time allowed to receive a request body once its headers arrived.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How much of an oversized body is read and discarded before giving up on the connection.
const DRAIN_CAP_BYTES: usize = 64 * 1024 * 1024;

/// Everything a request handler needs, shared by all connections.
pub struct App {
    /// The Bearer-token check.
    pub token: TokenCheck,
    /// The Redis pool.
    pub backend: Backend,
    /// Request and command counters.
    pub stats: Arc<Stats>,
    /// The injected fault (only changeable when `admin` is true).
    pub fault: FaultSwitch,
    /// Whether `/__stats` and `/__fault` exist.
    pub admin: bool,
    /// Largest accepted body in bytes.
    pub max_body_bytes: usize,
}

/// Which data endpoint a request is for.
#[derive(Clone, Copy)]
enum Endpoint {
    Single,
    Pipeline,
    MultiExec,
}

/// Which admin endpoint a request is for.
#[derive(Clone, Copy)]
enum AdminEndpoint {
    Stats,
    StatsReset,
    Fault,
}

type Reply = Response<Full<Bytes>>;

/// Serves one HTTP request. Never fails: every problem becomes a JSON error response.
pub async fn handle(app: Arc<App>, request: Request<Incoming>) -> Result<Reply, Infallible> {
    let path = request.uri().path();
    let data = match path {
        "/" => Some(Endpoint::Single),
        "/pipeline" => Some(Endpoint::Pipeline),
        "/multi-exec" => Some(Endpoint::MultiExec),
        _ => None,
    };
    if let Some(endpoint) = data {
        if request.method() != Method::POST {
            return Ok(method_not_allowed("POST"));
        }
        app.stats.add_request();
        if !authorized(&app, &request) {
            return Ok(unauthorized());
        }
        return Ok(serve_data(&app, endpoint, request).await);
    }
    let admin = match (app.admin, path) {
        (true, "/__stats") => Some((AdminEndpoint::Stats, Method::GET, "GET")),
        (true, "/__stats/reset") => Some((AdminEndpoint::StatsReset, Method::POST, "POST")),
        (true, "/__fault") => Some((AdminEndpoint::Fault, Method::POST, "POST")),
        _ => None,
    };
    match admin {
        Some((endpoint, method, allow)) => {
            if request.method() != method {
                return Ok(method_not_allowed(allow));
            }
            if !authorized(&app, &request) {
                return Ok(unauthorized());
            }
            Ok(serve_admin(&app, endpoint, request).await)
        }
        None => Ok(error(StatusCode::NOT_FOUND, "ERR not found")),
    }
}

fn authorized(app: &App, request: &Request<Incoming>) -> bool {
    app.token.allows(request.headers(), request.uri().query())
}

async fn serve_data(app: &App, endpoint: Endpoint, request: Request<Incoming>) -> Reply {
    let fault = app.fault.get();
    if let Some(delay) = fault.delay() {
        tokio::time::sleep(delay).await;
    }
    match fault {
        Fault::Status { status } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return error(status, "ERR injected fault");
        }
        Fault::Garbage => return garbage(),
        Fault::None | Fault::Delay { .. } => {}
    }
    let encoding = Encoding::from_header(request.headers().get("upstash-encoding").map(HeaderValue::as_bytes));
    let body = match read_body(app, request).await {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    match endpoint {
        Endpoint::Single => single(app, &body, encoding).await,
        Endpoint::Pipeline => pipeline(app, &body, encoding).await,
        Endpoint::MultiExec => multi_exec(app, &body, encoding).await,
    }
}

async fn single(app: &App, body: &[u8], encoding: Encoding) -> Reply {
    let command = match parse_single(body) {
        Ok(command) => command,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.message()),
    };
    if let Some(refusal) = command.refusal() {
        return error(StatusCode::BAD_REQUEST, &refusal);
    }
    match app.backend.run_one(&command).await {
        Ok(value) => match error_text(&value) {
            Some(text) => error(StatusCode::BAD_REQUEST, &text),
            None => json_response(StatusCode::OK, &json!({ "result": top_level(value, encoding) })),
        },
        Err(e) => unavailable(&e),
    }
}

async fn pipeline(app: &App, body: &[u8], encoding: Encoding) -> Reply {
    let commands = match parse_batch(body) {
        Ok(commands) => commands,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.message()),
    };
    // Refused commands get their error in place; the others run in one round trip.
    let runnable: Vec<Command> = commands.iter().filter(|c| c.refusal().is_none()).cloned().collect();
    let mut replies = if runnable.is_empty() {
        Vec::new().into_iter()
    } else {
        match app.backend.run_pipeline(&runnable).await {
            Ok(replies) => replies.into_iter(),
            Err(e) => return unavailable(&e),
        }
    };
    let entries: Vec<Json> = commands
        .iter()
        .map(|command| match command.refusal() {
            Some(refusal) => json!({ "error": refusal }),
            None => entry(replies.next().unwrap_or(redis::Value::Nil), encoding),
        })
        .collect();
    json_response(StatusCode::OK, &Json::Array(entries))
}

async fn multi_exec(app: &App, body: &[u8], encoding: Encoding) -> Reply {
    let commands = match parse_batch(body) {
        Ok(commands) => commands,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.message()),
    };
    if let Some(refusal) = commands.iter().find_map(Command::refusal) {
        return error(StatusCode::BAD_REQUEST, &refusal);
    }
    match app.backend.run_transaction(&commands).await {
        Ok(TransactionOutcome::Committed(replies)) => {
            let entries: Vec<Json> = replies.into_iter().map(|r| entry(r, encoding)).collect();
            json_response(StatusCode::OK, &Json::Array(entries))
        }
        Ok(TransactionOutcome::Discarded(why)) => error(StatusCode::BAD_REQUEST, &why),
        Err(e) => unavailable(&e),
    }
}

async fn serve_admin(app: &App, endpoint: AdminEndpoint, request: Request<Incoming>) -> Reply {
    match endpoint {
        AdminEndpoint::Stats => json_response(StatusCode::OK, &app.stats.to_json()),
        AdminEndpoint::StatsReset => {
            app.stats.reset();
            json_response(StatusCode::OK, &json!({ "result": "OK" }))
        }
        AdminEndpoint::Fault => {
            let body = match read_body(app, request).await {
                Ok(body) => body,
                Err(reply) => return reply,
            };
            match Fault::parse(&body) {
                Ok(fault) => {
                    app.fault.set(fault);
                    eprintln!("upstash-rest-server: fault set to {fault:?}");
                    json_response(StatusCode::OK, &json!({ "result": "OK" }))
                }
                Err(why) => error(StatusCode::BAD_REQUEST, &format!("ERR {why}")),
            }
        }
    }
}

/// Reads the whole body, refusing more than `max_body_bytes` (413) and slow senders (408).
/// An oversized body is read on and thrown away (up to [`DRAIN_CAP_BYTES`]) so that the
/// client, still writing, receives the 413 instead of a broken pipe.
async fn read_body(app: &App, request: Request<Incoming>) -> Result<Bytes, Reply> {
    let limit = app.max_body_bytes;
    let reading = async move {
        let mut body = request.into_body();
        let mut kept = BytesMut::new();
        let mut seen: usize = 0;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                return Err(error(StatusCode::BAD_REQUEST, "ERR could not read the request body"));
            };
            let Ok(data) = frame.into_data() else { continue };
            seen = seen.saturating_add(data.len());
            if seen > limit.saturating_add(DRAIN_CAP_BYTES) {
                break;
            }
            if seen <= limit {
                kept.extend_from_slice(&data);
            }
        }
        if seen > limit {
            Err(error(StatusCode::PAYLOAD_TOO_LARGE, &format!("ERR request body larger than {limit} bytes")))
        } else {
            Ok(kept.freeze())
        }
    };
    match tokio::time::timeout(BODY_READ_TIMEOUT, reading).await {
        Ok(result) => result,
        Err(_) => Err(error(StatusCode::REQUEST_TIMEOUT, "ERR request body not received in time")),
    }
}

fn json_response(status: StatusCode, body: &Json) -> Reply {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{\"error\":\"ERR internal\"}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn error(status: StatusCode, message: &str) -> Reply {
    json_response(status, &json!({ "error": message }))
}

fn unauthorized() -> Reply {
    error(StatusCode::UNAUTHORIZED, "Unauthorized: missing or invalid token")
}

fn method_not_allowed(allow: &'static str) -> Reply {
    let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "ERR method not allowed");
    response.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
    response
}

fn unavailable(e: &BackendError) -> Reply {
    if let BackendError::Refused(text) = e {
        return error(StatusCode::BAD_REQUEST, text);
    }
    eprintln!("upstash-rest-server: {}", e.message());
    error(StatusCode::SERVICE_UNAVAILABLE, &e.message())
}

fn garbage() -> Reply {
    let mut response = Response::new(Full::new(Bytes::from_static(b"<html>502 this is not JSON")));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
