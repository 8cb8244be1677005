//! A blocking Upstash REST client for the CLI. It builds requests and reads replies with the
//! worker's own code (`edge_auth::revocation::store`), so both speak exactly the same protocol.

use std::time::Duration;

use edge_auth::revocation::store::{parse_pipeline, pipeline_request, StoreError};
use edge_auth::revocation::{Command, Endpoint, RedisValue};
use edge_auth::http::HttpResponse;

/// One Upstash REST endpoint.
pub struct Rest {
    endpoint: Endpoint,
    client: reqwest::blocking::Client,
}

impl Rest {
    /// A client for `url` with bearer `token`; each call times out after `timeout`.
    pub fn new(url: &str, token: &str, timeout: Duration) -> Result<Self, String> {
        let url = Endpoint::parse_url("--url", url).map_err(|e| format!("{}: {}", e.field, e.message))?;
        let client = reqwest::blocking::Client::builder().timeout(timeout).build().map_err(|e| format!("cannot build HTTP client: {e}"))?;
        let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        Ok(Rest { endpoint: Endpoint { url, token: token.to_string(), timeout_ms }, client })
    }

    /// Sends `cmds` as one pipeline and returns one value per command.
    pub fn pipeline(&self, cmds: &[Command]) -> Result<Vec<RedisValue>, String> {
        let req = pipeline_request(&self.endpoint, cmds);
        let mut builder = self.client.post(&req.url);
        for (name, value) in &req.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let resp = builder.body(req.body.unwrap_or_default()).send().map_err(|e| {
            let kind = if e.is_timeout() { "timed out" } else { "unreachable" };
            format!("Upstash REST server at {} {kind}: {}", self.endpoint.url, one_line(&e))
        })?;
        let status = resp.status().as_u16();
        let body = resp.bytes().map_err(|e| format!("reading reply from {}: {}", self.endpoint.url, one_line(&e)))?.to_vec();
        parse_pipeline(&HttpResponse { status, headers: vec![], body }, cmds.len()).map_err(|e| match e {
            StoreError::Unauthorized => format!("Upstash REST server at {} refused the token (HTTP 401): check --token / UPSTASH_REDIS_REST_TOKEN", self.endpoint.url),
            other => other.to_string(),
        })
    }

    /// Sends one command and returns its value.
    pub fn one(&self, cmds: Vec<Command>) -> Result<RedisValue, String> {
        self.pipeline(&cmds)?.into_iter().next().ok_or_else(|| "empty reply".to_string())
    }
}

fn one_line(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s.replace('\n', " ")
}
