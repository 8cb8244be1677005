//! Bearer-token check: `Authorization: Bearer <token>` or `?_token=<token>`.

use hyper::header::AUTHORIZATION;
use hyper::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The expected token, kept as its SHA-256 digest so that comparing takes the
/// same time whatever the length or content of the presented token.
#[derive(Clone)]
pub struct TokenCheck {
    expected: [u8; 32],
}

impl TokenCheck {
    /// Prepares the check for `token`.
    pub fn new(token: &str) -> Self {
        Self { expected: Sha256::digest(token.as_bytes()).into() }
    }

    /// True when the request carries the expected token, in the `Authorization`
    /// header (scheme `Bearer`, any case) or else in the `_token` query parameter.
    pub fn allows(&self, headers: &HeaderMap, query: Option<&str>) -> bool {
        match presented_token(headers, query) {
            Some(token) => self.matches(&token),
            None => false,
        }
    }

    /// Constant-time comparison of `presented` with the expected token.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        bool::from(digest.ct_eq(&self.expected))
    }
}

/// The token the client presented, if any. A present but malformed
/// `Authorization` header counts as no token (it is never replaced by `_token`).
fn presented_token(headers: &HeaderMap, query: Option<&str>) -> Option<Vec<u8>> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let value = value.as_bytes();
        let (scheme, rest) = split_once_space(value)?;
        if !scheme.eq_ignore_ascii_case(b"bearer") {
            return None;
        }
        let token = trim_ascii(rest);
        return if token.is_empty() { None } else { Some(token.to_vec()) };
    }
    let query = query?;
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        if name != "_token" {
            return None;
        }
        let decoded: Vec<u8> = percent_encoding::percent_decode_str(value).collect();
        if decoded.is_empty() {
            None
        } else {
            Some(decoded)
        }
    })
}

fn split_once_space(value: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = value.iter().position(|b| *b == b' ')?;
    Some((value.get(..at)?, value.get(at + 1..)?))
}

fn trim_ascii(mut value: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = value {
        if first.is_ascii_whitespace() {
            value = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = value {
        if last.is_ascii_whitespace() {
            value = rest;
        } else {
            break;
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut map = HeaderMap::new();
        if let Some(auth) = auth {
            map.insert(AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        }
        map
    }

    #[test]
    fn bearer_header_and_query_token_are_accepted() {
        let check = TokenCheck::new("s3cret=");
        assert!(check.allows(&headers(Some("Bearer s3cret=")), None));
        assert!(check.allows(&headers(Some("bearer  s3cret= ")), None));
        assert!(check.allows(&headers(None), Some("a=1&_token=s3cret%3D")));
    }

    #[test]
    fn wrong_missing_or_malformed_tokens_are_refused() {
        let check = TokenCheck::new("s3cret");
        assert!(!check.allows(&headers(Some("Bearer s3cre")), None));
        assert!(!check.allows(&headers(Some("Basic s3cret")), None));
        assert!(!check.allows(&headers(Some("Bearer")), None));
        assert!(!check.allows(&headers(Some("Bearer ")), None));
        assert!(!check.allows(&headers(None), None));
        assert!(!check.allows(&headers(None), Some("_token=")));
        // A wrong header is not rescued by a right query token.
        assert!(!check.allows(&headers(Some("Bearer nope")), Some("_token=s3cret")));
    }
}
