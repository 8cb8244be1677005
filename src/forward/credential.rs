//! Removing the consumed credential before forwarding: from where the gateway found it, and
//! every other copy of the same value.
//!
//! A client may send one token in several places (a browser app sends the session cookie and
//! an `Authorization` header; a link carries `?access_token=` too). Extraction accepts that when
//! every copy is the same token, and reports only the first configured location; removing only
//! that one would hand the origin the credential through another. So, unless the rule keeps the
//! credential, the value is read back from its location and deleted wherever it appears:
//! - headers: `Authorization` with `Bearer <value>`, and any other header (except `Cookie`)
//!   whose value, or one of its comma-separated parts, is the value;
//! - cookies: the credential's cookie, and any cookie whose value (quotes removed) is the value;
//!   other cookies are kept in order;
//! - query: the credential's parameter, and any parameter whose decoded value is the value;
//!   other parameters are kept in order and as sent.

use percent_encoding::percent_decode_str;

use crate::http::RequestHead;
use crate::identity::CredentialLocation;

/// The credential a request was authenticated with: where it was found and its value.
#[derive(Debug)]
pub(super) struct Consumed<'a> {
    location: &'a CredentialLocation,
    /// Read back from `location`; `None` if it cannot be (then only `location` is cleaned).
    value: Option<String>,
}

impl<'a> Consumed<'a> {
    /// The credential found at `location` in `head`.
    pub(super) fn new(head: &RequestHead, location: &'a CredentialLocation) -> Self {
        Consumed { location, value: value_at(head, location) }
    }

    fn is_value(&self, candidate: &str) -> bool {
        self.value.as_deref().is_some_and(|v| v == candidate)
    }

    /// Lower-case names of the headers to delete (each once; `Cookie` is never one of them).
    pub(super) fn headers(&self, head: &RequestHead) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut add = |name: String| {
            if !out.contains(&name) {
                out.push(name);
            }
        };
        match self.location {
            CredentialLocation::Authorization => add("authorization".into()),
            CredentialLocation::Header(name) => add(name.to_ascii_lowercase()),
            CredentialLocation::Cookie(_) | CredentialLocation::Query(_) => {}
        }
        for (name, value) in &head.headers {
            let lower = name.to_ascii_lowercase();
            if lower == "cookie" || lower == "host" {
                continue;
            }
            let carries = value.split(',').map(str::trim).any(|part| {
                self.is_value(part) || (lower == "authorization" && bearer_value(part).is_some_and(|t| self.is_value(t)))
            });
            if carries {
                add(lower);
            }
        }
        out
    }

    /// The `Cookie` header without the credential: `None` when no cookie has to go (leave the
    /// header alone), `Some("")` when no cookie is left (delete the header).
    pub(super) fn cookies(&self, head: &RequestHead) -> Option<String> {
        let own_name = match self.location {
            CredentialLocation::Cookie(name) => Some(name.as_str()),
            _ => None,
        };
        let mut kept: Vec<&str> = Vec::new();
        let mut found = false;
        for value in head.headers_named("cookie") {
            for pair in value.split(';') {
                let pair = pair.trim();
                if pair.is_empty() {
                    continue;
                }
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                let value = unquote(value.trim());
                if Some(name.trim()) == own_name || self.is_value(value) {
                    found = true;
                } else {
                    kept.push(pair);
                }
            }
        }
        found.then(|| kept.join("; "))
    }

    /// The raw query without the credential parameter and any parameter holding its value
    /// (names and values compared after decoding `%XX` and `+`).
    pub(super) fn query_without(&self, query: &str) -> String {
        let own_name = match self.location {
            CredentialLocation::Query(name) => Some(name.as_str()),
            _ => None,
        };
        query
            .split('&')
            .filter(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                !(own_name.is_some_and(|n| form_decode(name) == n) || self.is_value(&form_decode(value)))
            })
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// `Bearer <token>` (scheme in any case) → the token.
fn bearer_value(part: &str) -> Option<&str> {
    let (scheme, rest) = part.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim()).filter(|t| !t.is_empty())
}

fn unquote(v: &str) -> &str {
    v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v)
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space), lossy.
fn form_decode(s: &str) -> String {
    percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned()
}

/// The credential's value at `location`, read the way extraction reads it.
fn value_at(head: &RequestHead, location: &CredentialLocation) -> Option<String> {
    match location {
        CredentialLocation::Authorization => head
            .headers_named("authorization")
            .flat_map(|v| v.split(','))
            .find_map(|part| bearer_value(part.trim()))
            .map(str::to_string),
        CredentialLocation::Header(name) => head
            .headers_named(&name.to_ascii_lowercase())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .find(|p| !p.is_empty())
            .map(str::to_string),
        CredentialLocation::Cookie(name) => head.headers_named("cookie").flat_map(|v| v.split(';')).find_map(|pair| {
            let (n, v) = pair.split_once('=')?;
            let v = unquote(v.trim());
            (n.trim() == name && !v.is_empty()).then(|| v.to_string())
        }),
        CredentialLocation::Query(name) => head.query.as_deref().and_then(|q| {
            q.split('&').find_map(|pair| {
                let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
                let v = form_decode(v);
                (form_decode(n) == *name && !v.is_empty()).then_some(v)
            })
        }),
    }
}
