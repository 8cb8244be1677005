//! `test-origin`: an HTTP origin for tests that answers every request with what it received.
//!
//! Every request (any method, any path) gets `200 application/json`:
//!
//! ```json
//! {"method": "POST", "path": "/a/b", "query": "x=1" | null,
//!  "headers": [["host", "…"], ["x-a", "1"], ["x-a", "2"]],
//!  "body_length": 1048576, "body_sha256": "<hex>"}
//! ```
//!
//! Header names are lower-case; duplicates are kept. Order: hyper groups repeated names at the
//! first occurrence of the name, so `a, b, a` is reported as `a, a, b`. The body is read streamed
//! (chunked or by length) and only hashed, never held whole.
//!
//! `GET /__origin/status/<code>` answers with that status instead (same JSON body), for tests of
//! how the gateway passes origin errors through.
//!
//! When ready it prints exactly one line `LISTENING http://<addr>` to stdout. It exits cleanly on
//! SIGINT or SIGTERM.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::Write;
use tokio::net::TcpListener;

/// Command line of `test-origin`.
#[derive(Parser, Debug)]
#[command(about = "HTTP origin for tests: answers every request with a JSON description of it")]
struct Args {
    /// Address to listen on; port 0 picks a free port. Default: 127.0.0.1:0.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
}

/// What the origin saw, as serialized in every answer.
#[derive(Serialize)]
struct Echo {
    method: String,
    path: String,
    query: Option<String>,
    headers: Vec<(String, String)>,
    body_length: u64,
    body_sha256: String,
}

/// Answers one request with its description; a body read error answers 400.
async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, mut body) = req.into_parts();
    let headers = parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let mut hasher = Sha256::new();
    let mut length: u64 = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    hasher.update(data);
                    length += data.len() as u64;
                }
            }
            Err(e) => {
                return Ok(json_response(StatusCode::BAD_REQUEST, format!("{{\"error\":\"body read failed: {}\"}}", json_escape(&e.to_string()))));
            }
        }
    }
    let path = parts.uri.path().to_string();
    let status = requested_status(&parts.method, &path).unwrap_or(StatusCode::OK);
    let echo = Echo {
        method: parts.method.as_str().to_string(),
        path,
        query: parts.uri.query().map(str::to_string),
        headers,
        body_length: length,
        body_sha256: hex::encode(hasher.finalize()),
    };
    let body = serde_json::to_string(&echo).unwrap_or_else(|_| "{}".to_string());
    Ok(json_response(status, body))
}

/// `GET /__origin/status/<code>` asks for that status; anything else is `None`.
fn requested_status(method: &hyper::Method, path: &str) -> Option<StatusCode> {
    if method != hyper::Method::GET {
        return None;
    }
    let code = path.strip_prefix("/__origin/status/")?;
    code.parse::<u16>().ok().and_then(|c| StatusCode::from_u16(c).ok())
}

fn json_escape(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted.trim_matches('"').to_string()
}

fn json_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    resp
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let listener = TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "LISTENING http://{addr}")?;
        out.flush()?;
    }
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        eprintln!("test-origin: accept failed: {e}");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service_fn(handle));
                    if let Err(e) = conn.await {
                        if !e.is_incomplete_message() {
                            eprintln!("test-origin: connection error: {e}");
                        }
                    }
                });
            }
        }
    }
    eprintln!("test-origin: shutting down");
    Ok(())
}
