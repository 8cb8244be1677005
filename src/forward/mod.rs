//! What exactly reaches the origin: the URL, which incoming headers are deleted and which are set.
//!
//! [`plan`] is pure; the glue applies a [`ForwardPlan`] to the runtime's request: first delete
//! every name in `remove_headers`, then set every pair in `set_headers` (replacing, not
//! appending), then fetch `url`.
//!
//! Guarantees, on every route including public ones:
//! - every incoming header whose name starts with `HEADER_PREFIX` (any letter case), every
//!   configured identity header, the assertion header and the proxy headers
//!   ([`config::PROXY_HEADERS`]: `Forwarded`, every `X-Forwarded-*`, `X-Real-IP` and the other
//!   client-IP headers, the `X-Original-URL` / `X-Rewrite-URL` rewrites) are deleted before
//!   anything is set, so an origin never sees a client-made identity, address or path;
//! - `X-Forwarded-For` is set to the client IP the runtime reports (`CF-Connecting-IP`), never
//!   appended to a client-supplied value; it is omitted if that IP does not parse;
//! - the credential is deleted from where it was found and from wherever else the same value
//!   was sent (unless the rule keeps it; see [`credential`]): the `Authorization` header or the
//!   named header; the cookie from `Cookie`, other cookies kept in order; the query parameter
//!   from the URL, other parameters kept in order and as sent;
//! - every value set is visible ASCII (no CR, LF or NUL); claim values follow [`values`].
//!
//! `Host`: `set_headers` carries a `Host` pair ([`HostHeader`]); the runtime may derive `Host`
//! from `url` regardless.

pub mod config;
mod credential;
pub mod values;

use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde_json::Value;

use crate::http::RequestHead;
use crate::identity::{CredentialLocation, Identity, RevocationStatus};
use crate::routes::is_scope_token;

pub use config::{ForwardConfig, HostHeader};

/// What to send to the origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardPlan {
    /// Origin URL: `ORIGIN_URL` + the request path as received + the query without the credential
    /// parameter.
    pub url: String,
    /// Lower-case header names to delete from the incoming request (each once).
    pub remove_headers: Vec<String>,
    /// Headers to set after the deletions (name as configured, value visible ASCII).
    pub set_headers: Vec<(String, String)>,
}

impl ForwardPlan {
    /// The path and query exactly as the origin receives them (`/base/a?x=1`), for the assertion.
    pub fn path_and_query(&self) -> &str {
        let after_scheme = self.url.split_once("://").map_or(self.url.as_str(), |(_, r)| r);
        after_scheme.find('/').and_then(|i| after_scheme.get(i..)).unwrap_or("/")
    }

    /// `set_headers` without the pair named `name` (case-insensitive), if exactly one pair has
    /// that name: what a replay of this plan sets before adding its own request id.
    pub fn set_headers_without(&self, name: &str) -> Option<Vec<(&str, &str)>> {
        let (named, rest): (Vec<_>, Vec<_>) = self.set_headers.iter().partition(|(n, _)| n.eq_ignore_ascii_case(name));
        (named.len() == 1).then(|| rest.into_iter().map(|(n, v)| (n.as_str(), v.as_str())).collect())
    }

    /// The value set for header `name` (case-insensitive), if any.
    pub fn set_header(&self, name: &str) -> Option<&str> {
        self.set_headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Characters re-encoded if they ever appear raw in a path or query (the runtime's URL parser
/// normally encoded them already).
const URL_UNSAFE: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'<').add(b'>').add(b'`').add(b'#').add(b'{').add(b'}');
/// [`URL_UNSAFE`] plus `?`, which cannot appear raw in a path.
const PATH_UNSAFE: &AsciiSet = &URL_UNSAFE.add(b'?');

/// Builds the forwarding plan for one request. `identity` is `None` on public routes and for
/// preflights let through; `credential` is where the credential was found (if any);
/// `client_ip` is what the runtime reports (`CF-Connecting-IP`). Never panics.
pub fn plan(
    cfg: &ForwardConfig,
    head: &RequestHead,
    identity: Option<&Identity>,
    credential: Option<&CredentialLocation>,
    keep_credential: bool,
    request_id: &str,
    client_ip: Option<&str>,
) -> ForwardPlan {
    let mut remove: Vec<String> = Vec::new();
    let mut set: Vec<(String, String)> = Vec::new();

    // The header edits apply to a copy of exactly these headers, so a name that is not present
    // needs no delete (each delete is a call into the runtime).
    let prefix = cfg.header_prefix.to_ascii_lowercase();
    for (name, _) in &head.headers {
        let lower = name.to_ascii_lowercase();
        if lower.starts_with(&prefix) || lower.starts_with(config::PROXY_HEADER_PREFIX) || cfg.is_always_removed(&lower) {
            push_remove(lower, &mut remove);
        }
    }

    // The credential: where it was found and every other copy (see [`credential`]).
    let consumed = credential.filter(|_| !keep_credential).map(|loc| credential::Consumed::new(head, loc));
    if let Some(c) = &consumed {
        for name in c.headers(head) {
            push_remove(name, &mut remove);
        }
        if let Some(rest) = c.cookies(head) {
            push_remove("cookie".into(), &mut remove);
            if !rest.is_empty() && values::is_safe_value(&rest) {
                set.push(("Cookie".into(), rest));
            }
        }
    }

    // URL.
    let mut url = cfg.origin_base.clone();
    if !head.path.starts_with('/') {
        url.push('/');
    }
    url.extend(utf8_percent_encode(&head.path, PATH_UNSAFE));
    if let Some(query) = head.query.as_deref() {
        let query = match &consumed {
            Some(c) => c.query_without(query),
            None => query.to_string(),
        };
        if !query.is_empty() {
            url.push('?');
            url.extend(utf8_percent_encode(&query, URL_UNSAFE));
        }
    }

    // Host and proxy headers.
    push_remove("host".into(), &mut remove);
    let client_host = head.header("host").filter(|h| is_host(h)).unwrap_or(&head.host);
    let host = match cfg.host_header {
        HostHeader::Origin => cfg.origin_authority.as_str(),
        HostHeader::Preserve => client_host,
    };
    if is_host(host) {
        set.push(("Host".into(), host.to_string()));
    }
    if let Some(ip) = client_ip.map(str::trim).filter(|ip| ip.parse::<std::net::IpAddr>().is_ok()) {
        set.push(("X-Forwarded-For".into(), ip.to_string()));
    }
    if head.scheme == "https" || head.scheme == "http" {
        set.push(("X-Forwarded-Proto".into(), head.scheme.clone()));
    }
    if is_host(client_host) {
        set.push(("X-Forwarded-Host".into(), client_host.to_string()));
    }
    if !request_id.is_empty() && request_id.len() <= 256 && values::is_safe_value(request_id) {
        set.push((cfg.request_id_header(), request_id.to_string()));
    }

    // Identity.
    if let Some(id) = identity {
        for (claim, header) in &cfg.claim_headers {
            let fallback = match claim.as_str() {
                "sub" => Some(Value::String(id.subject.clone())),
                "iss" => Some(Value::String(id.issuer.clone())),
                _ => None,
            };
            let value = id.claims.get(claim).cloned().or(fallback);
            if let Some(v) = value.as_ref().and_then(values::claim_value) {
                set.push((header.clone(), v));
            }
        }
        set.push((cfg.scopes_header(), scopes_value(id)));
        set.push((cfg.revocation_header(), revocation_value(&id.revocation).to_string()));
        if cfg.forward_claims_header {
            let json = serde_json::to_vec(&*id.claims).unwrap_or_default();
            set.push((cfg.claims_header(), base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)));
        }
    }

    ForwardPlan { url, remove_headers: remove, set_headers: set }
}

fn push_remove(name: String, remove: &mut Vec<String>) {
    if !remove.contains(&name) {
        remove.push(name);
    }
}

/// `X-Auth-Scopes`: token scopes then Redis permissions, each once, space-separated; entries
/// that are not RFC 6749 scope tokens (e.g. containing a space) are left out.
pub fn scopes_value(id: &Identity) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for s in id.scopes.iter().chain(id.permissions.iter()) {
        if is_scope_token(s) && !seen.contains(&s.as_str()) {
            seen.push(s);
        }
    }
    seen.join(" ")
}

/// `X-Auth-Revocation`: `checked`, `cached`, `skipped` or `not-required`.
pub fn revocation_value(status: &RevocationStatus) -> &'static str {
    match status {
        RevocationStatus::Checked { cached: false, .. } => "checked",
        RevocationStatus::Checked { cached: true, .. } => "cached",
        RevocationStatus::Skipped => "skipped",
        RevocationStatus::NotRequired => "not-required",
    }
}

/// A host with optional port, as in a `Host` header.
fn is_host(h: &str) -> bool {
    !h.is_empty() && h.len() <= 255 && h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b))
}

#[cfg(test)]
mod tests;
