use super::*;
use crate::identity::CredentialKind;
use crate::vars::ConfigError;
use serde_json::json;

fn cfg(extra: &[(&str, &str)]) -> ForwardConfig {
    let mut vars: std::collections::HashMap<String, String> =
        [("ORIGIN_URL".to_string(), "https://origin.internal:8443/base/".to_string())].into_iter().collect();
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    ForwardConfig::from_vars(&vars).unwrap()
}

fn cfg_err(vars: &[(&str, &str)]) -> ConfigError {
    let map: std::collections::HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    ForwardConfig::from_vars(&map).unwrap_err()
}

fn head(headers: &[(&str, &str)]) -> RequestHead {
    RequestHead {
        method: "GET".into(),
        scheme: "https".into(),
        host: "api.example.com".into(),
        path: "/v1/orders".into(),
        query: Some("a=1&access_token=T0K&b=2".into()),
        headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
    }
}

fn identity() -> Identity {
    let claims = json!({
        "sub": "user-1", "iss": "https://id.example", "email": "a@example.com",
        "name": "Zoë\r\nX-Auth-Subject: admin", "groups": ["a", "b"], "org": {"id": 7}
    });
    Identity {
        kind: CredentialKind::AccessToken,
        subject: "user-1".into(),
        issuer: "https://id.example".into(),
        claims: std::rc::Rc::new(claims.as_object().unwrap().clone()),
        scopes: vec!["orders:read".into(), "bad scope".into()],
        permissions: vec!["orders:write".into(), "orders:read".into()],
        device: None,
        revocation: RevocationStatus::Checked { at: 1_700_000_000, cached: false },
    }
}

/// Applies a plan to the incoming headers the way the glue does (delete, then set) and returns
/// what the origin receives, names lower-cased.
fn apply(plan: &ForwardPlan, head: &RequestHead) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = head
        .headers
        .iter()
        .filter(|(n, _)| !plan.remove_headers.contains(&n.to_ascii_lowercase()))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .collect();
    for (n, v) in &plan.set_headers {
        out.retain(|(m, _)| !m.eq_ignore_ascii_case(n));
        out.push((n.to_ascii_lowercase(), v.clone()));
    }
    out
}

fn get<'a>(sent: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    sent.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
}

#[test]
fn spoofed_identity_headers_are_removed_in_any_case_even_on_public_routes() {
    let cfg = cfg(&[("CLAIM_HEADERS", r#"{"sub":"X-Auth-Subject","email":"X-User-Email"}"#)]);
    let h = head(&[
        ("x-auth-subject", "admin"),
        ("X-AUTH-SUBJECT", "admin"),
        ("X-Auth-Scopes", "admin"),
        ("x-auth-anything-else", "1"),
        ("X-User-Email", "boss@example.com"),
        ("x-user-email", "boss@example.com"),
        ("x-auth-assertion", "forged"),
        ("x-forwarded-for", "10.0.0.1"),
        ("Forwarded", "for=10.0.0.1"),
        ("x-real-ip", "10.0.0.1"),
        ("accept", "application/json"),
    ]);
    // Public route: no identity.
    let p = plan(&cfg, &h, None, None, false, "req-1", Some("203.0.113.9"));
    let sent = apply(&p, &h);
    for name in ["x-auth-subject", "x-auth-scopes", "x-auth-anything-else", "x-user-email", "x-auth-assertion", "forwarded", "x-real-ip"] {
        assert!(get(&sent, name).is_empty(), "{name} reached the origin: {sent:?}");
    }
    assert_eq!(get(&sent, "x-forwarded-for"), vec!["203.0.113.9"]);
    assert_eq!(get(&sent, "x-auth-request-id"), vec!["req-1"]);
    assert_eq!(get(&sent, "accept"), vec!["application/json"]);

    // Protected route: only the gateway's values remain, once each.
    let id = identity();
    let p = plan(&cfg, &h, Some(&id), None, false, "req-1", Some("203.0.113.9"));
    let sent = apply(&p, &h);
    assert_eq!(get(&sent, "x-auth-subject"), vec!["user-1"]);
    assert_eq!(get(&sent, "x-user-email"), vec!["a@example.com"]);
    assert!(get(&sent, "x-auth-anything-else").is_empty());
    // Configured identity header names are removed even when the request does not carry them.
    assert!(p.remove_headers.contains(&"x-user-email".to_string()));
}

#[test]
fn custom_prefix_is_honoured() {
    let cfg = cfg(&[("HEADER_PREFIX", "X-Edge-")]);
    let h = head(&[("X-EDGE-SUBJECT", "admin"), ("x-auth-subject", "kept: not ours"), ("X-Edge-Assertion", "forged")]);
    let p = plan(&cfg, &h, Some(&identity()), None, false, "r", None);
    let sent = apply(&p, &h);
    assert_eq!(get(&sent, "x-edge-subject"), vec!["user-1"]);
    assert_eq!(get(&sent, "x-edge-issuer"), vec!["https://id.example"]);
    assert_eq!(get(&sent, "x-edge-scopes"), vec!["orders:read orders:write"]);
    assert_eq!(get(&sent, "x-auth-subject"), vec!["kept: not ours"]);
    assert!(get(&sent, "x-edge-assertion").is_empty(), "{sent:?}");
    // Names the request does not carry are not deleted (each delete is a runtime call).
    assert!(!p.remove_headers.iter().any(|n| n == "x-forwarded-for" || n == "x-real-ip"), "{:?}", p.remove_headers);
}

#[test]
fn identity_headers() {
    let cfg = cfg(&[
        ("CLAIM_HEADERS", r#"{"sub":"X-Auth-Subject","name":"X-Auth-Name","groups":"X-Auth-Groups","org":"X-Auth-Org","missing":"X-Auth-Missing"}"#),
        ("FORWARD_CLAIMS_HEADER", "true"),
    ]);
    let h = head(&[]);
    let id = identity();
    let p = plan(&cfg, &h, Some(&id), None, false, "r", None);
    assert_eq!(p.set_header("X-Auth-Subject"), Some("user-1"));
    // CR/LF in a claim: JSON-encoded, nothing injected.
    assert_eq!(p.set_header("X-Auth-Name"), Some(r#""Zo\u00eb\r\nX-Auth-Subject: admin""#));
    assert_eq!(p.set_header("X-Auth-Groups"), Some(r#"["a","b"]"#));
    assert_eq!(p.set_header("X-Auth-Org"), Some(r#"{"id":7}"#));
    assert_eq!(p.set_header("X-Auth-Missing"), None);
    assert_eq!(p.set_header("X-Auth-Scopes"), Some("orders:read orders:write"));
    assert_eq!(p.set_header("X-Auth-Revocation"), Some("checked"));
    let claims = p.set_header("X-Auth-Claims").unwrap();
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims).unwrap();
    let v: Value = serde_json::from_slice(&decoded).unwrap();
    assert_eq!(v["email"], "a@example.com");
    for (n, v) in &p.set_headers {
        assert!(values::is_safe_value(v) && !v.contains('\r') && !v.contains('\n'), "{n}: {v:?}");
    }
}

#[test]
fn session_identity_falls_back_to_subject_and_issuer() {
    let mut id = identity();
    id.kind = CredentialKind::Session;
    id.claims = Default::default();
    id.subject = "sess-user".into();
    id.issuer = "sessions".into();
    id.revocation = RevocationStatus::Checked { at: 1, cached: true };
    let p = plan(&cfg(&[]), &head(&[]), Some(&id), None, false, "r", None);
    assert_eq!(p.set_header("X-Auth-Subject"), Some("sess-user"));
    assert_eq!(p.set_header("X-Auth-Issuer"), Some("sessions"));
    assert_eq!(p.set_header("X-Auth-Revocation"), Some("cached"));
    assert_eq!(p.set_header("X-Auth-Claims"), None, "off by default");
    id.revocation = RevocationStatus::Skipped;
    assert_eq!(revocation_value(&id.revocation), "skipped");
    assert_eq!(revocation_value(&RevocationStatus::NotRequired), "not-required");
}

#[test]
fn forged_forwarding_headers_are_replaced() {
    let cfg = cfg(&[]);
    let h = head(&[("x-forwarded-for", "1.2.3.4, 5.6.7.8"), ("X-Forwarded-Proto", "http"), ("x-forwarded-host", "evil.test"), ("host", "api.example.com")]);
    let p = plan(&cfg, &h, None, None, false, "r", Some("2001:db8::1"));
    let sent = apply(&p, &h);
    assert_eq!(get(&sent, "x-forwarded-for"), vec!["2001:db8::1"]);
    assert_eq!(get(&sent, "x-forwarded-proto"), vec!["https"]);
    assert_eq!(get(&sent, "x-forwarded-host"), vec!["api.example.com"]);
    assert_eq!(get(&sent, "host"), vec!["origin.internal:8443"]);
    // No or unparseable client IP: the forged value is still gone, nothing replaces it.
    for ip in [None, Some("1.2.3.4\r\nX-Auth-Subject: admin"), Some("not-an-ip")] {
        let p = plan(&cfg, &h, None, None, false, "r", ip);
        assert!(get(&apply(&p, &h), "x-forwarded-for").is_empty(), "{ip:?}");
    }
    // Every other X-Forwarded-*, the client-IP headers, the URL rewrites and the method overrides
    // are gone, in any case.
    let others = [
        ("X-Forwarded-Prefix", "/evil"), ("x-forwarded-uri", "/admin"), ("X-FORWARDED-SSL", "on"),
        ("X-Forwarded-Scheme", "https"), ("x-forwarded-server", "evil"), ("X-Forwarded-Method", "DELETE"),
        ("True-Client-IP", "6.6.6.6"), ("x-client-ip", "6.6.6.6"), ("Client-IP", "6.6.6.6"),
        ("X-Cluster-Client-IP", "6.6.6.6"), ("X-Original-URL", "/admin"), ("x-rewrite-url", "/admin"),
        ("X-HTTP-Method-Override", "DELETE"), ("x-http-method", "DELETE"), ("X-Method-Override", "PUT"),
        ("x-forwarded", "kept: not a prefix match"), ("x-forwardedfor", "kept"),
    ];
    let h2 = head(&others);
    let sent = apply(&plan(&cfg, &h2, None, None, false, "r", None), &h2);
    let names: Vec<&str> = sent.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names.iter().filter(|n| !["host", "x-forwarded-proto", "x-forwarded-host", "x-auth-request-id"].contains(n)).collect::<Vec<_>>(),
        vec![&"x-forwarded", &"x-forwardedfor"],
        "{sent:?}"
    );
    let preserve = super::config::ForwardConfig { host_header: HostHeader::Preserve, ..cfg };
    let p = plan(&preserve, &h, None, None, false, "r", None);
    assert_eq!(p.set_header("host"), Some("api.example.com"));
}

#[test]
fn credential_is_removed_from_where_it_came() {
    let cfg = cfg(&[]);
    let h = head(&[
        ("authorization", "Bearer T0K"),
        ("cookie", "theme=dark; session=OTHER; lang=en"),
        ("x-api-token", "T0K"),
    ]);

    let p = plan(&cfg, &h, Some(&identity()), Some(&CredentialLocation::Authorization), false, "r", None);
    let sent = apply(&p, &h);
    assert!(get(&sent, "authorization").is_empty());
    assert_eq!(get(&sent, "cookie"), vec!["theme=dark; session=OTHER; lang=en"], "a different value stays");

    let h = head(&[("cookie", "theme=dark; session=T0K; lang=en"), ("authorization", "Basic dXNlcjpwYXNz")]);
    let p = plan(&cfg, &h, Some(&identity()), Some(&CredentialLocation::Cookie("session".into())), false, "r", None);
    let sent = apply(&p, &h);
    assert_eq!(get(&sent, "cookie"), vec!["theme=dark; lang=en"]);
    assert_eq!(get(&sent, "authorization"), vec!["Basic dXNlcjpwYXNz"], "another scheme is not the credential");

    let h = head(&[("X-Api-Token", "T0K")]);
    let p = plan(&cfg, &h, Some(&identity()), Some(&CredentialLocation::Header("X-Api-Token".into())), false, "r", None);
    assert!(get(&apply(&p, &h), "x-api-token").is_empty());

    let h = head(&[]);
    let p = plan(&cfg, &h, Some(&identity()), Some(&CredentialLocation::Query("access_token".into())), false, "r", None);
    assert_eq!(p.url, "https://origin.internal:8443/base/v1/orders?a=1&b=2");
    assert_eq!(p.path_and_query(), "/base/v1/orders?a=1&b=2");

    // keep_credential: nothing removed.
    let h = head(&[("authorization", "Bearer T0K"), ("cookie", "theme=dark; session=T0K; lang=en")]);
    for loc in [
        CredentialLocation::Authorization,
        CredentialLocation::Cookie("session".into()),
        CredentialLocation::Query("access_token".into()),
    ] {
        let p = plan(&cfg, &h, Some(&identity()), Some(&loc), true, "r", None);
        let sent = apply(&p, &h);
        assert_eq!(get(&sent, "authorization"), vec!["Bearer T0K"]);
        assert_eq!(get(&sent, "cookie"), vec!["theme=dark; session=T0K; lang=en"]);
        assert!(p.url.ends_with("?a=1&access_token=T0K&b=2"));
    }
}

#[test]
fn every_copy_of_the_credential_is_removed() {
    // The same token in the header, a cookie, the query (twice, once with an encoded name) and a
    // custom header: whichever location the gateway reports, no copy reaches the origin.
    let cfg = cfg(&[]);
    let mut h = head(&[
        ("authorization", "Bearer T0K"),
        ("cookie", "theme=dark; session=\"T0K\"; lang=en"),
        ("cookie", "sid=T0K"),
        ("x-api-token", "T0K"),
        ("x-other", "T0K-not-the-same"),
    ]);
    h.query = Some("a=1&access_token=T0K&b=T0K2&access%5Ftoken=T0K&c=T%30K".into());
    for loc in [
        CredentialLocation::Authorization,
        CredentialLocation::Cookie("session".into()),
        CredentialLocation::Header("x-api-token".into()),
        CredentialLocation::Query("access_token".into()),
    ] {
        let p = plan(&cfg, &h, Some(&identity()), Some(&loc), false, "r", None);
        let sent = apply(&p, &h);
        assert!(get(&sent, "authorization").is_empty(), "{loc:?}");
        assert!(get(&sent, "x-api-token").is_empty(), "{loc:?}");
        assert_eq!(get(&sent, "cookie"), vec!["theme=dark; lang=en"], "{loc:?}");
        assert_eq!(get(&sent, "x-other"), vec!["T0K-not-the-same"], "{loc:?}");
        assert_eq!(p.path_and_query(), "/base/v1/orders?a=1&b=T0K2", "{loc:?}");
    }
    // A value that cannot be read back (no such cookie): only the location itself is cleaned.
    let h = head(&[("authorization", "Bearer T0K")]);
    let p = plan(&cfg, &h, None, Some(&CredentialLocation::Cookie("session".into())), false, "r", None);
    assert_eq!(get(&apply(&p, &h), "authorization"), vec!["Bearer T0K"]);
}

#[test]
fn cookie_and_query_edge_cases() {
    let cfg = cfg(&[]);
    // Only cookie: the header goes entirely. Duplicated cookie headers are both cleaned.
    let h = head(&[("cookie", "session=T0K"), ("cookie", "session=T0K2; a=1")]);
    let p = plan(&cfg, &h, None, Some(&CredentialLocation::Cookie("session".into())), false, "r", None);
    assert_eq!(get(&apply(&p, &h), "cookie"), vec!["a=1"]);
    let h = head(&[("cookie", "session=T0K")]);
    let p = plan(&cfg, &h, None, Some(&CredentialLocation::Cookie("session".into())), false, "r", None);
    assert!(get(&apply(&p, &h), "cookie").is_empty());
    // A cookie whose name only starts like the credential's stays.
    let h = head(&[("cookie", "session_hint=1;session=T0K")]);
    let p = plan(&cfg, &h, None, Some(&CredentialLocation::Cookie("session".into())), false, "r", None);
    assert_eq!(get(&apply(&p, &h), "cookie"), vec!["session_hint=1"]);

    // Query: encoded name, repeated param, only param, order of the rest kept.
    let mut h = head(&[]);
    for (q, want) in [
        ("access%5Ftoken=T0K&z=1&access_token=T0K&a=2", "/base/v1/orders?z=1&a=2"),
        ("access_token=T0K", "/base/v1/orders"),
        ("access_token_x=1&access_token", "/base/v1/orders?access_token_x=1"),
        ("b=%20x+y&access_token=1", "/base/v1/orders?b=%20x+y"),
    ] {
        h.query = Some(q.into());
        let p = plan(&cfg, &h, None, Some(&CredentialLocation::Query("access_token".into())), false, "r", None);
        assert_eq!(p.path_and_query(), want, "{q}");
    }
}

#[test]
fn urls_are_built_from_the_origin_and_never_carry_raw_control_bytes() {
    let cfg = cfg(&[]);
    let mut h = head(&[]);
    h.query = None;
    h.path = "/".into();
    assert_eq!(plan(&cfg, &h, None, None, false, "r", None).url, "https://origin.internal:8443/base/");
    h.path = "/a b\r\n/c?d#e".into();
    h.query = Some("x=1\r\n#".into());
    let p = plan(&cfg, &h, None, None, false, "r\r\nX: y", None);
    assert_eq!(p.url, "https://origin.internal:8443/base/a%20b%0D%0A/c%3Fd%23e?x=1%0D%0A%23");
    assert_eq!(p.set_header("X-Auth-Request-Id"), None, "unsafe request id is not sent");
    let root = ForwardConfig::from_vars(&[("ORIGIN_URL", "http://127.0.0.1:9100")]).unwrap();
    h.path = "/x".into();
    h.query = Some("q=1".into());
    assert_eq!(plan(&root, &h, None, None, false, "r", None).url, "http://127.0.0.1:9100/x?q=1");
}

#[test]
fn config_errors() {
    assert_eq!(cfg_err(&[]).field, "ORIGIN_URL");
    for bad in ["origin.internal", "ftp://x", "https://", "https://u:p@x", "https://x/?q=1", "https://x:99999", "https://x y/"] {
        assert_eq!(cfg_err(&[("ORIGIN_URL", bad)]).field, "ORIGIN_URL", "{bad}");
    }
    let o = ("ORIGIN_URL", "https://o");
    assert_eq!(cfg_err(&[o, ("ORIGIN_HOST_HEADER", "client")]).field, "ORIGIN_HOST_HEADER");
    assert_eq!(cfg_err(&[o, ("HEADER_PREFIX", "X ")]).field, "HEADER_PREFIX");
    assert_eq!(cfg_err(&[o, ("HEADER_PREFIX", "X")]).field, "HEADER_PREFIX");
    assert_eq!(cfg_err(&[o, ("CLAIM_HEADERS", "[]")]).field, "CLAIM_HEADERS");
    assert_eq!(cfg_err(&[o, ("CLAIM_HEADERS", r#"{"sub":"Authorization"}"#)]).field, "CLAIM_HEADERS.sub");
    assert_eq!(cfg_err(&[o, ("CLAIM_HEADERS", r#"{"sub":"X-Auth-Scopes"}"#)]).field, "CLAIM_HEADERS.sub");
    for reserved in ["X-Forwarded-User", "True-Client-IP", "X-Original-URL"] {
        let json = format!(r#"{{"sub":"{reserved}"}}"#);
        assert_eq!(cfg_err(&[o, ("CLAIM_HEADERS", &json)]).field, "CLAIM_HEADERS.sub", "{reserved}");
    }
    assert_eq!(cfg_err(&[o, ("CLAIM_HEADERS", r#"{"sub":"X-A","iss":"x-a"}"#)]).field, "CLAIM_HEADERS.sub");
    assert_eq!(cfg_err(&[o, ("CLAIM_HEADERS", r#"{"sub":"X-A: b"}"#)]).field, "CLAIM_HEADERS.sub");
    assert_eq!(cfg_err(&[o, ("CLAIM_HEADERS", r#"{"sub":1}"#)]).field, "CLAIM_HEADERS.sub");
    assert_eq!(cfg_err(&[o, ("FORWARD_CLAIMS_HEADER", "maybe")]).field, "FORWARD_CLAIMS_HEADER");
    let ok = ForwardConfig::from_vars(&[("ORIGIN_URL", "HTTPS://Origin.Example/api/v2/")]).unwrap();
    assert_eq!(ok.origin_base, "https://origin.example/api/v2");
    assert_eq!(ok.origin_authority, "origin.example");
}

#[test]
fn the_removal_check_matches_the_removal_list() {
    for c in [
        cfg(&[]),
        cfg(&[("HEADER_PREFIX", "X-Edge-"), ("CLAIM_HEADERS", r#"{"sub":"X-User","email":"X-Email"}"#), ("ASSERTION_HEADER", "X-Proof")]),
    ] {
        let listed = c.always_removed();
        for name in &listed {
            assert!(c.is_always_removed(name), "{name}");
            assert!(c.is_always_removed(&name.to_ascii_uppercase()), "{name}");
        }
        for other in ["x-auth", "x-auth-subjects", "accept", "x-forwarded", "authorization", "x-user-id", ""] {
            assert_eq!(c.is_always_removed(other), listed.iter().any(|n| n == other), "{other}");
        }
    }
}

#[test]
fn a_replay_sets_every_pair_but_the_one_request_id() {
    let plan = ForwardPlan {
        url: "https://o/x".into(),
        remove_headers: vec![],
        set_headers: vec![("Host".into(), "o".into()), ("X-Auth-Request-Id".into(), "r1".into()), ("X-Auth-Subject".into(), "alice".into())],
    };
    assert_eq!(plan.set_headers_without("x-auth-request-id"), Some(vec![("Host", "o"), ("X-Auth-Subject", "alice")]));
    assert_eq!(plan.set_headers_without("X-Other"), None, "no pair of that name");
    let mut twice = plan.clone();
    twice.set_headers.push(("x-auth-request-id".into(), "r2".into()));
    assert_eq!(twice.set_headers_without("X-Auth-Request-Id"), None, "two pairs of that name");
}
