use super::*;
use crate::identity::{CredentialKind, RevocationStatus};

fn table(json: &str) -> RouteTable {
    RouteTable::from_vars(&[("ROUTES", json)]).unwrap()
}

fn err(json: &str) -> ConfigError {
    RouteTable::from_vars(&[("ROUTES", json)]).unwrap_err()
}

fn req(method: &str, host: &str, path: &str) -> RequestHead {
    RequestHead {
        method: method.into(),
        scheme: "https".into(),
        host: host.into(),
        path: path.into(),
        query: None,
        headers: vec![],
    }
}

fn name<'a>(t: &'a RouteTable, head: &RequestHead) -> Option<&'a str> {
    t.find(head).map(|r| r.name.as_str())
}

const TYPICAL: &str = r#"[
    {"name": "health", "path": "/healthz", "methods": ["GET", "HEAD"], "auth": "public"},
    {"name": "admin", "path": "/admin/**", "auth": "jwt+revocation", "scopes_all": ["admin"]},
    {"name": "api", "host": "api.example.com", "path": "/v1/*", "auth": "jwt", "allow_preflight": true,
     "methods": ["GET", "POST"]},
    {"name": "refresh", "path": "/auth/refresh", "methods": ["POST"], "auth": "refresh"},
    {"name": "static", "path": "/static/**", "auth": "public"}
]"#;

#[test]
fn default_table_protects_everything() {
    let t = RouteTable::from_vars(&[("OTHER", "x")]).unwrap();
    assert_eq!(t.rules().len(), 1);
    let r = t.find(&req("GET", "x.test", "/anything/at/all")).unwrap();
    assert_eq!((r.name.as_str(), r.auth), ("default", AuthMode::JwtRevocation));
    assert_eq!(name(&t, &req("GET", "x.test", "/")), Some("default"));
}

#[test]
fn first_match_wins_and_no_match_is_none() {
    let t = table(TYPICAL);
    assert_eq!(name(&t, &req("GET", "a.test", "/healthz")), Some("health"));
    assert_eq!(name(&t, &req("HEAD", "a.test", "/healthz/")), Some("health"));
    assert_eq!(name(&t, &req("POST", "a.test", "/healthz")), None, "method not listed");
    assert_eq!(name(&t, &req("DELETE", "a.test", "/admin/users/1")), Some("admin"));
    assert_eq!(name(&t, &req("GET", "a.test", "/admin")), Some("admin"));
    assert_eq!(name(&t, &req("GET", "api.example.com", "/v1/orders/7")), Some("api"));
    assert_eq!(name(&t, &req("GET", "API.Example.com.", "/v1/orders")), Some("api"));
    assert_eq!(name(&t, &req("GET", "other.example.com", "/v1/orders")), None, "host");
    assert_eq!(name(&t, &req("POST", "a.test", "/auth/refresh")), Some("refresh"));
    assert_eq!(name(&t, &req("GET", "a.test", "/static/app.js")), Some("static"));
    assert_eq!(name(&t, &req("GET", "a.test", "/other")), None);
    assert_eq!(t.resolve(&req("GET", "a.test", "/other")), Err(Reason::NoRoute));
}

#[test]
fn methods_compare_case_insensitively() {
    let t = table(r#"[{"name":"w","path":"/x","methods":["PATCH"],"auth":"jwt"},{"name":"p","path":"/**","auth":"public"}]"#);
    assert_eq!(name(&t, &req("patch", "a", "/x")), Some("w"), "lower-case method must not slip to the public rule");
    assert_eq!(name(&t, &req("GET", "a", "/x")), Some("p"));
}

#[test]
fn wildcard_hosts() {
    let t = table(r#"[{"name":"w","host":"*.example.com","path":"/**","auth":"jwt"}]"#);
    assert_eq!(name(&t, &req("GET", "a.example.com", "/")), Some("w"));
    assert_eq!(name(&t, &req("GET", "a.b.example.com", "/")), Some("w"));
    assert_eq!(name(&t, &req("GET", "example.com", "/")), None);
    assert_eq!(name(&t, &req("GET", "evilexample.com", "/")), None);
    assert_eq!(name(&t, &req("GET", "example.com.evil.test", "/")), None);
}

#[test]
fn preflight() {
    let t = table(TYPICAL);
    let mut pre = req("OPTIONS", "api.example.com", "/v1/orders");
    pre.headers = vec![
        ("origin".into(), "https://app.example.com".into()),
        ("access-control-request-method".into(), "POST".into()),
    ];
    let r = t.find(&pre).expect("preflight for a listed method matches the rule");
    assert_eq!(r.name, "api");
    assert!(r.lets_preflight_through(&pre));

    // Asking about a method the rule does not allow: no rule.
    pre.headers[1].1 = "DELETE".into();
    assert_eq!(name(&t, &pre), None);

    // OPTIONS without the CORS headers is not a preflight.
    let plain = req("OPTIONS", "api.example.com", "/v1/orders");
    assert!(!Rule::is_preflight(&plain));
    assert_eq!(name(&t, &plain), None);

    // A rule without allow_preflight never waives the credential.
    let admin = t.rules().iter().find(|r| r.name == "admin").unwrap();
    let mut pre_admin = req("OPTIONS", "a", "/admin/x");
    pre_admin.headers = pre.headers.clone();
    assert_eq!(t.find(&pre_admin).map(|r| r.name.as_str()), Some("admin"));
    assert!(!admin.lets_preflight_through(&pre_admin));
}

#[test]
fn path_tricks_do_not_reach_the_public_catch_all() {
    let t = table(
        r#"[{"name":"admin","path":"/admin/**","auth":"jwt","scopes_all":["admin"]},
            {"name":"open","path":"/**","auth":"public"}]"#,
    );
    assert_eq!(name(&t, &req("GET", "a", "/admin/users")), Some("admin"));
    assert_eq!(name(&t, &req("GET", "a", "/%61dmin/users")), Some("admin"), "encoded letters are decoded");
    assert_eq!(name(&t, &req("GET", "a", "/public/page")), Some("open"));
    for p in [
        "/public/../admin/users",
        "/public/%2e%2e/admin/users",
        "//admin/users",
        "/admin;jsessionid=1/users",
        "/admin%2Fusers",
        "/admin%252Fusers",
        "/admin./users",
        "/admin%20/users",
        "/ADMIN/users",
        "/Admin/users",
        "/admin\\users",
        "admin/users",
    ] {
        let got = name(&t, &req("GET", "a", p));
        assert!(got.is_none(), "{p:?} routed to {got:?}");
    }
    assert_eq!(t.resolve(&req("GET", "a", "/a/../admin")), Err(Reason::MalformedRequest));
    assert_eq!(t.resolve(&req("GET", "a", "/ADMIN/x")), Err(Reason::NoRoute));
}

#[test]
fn case_tricks_do_not_reach_a_public_rule_either() {
    // Deny-by-default shape: a public hole, everything else protected.
    let t = table(r#"[{"name":"pub","path":"/Public/**","auth":"public"},{"name":"rest","path":"/**","auth":"jwt"}]"#);
    assert_eq!(name(&t, &req("GET", "a", "/Public/x")), Some("pub"));
    assert_eq!(name(&t, &req("GET", "a", "/public/x")), None, "case-sensitive origin: /public is not the hole");
    assert_eq!(name(&t, &req("GET", "a", "/other")), Some("rest"));
    // The Kelvin sign lower-cases to 'k'.
    let t = table(r#"[{"name":"k","path":"/k/**","auth":"jwt"},{"name":"open","path":"/**","auth":"public"}]"#);
    assert_eq!(name(&t, &req("GET", "a", "/%E2%84%AA/x")), None);
}

fn identity(scopes: &[&str], permissions: &[&str]) -> Identity {
    Identity {
        kind: CredentialKind::AccessToken,
        subject: "u1".into(),
        issuer: "https://id.example".into(),
        claims: Default::default(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        permissions: permissions.iter().map(|s| s.to_string()).collect(),
        device: None,
        revocation: RevocationStatus::NotRequired,
    }
}

#[test]
fn scopes_all_and_any_with_redis_permissions() {
    let t = table(
        r#"[{"name":"r","path":"/**","auth":"jwt","scopes_all":["orders:read","orders:write"],
             "scopes_any":["admin","support"],"issuers":["https://id.example"]}]"#,
    );
    let rule = &t.rules()[0];
    assert!(rule.check_scopes(&identity(&["orders:read", "orders:write", "support"], &[])).is_ok());
    // Redis permissions extend token scopes.
    assert!(rule.check_scopes(&identity(&["orders:read"], &["orders:write", "admin"])).is_ok());

    let refusal = rule.check_scopes(&identity(&["orders:read", "admin"], &[])).unwrap_err();
    assert_eq!(refusal.reason, Reason::InsufficientScope);
    assert_eq!(refusal.reason.status(), 403);
    assert_eq!(refusal.required_scope.as_deref(), Some("orders:write"));

    let refusal = rule.check_scopes(&identity(&["orders:read", "orders:write"], &["viewer"])).unwrap_err();
    assert_eq!(refusal.required_scope.as_deref(), Some("admin support"));

    let refusal = rule.check_scopes(&identity(&[], &[])).unwrap_err();
    assert_eq!(refusal.required_scope.as_deref(), Some("orders:read orders:write admin support"));

    assert!(rule.allows_issuer("https://id.example"));
    assert!(!rule.allows_issuer("https://evil.example"));
    let open = table(r#"[{"path":"/**","auth":"jwt"}]"#);
    assert!(open.rules()[0].check_scopes(&identity(&[], &[])).is_ok());
    assert!(open.rules()[0].allows_issuer("anything"));
    assert_eq!(open.rules()[0].name, "rule0");
}

#[test]
fn config_errors_name_the_field() {
    let cases: &[(&str, &str)] = &[
        (r#"{"path":"/"}"#, "ROUTES"),
        ("[]", "ROUTES"),
        ("[1]", "ROUTES[0]"),
        (r#"[{"path":"/"}]"#, "ROUTES[0].auth"),
        (r#"[{"path":"/","auth":"jwt"},{"path":"/","auth":"jwt"},{"path":"/","auth":"oauth"}]"#, "ROUTES[2].auth"),
        (r#"[{"auth":"jwt"}]"#, "ROUTES[0].path"),
        (r#"[{"path":"x","auth":"jwt"}]"#, "ROUTES[0].path"),
        (r#"[{"path":"/","auth":"jwt","scope_all":["a"]}]"#, "ROUTES[0].scope_all"),
        (r#"[{"path":"/","auth":"jwt","methods":["GET",1]}]"#, "ROUTES[0].methods[1]"),
        (r#"[{"path":"/","auth":"jwt","methods":["G T"]}]"#, "ROUTES[0].methods"),
        (r#"[{"path":"/","auth":"jwt","methods":[]}]"#, "ROUTES[0].methods"),
        (r#"[{"path":"/","auth":"jwt","host":"https://a.test"}]"#, "ROUTES[0].host"),
        (r#"[{"path":"/","auth":"jwt","scopes_any":["a b"]}]"#, "ROUTES[0].scopes_any"),
        (r#"[{"path":"/","auth":"public","scopes_all":["a"]}]"#, "ROUTES[0].scopes_all"),
        (r#"[{"path":"/","auth":"jwt","issuers":[]}]"#, "ROUTES[0].issuers"),
        (r#"[{"path":"/","auth":"jwt","allow_preflight":"yes"}]"#, "ROUTES[0].allow_preflight"),
        (r#"[{"name":"a","path":"/","auth":"jwt"},{"name":"a","path":"/b","auth":"jwt"}]"#, "ROUTES[1].name"),
    ];
    for (json, field) in cases {
        assert_eq!(err(json).field, *field, "{json}");
    }
    assert!(err("[nope").message.contains("invalid JSON"));
}
