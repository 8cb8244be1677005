//! One structured JSON log line per request. It carries ids and decisions, never a token, a
//! secret or a full claim set.

use serde::Serialize;

use crate::error::Refusal;

/// The per-request log record, printed by the glue as one JSON line.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RequestLog {
    pub request_id: String,
    pub method: String,
    /// Path only: the query may carry a credential.
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// `forward`, `refuse`, `serve` (answered by the edge itself, e.g. its JWKS or a logout).
    pub decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin_ms: Option<f64>,
    pub total_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_cache_hit: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocation: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_round_trips: Option<u32>,
    /// Set only when the configuration is invalid: names the field, never a secret value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_error: Option<String>,
}

impl RequestLog {
    pub fn new(request_id: &str, method: &str, path: &str) -> Self {
        RequestLog {
            request_id: request_id.to_string(),
            method: method.to_string(),
            path: path.chars().take(256).collect(),
            decision: "forward",
            ..Default::default()
        }
    }

    /// Records a refusal (decision, reason id and status).
    pub fn refused(&mut self, refusal: &Refusal) {
        self.decision = "refuse";
        self.reason = Some(refusal.reason.id());
        self.status = refusal.reason.status();
    }

    /// The `Server-Timing` header value for this request (durations in milliseconds).
    pub fn server_timing(&self) -> String {
        let mut parts = Vec::new();
        for (name, v) in [("verify", self.verify_ms), ("redis", self.redis_ms), ("origin", self.origin_ms)] {
            if let Some(ms) = v {
                parts.push(format!("{name};dur={ms}"));
            }
        }
        parts.push(format!("total;dur={}", self.total_ms));
        parts.join(", ")
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string())
    }
}
