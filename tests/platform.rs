//! Issue "platform": the worker runs under `wrangler dev` in front of a real origin.
//!
//! - a request reaches the origin with its method, path, query, headers and body intact
//!   (a 1 MiB body arrives with the same SHA-256);
//! - an unreachable origin answers 502 with a JSON error `"reason":"origin_unreachable"`;
//! - an invalid configuration answers 500 with a generic JSON error `"reason":"config_invalid"`
//!   that does not echo the bad value;
//! - stopping the stack (closing the launcher's stdin, as when the test process goes away),
//!   SIGTERM to the launcher, or even SIGKILL to it, leaves no process behind.
//!
//! Needs the built worker (`build/`, or `EDGE_AUTH_BUNDLE_DIR`) and the tools
//! (`cargo build -p edge-auth-tools`).

mod common;

use common::{body_of, sha256_hex, Stack};

/// Vars that let these tests reach the origin without a credential: one public route.
const PUBLIC_VARS: &[(&str, &str)] = &[("ROUTES", r#"[{"name":"all","path":"/**","auth":"public"}]"#)];

/// A port on 127.0.0.1 where nothing listens. Taken below 1024, where the kernel never hands
/// out ports to `bind(0)`, so no other stack of this test binary can take it meanwhile.
fn closed_port() -> u16 {
    for port in [1u16, 7, 9, 13, 19, 37, 79] {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return port,
            _ => continue,
        }
    }
    panic!("no closed port below 1024 on 127.0.0.1");
}

#[test]
fn request_reaches_origin_with_method_path_query_headers_and_body() {
    let stack = Stack::shared(PUBLIC_VARS);
    let body = body_of(1024 * 1024, 0x1234_5678);
    let reply = stack.request(
        "POST",
        "/api/items/42?b=2&a=1&a=3&empty=&sp=x%20y",
        &[
            ("x-custom-one", "hello"),
            ("x-multi", "first"),
            ("x-multi", "second"),
            ("content-type", "application/octet-stream"),
            ("accept", "application/json"),
        ],
        Some(body.clone()),
    );
    assert_eq!(reply.status, 200, "body: {}", reply.text());
    let echo = reply.origin_echo();
    assert_eq!(echo.method, "POST");
    assert_eq!(echo.path, "/api/items/42");
    assert_eq!(echo.query.as_deref(), Some("b=2&a=1&a=3&empty=&sp=x%20y"));
    assert_eq!(echo.header("x-custom-one"), Some("hello"));
    // The Workers runtime joins repeated request headers with ", "; both values must arrive, in order.
    assert_eq!(echo.header_all("x-multi").join(", "), "first, second");
    assert_eq!(echo.header("content-type"), Some("application/octet-stream"));
    assert_eq!(echo.header("accept"), Some("application/json"));
    assert_eq!(echo.body_length, 1024 * 1024);
    assert_eq!(echo.body_sha256, sha256_hex(&body));
}

#[test]
fn every_method_is_forwarded_as_sent() {
    let stack = Stack::shared(PUBLIC_VARS);
    for method in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        let body = match method {
            "GET" | "HEAD" => None,
            _ => Some(format!("body of {method}").into_bytes()),
        };
        let reply = stack.request(method, "/m?x=1", &[], body.clone());
        assert_eq!(reply.status, 200, "{method}: {}", reply.text());
        if method == "HEAD" {
            assert!(reply.body.is_empty(), "HEAD answered with a body");
            continue;
        }
        let echo = reply.origin_echo();
        assert_eq!(echo.method, method);
        assert_eq!(echo.path, "/m");
        assert_eq!(echo.query.as_deref(), Some("x=1"));
        let sent = body.unwrap_or_default();
        assert_eq!(echo.body_length, sent.len() as u64, "{method}");
        assert_eq!(echo.body_sha256, sha256_hex(&sent), "{method}");
    }
}

#[test]
fn origin_status_and_body_come_back_unchanged() {
    let stack = Stack::shared(PUBLIC_VARS);
    let reply = stack.get("/__origin/status/503", &[]);
    assert_eq!(reply.status, 503, "body: {}", reply.text());
    assert_eq!(reply.origin_echo().path, "/__origin/status/503");
    assert_eq!(reply.header("content-type"), Some("application/json"));
}

#[test]
fn unreachable_origin_gives_502_json_error() {
    let origin = format!("http://127.0.0.1:{}", closed_port());
    let mut vars: Vec<(&str, &str)> = PUBLIC_VARS.to_vec();
    vars.push(("ORIGIN_URL", &origin));
    let stack = Stack::start(&vars);
    let reply = stack.get("/anything?x=1", &[]);
    reply.assert_refusal(502, "origin_unreachable");
    assert!(!reply.text().contains(&origin), "the origin URL leaked: {}", reply.text());
    // The request's log line says what happened, with the time spent trying the origin.
    let line = stack.wait_for_log_record("the unreachable origin", |r| r["path"] == "/anything");
    assert_eq!((&line["decision"], &line["reason"], &line["status"]), (&serde_json::json!("refuse"), &serde_json::json!("origin_unreachable"), &serde_json::json!(502)), "{line}");
    assert!(line["origin_ms"].as_f64().is_some() && line["total_ms"].as_f64().is_some(), "{line}");
}

#[test]
fn invalid_origin_url_gives_generic_500_that_does_not_leak_the_value() {
    let bad = "not a url";
    let mut vars: Vec<(&str, &str)> = PUBLIC_VARS.to_vec();
    vars.push(("ORIGIN_URL", bad));
    let stack = Stack::start(&vars);
    let reply = stack.get("/anything", &[]);
    reply.assert_refusal(500, "config_invalid");
    let text = reply.text();
    assert!(!text.contains(bad), "the bad value leaked: {text}");
    assert!(!text.contains("ORIGIN_URL"), "the var name leaked: {text}");
}

#[test]
fn closing_the_launchers_stdin_leaves_no_process_behind() {
    let stack = Stack::start(PUBLIC_VARS);
    let before = stack.live_processes();
    let names: Vec<&str> = before.iter().map(|(_, n)| n.as_str()).collect();
    assert!(names.contains(&"redis-server"), "stack processes: {before:?}");
    assert!(names.iter().any(|n| n.starts_with("workerd")), "no workerd among {before:?}");
    let logs_dir = std::path::PathBuf::from(&stack.info.logs_dir);
    assert!(logs_dir.is_dir());

    let (code, stderr) = stack.stop();
    assert_eq!(code, Some(0), "launcher stderr: {stderr}");
    let after = stack.live_processes();
    assert!(after.is_empty(), "still alive after teardown: {after:?}");
    assert!(!logs_dir.exists(), "logs dir left after a clean stop: {}", logs_dir.display());
}

#[test]
fn sigterm_to_the_launcher_leaves_no_process_behind() {
    let stack = Stack::start(PUBLIC_VARS);
    assert!(stack.live_processes().len() >= 5, "{:?}", stack.live_processes());
    let status = std::process::Command::new("kill")
        .args(["-TERM", &stack.info.launcher_pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let (code, stderr) = stack.stop();
    assert_eq!(code, Some(0), "launcher stderr: {stderr}");
    let after = stack.live_processes();
    assert!(after.is_empty(), "still alive after SIGTERM: {after:?}");
}

#[test]
fn a_launcher_killed_without_teardown_leaves_no_process_behind() {
    let stack = Stack::start(PUBLIC_VARS);
    assert!(stack.live_processes().iter().any(|(_, n)| n.starts_with("workerd")), "{:?}", stack.live_processes());
    let status = std::process::Command::new("kill")
        .args(["-KILL", &stack.info.launcher_pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let (code, _) = stack.stop();
    assert_eq!(code, None, "the launcher should have died of SIGKILL");
    // Its watchdog sends SIGTERM to every group at once, SIGKILL 2 s later.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(8);
    let mut left = stack.live_processes();
    while !left.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        left = stack.live_processes();
    }
    assert!(left.is_empty(), "still alive 8 s after the launcher was killed: {left:?}");
    let logs_dir = std::path::Path::new(&stack.info.logs_dir);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while logs_dir.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!logs_dir.exists(), "the watchdog left {}", logs_dir.display());
}

#[test]
fn the_stacks_upstash_server_reaches_its_redis_and_takes_faults() {
    let stack = Stack::start(PUBLIC_VARS);
    stack.upstash_stats_reset();
    assert_eq!(stack.redis_cmd(&["SET", "platform:k", "v1"]), "OK");
    assert_eq!(stack.redis_cmd(&["GET", "platform:k"]), "v1");
    let stats = stack.upstash_stats();
    assert_eq!(stats["requests"], 2, "stats after two commands: {stats}");
    assert_eq!(stats["commands"], 2, "stats after two commands: {stats}");

    stack.upstash_fault(serde_json::json!({"mode": "status", "status": 503}));
    let url = format!("{}/", stack.info.upstash);
    let auth = format!("Bearer {}", stack.info.upstash_token);
    let reply = stack.send("POST", &url, &[("authorization", &auth)], Some(br#"["GET","platform:k"]"#.to_vec()));
    assert_eq!(reply.status, 503, "{}", reply.text());
    stack.upstash_fault(serde_json::json!({"mode": "none"}));
    assert_eq!(stack.redis_cmd(&["GET", "platform:k"]), "v1");
}
