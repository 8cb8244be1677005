//! Speaking the Upstash REST protocol: building one `POST /pipeline` request from a list of
//! commands, and reading its reply (every reply shape, including garbage, maps to a value or to
//! a [`StoreError`]).

use serde_json::Value;

use crate::http::{FetchError, HttpRequest, HttpResponse};

use super::config::Endpoint;

/// One Redis command: its name and arguments, all sent as JSON strings.
pub type Command = Vec<String>;

/// Builds a [`Command`] from anything string-like: `cmd(["GET", &key])`.
pub fn cmd<I, S>(parts: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    parts.into_iter().map(Into::into).collect()
}

/// A Redis reply value as Upstash maps it to JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisValue {
    /// `null` (nil bulk / nil array).
    Nil,
    /// An integer reply.
    Int(i64),
    /// A bulk or simple string.
    Str(String),
    /// An array reply.
    Array(Vec<RedisValue>),
}

impl RedisValue {
    fn from_json(v: &Value) -> Result<Self, StoreError> {
        Ok(match v {
            Value::Null => RedisValue::Nil,
            Value::String(s) => RedisValue::Str(s.clone()),
            Value::Number(n) => RedisValue::Int(n.as_i64().ok_or(StoreError::Malformed("non-integer number"))?),
            Value::Array(items) => RedisValue::Array(items.iter().map(RedisValue::from_json).collect::<Result<_, _>>()?),
            Value::Bool(_) | Value::Object(_) => return Err(StoreError::Malformed("unexpected JSON type in result")),
        })
    }

    /// The value as an integer: an integer reply, or a string holding a decimal integer.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            RedisValue::Int(i) => Some(*i),
            RedisValue::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// The value as a string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            RedisValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Whether this is `Nil`.
    pub fn is_nil(&self) -> bool {
        matches!(self, RedisValue::Nil)
    }

    /// An array of strings (`SMEMBERS`, `ZRANGE`), else `None`.
    pub fn as_strings(&self) -> Option<Vec<String>> {
        match self {
            RedisValue::Array(items) => items.iter().map(|i| i.as_str().map(str::to_string)).collect(),
            _ => None,
        }
    }
}

/// Why the store gave no usable answer. Messages never contain keys, values or the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The REST call timed out.
    Timeout,
    /// The REST server could not be reached.
    Network,
    /// The REST server refused the token (401/403).
    Unauthorized,
    /// The REST server answered with another non-200 status (5xx: it cannot reach Redis).
    Status(u16),
    /// The reply is not the documented shape.
    Malformed(&'static str),
    /// Redis answered a command with an error (`{"error": …}`); the text is Redis's.
    Command(String),
    /// The circuit breaker is open: the store was not called.
    CircuitOpen,
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Timeout => f.write_str("revocation store timed out"),
            StoreError::Network => f.write_str("revocation store unreachable"),
            StoreError::Unauthorized => f.write_str("revocation store refused the REST token (401)"),
            StoreError::Status(s) => write!(f, "revocation store answered HTTP {s}"),
            StoreError::Malformed(what) => write!(f, "revocation store reply malformed: {what}"),
            StoreError::Command(e) => write!(f, "revocation store command error: {}", e.chars().take(120).collect::<String>()),
            StoreError::CircuitOpen => f.write_str("revocation store circuit open"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<FetchError> for StoreError {
    fn from(e: FetchError) -> Self {
        match e {
            FetchError::Timeout => StoreError::Timeout,
            FetchError::Network(_) => StoreError::Network,
        }
    }
}

/// `POST {url}/pipeline` with the commands as a JSON 2-D array: one round trip for all of them.
pub fn pipeline_request(endpoint: &Endpoint, commands: &[Command]) -> HttpRequest {
    let body = serde_json::to_vec(commands).unwrap_or_else(|_| b"[]".to_vec());
    HttpRequest {
        method: "POST",
        url: format!("{}/pipeline", endpoint.url),
        headers: vec![
            ("authorization".to_string(), format!("Bearer {}", endpoint.token)),
            ("content-type".to_string(), "application/json".to_string()),
        ],
        body: Some(body),
        timeout_ms: endpoint.timeout_ms,
    }
}

/// Reads a pipeline reply: exactly `expected` entries, each `{"result": …}`. Any `{"error"}`
/// entry, wrong count, wrong status or garbage is an error.
pub fn parse_pipeline(resp: &HttpResponse, expected: usize) -> Result<Vec<RedisValue>, StoreError> {
    check_status(resp)?;
    let v: Value = serde_json::from_slice(&resp.body).map_err(|_| StoreError::Malformed("not JSON"))?;
    let entries = match v {
        Value::Array(a) => a,
        Value::Object(o) => {
            // A whole-request error such as {"error": "ERR …"}.
            return Err(match o.get("error") {
                Some(Value::String(e)) => StoreError::Command(e.clone()),
                _ => StoreError::Malformed("object instead of array"),
            });
        }
        _ => return Err(StoreError::Malformed("not an array")),
    };
    if entries.len() != expected {
        return Err(StoreError::Malformed("wrong number of results"));
    }
    entries.iter().map(parse_entry).collect()
}

fn parse_entry(entry: &Value) -> Result<RedisValue, StoreError> {
    let obj = entry.as_object().ok_or(StoreError::Malformed("entry is not an object"))?;
    if let Some(e) = obj.get("error") {
        return Err(StoreError::Command(e.as_str().unwrap_or("unknown error").to_string()));
    }
    match obj.get("result") {
        Some(r) => RedisValue::from_json(r),
        None => Err(StoreError::Malformed("entry without result")),
    }
}

fn check_status(resp: &HttpResponse) -> Result<(), StoreError> {
    match resp.status {
        200 => Ok(()),
        401 | 403 => Err(StoreError::Unauthorized),
        s => Err(StoreError::Status(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str) -> HttpResponse {
        HttpResponse { status, headers: vec![], body: body.as_bytes().to_vec() }
    }

    #[test]
    fn builds_one_pipeline_request() {
        let ep = Endpoint { url: "https://r.example".into(), token: "T".into(), timeout_ms: 700 };
        let req = pipeline_request(&ep, &[cmd(["GET", "a"]), cmd(["SET", "b", "1", "EX", "5"])]);
        assert_eq!(req.method, "POST");
        assert_eq!(req.url, "https://r.example/pipeline");
        assert_eq!(req.timeout_ms, 700);
        assert!(req.headers.contains(&("authorization".into(), "Bearer T".into())));
        assert_eq!(String::from_utf8(req.body.unwrap()).unwrap(), r#"[["GET","a"],["SET","b","1","EX","5"]]"#);
    }

    #[test]
    fn parses_every_result_shape() {
        let r = parse_pipeline(&resp(200, r#"[{"result":null},{"result":"1"},{"result":3},{"result":["a",["b",null]]},{"result":"OK"}]"#), 5).unwrap();
        assert_eq!(r[0], RedisValue::Nil);
        assert_eq!(r[1].as_int(), Some(1));
        assert_eq!(r[2], RedisValue::Int(3));
        assert_eq!(r[3], RedisValue::Array(vec![RedisValue::Str("a".into()), RedisValue::Array(vec![RedisValue::Str("b".into()), RedisValue::Nil])]));
        assert_eq!(r[4].as_str(), Some("OK"));
        assert_eq!(RedisValue::Array(vec![RedisValue::Str("x".into())]).as_strings(), Some(vec!["x".to_string()]));
        assert_eq!(RedisValue::Array(vec![RedisValue::Int(1)]).as_strings(), None);
    }

    #[test]
    fn every_failure_shape_is_an_error() {
        let cases: &[(u16, &str, StoreError)] = &[
            (401, r#"{"error":"Unauthorized"}"#, StoreError::Unauthorized),
            (500, "", StoreError::Status(500)),
            (503, r#"[{"result":null}]"#, StoreError::Status(503)),
            (400, r#"{"error":"ERR bad"}"#, StoreError::Status(400)),
            (200, "", StoreError::Malformed("not JSON")),
            (200, "<html>gateway</html>", StoreError::Malformed("not JSON")),
            (200, r#""hello""#, StoreError::Malformed("not an array")),
            (200, r#"{"error":"ERR max requests limit exceeded"}"#, StoreError::Command("ERR max requests limit exceeded".into())),
            (200, r#"{"result":1}"#, StoreError::Malformed("object instead of array")),
            (200, r#"[{"result":null}]"#, StoreError::Malformed("wrong number of results")),
            (200, r#"[{"result":null},{"error":"WRONGTYPE x"}]"#, StoreError::Command("WRONGTYPE x".into())),
            (200, r#"[{"result":null},{"error":7}]"#, StoreError::Command("unknown error".into())),
            (200, r#"[{"result":null},"1"]"#, StoreError::Malformed("entry is not an object")),
            (200, r#"[{"result":null},{}]"#, StoreError::Malformed("entry without result")),
            (200, r#"[{"result":null},{"result":1.5}]"#, StoreError::Malformed("non-integer number")),
            (200, r#"[{"result":null},{"result":true}]"#, StoreError::Malformed("unexpected JSON type in result")),
            (200, r#"[{"result":null},{"result":{"a":1}}]"#, StoreError::Malformed("unexpected JSON type in result")),
        ];
        for (status, body, want) in cases {
            assert_eq!(parse_pipeline(&resp(*status, body), 2).unwrap_err(), *want, "{status} {body}");
        }
    }
}
