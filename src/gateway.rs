//! The filter: given a request head, decide to forward it (with a plan) or to refuse it.
//! Ok(plan) forwards, Err(refusal) answers — the glue only carries the decision out.

use crate::error::Refusal;
use crate::http::{HttpClient, RequestHead};
use crate::log::RequestLog;
use crate::vars::{get_trimmed, ConfigError, Vars};

/// Exactly what reaches the origin: the URL, and the header edits applied to the client's headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardPlan {
    pub url: String,
    pub remove_headers: Vec<String>,
    pub set_headers: Vec<(String, String)>,
}

/// What the glue must do with the request.
#[derive(Debug)]
pub enum Outcome {
    Forward(ForwardPlan),
    Respond(Refusal),
}

/// Per-isolate gateway: validated configuration and caches.
pub struct Gateway {
    origin: String,
    realm: String,
}

impl Gateway {
    pub fn from_vars(vars: &dyn Vars) -> Result<Gateway, ConfigError> {
        let origin = get_trimmed(vars, "ORIGIN_URL").ok_or_else(|| ConfigError::new("ORIGIN_URL", "is required"))?;
        if RequestHead::split_url(&origin).is_none() {
            return Err(ConfigError::new("ORIGIN_URL", "must be an absolute http(s) URL"));
        }
        let realm = get_trimmed(vars, "AUTH_REALM").unwrap_or_else(|| "edge-auth".to_string());
        Ok(Gateway { origin: origin.trim_end_matches('/').to_string(), realm })
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    pub async fn decide<H: HttpClient>(&self, head: &RequestHead, _now: u64, _client_ip: Option<&str>, _http: &H) -> (Outcome, RequestLog) {
        let log = RequestLog::new("-", &head.method, &head.path);
        let mut url = format!("{}{}", self.origin, head.path);
        if let Some(q) = &head.query {
            url.push('?');
            url.push_str(q);
        }
        (Outcome::Forward(ForwardPlan { url, remove_headers: vec![], set_headers: vec![] }), log)
    }
}
