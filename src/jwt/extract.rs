//! Finding the bearer token in a request: configured locations (`TOKEN_SOURCES`), in order.

use crate::error::{Reason, Refusal};
use crate::http::RequestHead;
use crate::identity::CredentialLocation;

/// One place a token may be carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: Bearer <token>` (scheme case-insensitive). Syntax `header:authorization`.
    Authorization,
    /// A named header carrying the bare token (lower-case name). Syntax `header:<name>`.
    Header(String),
    /// A named cookie. Syntax `cookie:<name>`.
    Cookie(String),
    /// A named query parameter. Syntax `query:<name>`.
    Query(String),
}

/// Default of `TOKEN_SOURCES`.
pub const DEFAULT_TOKEN_SOURCES: &str = "header:authorization";

/// Parses `TOKEN_SOURCES`, e.g. `header:authorization,header:x-api-token,cookie:session,query:access_token`.
pub fn parse_token_sources(spec: &str) -> Result<Vec<TokenSource>, String> {
    let mut out = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (kind, name) = item.split_once(':').ok_or_else(|| format!("{item:?} is not <kind>:<name>"))?;
        let name = name.trim();
        let valid_name = !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~!#$%&'*+^`|".contains(&b));
        if !valid_name {
            return Err(format!("{item:?} has an invalid name"));
        }
        let source = match kind.trim().to_ascii_lowercase().as_str() {
            "header" if name.eq_ignore_ascii_case("authorization") => TokenSource::Authorization,
            "header" => TokenSource::Header(name.to_ascii_lowercase()),
            "cookie" => TokenSource::Cookie(name.to_string()),
            "query" => TokenSource::Query(name.to_string()),
            other => return Err(format!("unknown token location kind {other:?} (header, cookie, query)")),
        };
        if !out.contains(&source) {
            out.push(source);
        }
    }
    if out.is_empty() {
        return Err("no token location configured".into());
    }
    Ok(out)
}

/// A token found in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractedToken {
    pub token: String,
    /// Where it was found (the first configured location holding it).
    pub location: CredentialLocation,
}

/// Finds the one token of the request. Errors: none → `MissingToken`; two different tokens
/// (across or within locations) → `MultipleTokens`; a token longer than `max_bytes` →
/// `TokenTooLarge`; a broken `Authorization: Bearer` value or bad percent-encoding →
/// `MalformedRequest`. The same token found twice is fine.
pub fn extract_token(head: &RequestHead, sources: &[TokenSource], max_bytes: usize) -> Result<ExtractedToken, Refusal> {
    let mut found: Option<ExtractedToken> = None;
    for source in sources {
        for token in candidates(head, source)? {
            if token.len() > max_bytes {
                return Err(Reason::TokenTooLarge.into());
            }
            match &found {
                None => {
                    let location = match source {
                        TokenSource::Authorization => CredentialLocation::Authorization,
                        TokenSource::Header(n) => CredentialLocation::Header(n.clone()),
                        TokenSource::Cookie(n) => CredentialLocation::Cookie(n.clone()),
                        TokenSource::Query(n) => CredentialLocation::Query(n.clone()),
                    };
                    found = Some(ExtractedToken { token, location });
                }
                Some(first) if first.token == token => {}
                Some(_) => return Err(Reason::MultipleTokens.into()),
            }
        }
    }
    found.ok_or_else(|| Reason::MissingToken.into())
}

fn candidates(head: &RequestHead, source: &TokenSource) -> Result<Vec<String>, Refusal> {
    let mut out = Vec::new();
    match source {
        TokenSource::Authorization => {
            // Repeated headers arrive joined with ", "; a bearer token never contains ','.
            for value in head.headers_named("authorization") {
                for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let (scheme, rest) = part.split_once(' ').unwrap_or((part, ""));
                    if !scheme.eq_ignore_ascii_case("bearer") {
                        continue; // Basic, Digest…: not ours.
                    }
                    let token = rest.trim();
                    if token.is_empty() || token.contains(char::is_whitespace) {
                        return Err(Reason::MalformedRequest.into());
                    }
                    out.push(token.to_string());
                }
            }
        }
        TokenSource::Header(name) => {
            for value in head.headers_named(name) {
                out.extend(value.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_string));
            }
        }
        TokenSource::Cookie(name) => {
            for value in head.headers_named("cookie") {
                for pair in value.split(';') {
                    if let Some((n, v)) = pair.split_once('=') {
                        if n.trim() == name {
                            let v = v.trim();
                            let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
                            if !v.is_empty() {
                                out.push(v.to_string());
                            }
                        }
                    }
                }
            }
        }
        TokenSource::Query(name) => {
            if let Some(q) = &head.query {
                for pair in q.split('&') {
                    let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
                    let n = percent_decode(n).ok_or(Reason::MalformedRequest)?;
                    if n == *name {
                        let v = percent_decode(v).ok_or(Reason::MalformedRequest)?;
                        if !v.is_empty() {
                            out.push(v);
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Decodes `application/x-www-form-urlencoded` text (`%XX`, `+` as space); `None` when a
/// percent escape is broken or the result is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(headers: &[(&str, &str)], query: Option<&str>) -> RequestHead {
        RequestHead {
            method: "GET".into(),
            scheme: "https".into(),
            host: "api.example".into(),
            path: "/".into(),
            query: query.map(Into::into),
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        }
    }
    fn all() -> Vec<TokenSource> {
        parse_token_sources("header:authorization,header:X-Api-Token,cookie:session,query:access_token").unwrap()
    }
    fn reason(r: Result<ExtractedToken, Refusal>) -> Reason {
        r.unwrap_err().reason
    }

    #[test]
    fn parses_sources() {
        assert_eq!(
            all(),
            vec![
                TokenSource::Authorization,
                TokenSource::Header("x-api-token".into()),
                TokenSource::Cookie("session".into()),
                TokenSource::Query("access_token".into())
            ]
        );
        assert!(parse_token_sources("body:x").is_err());
        assert!(parse_token_sources("header:").is_err());
        assert!(parse_token_sources("cookie").is_err());
        assert!(parse_token_sources("").is_err());
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let h = head(&[("authorization", "bEaReR abc.def.ghi")], None);
        let t = extract_token(&h, &[TokenSource::Authorization], 8192).unwrap();
        assert_eq!(t, ExtractedToken { token: "abc.def.ghi".into(), location: CredentialLocation::Authorization });
        let h = head(&[("authorization", "Basic dXNlcjpwYXNz")], None);
        assert_eq!(reason(extract_token(&h, &[TokenSource::Authorization], 8192)), Reason::MissingToken);
        let h = head(&[("authorization", "Bearer a b")], None);
        assert_eq!(reason(extract_token(&h, &[TokenSource::Authorization], 8192)), Reason::MalformedRequest);
    }

    #[test]
    fn each_location_works() {
        let s = all();
        let t = extract_token(&head(&[("x-api-token", "tok1")], None), &s, 8192).unwrap();
        assert_eq!(t.location, CredentialLocation::Header("x-api-token".into()));
        let t = extract_token(&head(&[("cookie", "a=1; session=\"tok2\"; b=2")], None), &s, 8192).unwrap();
        assert_eq!((t.token.as_str(), t.location), ("tok2", CredentialLocation::Cookie("session".into())));
        let t = extract_token(&head(&[], Some("x=1&access_token=to%6B3")), &s, 8192).unwrap();
        assert_eq!((t.token.as_str(), t.location), ("tok3", CredentialLocation::Query("access_token".into())));
        assert_eq!(reason(extract_token(&head(&[], Some("access_token=%zz")), &s, 8192)), Reason::MalformedRequest);
        assert_eq!(reason(extract_token(&head(&[], None), &s, 8192)), Reason::MissingToken);
        // Unconfigured locations are ignored.
        let only_auth = [TokenSource::Authorization];
        assert_eq!(reason(extract_token(&head(&[("x-api-token", "t")], Some("access_token=t")), &only_auth, 8192)), Reason::MissingToken);
    }

    #[test]
    fn two_different_tokens_are_refused_same_twice_is_fine() {
        let s = all();
        let h = head(&[("authorization", "Bearer t1, Bearer t2")], None);
        assert_eq!(reason(extract_token(&h, &s, 8192)), Reason::MultipleTokens);
        assert_eq!(Refusal::from(Reason::MultipleTokens).to_response("x").status, 400);
        let h = head(&[("authorization", "Bearer t1"), ("authorization", "Bearer t2")], None);
        assert_eq!(reason(extract_token(&h, &s, 8192)), Reason::MultipleTokens);
        let h = head(&[("authorization", "Bearer t1")], Some("access_token=t2"));
        assert_eq!(reason(extract_token(&h, &s, 8192)), Reason::MultipleTokens);
        let h = head(&[("cookie", "session=t1; session=t3")], None);
        assert_eq!(reason(extract_token(&h, &s, 8192)), Reason::MultipleTokens);
        let h = head(&[("authorization", "Bearer t1, Bearer t1"), ("cookie", "session=t1")], Some("access_token=t1"));
        let t = extract_token(&h, &s, 8192).unwrap();
        assert_eq!((t.token.as_str(), t.location), ("t1", CredentialLocation::Authorization));
    }

    #[test]
    fn oversized_tokens_are_refused_before_parsing() {
        let big = format!("Bearer {}", "a".repeat(101));
        let h = head(&[("authorization", big.as_str())], None);
        assert_eq!(reason(extract_token(&h, &[TokenSource::Authorization], 100)), Reason::TokenTooLarge);
        let ok = format!("Bearer {}", "a".repeat(100));
        assert!(extract_token(&head(&[("authorization", ok.as_str())], None), &[TokenSource::Authorization], 100).is_ok());
    }
}
