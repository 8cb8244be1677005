//! One trusted issuer, as configured in the `ISSUERS` variable (a JSON array; the format is
//! fixed, other parts of the system read it too). Unknown members are ignored.
//!
//! ```json
//! [{"issuer": "https://id.example", "audiences": ["api"], "algorithms": ["RS256"],
//!   "jwks": {"keys": []}, "pem_keys": [{"kid": "k1", "alg": "RS256", "pem": "-----BEGIN PUBLIC KEY-----..."}],
//!   "hmac_secrets": [{"kid": "k1", "alg": "HS256", "secret_var": "JWT_SECRET"}],
//!   "jwks_uri": "https://id.example/jwks.json", "discovery": true, "typ": "at+jwt",
//!   "required_claims": ["sub", "exp"], "max_age": 3600, "leeway": 30,
//!   "refresh_typ": "refresh+jwt", "refresh_claim": {"name": "token_use", "value": "refresh"}}]
//! ```

use serde::Deserialize;
use serde_json::{Map, Value};

use super::claims::{typ_matches, Validation};
use super::header::{Algorithm, Family};
use super::jwk::{check_hmac_len, parse_jwk, JwkPolicy};
use super::keys::{pin_algorithms, HmacSecret, KeyMaterial, VerifyingKey};
use super::pem::parse_public_key_pem;
use crate::vars::{ConfigError, Vars};

/// How a refresh token of this issuer is told apart from an access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshRule {
    /// The header `typ` (compared like `typ`), e.g. `refresh+jwt`.
    Typ(String),
    /// A claim with a given string value, e.g. `token_use` = `refresh`.
    Claim { name: String, value: String },
}

/// Where the issuer's remote keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksLocation {
    /// A fixed JWKS URL (`jwks_uri`).
    Uri(String),
    /// `<issuer>/.well-known/openid-configuration` names the JWKS URL (`discovery: true`).
    Discovery { config_url: String },
}

/// A trusted issuer.
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    /// Exact `iss`.
    pub issuer: String,
    /// The issuer's allow-list of algorithms (`algorithms`). Default none: each key's pinned alg.
    pub algorithms: Option<Vec<Algorithm>>,
    /// Keys from `jwks`, `pem_keys` and `hmac_secrets`.
    pub static_keys: Vec<VerifyingKey>,
    /// Remote keys (`jwks_uri` or `discovery`). Default none.
    pub jwks: Option<JwksLocation>,
    /// Claim rules (audiences, typ, required claims, max age, leeway).
    pub validation: Validation,
    /// How refresh tokens are recognised (`refresh_typ` and/or `refresh_claim`). Default: none are.
    pub refresh: Vec<RefreshRule>,
}

impl IssuerConfig {
    /// Whether a token with this header `typ` and these claims is a refresh token.
    pub fn is_refresh(&self, header_typ: Option<&str>, claims: &Map<String, Value>) -> bool {
        self.refresh.iter().any(|r| match r {
            RefreshRule::Typ(t) => typ_matches(header_typ, t),
            RefreshRule::Claim { name, value } => claims.get(name).and_then(Value::as_str) == Some(value.as_str()),
        })
    }

    /// Whether the issuer accepts `alg` at all (its allow-list, when it has one).
    pub fn accepts(&self, alg: Algorithm) -> bool {
        self.algorithms.as_ref().map(|l| l.contains(&alg)).unwrap_or(true)
    }
}

#[derive(Deserialize)]
struct RawIssuer {
    issuer: Option<String>,
    audiences: Option<Vec<String>>,
    algorithms: Option<Vec<String>>,
    jwks: Option<Value>,
    pem_keys: Option<Vec<RawPem>>,
    hmac_secrets: Option<Vec<RawHmac>>,
    jwks_uri: Option<String>,
    discovery: Option<bool>,
    typ: Option<String>,
    required_claims: Option<Vec<String>>,
    max_age: Option<u64>,
    leeway: Option<u64>,
    refresh_typ: Option<String>,
    refresh_claim: Option<RawRefreshClaim>,
}

#[derive(Deserialize)]
struct RawPem {
    kid: Option<String>,
    alg: Option<String>,
    pem: String,
}

#[derive(Deserialize)]
struct RawHmac {
    kid: Option<String>,
    alg: String,
    secret_var: String,
}

#[derive(Deserialize)]
struct RawRefreshClaim {
    name: String,
    value: String,
}

/// Whether a key URL is acceptable: `https://`, or `http://` to a loopback host (local dev).
pub fn acceptable_key_url(url: &str) -> bool {
    match crate::http::RequestHead::split_url(url) {
        Some((scheme, host, _, _)) => {
            scheme == "https" || (scheme == "http" && (host == "localhost" || host == "127.0.0.1" || host == "[::1]"))
        }
        None => false,
    }
}

/// Parses the `ISSUERS` JSON text. `default_leeway` is `JWT_LEEWAY`; HMAC secrets are read from
/// `vars` by the names given in `secret_var`.
pub fn parse_issuers(text: &str, default_leeway: u64, vars: &dyn Vars) -> Result<Vec<IssuerConfig>, ConfigError> {
    let items: Vec<Value> =
        serde_json::from_str(text).map_err(|e| ConfigError::new("ISSUERS", format!("expected a JSON array of issuers: {e}")))?;
    let mut out: Vec<IssuerConfig> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let issuer = parse_issuer(i, item, default_leeway, vars)?;
        if out.iter().any(|o| o.issuer == issuer.issuer) {
            return Err(ConfigError::new(format!("ISSUERS[{i}].issuer"), "issuer configured twice"));
        }
        out.push(issuer);
    }
    Ok(out)
}

fn parse_issuer(i: usize, item: Value, default_leeway: u64, vars: &dyn Vars) -> Result<IssuerConfig, ConfigError> {
    let f = |name: &str| format!("ISSUERS[{i}].{name}");
    let raw: RawIssuer = serde_json::from_value(item).map_err(|e| ConfigError::new(format!("ISSUERS[{i}]"), e.to_string()))?;
    let issuer = raw.issuer.filter(|s| !s.trim().is_empty()).ok_or_else(|| ConfigError::new(f("issuer"), "required"))?;
    let audiences = raw.audiences.unwrap_or_default();
    if audiences.is_empty() || audiences.iter().any(|a| a.is_empty()) {
        return Err(ConfigError::new(f("audiences"), "required: a non-empty list of non-empty strings"));
    }
    let algorithms = match raw.algorithms {
        None => None,
        Some(names) => {
            let mut algs = Vec::new();
            for (j, n) in names.iter().enumerate() {
                let a = Algorithm::from_name(n)
                    .ok_or_else(|| ConfigError::new(format!("ISSUERS[{i}].algorithms[{j}]"), format!("unsupported algorithm {n:?}")))?;
                algs.push(a);
            }
            if algs.is_empty() {
                return Err(ConfigError::new(f("algorithms"), "must not be empty when given"));
            }
            Some(algs)
        }
    };
    let allow = algorithms.as_deref();
    let mut static_keys = Vec::new();
    if let Some(jwks) = &raw.jwks {
        let keys = jwks
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| ConfigError::new(f("jwks"), "expected {\"keys\": [...]}"))?;
        for (j, k) in keys.iter().enumerate() {
            let key = parse_jwk(k, JwkPolicy { allow_symmetric: false, allow_list: allow })
                .map_err(|e| ConfigError::new(format!("ISSUERS[{i}].jwks.keys[{j}]"), e))?;
            static_keys.push(key);
        }
    }
    for (j, p) in raw.pem_keys.unwrap_or_default().iter().enumerate() {
        let field = format!("ISSUERS[{i}].pem_keys[{j}]");
        let material = parse_public_key_pem(&p.pem).map_err(|e| ConfigError::new(format!("{field}.pem"), e))?;
        let declared = match &p.alg {
            None => None,
            Some(n) => Some(
                Algorithm::from_name(n).ok_or_else(|| ConfigError::new(format!("{field}.alg"), format!("unsupported algorithm {n:?}")))?,
            ),
        };
        let algs = pin_algorithms(&material, declared, allow).map_err(|e| ConfigError::new(format!("{field}.alg"), e))?;
        static_keys.push(VerifyingKey::new(p.kid.clone(), material, algs));
    }
    for (j, h) in raw.hmac_secrets.unwrap_or_default().iter().enumerate() {
        let field = format!("ISSUERS[{i}].hmac_secrets[{j}]");
        let alg = Algorithm::from_name(&h.alg)
            .filter(|a| a.family() == Family::Hmac)
            .ok_or_else(|| ConfigError::new(format!("{field}.alg"), "expected HS256, HS384 or HS512"))?;
        let secret = vars
            .get(&h.secret_var)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ConfigError::new(format!("{field}.secret_var"), format!("secret {:?} is not set", h.secret_var)))?;
        check_hmac_len(alg, secret.len()).map_err(|e| ConfigError::new(format!("{field}.secret_var"), e))?;
        let material = KeyMaterial::Hmac(HmacSecret::new(secret.into_bytes()));
        let algs = pin_algorithms(&material, Some(alg), allow).map_err(|e| ConfigError::new(format!("{field}.alg"), e))?;
        static_keys.push(VerifyingKey::new(h.kid.clone(), material, algs));
    }
    let jwks = match (raw.jwks_uri, raw.discovery.unwrap_or(false)) {
        (Some(_), true) => return Err(ConfigError::new(f("discovery"), "use either jwks_uri or discovery, not both")),
        (Some(uri), false) => {
            if !acceptable_key_url(&uri) {
                return Err(ConfigError::new(f("jwks_uri"), "must be an https:// URL (http:// only for localhost)"));
            }
            Some(JwksLocation::Uri(uri))
        }
        (None, true) => {
            let config_url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
            if !acceptable_key_url(&config_url) {
                return Err(ConfigError::new(f("discovery"), "discovery needs an https:// issuer (http:// only for localhost)"));
            }
            Some(JwksLocation::Discovery { config_url })
        }
        (None, false) => None,
    };
    if static_keys.is_empty() && jwks.is_none() {
        return Err(ConfigError::new(f("jwks_uri"), "no keys: give jwks, pem_keys, hmac_secrets, jwks_uri or discovery"));
    }
    let mut validation = Validation::new(issuer.clone(), audiences);
    if let Some(rc) = raw.required_claims {
        validation.required_claims = rc;
    }
    validation.leeway = raw.leeway.unwrap_or(default_leeway);
    validation.max_age = raw.max_age;
    validation.typ = raw.typ.filter(|t| !t.trim().is_empty());
    let mut refresh = Vec::new();
    if let Some(t) = raw.refresh_typ.filter(|t| !t.trim().is_empty()) {
        refresh.push(RefreshRule::Typ(t));
    }
    if let Some(c) = raw.refresh_claim {
        if c.name.is_empty() {
            return Err(ConfigError::new(f("refresh_claim.name"), "must not be empty"));
        }
        refresh.push(RefreshRule::Claim { name: c.name, value: c.value });
    }
    Ok(IssuerConfig { issuer, algorithms, static_keys, jwks, validation, refresh })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const RSA_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAorRRoH0KpfluRVZxUTVQ\nUUqKW0YuvvcXCU+h/ugiJOY3+XRtP3yv0xh42AMltu9aFwD2WQO0aUKeidbqyIRQ\nl7WrOTGJ25JRLtincRoSU/rNIPecFegkfz0+QuRuSMmOJUov6XZTE6A+/48X4aAp\nOXofomqNzib0kO2BKZYV2YFMItphBCjgnH2WWFlCZvXAIdD87KCNlFoSvoLeTR7O\na0wDFFtdNJXU7VQR64eNrwX9evw+Ca2g8RJkIvWQl1oZaYFvSGmfT5DOX2pn7A34\nRqkiwjU03TvuRzMx14U99LHdCVhrMa9mkOjdXBmXV/D9cUtdeU24WYX/r6fpnI6n\nhQIDAQAB\n-----END PUBLIC KEY-----\n";

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }
    fn err(json: &str, v: &HashMap<String, String>) -> ConfigError {
        parse_issuers(json, 60, v).unwrap_err()
    }

    #[test]
    fn full_issuer_parses_with_defaults() {
        let v = vars(&[("JWT_SECRET", "0123456789abcdef0123456789abcdef")]);
        let json = serde_json::json!([{
            "issuer": "https://id.example", "audiences": ["api"],
            "pem_keys": [{"kid": "p1", "pem": RSA_PEM}],
            "hmac_secrets": [{"alg": "HS256", "secret_var": "JWT_SECRET"}],
            "jwks_uri": "https://id.example/jwks.json", "refresh_typ": "refresh+jwt",
            "some_future_field": 1
        }]);
        let iss = parse_issuers(&json.to_string(), 45, &v).unwrap();
        let i = &iss[0];
        assert_eq!(i.static_keys.len(), 2);
        assert_eq!(i.static_keys[0].algorithms, vec![Algorithm::RS256]);
        assert_eq!(i.static_keys[1].algorithms, vec![Algorithm::HS256]);
        assert_eq!(i.validation.leeway, 45);
        assert_eq!(i.validation.required_claims, vec!["exp".to_string()]);
        assert_eq!(i.jwks, Some(JwksLocation::Uri("https://id.example/jwks.json".into())));
        assert!(i.is_refresh(Some("Refresh+JWT"), &Map::new()));
    }

    #[test]
    fn config_errors_name_the_field() {
        let v = vars(&[("SHORT", "tooshort"), ("S48", &"x".repeat(48))]);
        let cases = [
            (r#"{"issuers":[]}"#, "ISSUERS"),
            (r#"[{"audiences":["a"],"jwks_uri":"https://x/j"}]"#, "ISSUERS[0].issuer"),
            (r#"[{"issuer":"https://x","audiences":[],"jwks_uri":"https://x/j"}]"#, "ISSUERS[0].audiences"),
            (r#"[{"issuer":"https://x","audiences":["a"]}]"#, "ISSUERS[0].jwks_uri"),
            (r#"[{"issuer":"https://x","audiences":["a"],"jwks_uri":"http://x/j"}]"#, "ISSUERS[0].jwks_uri"),
            (r#"[{"issuer":"https://x","audiences":["a"],"jwks_uri":"https://x/j","algorithms":["none"]}]"#, "ISSUERS[0].algorithms[0]"),
            (r#"[{"issuer":"https://x","audiences":["a"],"hmac_secrets":[{"alg":"HS256","secret_var":"SHORT"}]}]"#, "ISSUERS[0].hmac_secrets[0].secret_var"),
            (r#"[{"issuer":"https://x","audiences":["a"],"hmac_secrets":[{"alg":"HS512","secret_var":"S48"}]}]"#, "ISSUERS[0].hmac_secrets[0].secret_var"),
            (r#"[{"issuer":"https://x","audiences":["a"],"hmac_secrets":[{"alg":"HS256","secret_var":"NOPE"}]}]"#, "ISSUERS[0].hmac_secrets[0].secret_var"),
            (r#"[{"issuer":"https://x","audiences":["a"],"hmac_secrets":[{"alg":"RS256","secret_var":"S48"}]}]"#, "ISSUERS[0].hmac_secrets[0].alg"),
            (r#"[{"issuer":"https://x","audiences":["a"],"jwks":{"keys":[{"kty":"oct","alg":"HS256","k":"AAAA"}]}}]"#, "ISSUERS[0].jwks.keys[0]"),
            (r#"[{"issuer":"https://x","audiences":["a"],"pem_keys":[{"pem":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"}]}]"#, "ISSUERS[0].pem_keys[0].pem"),
            (r#"[{"issuer":"https://x","audiences":["a"],"jwks_uri":"https://x/j"},{"issuer":"https://x","audiences":["a"],"jwks_uri":"https://x/j"}]"#, "ISSUERS[1].issuer"),
        ];
        for (json, field) in cases {
            let e = err(json, &v);
            assert_eq!(e.field, field, "{json}: {e}");
            assert!(!e.message.contains("tooshort"), "secret leaked: {e}");
        }
        let e = err(r#"[{"issuer":"https://x","audiences":["a"],"pem_keys":[{"pem":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"}]}]"#, &v);
        assert!(e.message.contains("PRIVATE"), "{e}");
    }

    #[test]
    fn discovery_url_and_loopback_http() {
        let v = vars(&[]);
        let iss = parse_issuers(r#"[{"issuer":"https://id.example/","audiences":["a"],"discovery":true}]"#, 60, &v).unwrap();
        assert_eq!(iss[0].jwks, Some(JwksLocation::Discovery { config_url: "https://id.example/.well-known/openid-configuration".into() }));
        assert!(parse_issuers(r#"[{"issuer":"http://127.0.0.1:9000","audiences":["a"],"jwks_uri":"http://127.0.0.1:9000/jwks"}]"#, 60, &v).is_ok());
    }
}
