//! Redis replies as Upstash JSON: `{"result": …}` or `{"error": …}`.
//!
//! Mapping: bulk and simple strings -> JSON string, integers -> number,
//! nil -> `null`, arrays -> arrays (nested). With `Upstash-Encoding: base64`
//! every string is base64-encoded, at any depth, except a top-level `OK`
//! status reply, which stays `"OK"`: that is what Upstash sends and what
//! `@upstash/redis` expects (its decoder passes a top-level `"OK"` through
//! and base64-decodes every other string, including strings inside arrays).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use redis::Value;
use serde_json::{json, Value as Json};

/// How string results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Strings as JSON strings (invalid UTF-8 replaced by U+FFFD).
    Plain,
    /// Strings base64-encoded (`Upstash-Encoding: base64`).
    Base64,
}

impl Encoding {
    /// Reads the `Upstash-Encoding` request header value (absent means plain).
    pub fn from_header(value: Option<&[u8]>) -> Self {
        match value {
            Some(v) if v.trim_ascii().eq_ignore_ascii_case(b"base64") => Encoding::Base64,
            _ => Encoding::Plain,
        }
    }

    fn string(self, bytes: &[u8]) -> Json {
        match self {
            Encoding::Plain => Json::String(String::from_utf8_lossy(bytes).into_owned()),
            Encoding::Base64 => Json::String(STANDARD.encode(bytes)),
        }
    }
}

/// The text of a Redis error reply, e.g. `ERR value is not an integer or out of range`;
/// `None` when `value` is not an error reply.
pub fn error_text(value: &Value) -> Option<String> {
    match value {
        Value::ServerError(error) => Some(match error.details() {
            Some(detail) => format!("{} {}", error.code(), detail),
            None => error.code().to_owned(),
        }),
        _ => None,
    }
}

/// One command's reply as the `{"result": …}` / `{"error": …}` entry used in
/// pipeline and transaction responses (and, for errors, as the 400 body of `POST /`).
pub fn entry(value: Value, encoding: Encoding) -> Json {
    match error_text(&value) {
        Some(text) => json!({ "error": text }),
        None => json!({ "result": top_level(value, encoding) }),
    }
}

/// A top-level result: like [`nested`] but an `OK` status reply stays `"OK"`.
pub fn top_level(value: Value, encoding: Encoding) -> Json {
    match value {
        Value::Okay => Json::String("OK".to_owned()),
        Value::SimpleString(text) if text == "OK" => Json::String(text),
        other => nested(other, encoding),
    }
}

/// A value at any depth.
fn nested(value: Value, encoding: Encoding) -> Json {
    match value {
        Value::Nil => Json::Null,
        Value::Int(n) => Json::from(n),
        Value::BulkString(bytes) => encoding.string(&bytes),
        Value::SimpleString(text) => encoding.string(text.as_bytes()),
        Value::Okay => encoding.string(b"OK"),
        Value::VerbatimString { text, .. } => encoding.string(text.as_bytes()),
        Value::Array(items) | Value::Set(items) | Value::Push { data: items, .. } => {
            Json::Array(items.into_iter().map(|v| nested(v, encoding)).collect())
        }
        // Flattened to [k1, v1, k2, v2, …], the RESP2 shape clients expect.
        Value::Map(pairs) => Json::Array(
            pairs.into_iter().flat_map(|(k, v)| [nested(k, encoding), nested(v, encoding)]).collect(),
        ),
        Value::Attribute { data, .. } => nested(*data, encoding),
        Value::Double(x) => match serde_json::Number::from_f64(x) {
            Some(n) => Json::Number(n),
            None => encoding.string(x.to_string().as_bytes()),
        },
        Value::Boolean(b) => Json::from(i64::from(b)),
        Value::BigNumber(n) => encoding.string(n.to_string().as_bytes()),
        error @ Value::ServerError(_) => encoding.string(error_text(&error).unwrap_or_default().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_mapping() {
        let value = Value::Array(vec![
            Value::BulkString(b"x".to_vec()),
            Value::Int(3),
            Value::Nil,
            Value::Array(vec![Value::SimpleString("PONG".into())]),
        ]);
        assert_eq!(top_level(value, Encoding::Plain), json!(["x", 3, null, ["PONG"]]));
        assert_eq!(top_level(Value::Okay, Encoding::Plain), json!("OK"));
    }

    #[test]
    fn base64_encodes_every_string_but_a_top_level_ok() {
        assert_eq!(top_level(Value::Okay, Encoding::Base64), json!("OK"));
        assert_eq!(top_level(Value::BulkString(b"OK".to_vec()), Encoding::Base64), json!("T0s="));
        assert_eq!(top_level(Value::SimpleString("PONG".into()), Encoding::Base64), json!("UE9ORw=="));
        let value = Value::Array(vec![
            Value::Okay,
            Value::BulkString(vec![0xff, 0x00]),
            Value::Int(-1),
            Value::Array(vec![Value::BulkString(b"a".to_vec()), Value::Nil]),
        ]);
        assert_eq!(top_level(value, Encoding::Base64), json!(["T0s=", "/wA=", -1, ["YQ==", null]]));
    }

    #[test]
    fn header_parsing() {
        assert_eq!(Encoding::from_header(Some(b"base64")), Encoding::Base64);
        assert_eq!(Encoding::from_header(Some(b" BASE64 ")), Encoding::Base64);
        assert_eq!(Encoding::from_header(Some(b"utf8")), Encoding::Plain);
        assert_eq!(Encoding::from_header(None), Encoding::Plain);
    }
}
