//! Assertions signed by the edge (`edge_auth::assertion`) verified by this crate.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use edge_auth::assertion::{self, AssertionConfig, AssertionKey};
use edge_auth::forward::{self, ForwardConfig};
use edge_auth::http::RequestHead;
use edge_auth::identity::{CredentialKind, CredentialLocation, Identity, RevocationStatus};
use edge_auth_origin::{verify_assertion, Error, RequestBinding, Verifier};

const SEED: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
const OTHER_SEED: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const NOW: u64 = 1_700_000_000;

fn edge(seed: &str, extra: &[(&str, &str)]) -> AssertionConfig {
    let mut vars: std::collections::HashMap<String, String> = [("ASSERTION_KEY".to_string(), seed.to_string())].into();
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    AssertionConfig::from_vars(&vars).unwrap().unwrap()
}

fn identity() -> Identity {
    Identity {
        kind: CredentialKind::AccessToken,
        subject: "user-1".into(),
        issuer: "https://id.example".into(),
        claims: serde_json::json!({"sub": "user-1", "iss": "https://id.example"}).as_object().unwrap().clone().into(),
        scopes: vec!["orders:read".into()],
        permissions: vec!["orders:write".into()],
        device: None,
        revocation: RevocationStatus::Checked { at: NOW, cached: false },
    }
}

/// Runs the edge's forwarding plan and signs its assertion; returns (token, path_and_query).
fn forwarded(cfg: &AssertionConfig, method: &str, path: &str, query: Option<&str>) -> (String, String) {
    let fwd = ForwardConfig::from_vars(&[("ORIGIN_URL", "http://127.0.0.1:9100/app")]).unwrap();
    let head = RequestHead {
        method: method.into(),
        scheme: "https".into(),
        host: "api.example.com".into(),
        path: path.into(),
        query: query.map(String::from),
        headers: vec![("authorization".into(), "Bearer T".into())],
    };
    let id = identity();
    let plan = forward::plan(&fwd, &head, Some(&id), Some(&CredentialLocation::Authorization), false, "req-1", None);
    let (_, token) = assertion::for_plan(cfg, &fwd, &plan, method, Some(&id), "req-1", NOW);
    (token, plan.path_and_query().to_string())
}

fn verifier(cfg: &AssertionConfig) -> Verifier {
    Verifier::from_jwks_json(&assertion::jwks_json(cfg)).unwrap()
}

fn bind<'a>(method: &'a str, pq: &'a str) -> RequestBinding<'a> {
    RequestBinding { method, path_and_query: pq, request_id: Some("req-1") }
}

#[test]
fn accepts_the_request_it_was_issued_for() {
    let cfg = edge(SEED, &[]);
    let (token, pq) = forwarded(&cfg, "POST", "/v1/orders", Some("page=2&sort=a%20b"));
    assert_eq!(pq, "/app/v1/orders?page=2&sort=a%20b");
    let c = verify_assertion(&token, &verifier(&cfg), &bind("POST", &pq), NOW + 5, 5).unwrap();
    assert_eq!(c.sub.as_deref(), Some("user-1"));
    assert!(c.has_scope("orders:write"));
    assert_eq!(c.claims["iss"], "https://id.example");
    assert_eq!(c.rev.unwrap().status, "checked");
    // Without a request id to compare, the binding still holds.
    let b = RequestBinding { method: "POST", path_and_query: &pq, request_id: None };
    assert!(verify_assertion(&token, &verifier(&cfg), &b, NOW, 0).is_ok());
}

#[test]
fn refuses_replay_on_another_request() {
    let cfg = edge(SEED, &[]);
    let v = verifier(&cfg);
    let (token, pq) = forwarded(&cfg, "GET", "/v1/orders/7", Some("a=1"));
    assert_eq!(v.verify(&token, &bind("DELETE", &pq), NOW, 0), Err(Error::MethodMismatch));
    assert_eq!(v.verify(&token, &bind("GET", "/app/v1/orders/8?a=1"), NOW, 0), Err(Error::PathMismatch));
    assert_eq!(v.verify(&token, &bind("GET", "/app/v1/admin?a=1"), NOW, 0), Err(Error::PathMismatch));
    assert_eq!(v.verify(&token, &bind("GET", "/app/v1/orders/7?a=2"), NOW, 0), Err(Error::QueryMismatch));
    assert_eq!(v.verify(&token, &bind("GET", "/app/v1/orders/7"), NOW, 0), Err(Error::QueryMismatch));
    let other_id = RequestBinding { method: "GET", path_and_query: &pq, request_id: Some("req-2") };
    assert_eq!(v.verify(&token, &other_id, NOW, 0), Err(Error::RequestIdMismatch));
    // A query-less assertion does not cover a request with a query.
    let (token, pq) = forwarded(&cfg, "GET", "/v1/orders/7", None);
    assert_eq!(pq, "/app/v1/orders/7");
    assert!(v.verify(&token, &bind("GET", &pq), NOW, 0).is_ok());
    assert_eq!(v.verify(&token, &bind("GET", "/app/v1/orders/7?x=1"), NOW, 0), Err(Error::QueryMismatch));
}

#[test]
fn refuses_expired_and_future_assertions() {
    let cfg = edge(SEED, &[("ASSERTION_TTL", "30")]);
    let v = verifier(&cfg);
    let (token, pq) = forwarded(&cfg, "GET", "/x", None);
    assert!(v.verify(&token, &bind("GET", &pq), NOW + 29, 0).is_ok());
    assert_eq!(v.verify(&token, &bind("GET", &pq), NOW + 30, 0), Err(Error::Expired));
    assert!(v.verify(&token, &bind("GET", &pq), NOW + 34, 5).is_ok(), "leeway");
    assert_eq!(v.verify(&token, &bind("GET", &pq), NOW + 35, 5), Err(Error::Expired));
    assert_eq!(v.verify(&token, &bind("GET", &pq), NOW - 10, 5), Err(Error::IssuedInFuture));
    let strict = verifier(&cfg).with_max_lifetime(10);
    assert_eq!(strict.verify(&token, &bind("GET", &pq), NOW, 0), Err(Error::LifetimeTooLong));
}

#[test]
fn refuses_tampering_wrong_keys_and_algorithm_confusion() {
    let cfg = edge(SEED, &[]);
    let v = verifier(&cfg);
    let (token, pq) = forwarded(&cfg, "GET", "/x", None);
    let parts: Vec<&str> = token.split('.').collect();

    // Tampered claim, original signature.
    let mut claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = "admin".into();
    let forged = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(claims.to_string()), parts[2]);
    assert_eq!(v.verify(&forged, &bind("GET", &pq), NOW, 0), Err(Error::BadSignature));

    // Signed by another edge key: unknown kid; pinned to one key without kid: bad signature.
    let other = edge(OTHER_SEED, &[]);
    let (token2, _) = forwarded(&other, "GET", "/x", None);
    assert_eq!(v.verify(&token2, &bind("GET", &pq), NOW, 0), Err(Error::UnknownKey));
    let pinned = Verifier::from_decoding_key(
        jsonwebtoken::DecodingKey::from_jwk(&serde_json::from_str::<jsonwebtoken::jwk::JwkSet>(&assertion::jwks_json(&cfg)).unwrap().keys[0]).unwrap(),
        jsonwebtoken::Algorithm::EdDSA,
    );
    assert!(pinned.verify(&token, &bind("GET", &pq), NOW, 0).is_ok());
    assert_eq!(pinned.verify(&token2, &bind("GET", &pq), NOW, 0), Err(Error::BadSignature));

    // HS256 signed with the public key bytes, same kid: the key is EdDSA-only.
    let public_x = serde_json::from_str::<serde_json::Value>(&assertion::jwks_json(&cfg)).unwrap()["keys"][0]["x"].as_str().unwrap().to_string();
    let header = serde_json::json!({"alg": "HS256", "typ": assertion::TYP, "kid": cfg.kid()});
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), parts[1]);
    let hmac = AssertionKey::Hs256(URL_SAFE_NO_PAD.decode(&public_x).unwrap()).sign(input.as_bytes());
    let confused = format!("{input}.{}", URL_SAFE_NO_PAD.encode(hmac));
    assert_eq!(v.verify(&confused, &bind("GET", &pq), NOW, 0), Err(Error::UnknownKey));

    // alg none and a token that is not an assertion (typ JWT), validly signed.
    let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"edge-auth-assertion+jwt"}"#), parts[1]);
    assert_eq!(v.verify(&none, &bind("GET", &pq), NOW, 0), Err(Error::Malformed));
    let header = serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": cfg.kid()});
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), parts[1]);
    let sig = cfg.key.sign(input.as_bytes());
    let plain_jwt = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig));
    assert_eq!(v.verify(&plain_jwt, &bind("GET", &pq), NOW, 0), Err(Error::WrongType));

    assert_eq!(v.verify("garbage", &bind("GET", &pq), NOW, 0), Err(Error::Malformed));
}

#[test]
fn issuer_and_audience() {
    let cfg = edge(SEED, &[("ASSERTION_ISSUER", "edge-eu"), ("ASSERTION_AUDIENCE", "orders")]);
    let (token, pq) = forwarded(&cfg, "GET", "/x", None);
    let v = verifier(&cfg);
    assert_eq!(v.verify(&token, &bind("GET", &pq), NOW, 0), Err(Error::WrongIssuer));
    let v = verifier(&cfg).with_issuer("edge-eu");
    assert_eq!(v.verify(&token, &bind("GET", &pq), NOW, 0), Err(Error::WrongAudience), "aud present, none expected");
    let v = verifier(&cfg).with_issuer("edge-eu").with_audience("billing");
    assert_eq!(v.verify(&token, &bind("GET", &pq), NOW, 0), Err(Error::WrongAudience));
    let v = verifier(&cfg).with_issuer("edge-eu").with_audience("orders");
    assert!(v.verify(&token, &bind("GET", &pq), NOW, 0).is_ok());
}

#[test]
fn hs256_round_trip() {
    let secret = "0123456789abcdef0123456789abcdef!";
    let cfg = edge(secret, &[("ASSERTION_ALG", "HS256")]);
    let (token, pq) = forwarded(&cfg, "PUT", "/x", Some("y=1"));
    let v = Verifier::hs256(secret.as_bytes()).unwrap();
    assert!(v.verify(&token, &bind("PUT", &pq), NOW, 0).is_ok());
    let wrong = Verifier::hs256(b"0123456789abcdef0123456789abcdeX!").unwrap();
    assert_eq!(wrong.verify(&token, &bind("PUT", &pq), NOW, 0), Err(Error::BadSignature));
    // An EdDSA-only verifier refuses an HS256 assertion.
    assert_eq!(verifier(&edge(SEED, &[])).verify(&token, &bind("PUT", &pq), NOW, 0), Err(Error::UnknownKey));
    assert!(Verifier::hs256(b"short").is_err());
    assert!(Verifier::from_jwks_json(r#"{"keys":[]}"#).is_err());
}
