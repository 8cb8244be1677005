//! Route rules: which policy applies to a request.
//!
//! Configured by `ROUTES`, a JSON array of rules tried in order; the first rule that matches the
//! request's host, path and method decides. When `ROUTES` is unset the table is the single rule
//! `{"name": "default", "path": "/**", "auth": "jwt+revocation"}`. A request no rule matches is
//! refused with [`Reason::NoRoute`].
//!
//! Matching rules (see [`path`] for how paths are normalised):
//! - host: exact (case-insensitive, a trailing dot ignored) or `*.example.com`, which matches any
//!   subdomain at any depth (like Cloudflare route patterns) but not `example.com` itself;
//! - methods: compared case-insensitively (`patch` is treated as `PATCH`); `HEAD` is not implied
//!   by `GET`;
//! - path: on the percent-decoded segments. A path whose routing would depend on letter case
//!   (the first rule matching case-sensitively differs from the first matching
//!   case-insensitively) matches no rule: a case-insensitive origin (IIS, some file servers)
//!   would otherwise serve `/ADMIN` as `/admin` under a different rule.

pub mod path;
mod parse;

use crate::error::{Reason, Refusal};
use crate::http::RequestHead;
use crate::identity::Identity;
use crate::vars::{ConfigError, Vars};

pub use parse::is_scope_token;
pub use path::{AmbiguousPath, PathPattern};

/// How a route authenticates its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// `public`: no credential needed; one presented is neither checked nor removed.
    Public,
    /// `jwt`: a valid access token, no revocation check.
    Jwt,
    /// `jwt+revocation`: a valid access token that the revocation store says is not revoked.
    JwtRevocation,
    /// `session`: an opaque session token looked up in Redis.
    Session,
    /// `refresh`: a refresh token (only refresh tokens are accepted here).
    Refresh,
}

impl AuthMode {
    /// The configuration spelling (`public`, `jwt`, `jwt+revocation`, `session`, `refresh`).
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Public => "public",
            AuthMode::Jwt => "jwt",
            AuthMode::JwtRevocation => "jwt+revocation",
            AuthMode::Session => "session",
            AuthMode::Refresh => "refresh",
        }
    }

    /// Whether the revocation store must be asked for this route.
    pub fn checks_revocation(self) -> bool {
        matches!(self, AuthMode::JwtRevocation | AuthMode::Session | AuthMode::Refresh)
    }
}

/// A host pattern: exact name or `*.` + suffix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Matches this host only (lower-case, no trailing dot).
    Exact(String),
    /// `*.example.com`: holds `.example.com`; matches any name ending with it.
    Subdomains(String),
}

impl HostPattern {
    /// Whether `host` (as in the request URL, without port) matches.
    pub fn matches(&self, host: &str) -> bool {
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        match self {
            HostPattern::Exact(h) => host == *h,
            HostPattern::Subdomains(suffix) => host.len() > suffix.len() && host.ends_with(suffix.as_str()),
        }
    }
}

/// One route rule. Field defaults are those of the `ROUTES` JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// `name`; default `rule<i>` (index in `ROUTES`). Appears in logs.
    pub name: String,
    /// `host`; default any host.
    pub host: Option<HostPattern>,
    /// `path` (required).
    pub path: PathPattern,
    /// `methods`, upper-case; default any method.
    pub methods: Option<Vec<String>>,
    /// `auth` (required).
    pub auth: AuthMode,
    /// `issuers`: accepted token issuers; default any configured issuer.
    pub issuers: Option<Vec<String>>,
    /// `scopes_any`: the caller needs at least one of these; default none required.
    pub scopes_any: Vec<String>,
    /// `scopes_all`: the caller needs every one of these; default none required.
    pub scopes_all: Vec<String>,
    /// `allow_preflight` (default false): CORS preflights pass without a credential.
    pub allow_preflight: bool,
    /// `keep_credential` (default false): forward the credential to the origin.
    pub keep_credential: bool,
}

impl Rule {
    /// Whether this request is a CORS preflight (`OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`).
    pub fn is_preflight(head: &RequestHead) -> bool {
        head.method.eq_ignore_ascii_case("OPTIONS")
            && head.header("origin").is_some()
            && head.header("access-control-request-method").is_some()
    }

    /// Whether the gateway lets this request through without a credential because it is a CORS
    /// preflight on a rule with `allow_preflight`.
    pub fn lets_preflight_through(&self, head: &RequestHead) -> bool {
        self.allow_preflight && Rule::is_preflight(head)
    }

    /// Whether a token from issuer `iss` is accepted on this route.
    pub fn allows_issuer(&self, iss: &str) -> bool {
        match &self.issuers {
            None => true,
            Some(list) => list.iter().any(|i| i == iss),
        }
    }

    /// Checks `scopes_all` and `scopes_any` against the caller's token scopes and Redis
    /// permissions. Refuses with 403 `insufficient_scope`; the refusal's scope names the missing
    /// `scopes_all` entries and, when no `scopes_any` entry is held, every `scopes_any` entry.
    pub fn check_scopes(&self, identity: &Identity) -> Result<(), Refusal> {
        let mut missing: Vec<&str> =
            self.scopes_all.iter().filter(|s| !identity.has_scope(s)).map(String::as_str).collect();
        if !self.scopes_any.is_empty() && !self.scopes_any.iter().any(|s| identity.has_scope(s)) {
            missing.extend(self.scopes_any.iter().map(String::as_str));
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Refusal::new(Reason::InsufficientScope).scope(missing.join(" ")))
        }
    }

    fn matches_method(&self, head: &RequestHead) -> bool {
        let Some(methods) = &self.methods else { return true };
        if methods.iter().any(|m| m.eq_ignore_ascii_case(&head.method)) {
            return true;
        }
        // A preflight asks about the method the real request will use.
        self.lets_preflight_through(head)
            && head
                .header("access-control-request-method")
                .is_some_and(|m| methods.iter().any(|x| x.eq_ignore_ascii_case(m.trim())))
    }

    fn matches(&self, head: &RequestHead, segments: &[String], folded: bool) -> bool {
        self.host.as_ref().is_none_or(|h| h.matches(&head.host))
            && self.matches_method(head)
            && self.path.matches(segments, folded)
    }
}

/// The ordered route rules.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteTable {
    rules: Vec<Rule>,
}

impl RouteTable {
    /// Reads `ROUTES` (JSON array; default: one `jwt+revocation` rule for `/**`). Errors name the
    /// field, e.g. `ROUTES[2].auth`. Unknown fields are errors (a misspelt `scopes_all` must not
    /// silently drop a requirement).
    pub fn from_vars(vars: &dyn Vars) -> Result<RouteTable, ConfigError> {
        parse::from_vars(vars).map(|rules| RouteTable { rules })
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The first rule matching the request, or `None` (refuse with [`Reason::NoRoute`]). An
    /// ambiguous path (see [`path`]) or one whose routing depends on letter case matches no rule.
    pub fn find(&self, head: &RequestHead) -> Option<&Rule> {
        self.resolve(head).ok()
    }

    /// Like [`RouteTable::find`] but says why: `MalformedRequest` (400) for an ambiguous path,
    /// `NoRoute` (403) when no rule matches or the match depends on letter case.
    pub fn resolve(&self, head: &RequestHead) -> Result<&Rule, Reason> {
        let segments = path::normalize(&head.path).map_err(|_| Reason::MalformedRequest)?;
        let folded: Vec<String> = segments.iter().map(|s| s.to_lowercase()).collect();
        let exact = self.rules.iter().position(|r| r.matches(head, &segments, false));
        let loose = self.rules.iter().position(|r| r.matches(head, &folded, true));
        match (exact, loose) {
            (Some(a), Some(b)) if a == b => self.rules.get(a).ok_or(Reason::NoRoute),
            _ => Err(Reason::NoRoute),
        }
    }
}

#[cfg(test)]
mod tests;
