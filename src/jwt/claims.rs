//! Claim validation for one issuer: times with leeway, audience, type and required claims.

use serde_json::{Map, Value};

use crate::error::Reason;

/// What a token's claims must satisfy. Built per issuer from `ISSUERS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validation {
    /// Exact required `iss`. No default (required in config).
    pub issuer: String,
    /// Accepted audiences; the token's `aud` (string or array) must name at least one.
    /// No default (required, non-empty).
    pub audiences: Vec<String>,
    /// Claims that must be present. Default `["exp"]`.
    pub required_claims: Vec<String>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds. Default `JWT_LEEWAY` (60).
    pub leeway: u64,
    /// Maximum age in seconds measured from `iat` (which then becomes required). Default none.
    pub max_age: Option<u64>,
    /// Required `typ` header, compared case-insensitively with an optional `application/`
    /// prefix. Default none (any or no `typ`).
    pub typ: Option<String>,
}

impl Validation {
    /// A validation with the documented defaults for the given issuer and audiences.
    pub fn new(issuer: impl Into<String>, audiences: Vec<String>) -> Self {
        Validation {
            issuer: issuer.into(),
            audiences,
            required_claims: vec!["exp".to_string()],
            leeway: 60,
            max_age: None,
            typ: None,
        }
    }
}

/// The registered time claims of a validated token (Unix seconds, fractions dropped).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeClaims {
    pub exp: Option<u64>,
    pub nbf: Option<u64>,
    pub iat: Option<u64>,
}

/// Reads a NumericDate claim: absent → `None`; a JSON number → seconds (negative → 0);
/// anything else (e.g. a string) → `InvalidClaim`.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, Reason> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(u) = n.as_u64() {
                Ok(Some(u))
            } else if n.as_i64().is_some() {
                Ok(Some(0))
            } else {
                let f = n.as_f64().ok_or(Reason::InvalidClaim)?;
                if !f.is_finite() {
                    return Err(Reason::InvalidClaim);
                }
                // `as` saturates: negatives → 0, huge → u64::MAX.
                Ok(Some(f.floor() as u64))
            }
        }
        Some(_) => Err(Reason::InvalidClaim),
    }
}

/// Normalises a `typ` value for comparison (RFC 7515 §4.1.9): lower-case, without `application/`.
pub fn normalize_typ(t: &str) -> String {
    let t = t.trim().to_ascii_lowercase();
    match t.strip_prefix("application/") {
        Some(rest) => rest.to_string(),
        None => t,
    }
}

/// Whether a header `typ` matches a configured one.
pub fn typ_matches(header_typ: Option<&str>, wanted: &str) -> bool {
    header_typ.map(|t| normalize_typ(t) == normalize_typ(wanted)).unwrap_or(false)
}

impl Validation {
    /// Checks `claims` (and the header `typ`, unless `skip_typ`) at time `now`. Order: required
    /// claims, claim types, `exp`, `nbf`, `iat`, max age, `iss`, `aud`, `typ`.
    pub fn validate(
        &self,
        header_typ: Option<&str>,
        skip_typ: bool,
        claims: &Map<String, Value>,
        now: u64,
    ) -> Result<TimeClaims, Reason> {
        for name in &self.required_claims {
            if !claims.contains_key(name.as_str()) {
                return Err(Reason::MissingClaim);
            }
        }
        if self.max_age.is_some() && !claims.contains_key("iat") {
            return Err(Reason::MissingClaim);
        }
        let times = TimeClaims {
            exp: numeric_date(claims, "exp")?,
            nbf: numeric_date(claims, "nbf")?,
            iat: numeric_date(claims, "iat")?,
        };
        for name in ["sub", "jti"] {
            if claims.get(name).is_some_and(|v| !v.is_string()) {
                return Err(Reason::InvalidClaim);
            }
        }
        let leeway = self.leeway;
        if let Some(exp) = times.exp {
            if now >= exp.saturating_add(leeway) {
                return Err(Reason::Expired);
            }
        }
        if let Some(nbf) = times.nbf {
            if nbf > now.saturating_add(leeway) {
                return Err(Reason::NotYetValid);
            }
        }
        if let Some(iat) = times.iat {
            if iat > now.saturating_add(leeway) {
                return Err(Reason::IssuedInFuture);
            }
            if let Some(max_age) = self.max_age {
                if now > iat.saturating_add(max_age).saturating_add(leeway) {
                    return Err(Reason::TooOld);
                }
            }
        }
        match claims.get("iss") {
            Some(Value::String(iss)) if *iss == self.issuer => {}
            None => return Err(Reason::MissingClaim),
            Some(Value::String(_)) => return Err(Reason::UnknownIssuer),
            Some(_) => return Err(Reason::InvalidClaim),
        }
        let aud_ok = match claims.get("aud") {
            None => return Err(Reason::MissingClaim),
            Some(Value::String(a)) => self.audiences.iter().any(|w| w == a),
            Some(Value::Array(list)) => {
                if list.iter().any(|v| !v.is_string()) {
                    return Err(Reason::InvalidClaim);
                }
                list.iter().filter_map(Value::as_str).any(|a| self.audiences.iter().any(|w| w == a))
            }
            Some(_) => return Err(Reason::InvalidClaim),
        };
        if !aud_ok {
            return Err(Reason::WrongAudience);
        }
        if let (Some(wanted), false) = (&self.typ, skip_typ) {
            if !typ_matches(header_typ, wanted) {
                return Err(Reason::WrongType);
            }
        }
        Ok(times)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_700_000_000;

    fn v() -> Validation {
        Validation::new("https://id.example", vec!["api".into(), "web".into()])
    }
    fn check(v: &Validation, claims: Value) -> Result<TimeClaims, Reason> {
        v.validate(None, false, claims.as_object().unwrap(), NOW)
    }
    fn base() -> Value {
        json!({"iss":"https://id.example","aud":"api","exp":NOW + 300,"iat":NOW - 10,"sub":"u1"})
    }
    fn with(k: &str, val: Value) -> Value {
        let mut c = base();
        c[k] = val;
        c
    }
    fn without(k: &str) -> Value {
        let mut c = base();
        c.as_object_mut().unwrap().remove(k);
        c
    }

    #[test]
    fn accepts_a_good_token() {
        let t = check(&v(), base()).unwrap();
        assert_eq!(t, TimeClaims { exp: Some(NOW + 300), nbf: None, iat: Some(NOW - 10) });
    }

    #[test]
    fn times_with_leeway() {
        assert!(check(&v(), with("exp", json!(NOW - 59))).is_ok());
        assert_eq!(check(&v(), with("exp", json!(NOW - 60))), Err(Reason::Expired));
        assert!(check(&v(), with("nbf", json!(NOW + 60))).is_ok());
        assert_eq!(check(&v(), with("nbf", json!(NOW + 61))), Err(Reason::NotYetValid));
        assert!(check(&v(), with("iat", json!(NOW + 60))).is_ok());
        assert_eq!(check(&v(), with("iat", json!(NOW + 61))), Err(Reason::IssuedInFuture));
        assert!(check(&v(), with("exp", json!((NOW + 10) as f64 + 0.5))).is_ok());
        assert_eq!(check(&v(), with("exp", json!(-5))), Err(Reason::Expired));
    }

    #[test]
    fn numeric_dates_must_be_numbers() {
        assert_eq!(check(&v(), with("exp", json!((NOW + 300).to_string()))), Err(Reason::InvalidClaim));
        assert_eq!(check(&v(), with("nbf", json!("0"))), Err(Reason::InvalidClaim));
        assert_eq!(check(&v(), with("iat", json!(null))), Err(Reason::InvalidClaim));
        assert_eq!(check(&v(), with("sub", json!(5))), Err(Reason::InvalidClaim));
    }

    #[test]
    fn max_age_and_required_claims() {
        let mut val = v();
        val.max_age = Some(100);
        assert!(check(&val, with("iat", json!(NOW - 150))).is_ok()); // 100 + 60 leeway
        assert_eq!(check(&val, with("iat", json!(NOW - 161))), Err(Reason::TooOld));
        assert_eq!(check(&val, without("iat")), Err(Reason::MissingClaim));
        assert_eq!(check(&v(), without("exp")), Err(Reason::MissingClaim));
        let mut val = v();
        val.required_claims = vec!["sub".into()];
        assert!(check(&val, without("exp")).is_ok());
        assert_eq!(check(&val, without("sub")), Err(Reason::MissingClaim));
    }

    #[test]
    fn audience_and_issuer() {
        assert!(check(&v(), with("aud", json!(["other", "web"]))).is_ok());
        assert_eq!(check(&v(), with("aud", json!(["other"]))), Err(Reason::WrongAudience));
        assert_eq!(check(&v(), with("aud", json!("API"))), Err(Reason::WrongAudience));
        assert_eq!(check(&v(), with("aud", json!([1]))), Err(Reason::InvalidClaim));
        assert_eq!(check(&v(), without("aud")), Err(Reason::MissingClaim));
        assert_eq!(check(&v(), with("iss", json!("https://id.example/"))), Err(Reason::UnknownIssuer));
    }

    #[test]
    fn typ_rules() {
        let mut val = v();
        val.typ = Some("at+jwt".into());
        let c = base();
        let m = c.as_object().unwrap();
        assert!(val.validate(Some("at+JWT"), false, m, NOW).is_ok());
        assert!(val.validate(Some("application/at+jwt"), false, m, NOW).is_ok());
        assert_eq!(val.validate(Some("JWT"), false, m, NOW), Err(Reason::WrongType));
        assert_eq!(val.validate(None, false, m, NOW), Err(Reason::WrongType));
        assert!(val.validate(Some("refresh+jwt"), true, m, NOW).is_ok());
    }
}
