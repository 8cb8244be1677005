//! Forwarding configuration: where the origin is and which headers carry the identity.

use crate::vars::{get_bool, get_trimmed, ConfigError, Vars};

/// Default `HEADER_PREFIX`.
pub const DEFAULT_HEADER_PREFIX: &str = "X-Auth-";

/// How the `Host` header sent to the origin is chosen (`ORIGIN_HOST_HEADER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostHeader {
    /// `origin` (default): the host (and port) of `ORIGIN_URL`.
    Origin,
    /// `preserve`: the `Host` the client sent.
    Preserve,
}

/// Everything [`super::plan`] needs. Build with [`ForwardConfig::from_vars`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardConfig {
    /// `ORIGIN_URL` (required) without a trailing slash: scheme, authority and base path.
    pub origin_base: String,
    /// Authority (`host[:port]`) of `ORIGIN_URL`.
    pub origin_authority: String,
    /// `ORIGIN_HOST_HEADER`: `origin` (default) or `preserve`.
    pub host_header: HostHeader,
    /// `HEADER_PREFIX` (default `X-Auth-`): every incoming header starting with it is removed.
    pub header_prefix: String,
    /// `CLAIM_HEADERS` as (claim, header name) pairs; default `sub` → `{prefix}Subject`,
    /// `iss` → `{prefix}Issuer`.
    pub claim_headers: Vec<(String, String)>,
    /// `FORWARD_CLAIMS_HEADER` (default false): send all verified claims in `{prefix}Claims`.
    pub forward_claims_header: bool,
    /// `ASSERTION_HEADER` (default `{prefix}Assertion`): removed from every incoming request.
    pub assertion_header: String,
}

/// Headers a client must never set: proxies set them, and origins trust them. Besides the
/// forwarding headers: client-IP headers that frameworks read (`True-Client-IP`, `X-Client-IP`,
/// `Client-IP` in Rails, `X-Cluster-Client-IP`), and URL rewrites (`X-Original-URL`,
/// `X-Rewrite-URL`: IIS and Symfony serve that path instead of the request's, so a request the
/// gateway routed as `/public` would be served as `/admin`), and method overrides
/// (`X-HTTP-Method-Override`, `X-HTTP-Method`, `X-Method-Override`: frameworks that honour them
/// would run a DELETE that the route rule only allowed as a POST).
pub const PROXY_HEADERS: &[&str] = &[
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-real-ip",
    "true-client-ip",
    "x-client-ip",
    "client-ip",
    "x-cluster-client-ip",
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Name prefix of proxy headers: every incoming `X-Forwarded-*` header is removed, whatever
/// follows (`X-Forwarded-Prefix` moves an application's base path, `X-Forwarded-Uri` and
/// `X-Forwarded-Method` are what forward-auth proxies report, `X-Forwarded-Ssl` and
/// `X-Forwarded-Scheme` make an app believe the request was https).
pub const PROXY_HEADER_PREFIX: &str = "x-forwarded-";

/// Names a configured identity header may not take.
const FORBIDDEN_NAMES: &[&str] = &[
    "host", "authorization", "cookie", "set-cookie", "content-length", "content-type", "content-encoding",
    "transfer-encoding", "connection", "keep-alive", "te", "trailer", "upgrade", "expect", "forwarded",
    "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-port", "x-real-ip",
];

impl ForwardConfig {
    /// Reads `ORIGIN_URL`, `ORIGIN_HOST_HEADER`, `HEADER_PREFIX`, `CLAIM_HEADERS`,
    /// `FORWARD_CLAIMS_HEADER` and `ASSERTION_HEADER`.
    pub fn from_vars(vars: &dyn Vars) -> Result<ForwardConfig, ConfigError> {
        let url = get_trimmed(vars, "ORIGIN_URL").ok_or_else(|| ConfigError::new("ORIGIN_URL", "required"))?;
        let (origin_base, origin_authority) = parse_origin(&url).map_err(|m| ConfigError::new("ORIGIN_URL", m))?;

        let host_header = match get_trimmed(vars, "ORIGIN_HOST_HEADER").map(|v| v.to_ascii_lowercase()).as_deref() {
            None | Some("origin") => HostHeader::Origin,
            Some("preserve") => HostHeader::Preserve,
            Some(other) => {
                return Err(ConfigError::new("ORIGIN_HOST_HEADER", format!("expected origin or preserve, got {other:?}")))
            }
        };

        let header_prefix = header_prefix(vars)?;

        let claim_headers = match get_trimmed(vars, "CLAIM_HEADERS") {
            None => vec![("sub".to_string(), format!("{header_prefix}Subject")), ("iss".to_string(), format!("{header_prefix}Issuer"))],
            Some(text) => parse_claim_headers(&text, &header_prefix)?,
        };

        let assertion_header = match get_trimmed(vars, "ASSERTION_HEADER") {
            None => format!("{header_prefix}Assertion"),
            Some(h) => {
                check_header_name(&h).map_err(|m| ConfigError::new("ASSERTION_HEADER", m))?;
                h
            }
        };

        Ok(ForwardConfig {
            origin_base,
            origin_authority,
            host_header,
            header_prefix,
            claim_headers,
            forward_claims_header: get_bool(vars, "FORWARD_CLAIMS_HEADER", false)?,
            assertion_header,
        })
    }

    /// `{prefix}Scopes`.
    pub fn scopes_header(&self) -> String {
        format!("{}Scopes", self.header_prefix)
    }
    /// `{prefix}Revocation`.
    pub fn revocation_header(&self) -> String {
        format!("{}Revocation", self.header_prefix)
    }
    /// `{prefix}Claims`.
    pub fn claims_header(&self) -> String {
        format!("{}Claims", self.header_prefix)
    }
    /// `{prefix}Request-Id`.
    pub fn request_id_header(&self) -> String {
        format!("{}Request-Id", self.header_prefix)
    }

    /// Lower-case names always removed from incoming requests, whether present or not: the
    /// identity headers, the generated headers, the assertion header and [`PROXY_HEADERS`].
    pub fn always_removed(&self) -> Vec<String> {
        let mut names: Vec<String> = self.claim_headers.iter().map(|(_, h)| h.to_ascii_lowercase()).collect();
        for h in [
            self.scopes_header(),
            self.revocation_header(),
            self.claims_header(),
            self.request_id_header(),
            self.assertion_header.clone(),
        ] {
            names.push(h.to_ascii_lowercase());
        }
        names.extend(PROXY_HEADERS.iter().map(|s| s.to_string()));
        names
    }

    /// Whether `name` (any letter case) is one of [`Self::always_removed`], without building
    /// that list (this runs for every header of every request).
    pub fn is_always_removed(&self, name: &str) -> bool {
        let prefixed = |suffix: &str| {
            let p = &self.header_prefix;
            name.len() == p.len() + suffix.len()
                && name.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p))
                && name.get(p.len()..).is_some_and(|t| t.eq_ignore_ascii_case(suffix))
        };
        self.claim_headers.iter().any(|(_, h)| h.eq_ignore_ascii_case(name))
            || ["Scopes", "Revocation", "Claims", "Request-Id"].into_iter().any(prefixed)
            || self.assertion_header.eq_ignore_ascii_case(name)
            || PROXY_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name))
    }
}

/// Reads `HEADER_PREFIX` (default `X-Auth-`); shared with the assertion configuration.
pub fn header_prefix(vars: &dyn Vars) -> Result<String, ConfigError> {
    let prefix = get_trimmed(vars, "HEADER_PREFIX").unwrap_or_else(|| DEFAULT_HEADER_PREFIX.to_string());
    check_header_name(&prefix).map_err(|m| ConfigError::new("HEADER_PREFIX", m))?;
    if prefix.len() < 3 {
        return Err(ConfigError::new("HEADER_PREFIX", "too short: every incoming header starting with it is removed"));
    }
    Ok(prefix)
}

fn parse_claim_headers(text: &str, prefix: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ConfigError::new("CLAIM_HEADERS", format!("invalid JSON value: {e}")))?;
    let serde_json::Value::Object(map) = value else {
        return Err(ConfigError::new("CLAIM_HEADERS", "expected a JSON object of claim name to header name"));
    };
    let generated: Vec<String> = ["Scopes", "Revocation", "Claims", "Request-Id", "Assertion"]
        .iter()
        .map(|s| format!("{prefix}{s}").to_ascii_lowercase())
        .collect();
    let mut out: Vec<(String, String)> = Vec::with_capacity(map.len());
    for (claim, header) in map {
        let field = format!("CLAIM_HEADERS.{claim}");
        if claim.is_empty() {
            return Err(ConfigError::new(field, "empty claim name"));
        }
        let serde_json::Value::String(header) = header else {
            return Err(ConfigError::new(field, "expected a header name (string)"));
        };
        check_header_name(&header).map_err(|m| ConfigError::new(field.clone(), m))?;
        let lower = header.to_ascii_lowercase();
        if FORBIDDEN_NAMES.contains(&lower.as_str())
            || PROXY_HEADERS.contains(&lower.as_str())
            || lower.starts_with(PROXY_HEADER_PREFIX)
            || lower.starts_with("cf-")
            || lower.starts_with("proxy-")
        {
            return Err(ConfigError::new(field, format!("{header:?} is reserved for the protocol or the runtime")));
        }
        if generated.contains(&lower) {
            return Err(ConfigError::new(field, format!("{header:?} is a header the gateway generates")));
        }
        if out.iter().any(|(_, h)| h.eq_ignore_ascii_case(&header)) {
            return Err(ConfigError::new(field, format!("header {header:?} is used twice")));
        }
        out.push((claim, header));
    }
    Ok(out)
}

/// RFC 9110 token: the characters a header name may use.
pub(crate) fn check_header_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!("{name:?} is not a valid header name"))
    }
}

/// Splits `ORIGIN_URL` into (scheme://authority/base-path without trailing slash, authority).
fn parse_origin(url: &str) -> Result<(String, String), String> {
    let (scheme, rest) = url.split_once("://").ok_or("expected an absolute http(s) URL")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err("expected an http or https URL".into());
    }
    if rest.contains('?') || rest.contains('#') {
        return Err("must not contain a query or fragment".into());
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err("needs a host and no user name or password".into());
    }
    if !authority.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b)) {
        return Err("host contains characters a host name cannot have".into());
    }
    if let Some((_, port)) = authority.rsplit_once(':').filter(|_| !authority.ends_with(']')) {
        if port.parse::<u16>().is_err() {
            return Err("port is not a number between 0 and 65535".into());
        }
    }
    if !path.bytes().all(|b| (0x21..=0x7E).contains(&b)) {
        return Err("base path must be percent-encoded visible ASCII".into());
    }
    let path = path.trim_end_matches('/');
    Ok((format!("{scheme}://{}{path}", authority.to_ascii_lowercase()), authority.to_ascii_lowercase()))
}
