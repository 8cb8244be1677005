//! Turning claim values and request pieces into header values an origin can read unambiguously.
//!
//! A header value leaves the gateway only as visible ASCII (0x20–0x7E): never CR, LF, NUL or any
//! other control character, so no value can split or add a header.
//!
//! Claim values ([`claim_value`]):
//! - a string of visible ASCII, without leading or trailing spaces and not starting with `"`, is
//!   sent as is;
//! - any other string (non-ASCII, control characters such as CR/LF/NUL, edge spaces, a leading
//!   `"`) is sent JSON-encoded with every non-ASCII character escaped (`"caf\u00e9"`), so a value
//!   starting with `"` is always JSON;
//! - numbers and booleans as their JSON text, arrays and objects as compact ASCII-escaped JSON;
//! - `null`, and any value longer than [`MAX_VALUE_LEN`] bytes once encoded, is dropped.

use serde_json::Value;

/// Longest header value the gateway sends for one claim (bytes); longer values are dropped.
pub const MAX_VALUE_LEN: usize = 4096;

/// Whether `v` may be sent as a header value as is (visible ASCII and space only).
pub fn is_safe_value(v: &str) -> bool {
    v.bytes().all(|b| (0x20..=0x7E).contains(&b))
}

/// JSON text of `value` with every character outside visible ASCII written as `\uXXXX`.
pub fn ascii_json(value: &Value) -> String {
    let json = serde_json::to_string(value).unwrap_or_default();
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if (' '..='~').contains(&c) {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// The header value for one claim, or `None` to send no header (see the module doc).
pub fn claim_value(value: &Value) -> Option<String> {
    let out = match value {
        Value::Null => return None,
        Value::String(s)
            if !s.is_empty() && is_safe_value(s) && !s.starts_with('"') && s.trim() == s.as_str() =>
        {
            s.clone()
        }
        other => ascii_json(other),
    };
    (out.len() <= MAX_VALUE_LEN && is_safe_value(&out)).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn encodes_claims() {
        assert_eq!(claim_value(&json!("user-1")).as_deref(), Some("user-1"));
        assert_eq!(claim_value(&json!("a b")).as_deref(), Some("a b"));
        assert_eq!(claim_value(&json!(42)).as_deref(), Some("42"));
        assert_eq!(claim_value(&json!(true)).as_deref(), Some("true"));
        assert_eq!(claim_value(&json!(["a", "b"])).as_deref(), Some(r#"["a","b"]"#));
        assert_eq!(claim_value(&json!({"k": "é"})).as_deref(), Some(r#"{"k":"\u00e9"}"#));
        assert_eq!(claim_value(&json!("café")).as_deref(), Some(r#""caf\u00e9""#));
        assert_eq!(claim_value(&json!("😀")).as_deref(), Some(r#""\ud83d\ude00""#));
        assert_eq!(claim_value(&json!("\"quoted\"")).as_deref(), Some(r#""\"quoted\"""#));
        assert_eq!(claim_value(&json!(" pad")).as_deref(), Some(r#"" pad""#));
        assert_eq!(claim_value(&json!("")).as_deref(), Some(r#""""#));
        assert_eq!(claim_value(&json!(null)), None);
        assert_eq!(claim_value(&json!("x".repeat(MAX_VALUE_LEN + 1))), None);
    }

    #[test]
    fn control_characters_never_survive() {
        for s in ["a\r\nX-Auth-Subject: admin", "a\nb", "a\rb", "a\0b", "a\u{7f}b", "a\u{85}b", "a\u{2028}b"] {
            let v = claim_value(&json!(s)).unwrap();
            assert!(is_safe_value(&v), "{v:?}");
            assert!(v.starts_with('"'), "{v:?} must be marked as JSON");
            assert_eq!(serde_json::from_str::<String>(&v).unwrap(), s, "JSON round trip");
        }
    }
}
