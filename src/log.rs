//! One structured JSON log line per request. It carries ids and decisions, never a token, a
//! secret or a full claim set.

use serde::Serialize;

use crate::error::Refusal;
use crate::vars::{get_trimmed, ConfigError, Vars};

/// `LOG_REQUESTS`: which requests get a log line. Each line costs CPU (5–12 µs under workerd,
/// bench/) and, on Workers Logs, a billed event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogRequests {
    /// `all` (default): every request.
    #[default]
    All,
    /// `refusals`: only refused requests (including an unreachable origin) and configuration
    /// errors; forwarded and edge-served requests are not logged.
    Refusals,
    /// `none`: only configuration errors.
    None,
}

impl LogRequests {
    pub fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        match get_trimmed(vars, "LOG_REQUESTS").map(|v| v.to_ascii_lowercase()).as_deref() {
            None | Some("all") => Ok(LogRequests::All),
            Some("refusals") => Ok(LogRequests::Refusals),
            Some("none") => Ok(LogRequests::None),
            Some(other) => Err(ConfigError::new("LOG_REQUESTS", format!("expected all, refusals or none, got {other:?}"))),
        }
    }

    /// Whether a request that ended with `log.decision` gets its line.
    pub fn wants(self, log: &RequestLog) -> bool {
        match self {
            LogRequests::All => true,
            LogRequests::Refusals => log.decision == "refuse",
            LogRequests::None => false,
        }
    }
}

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
    /// Written last, with `reason`, `status`, `origin_ms` and `total_ms` (see [`Self::to_json`]).
    #[serde(skip)]
    pub decision: &'static str,
    #[serde(skip)]
    pub reason: Option<&'static str>,
    #[serde(skip)]
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_ms: Option<f64>,
    #[serde(skip)]
    pub origin_ms: Option<f64>,
    #[serde(skip)]
    pub total_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_cache_hit: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocation: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_round_trips: Option<u32>,
    /// `true` when the request was answered by replaying an earlier decision for the same
    /// request head in the same second (`js/runtime.js`, `replay`), without entering wasm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replayed: Option<bool>,
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

    /// The whole line: [`Self::json_head`] then `decision`, `reason` (if any), `status`,
    /// `origin_ms` (if any) and `total_ms`.
    pub fn to_json(&self) -> String {
        let mut line = self.json_head();
        line.push_str(&format!("\"decision\":\"{}\",", self.decision));
        if let Some(reason) = self.reason {
            line.push_str(&format!("\"reason\":\"{reason}\","));
        }
        line.push_str(&format!("\"status\":{},", self.status));
        if let Some(ms) = self.origin_ms {
            line.push_str(&format!("\"origin_ms\":{},", finite(ms)));
        }
        line.push_str(&format!("\"total_ms\":{}}}", finite(self.total_ms)));
        line
    }

    /// The line without its closing fields, ending in `,`: what is known before the origin
    /// answers. `js/runtime.js` (`forwardAndLog`) completes it the way [`Self::to_json`] does.
    pub fn json_head(&self) -> String {
        let mut head = serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string());
        head.pop();
        if head.len() > 1 {
            head.push(',');
        }
        head
    }

    /// The log head of a replay of this decision without its first field: [`Self::json_head`]
    /// with `replayed: true`, minus the leading `{"request_id":"…",`, which the replay writes
    /// with its own request id. `None` if the line does not start that way.
    pub fn replay_tail(&self) -> Option<String> {
        let mut replay = self.clone();
        replay.replayed = Some(true);
        let head = replay.json_head();
        let prefix = format!("{{\"request_id\":{},", serde_json::to_string(&self.request_id).ok()?);
        head.strip_prefix(&prefix).map(str::to_string)
    }
}

/// A duration as JSON can carry it (NaN and infinities are not JSON numbers).
fn finite(ms: f64) -> f64 {
    if ms.is_finite() { ms } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Reason;
    use serde_json::Value;

    fn sample() -> RequestLog {
        let mut log = RequestLog::new("rid", "GET", "/a");
        log.rule = Some("api".into());
        log.subject = Some("alice".into());
        log.redis_round_trips = Some(1);
        log.status = 200;
        log.origin_ms = Some(3.0);
        log.total_ms = 5.5;
        log
    }

    #[test]
    fn log_requests_reads_its_three_values_and_names_itself_when_wrong() {
        let vars = |v: &str| std::collections::HashMap::from([("LOG_REQUESTS".to_string(), v.to_string())]);
        let none: std::collections::HashMap<String, String> = Default::default();
        assert_eq!(LogRequests::from_vars(&none).unwrap(), LogRequests::All);
        assert_eq!(LogRequests::from_vars(&vars("Refusals")).unwrap(), LogRequests::Refusals);
        assert_eq!(LogRequests::from_vars(&vars("none")).unwrap(), LogRequests::None);
        assert_eq!(LogRequests::from_vars(&vars("some")).unwrap_err().field, "LOG_REQUESTS");
        let mut log = sample();
        assert!(LogRequests::All.wants(&log) && !LogRequests::Refusals.wants(&log) && !LogRequests::None.wants(&log));
        log.refused(&Refusal::new(Reason::Revoked));
        assert!(LogRequests::Refusals.wants(&log) && !LogRequests::None.wants(&log));
    }

    #[test]
    fn the_line_is_one_json_object_with_every_field() {
        let v: Value = serde_json::from_str(&sample().to_json()).unwrap();
        assert_eq!(v["request_id"], "rid");
        assert_eq!(v["rule"], "api");
        assert_eq!(v["decision"], "forward");
        assert_eq!(v["status"], 200);
        assert_eq!(v["origin_ms"], 3.0);
        assert_eq!(v["total_ms"], 5.5);
        assert_eq!(v["redis_round_trips"], 1);
        assert!(v.get("reason").is_none());
    }

    #[test]
    fn a_refusal_carries_its_reason_and_status() {
        let mut log = sample();
        log.refused(&Refusal::new(Reason::Revoked));
        log.origin_ms = None;
        log.total_ms = f64::NAN;
        let v: Value = serde_json::from_str(&log.to_json()).unwrap();
        assert_eq!(v["decision"], "refuse");
        assert_eq!(v["reason"], Reason::Revoked.id());
        assert_eq!(v["status"], Reason::Revoked.status());
        assert!(v.get("origin_ms").is_none());
        assert_eq!(v["total_ms"], 0.0);
    }

    #[test]
    fn the_head_completed_as_runtime_js_does_is_the_same_object() {
        let log = sample();
        // What js/runtime.js forwardAndLog appends.
        let line = format!("{}\"decision\":\"forward\",\"status\":200,\"origin_ms\":3,\"total_ms\":5.5}}", log.json_head());
        let from_js: Value = serde_json::from_str(&line).unwrap();
        let from_rust: Value = serde_json::from_str(&log.to_json()).unwrap();
        assert_eq!(from_js.as_object().unwrap().len(), from_rust.as_object().unwrap().len());
        for (k, v) in from_rust.as_object().unwrap() {
            match v.as_f64() {
                Some(n) => assert_eq!(from_js[k].as_f64(), Some(n), "{k}"),
                None => assert_eq!(&from_js[k], v, "{k}"),
            }
        }
        assert!(log.json_head().ends_with(','));
    }

    #[test]
    fn a_replay_line_is_the_same_object_with_its_own_id_and_replayed_true() {
        let log = sample();
        let tail = log.replay_tail().unwrap();
        // What js/runtime.js replay writes: the new id as JSON, then the tail, then the close.
        let id = "\"ray-\\\"-2\"";
        let line = format!("{{\"request_id\":{id},{tail}\"decision\":\"forward\",\"status\":200,\"origin_ms\":3,\"total_ms\":5.5}}");
        let v: Value = serde_json::from_str(&line).unwrap();
        let mut expected: Value = serde_json::from_str(&log.to_json()).unwrap();
        expected["request_id"] = "ray-\"-2".into();
        expected["replayed"] = true.into();
        assert_eq!(v, expected);
        assert!(!tail.contains("\"rid\""), "{tail}");
    }
}
