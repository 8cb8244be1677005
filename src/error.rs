//! Every way a request can be refused, and the one place that maps each to an HTTP answer.
//!
//! A [`Reason`] is what the gateway decided; its [`Reason::id`] is stable (it appears in the JSON
//! body, in the log line and in counters). Nothing in a response echoes request input.

use serde::Serialize;

/// Why a request was refused. One `///` line per variant says what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// No credential was presented on a route that needs one.
    MissingToken,
    /// Two different credentials were presented in one request.
    MultipleTokens,
    /// The request itself is malformed (bad header encoding, bad query).
    MalformedRequest,
    /// The token is longer than the configured maximum size.
    TokenTooLarge,
    /// The token is not a well-formed compact JWS.
    MalformedToken,
    /// The token is a JWE (five segments); only signed tokens are accepted.
    EncryptedToken,
    /// The token's `alg` is not allowed for the selected key (this includes `none`).
    AlgorithmNotAllowed,
    /// The token header lists a critical extension (`crit`) this gateway does not implement.
    UnsupportedCritical,
    /// The token's `typ` header is not the one required.
    WrongType,
    /// The token's `iss` is not a configured issuer.
    UnknownIssuer,
    /// No key of the issuer matches the token's `kid` and algorithm.
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// The token's `exp` has passed (beyond leeway).
    Expired,
    /// The token's `nbf` is in the future (beyond leeway).
    NotYetValid,
    /// The token's `iat` is in the future (beyond leeway).
    IssuedInFuture,
    /// The token is older than the configured maximum age.
    TooOld,
    /// The token's `aud` names none of the accepted audiences.
    WrongAudience,
    /// A required claim is missing.
    MissingClaim,
    /// A claim has the wrong type or an invalid value.
    InvalidClaim,
    /// The token or its session was revoked (blacklisted `jti`, subject cutoff, kicked device).
    Revoked,
    /// The opaque session token is unknown or its session has expired.
    SessionNotFound,
    /// A refresh token on a normal route, or an access token on a refresh route.
    WrongTokenUse,
    /// The credential is valid but lacks a required scope, role or permission.
    InsufficientScope,
    /// No route rule matches the request.
    NoRoute,
    /// The subject or device exceeded its rate limit.
    RateLimited,
    /// The revocation store could not answer and the policy is to fail closed.
    RevocationUnavailable,
    /// The issuer's keys could not be fetched and no usable cached keys exist.
    KeysUnavailable,
    /// The origin could not be reached.
    OriginUnreachable,
    /// The worker's configuration is invalid; details are in the log, never in the response.
    ConfigInvalid,
    /// An unexpected internal failure.
    Internal,
}

/// The RFC 6750 error code, where one applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthError {
    /// `invalid_request` (400).
    InvalidRequest,
    /// `invalid_token` (401).
    InvalidToken,
    /// `insufficient_scope` (403).
    InsufficientScope,
}

impl OAuthError {
    pub fn as_str(self) -> &'static str {
        match self {
            OAuthError::InvalidRequest => "invalid_request",
            OAuthError::InvalidToken => "invalid_token",
            OAuthError::InsufficientScope => "insufficient_scope",
        }
    }
}

impl Reason {
    /// Every variant, for tests and documentation.
    pub const ALL: &'static [Reason] = &[
        Reason::MissingToken,
        Reason::MultipleTokens,
        Reason::MalformedRequest,
        Reason::TokenTooLarge,
        Reason::MalformedToken,
        Reason::EncryptedToken,
        Reason::AlgorithmNotAllowed,
        Reason::UnsupportedCritical,
        Reason::WrongType,
        Reason::UnknownIssuer,
        Reason::UnknownKey,
        Reason::BadSignature,
        Reason::Expired,
        Reason::NotYetValid,
        Reason::IssuedInFuture,
        Reason::TooOld,
        Reason::WrongAudience,
        Reason::MissingClaim,
        Reason::InvalidClaim,
        Reason::Revoked,
        Reason::SessionNotFound,
        Reason::WrongTokenUse,
        Reason::InsufficientScope,
        Reason::NoRoute,
        Reason::RateLimited,
        Reason::RevocationUnavailable,
        Reason::KeysUnavailable,
        Reason::OriginUnreachable,
        Reason::ConfigInvalid,
        Reason::Internal,
    ];

    /// Stable identifier: used in the JSON body, the log line and counters.
    pub fn id(self) -> &'static str {
        match self {
            Reason::MissingToken => "missing_token",
            Reason::MultipleTokens => "multiple_tokens",
            Reason::MalformedRequest => "malformed_request",
            Reason::TokenTooLarge => "token_too_large",
            Reason::MalformedToken => "malformed_token",
            Reason::EncryptedToken => "encrypted_token",
            Reason::AlgorithmNotAllowed => "algorithm_not_allowed",
            Reason::UnsupportedCritical => "unsupported_crit",
            Reason::WrongType => "wrong_type",
            Reason::UnknownIssuer => "unknown_issuer",
            Reason::UnknownKey => "unknown_key",
            Reason::BadSignature => "bad_signature",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::IssuedInFuture => "issued_in_future",
            Reason::TooOld => "too_old",
            Reason::WrongAudience => "wrong_audience",
            Reason::MissingClaim => "missing_claim",
            Reason::InvalidClaim => "invalid_claim",
            Reason::Revoked => "revoked",
            Reason::SessionNotFound => "session_not_found",
            Reason::WrongTokenUse => "wrong_token_use",
            Reason::InsufficientScope => "insufficient_scope",
            Reason::NoRoute => "no_route",
            Reason::RateLimited => "rate_limited",
            Reason::RevocationUnavailable => "revocation_unavailable",
            Reason::KeysUnavailable => "keys_unavailable",
            Reason::OriginUnreachable => "origin_unreachable",
            Reason::ConfigInvalid => "config_invalid",
            Reason::Internal => "internal",
        }
    }

    /// Short, fixed text for `error_description`; never contains request input.
    pub fn description(self) -> &'static str {
        match self {
            Reason::MissingToken => "no credential presented",
            Reason::MultipleTokens => "more than one credential presented",
            Reason::MalformedRequest => "malformed request",
            Reason::TokenTooLarge => "token too large",
            Reason::MalformedToken => "token is malformed",
            Reason::EncryptedToken => "encrypted tokens are not accepted",
            Reason::AlgorithmNotAllowed => "algorithm not allowed",
            Reason::UnsupportedCritical => "unsupported critical header",
            Reason::WrongType => "wrong token type",
            Reason::UnknownIssuer => "unknown issuer",
            Reason::UnknownKey => "no matching key",
            Reason::BadSignature => "signature does not verify",
            Reason::Expired => "token expired",
            Reason::NotYetValid => "token not yet valid",
            Reason::IssuedInFuture => "token issued in the future",
            Reason::TooOld => "token too old",
            Reason::WrongAudience => "wrong audience",
            Reason::MissingClaim => "required claim missing",
            Reason::InvalidClaim => "claim invalid",
            Reason::Revoked => "token revoked",
            Reason::SessionNotFound => "session not found or expired",
            Reason::WrongTokenUse => "token not valid for this route",
            Reason::InsufficientScope => "insufficient scope",
            Reason::NoRoute => "no route for this request",
            Reason::RateLimited => "rate limit exceeded",
            Reason::RevocationUnavailable => "revocation check unavailable",
            Reason::KeysUnavailable => "signing keys unavailable",
            Reason::OriginUnreachable => "origin unreachable",
            Reason::ConfigInvalid => "gateway misconfigured",
            Reason::Internal => "internal error",
        }
    }

    /// The HTTP status this reason answers with. The only place statuses are chosen.
    pub fn status(self) -> u16 {
        match self {
            Reason::MultipleTokens | Reason::MalformedRequest => 400,
            Reason::MissingToken
            | Reason::TokenTooLarge
            | Reason::MalformedToken
            | Reason::EncryptedToken
            | Reason::AlgorithmNotAllowed
            | Reason::UnsupportedCritical
            | Reason::WrongType
            | Reason::UnknownIssuer
            | Reason::UnknownKey
            | Reason::BadSignature
            | Reason::Expired
            | Reason::NotYetValid
            | Reason::IssuedInFuture
            | Reason::TooOld
            | Reason::WrongAudience
            | Reason::MissingClaim
            | Reason::InvalidClaim
            | Reason::Revoked
            | Reason::SessionNotFound
            | Reason::WrongTokenUse => 401,
            Reason::InsufficientScope | Reason::NoRoute => 403,
            Reason::RateLimited => 429,
            Reason::OriginUnreachable => 502,
            Reason::RevocationUnavailable | Reason::KeysUnavailable => 503,
            Reason::ConfigInvalid | Reason::Internal => 500,
        }
    }

    /// The RFC 6750 error code. `MissingToken` has none (RFC 6750 §3.1: no code when no
    /// credential was sent).
    pub fn oauth_error(self) -> Option<OAuthError> {
        match self.status() {
            400 => Some(OAuthError::InvalidRequest),
            401 if self == Reason::MissingToken => None,
            401 => Some(OAuthError::InvalidToken),
            403 if self == Reason::InsufficientScope => Some(OAuthError::InsufficientScope),
            _ => None,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

/// A refusal: the reason plus what the answer needs beyond it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    /// Seconds for `Retry-After` (429 and 503).
    pub retry_after: Option<u64>,
    /// Space-separated scopes for `WWW-Authenticate: … scope="…"` on 403 insufficient_scope.
    pub required_scope: Option<String>,
}

impl From<Reason> for Refusal {
    fn from(reason: Reason) -> Self {
        Refusal { reason, retry_after: None, required_scope: None }
    }
}

impl Refusal {
    pub fn new(reason: Reason) -> Self {
        reason.into()
    }
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.required_scope = Some(scope.into());
        self
    }

    /// The HTTP answer for this refusal.
    pub fn to_response(&self, realm: &str) -> ErrorResponse {
        let reason = self.reason;
        let status = reason.status();
        let mut headers = vec![
            ("content-type".to_string(), "application/json".to_string()),
            ("cache-control".to_string(), "no-store".to_string()),
        ];
        if status == 401 || status == 403 && reason == Reason::InsufficientScope || status == 400 {
            let mut www = format!("Bearer realm=\"{}\"", quote_safe(realm));
            if let Some(code) = reason.oauth_error() {
                www.push_str(&format!(
                    ", error=\"{}\", error_description=\"{}\"",
                    code.as_str(),
                    reason.description()
                ));
            }
            if let Some(scope) = &self.required_scope {
                www.push_str(&format!(", scope=\"{}\"", quote_safe(scope)));
            }
            headers.push(("www-authenticate".to_string(), www));
        }
        let retry = self.retry_after.or(match status {
            429 | 503 => Some(1),
            _ => None,
        });
        if let Some(secs) = retry {
            headers.push(("retry-after".to_string(), secs.to_string()));
        }
        let body = ErrorBody {
            error: reason.oauth_error().map(OAuthError::as_str).unwrap_or(match status {
                401 => "unauthorized",
                403 => "forbidden",
                429 => "too_many_requests",
                502 => "bad_gateway",
                503 => "service_unavailable",
                _ => "internal_error",
            }),
            reason: reason.id(),
            error_description: reason.description(),
            scope: self.required_scope.as_deref(),
        };
        ErrorResponse {
            status,
            headers,
            body: serde_json::to_string(&body).unwrap_or_else(|_| "{}".to_string()),
        }
    }
}

/// Keep only characters that are safe inside a quoted-string of a header value.
fn quote_safe(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\' || *c == ' ').collect()
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    reason: &'a str,
    error_description: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
}

/// A fully built error answer: status, headers (lower-case names) and JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl ErrorResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prints every reason with its answer, and checks the invariants each must keep.
    #[test]
    fn every_reason_maps_to_a_documented_answer() {
        let mut ids = std::collections::HashSet::new();
        for &r in Reason::ALL {
            let resp = Refusal::new(r).to_response("edge");
            println!("{:<24} {} {}", r.id(), resp.status, resp.body);
            assert!(ids.insert(r.id()), "duplicate id {}", r.id());
            let body: serde_json::Value = serde_json::from_str(&resp.body).unwrap();
            assert_eq!(body["reason"], r.id());
            assert_eq!(resp.status, r.status());
            match resp.status {
                401 => assert!(resp.header("www-authenticate").unwrap().starts_with("Bearer realm=\"edge\"")),
                429 | 503 => assert!(resp.header("retry-after").is_some()),
                _ => {}
            }
        }
    }

    #[test]
    fn missing_token_has_no_error_code() {
        let resp = Refusal::new(Reason::MissingToken).to_response("api");
        assert_eq!(resp.status, 401);
        assert_eq!(resp.header("www-authenticate"), Some("Bearer realm=\"api\""));
    }

    #[test]
    fn invalid_token_names_code_and_reason() {
        let resp = Refusal::new(Reason::Expired).to_response("api");
        let www = resp.header("www-authenticate").unwrap();
        assert!(www.contains("error=\"invalid_token\""), "{www}");
        assert!(www.contains("error_description=\"token expired\""), "{www}");
    }

    #[test]
    fn insufficient_scope_is_403_with_scope() {
        let resp = Refusal::new(Reason::InsufficientScope).scope("orders:write").to_response("api");
        assert_eq!(resp.status, 403);
        assert!(resp.header("www-authenticate").unwrap().contains("scope=\"orders:write\""));
        assert!(resp.body.contains("\"error\":\"insufficient_scope\""));
    }

    #[test]
    fn realm_cannot_inject_quotes() {
        let resp = Refusal::new(Reason::MissingToken).to_response("a\"b\r\nc");
        assert_eq!(resp.header("www-authenticate"), Some("Bearer realm=\"abc\""));
    }
}
