use super::*;
use crate::http::RequestHead;
use jsonwebtoken::{jwk::JwkSet, Algorithm, DecodingKey, Validation};

const SEED: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
const NOW: u64 = 1_700_000_000;

fn identity() -> Identity {
    Identity {
        kind: CredentialKind::Session,
        subject: "user-1".into(),
        issuer: "https://id.example".into(),
        claims: std::rc::Rc::new(json!({"sub": "user-1", "email": "a@example.com", "secret_claim": "x"}).as_object().unwrap().clone()),
        scopes: vec!["orders:read".into()],
        permissions: vec!["orders:write".into()],
        device: Some("d1".into()),
        revocation: RevocationStatus::Checked { at: NOW - 2, cached: true },
    }
}

fn decode(token: &str, key: &DecodingKey, alg: Algorithm) -> Value {
    let mut v = Validation::new(alg);
    v.validate_exp = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(token, key, &v).unwrap().claims
}

#[test]
fn from_vars_defaults_and_errors() {
    assert!(AssertionConfig::from_vars(&[("ORIGIN_URL", "https://o")]).unwrap().is_none());
    let cfg = AssertionConfig::from_vars(&[("ASSERTION_KEY", SEED)]).unwrap().unwrap();
    assert_eq!((cfg.header.as_str(), cfg.ttl, cfg.issuer.as_str(), cfg.audience.as_deref()), ("X-Auth-Assertion", 30, "edge-auth", None));
    assert_eq!(cfg.key.alg(), "EdDSA");
    let cfg = AssertionConfig::from_vars(&[("ASSERTION_KEY", SEED), ("HEADER_PREFIX", "X-Edge-")]).unwrap().unwrap();
    assert_eq!(cfg.header, "X-Edge-Assertion");

    let e = |vars: &[(&str, &str)]| {
        let m: std::collections::HashMap<String, String> = vars.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        AssertionConfig::from_vars(&m).unwrap_err()
    };
    assert_eq!(e(&[("ASSERTION_KEY", "nope")]).field, "ASSERTION_KEY");
    assert_eq!(e(&[("ASSERTION_KEY", SEED), ("ASSERTION_ALG", "RS256")]).field, "ASSERTION_ALG");
    assert_eq!(e(&[("ASSERTION_KEY", "too-short-secret"), ("ASSERTION_ALG", "HS256")]).field, "ASSERTION_KEY");
    assert_eq!(e(&[("ASSERTION_KEY", SEED), ("ASSERTION_TTL", "0")]).field, "ASSERTION_TTL");
    assert_eq!(e(&[("ASSERTION_KEY", SEED), ("ASSERTION_TTL", "3600")]).field, "ASSERTION_TTL");
    assert_eq!(e(&[("ASSERTION_KEY", SEED), ("ASSERTION_HEADER", "Bad Header")]).field, "ASSERTION_HEADER");
    // The secret never appears in an error.
    let err = e(&[("ASSERTION_KEY", "this-is-a-secret-of-31-bytes!!!"), ("ASSERTION_ALG", "HS256")]);
    assert!(!err.to_string().contains("this-is-a-secret"));
}

#[test]
fn eddsa_assertion_verifies_with_the_served_jwks_and_carries_the_binding() {
    let cfg = AssertionConfig::from_vars(&[("ASSERTION_KEY", SEED), ("ASSERTION_AUDIENCE", "orders-api")]).unwrap().unwrap();
    let fwd = ForwardConfig::from_vars(&[("ORIGIN_URL", "https://origin.internal/base"), ("CLAIM_HEADERS", r#"{"sub":"X-Auth-Subject","email":"X-Auth-Email"}"#)]).unwrap();
    let head = RequestHead {
        method: "POST".into(),
        scheme: "https".into(),
        host: "api.example.com".into(),
        path: "/v1/orders".into(),
        query: Some("b=2&access_token=T&a=1".into()),
        headers: vec![],
    };
    let id = identity();
    let loc = crate::identity::CredentialLocation::Query("access_token".into());
    let plan = crate::forward::plan(&fwd, &head, Some(&id), Some(&loc), false, "req-42", None);
    let (name, token) = for_plan(&cfg, &fwd, &plan, "POST", Some(&id), "req-42", NOW);
    assert_eq!(name, "X-Auth-Assertion");
    assert!(crate::forward::values::is_safe_value(&token));

    let jwks: JwkSet = serde_json::from_str(&jwks_json(&cfg)).unwrap();
    assert_eq!(jwks.keys.len(), 1);
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.typ.as_deref(), Some(TYP));
    assert_eq!(header.kid.as_deref(), cfg.kid());
    assert_eq!(jwks.keys[0].common.key_id.as_deref(), cfg.kid());
    let key = DecodingKey::from_jwk(&jwks.keys[0]).unwrap();
    let c = decode(&token, &key, Algorithm::EdDSA);

    assert_eq!(c["iss"], "edge-auth");
    assert_eq!(c["aud"], "orders-api");
    assert_eq!(c["sub"], "user-1");
    assert_eq!((c["iat"].as_u64(), c["exp"].as_u64()), (Some(NOW), Some(NOW + 30)));
    assert_eq!((c["jti"].as_str(), c["rid"].as_str()), (Some("req-42"), Some("req-42")));
    assert_eq!(c["htm"], "POST");
    assert_eq!(c["path"], "/base/v1/orders");
    assert_eq!(c["qsh"], query_hash("b=2&a=1"), "bound to the query as forwarded, credential removed");
    assert_eq!(c["scopes"], json!(["orders:read", "orders:write"]));
    assert_eq!(c["claims"], json!({"sub": "user-1", "email": "a@example.com"}), "only the CLAIM_HEADERS claims");
    assert_eq!(c["cred"], "session");
    assert_eq!(c["rev"], json!({"status": "cached", "checked": true, "cached": true, "at": NOW - 2}));
}

#[test]
fn public_request_assertion_has_no_identity_and_no_query_hash_without_query() {
    let cfg = AssertionConfig::from_vars(&[("ASSERTION_KEY", SEED)]).unwrap().unwrap();
    let req = AssertionRequest { method: "GET", path_and_query: "/health", request_id: "r1", identity: None, claim_names: &[] };
    let token = sign(&cfg, &req, NOW);
    let jwks: JwkSet = serde_json::from_str(&jwks_json(&cfg)).unwrap();
    let c = decode(&token, &DecodingKey::from_jwk(&jwks.keys[0]).unwrap(), Algorithm::EdDSA);
    for absent in ["sub", "aud", "qsh", "scopes", "claims", "rev", "cred"] {
        assert!(c.get(absent).is_none(), "{absent} in {c}");
    }
    assert_eq!(c["path"], "/health");
}

#[test]
fn hs256_assertion_verifies_with_the_shared_secret_and_publishes_no_key() {
    let secret = "0123456789abcdef0123456789abcdef-secret";
    let cfg = AssertionConfig::from_vars(&[("ASSERTION_KEY", secret), ("ASSERTION_ALG", "HS256")]).unwrap().unwrap();
    assert_eq!(jwks_json(&cfg), r#"{"keys":[]}"#);
    assert_eq!(cfg.kid(), None);
    let req = AssertionRequest { method: "GET", path_and_query: "/a?x=1", request_id: "r1", identity: Some(&identity()), claim_names: &[] };
    let token = sign(&cfg, &req, NOW);
    let c = decode(&token, &DecodingKey::from_secret(secret.as_bytes()), Algorithm::HS256);
    assert_eq!(c["rid"], "r1");
    let mut v = Validation::new(Algorithm::HS256);
    v.validate_exp = false;
    assert!(jsonwebtoken::decode::<Value>(&token, &DecodingKey::from_secret(b"another-secret-another-secret-xx"), &v).is_err());
}
