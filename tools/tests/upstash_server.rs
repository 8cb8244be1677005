//! End-to-end tests of `upstash-rest-server` against a real `redis-server`.
//! Every test starts its own redis-server (free port, no persistence) and its
//! own server process; both are killed when the test ends, also on failure.

mod support;

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::ExitStatus;
use std::thread;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use reqwest::blocking::{Client, Response};
use serde_json::{json, Value};
use support::Proc;

const TOKEN: &str = "test-token-Zq9";
const SERVER_BIN: &str = env!("CARGO_BIN_EXE_upstash-rest-server");

/// A redis-server on a free port.
struct Redis {
    proc: Proc,
    port: u16,
}

impl Redis {
    fn start() -> Redis {
        let (proc, port) = support::start_redis();
        Redis { proc, port }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// The server binary, started with `--listen 127.0.0.1:0`.
struct Server {
    proc: Proc,
    url: String,
}

impl Server {
    fn start(redis_url: &str, extra: &[&str]) -> Server {
        let args: Vec<&str> = ["--connect-timeout-ms", "1000", "--command-timeout-ms", "3000"].into_iter().chain(extra.iter().copied()).collect();
        let (proc, url) = support::start_server(Path::new(SERVER_BIN), redis_url, TOKEN, &args);
        Server { proc, url }
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.proc.0.id()).expect("pid fits i32")
    }

    fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.proc.0.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not exit within {within:?}");
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// redis-server + server. Fields drop in order: server first, then redis.
struct Stack {
    server: Server,
    redis: Redis,
    http: Client,
}

impl Stack {
    fn start() -> Stack {
        Self::start_with(&["--admin"])
    }

    fn start_with(extra: &[&str]) -> Stack {
        let redis = Redis::start();
        let server = Server::start(&redis.url(), extra);
        let http = Client::builder().timeout(Duration::from_secs(15)).build().expect("http client");
        Stack { server, redis, http }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.server.url, path)
    }

    fn post(&self, path: &str, body: &Value) -> Response {
        self.post_raw(path, body.to_string(), &[])
    }

    fn post_raw(&self, path: &str, body: String, headers: &[(&str, &str)]) -> Response {
        let mut request = self.http.post(self.url(path)).bearer_auth(TOKEN).body(body);
        let mut has_type = false;
        for (name, value) in headers {
            has_type |= name.eq_ignore_ascii_case("content-type");
            request = request.header(*name, *value);
        }
        if !has_type {
            request = request.header("Content-Type", "application/json");
        }
        request.send().expect("request sent")
    }

    /// `POST /` with the given command; returns (status, JSON body).
    fn cmd(&self, command: Value) -> (u16, Value) {
        json_of(self.post("/", &command))
    }

    fn stats(&self) -> Value {
        let response = self.http.get(self.url("/__stats")).bearer_auth(TOKEN).send().expect("stats");
        let (status, body) = json_of(response);
        assert_eq!(status, 200, "{body}");
        body
    }

    fn set_fault(&self, fault: Value) {
        let (status, body) = json_of(self.post("/__fault", &fault));
        assert_eq!((status, body), (200, json!({"result": "OK"})));
    }
}

fn json_of(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = response.text().expect("body");
    let body: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("status {status}: body is not JSON ({e}): {text:?}"));
    assert!(content_type.starts_with("application/json"), "content-type {content_type:?}");
    (status, body)
}

fn error_text(body: &Value) -> &str {
    body.get("error").and_then(Value::as_str).unwrap_or_else(|| panic!("no error string in {body}"))
}

#[test]
fn missing_or_wrong_token_is_401_and_query_token_works() {
    let stack = Stack::start();
    let missing = stack.http.post(stack.url("/")).body(r#"["PING"]"#).send().expect("sent");
    let (status, body) = json_of(missing);
    assert_eq!(status, 401);
    assert!(!error_text(&body).is_empty());

    let wrong = stack.http.post(stack.url("/")).bearer_auth("test-token-Zq8").body(r#"["PING"]"#).send();
    assert_eq!(json_of(wrong.expect("sent")).0, 401);
    let basic = stack.http.post(stack.url("/pipeline")).basic_auth("x", Some(TOKEN)).body("[]").send();
    assert_eq!(json_of(basic.expect("sent")).0, 401);

    let query = stack.http.post(stack.url(&format!("/?_token={TOKEN}"))).body(r#"["PING"]"#).send();
    assert_eq!(json_of(query.expect("sent")), (200, json!({"result": "PONG"})));
}

#[test]
fn commands_map_replies_to_json() {
    let stack = Stack::start();
    assert_eq!(stack.cmd(json!(["SET", "k", "v", "EX", 100])), (200, json!({"result": "OK"})));
    assert_eq!(stack.cmd(json!(["GET", "k"])), (200, json!({"result": "v"})));
    assert_eq!(stack.cmd(json!(["GET", "absent"])), (200, json!({"result": null})));
    // Numbers as JSON numbers or strings.
    let (_, ttl) = stack.cmd(json!(["TTL", "k"]));
    let ttl = ttl["result"].as_i64().expect("integer TTL");
    assert!((95..=100).contains(&ttl), "ttl {ttl}");
    assert_eq!(stack.cmd(json!(["INCRBY", "n", 5])), (200, json!({"result": 5})));
    assert_eq!(stack.cmd(json!(["INCRBY", "n", "2"])), (200, json!({"result": 7})));
    assert_eq!(stack.cmd(json!(["RPUSH", "l", "a", "b", 3])), (200, json!({"result": 3})));
    assert_eq!(stack.cmd(json!(["LRANGE", "l", 0, -1])), (200, json!({"result": ["a", "b", "3"]})));
    // Nested arrays.
    stack.cmd(json!(["ZADD", "z", 1, "one"]));
    let (status, scan) = stack.cmd(json!(["ZSCAN", "z", 0]));
    assert_eq!((status, scan), (200, json!({"result": ["0", ["one", "1"]]})));
}

#[test]
fn redis_errors_are_400_with_the_redis_message() {
    let stack = Stack::start();
    stack.cmd(json!(["SET", "s", "text"]));
    let (status, body) = stack.cmd(json!(["INCR", "s"]));
    assert_eq!(status, 400);
    assert_eq!(error_text(&body), "ERR value is not an integer or out of range");
    let (status, body) = stack.cmd(json!(["LPUSH", "s", "x"]));
    assert_eq!(status, 400);
    assert!(error_text(&body).starts_with("WRONGTYPE "), "{body}");
    let (status, body) = stack.cmd(json!(["NOSUCHCOMMAND", "x"]));
    assert_eq!(status, 400);
    assert!(error_text(&body).starts_with("ERR unknown command"), "{body}");
    // Commands that would leave state on a pooled connection are refused.
    let (status, body) = stack.cmd(json!(["MULTI"]));
    assert_eq!(status, 400);
    assert!(error_text(&body).starts_with("ERR "), "{body}");
}

#[test]
fn malformed_bodies_are_400() {
    let stack = Stack::start();
    for (path, body) in [
        ("/", "not json"),
        ("/", "{\"cmd\":\"GET\"}"),
        ("/", "[]"),
        ("/", "[1, \"a\"]"),
        ("/", "[\"GET\", null]"),
        ("/", ""),
        ("/pipeline", "[\"GET\", \"a\"]"),
        ("/pipeline", "[]"),
        ("/multi-exec", "[[\"GET\"], {}]"),
    ] {
        let (status, reply) = json_of(stack.post_raw(path, body.to_owned(), &[]));
        assert_eq!(status, 400, "{path} {body:?} -> {reply}");
        assert!(!error_text(&reply).is_empty());
    }
}

#[test]
fn unknown_paths_are_404_and_wrong_methods_405() {
    let stack = Stack::start();
    let (status, _) = json_of(stack.post("/nope", &json!(["PING"])));
    assert_eq!(status, 404);
    let get = stack.http.get(stack.url("/get/a")).bearer_auth(TOKEN).send().expect("sent");
    assert_eq!(json_of(get).0, 404);
    let get_root = stack.http.get(stack.url("/")).bearer_auth(TOKEN).send().expect("sent");
    assert_eq!(get_root.headers().get("allow").and_then(|v| v.to_str().ok()), Some("POST"));
    assert_eq!(json_of(get_root).0, 405);
    let put = stack.http.put(stack.url("/pipeline")).bearer_auth(TOKEN).body("[]").send().expect("sent");
    assert_eq!(json_of(put).0, 405);
    let get_multi = stack.http.get(stack.url("/multi-exec")).bearer_auth(TOKEN).send().expect("sent");
    assert_eq!(json_of(get_multi).0, 405);
}

#[test]
fn content_type_parameters_and_upstash_only_headers_are_accepted() {
    let stack = Stack::start();
    for content_type in ["application/json; charset=utf-8", "application/json;charset=UTF-8", "text/plain"] {
        let response = stack.post_raw(
            "/",
            r#"["ECHO","hi"]"#.to_owned(),
            &[
                ("Content-Type", content_type),
                ("Upstash-Response-Format", "resp2"),
                ("upstash-sync-token", "whatever"),
            ],
        );
        assert_eq!(json_of(response), (200, json!({"result": "hi"})), "{content_type}");
    }
}

#[test]
fn base64_encoding_applies_to_every_string_but_a_top_level_ok() {
    let stack = Stack::start();
    let b64 = |s: &str| Value::String(B64.encode(s));
    let enc = [("Upstash-Encoding", "base64")];
    let call = |path: &str, body: Value| json_of(stack.post_raw(path, body.to_string(), &enc));

    assert_eq!(call("/", json!(["SET", "k", "héllo ✓"])), (200, json!({"result": "OK"})));
    assert_eq!(call("/", json!(["GET", "k"])), (200, json!({"result": b64("héllo ✓")})));
    stack.cmd(json!(["SET", "ok", "OK"]));
    assert_eq!(call("/", json!(["GET", "ok"])), (200, json!({"result": b64("OK")})));
    assert_eq!(call("/", json!(["PING"])), (200, json!({"result": b64("PONG")})));
    assert_eq!(call("/", json!(["GET", "none"])), (200, json!({"result": null})));
    assert_eq!(call("/", json!(["STRLEN", "k"])), (200, json!({"result": 10})));
    stack.cmd(json!(["RPUSH", "l", "a", "bc"]));
    assert_eq!(call("/", json!(["LRANGE", "l", 0, -1])), (200, json!({"result": [b64("a"), b64("bc")]})));
    assert_eq!(
        call("/pipeline", json!([["SET", "p", "q"], ["GET", "p"], ["INCR", "k"]])),
        (
            200,
            json!([{"result": "OK"}, {"result": b64("q")}, {"error": "ERR value is not an integer or out of range"}])
        )
    );
    // Errors are never encoded.
    let (status, body) = call("/", json!(["INCR", "k"]));
    assert_eq!((status, error_text(&body)), (400, "ERR value is not an integer or out of range"));
    // Without the header, strings are plain.
    assert_eq!(stack.cmd(json!(["GET", "k"])), (200, json!({"result": "héllo ✓"})));
}

#[test]
fn pipeline_answers_each_command_in_order() {
    let stack = Stack::start();
    stack.cmd(json!(["SET", "s", "text"]));
    let (status, body) = json_of(stack.post(
        "/pipeline",
        &json!([["SET", "a", 1], ["INCR", "a"], ["INCR", "s"], ["GET", "a"], ["GET", "nope"], ["WATCH", "a"]]),
    ));
    assert_eq!(status, 200);
    let entries = body.as_array().expect("array");
    assert_eq!(entries.len(), 6);
    assert_eq!(entries[0], json!({"result": "OK"}));
    assert_eq!(entries[1], json!({"result": 2}));
    assert_eq!(entries[2], json!({"error": "ERR value is not an integer or out of range"}));
    assert_eq!(entries[3], json!({"result": "2"}));
    assert_eq!(entries[4], json!({"result": null}));
    assert!(error_text(&entries[5]).starts_with("ERR "));
    // Not atomic: the commands after the failing one still ran.
    assert_eq!(stack.cmd(json!(["GET", "a"])), (200, json!({"result": "2"})));
}

#[test]
fn multi_exec_is_atomic_and_reports_discarded_transactions() {
    let stack = Stack::start();
    stack.cmd(json!(["SET", "s", "text"]));
    let (status, body) =
        json_of(stack.post("/multi-exec", &json!([["SET", "m", 10], ["INCRBY", "m", 5], ["INCR", "s"], ["GET", "m"]])));
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!([{"result": "OK"}, {"result": 15}, {"error": "ERR value is not an integer or out of range"}, {"result": "15"}])
    );
    // A command Redis refuses while queueing discards the whole transaction: nothing runs.
    let (status, body) = json_of(stack.post("/multi-exec", &json!([["SET", "d", 1], ["NOSUCHCOMMAND"]])));
    assert_eq!(status, 400);
    assert!(error_text(&body).contains("unknown command"), "{body}");
    assert_eq!(stack.cmd(json!(["EXISTS", "d"])), (200, json!({"result": 0})));
    // Wrong arity is also caught at queue time.
    let (status, body) = json_of(stack.post("/multi-exec", &json!([["SET", "d", 1], ["GET"]])));
    assert_eq!(status, 400, "{body}");
    assert_eq!(stack.cmd(json!(["EXISTS", "d"])), (200, json!({"result": 0})));
    // The connection is clean afterwards (no transaction left open on it).
    for _ in 0..20 {
        assert_eq!(stack.cmd(json!(["PING"])), (200, json!({"result": "PONG"})));
    }
}

#[test]
fn redis_down_is_503_without_hanging() {
    let mut stack = Stack::start();
    assert_eq!(stack.cmd(json!(["PING"])), (200, json!({"result": "PONG"})));
    stack.redis.proc.0.kill().expect("kill redis");
    stack.redis.proc.0.wait().expect("reap redis");
    for path in ["/", "/pipeline", "/multi-exec"] {
        let body = if path == "/" { json!(["GET", "a"]) } else { json!([["GET", "a"]]) };
        let started = Instant::now();
        let (status, reply) = json_of(stack.post(path, &body));
        assert_eq!(status, 503, "{path}: {reply}");
        assert!(!error_text(&reply).is_empty());
        assert!(started.elapsed() < Duration::from_secs(5), "{path} took {:?}", started.elapsed());
    }
}

#[test]
fn redis_that_never_answers_is_503_after_the_timeout() {
    // A listener that accepts but never speaks: the command timeout (3 s) must fire.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("redis://127.0.0.1:{}", silent.local_addr().expect("addr").port());
    let server = Server::start(&url, &[]);
    let http = Client::builder().timeout(Duration::from_secs(15)).build().expect("client");
    let started = Instant::now();
    let response = http.post(format!("{}/", server.url)).bearer_auth(TOKEN).body(r#"["PING"]"#).send();
    let (status, body) = json_of(response.expect("answered"));
    assert_eq!(status, 503, "{body}");
    assert!(started.elapsed() < Duration::from_secs(8), "took {:?}", started.elapsed());
}

#[test]
fn stats_count_requests_and_commands_and_reset() {
    let stack = Stack::start();
    assert_eq!(stack.stats(), json!({"requests": 0, "commands": 0}));
    stack.cmd(json!(["SET", "a", 1]));
    stack.post("/pipeline", &json!([["GET", "a"], ["GET", "b"], ["GET", "c"]]));
    stack.post("/multi-exec", &json!([["INCR", "a"], ["INCR", "a"]]));
    stack.http.post(stack.url("/")).body("[\"PING\"]").send().expect("unauthorized request");
    assert_eq!(stack.stats(), json!({"requests": 4, "commands": 6}));
    let (status, _) = json_of(stack.post("/__stats/reset", &json!({})));
    assert_eq!(status, 200);
    assert_eq!(stack.stats(), json!({"requests": 0, "commands": 0}));
    // Admin endpoints need the token too.
    let anonymous = stack.http.get(stack.url("/__stats")).send().expect("sent");
    assert_eq!(json_of(anonymous).0, 401);
}

#[test]
fn faults_delay_fail_or_garble_answers() {
    let stack = Stack::start();
    stack.set_fault(json!({"mode": "delay", "ms": 400}));
    let started = Instant::now();
    assert_eq!(stack.cmd(json!(["PING"])), (200, json!({"result": "PONG"})));
    assert!(started.elapsed() >= Duration::from_millis(400), "{:?}", started.elapsed());
    json_of(stack.post("/__stats/reset", &json!({})));

    for code in [500_u16, 401, 503] {
        stack.set_fault(json!({"mode": "status", "status": code}));
        let (status, body) = stack.cmd(json!(["SET", "f", 1]));
        assert_eq!(status, code);
        assert!(!error_text(&body).is_empty());
    }
    assert_eq!(stack.stats()["commands"], json!(0), "faulted requests must not reach redis");

    stack.set_fault(json!({"mode": "garbage"}));
    let response = stack.post("/", &json!(["PING"]));
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().expect("body");
    assert!(serde_json::from_str::<Value>(&text).is_err(), "garbage must not be JSON: {text}");

    let (status, _) = json_of(stack.post("/__fault", &json!({"mode": "explode"})));
    assert_eq!(status, 400);
    stack.set_fault(json!({"mode": "none"}));
    let started = Instant::now();
    assert_eq!(stack.cmd(json!(["PING"])), (200, json!({"result": "PONG"})));
    assert!(started.elapsed() < Duration::from_millis(400));
}

#[test]
fn admin_endpoints_do_not_exist_without_admin_flag() {
    let stack = Stack::start_with(&[]);
    let stats = stack.http.get(stack.url("/__stats")).bearer_auth(TOKEN).send().expect("sent");
    assert_eq!(json_of(stats).0, 404);
    let (status, _) = json_of(stack.post("/__fault", &json!({"mode": "garbage"})));
    assert_eq!(status, 404);
    assert_eq!(stack.cmd(json!(["PING"])), (200, json!({"result": "PONG"})));
}

#[test]
fn fifty_parallel_requests_all_succeed() {
    let stack = Stack::start();
    thread::scope(|scope| {
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let stack = &stack;
                scope.spawn(move || {
                    if i % 5 == 0 {
                        json_of(stack.post("/multi-exec", &json!([["INCR", "counter"], ["INCR", "tx"]])))
                    } else {
                        stack.cmd(json!(["INCR", "counter"]))
                    }
                })
            })
            .collect();
        for handle in handles {
            let (status, body) = handle.join().expect("thread");
            assert_eq!(status, 200, "{body}");
        }
    });
    assert_eq!(stack.cmd(json!(["GET", "counter"])), (200, json!({"result": "50"})));
    assert_eq!(stack.cmd(json!(["GET", "tx"])), (200, json!({"result": "10"})));
}

#[test]
fn bodies_over_10_mb_are_413() {
    let stack = Stack::start();
    let big = format!("[\"SET\",\"big\",\"{}\"]", "x".repeat(10 * 1024 * 1024 + 1));
    let (status, body) = json_of(stack.post_raw("/", big, &[]));
    assert_eq!(status, 413, "{body}");
    // Just under the limit is fine.
    let fits = format!("[\"SET\",\"big\",\"{}\"]", "x".repeat(9 * 1024 * 1024));
    assert_eq!(json_of(stack.post_raw("/", fits, &[])), (200, json!({"result": "OK"})));
}

#[test]
fn sigterm_finishes_in_flight_requests_and_exits_zero() {
    let mut stack = Stack::start();
    stack.set_fault(json!({"mode": "delay", "ms": 700}));
    let url = stack.url("/");
    let in_flight = thread::spawn(move || {
        let http = Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
        json_of(http.post(url).bearer_auth(TOKEN).body(r#"["PING"]"#).send().expect("answered"))
    });
    thread::sleep(Duration::from_millis(250));
    // SAFETY: kill(2) with a pid we spawned and a valid signal number has no memory effects.
    let rc = unsafe { libc::kill(stack.server.pid(), libc::SIGTERM) };
    assert_eq!(rc, 0);
    assert_eq!(in_flight.join().expect("thread"), (200, json!({"result": "PONG"})));
    let status = stack.server.wait_exit(Duration::from_secs(5));
    assert!(status.success(), "exit status {status}");
    // No longer accepting.
    assert!(TcpStream::connect(stack.url("").trim_start_matches("http://")).is_err());
}

#[test]
fn sigint_exits_zero() {
    let mut stack = Stack::start();
    assert_eq!(stack.cmd(json!(["PING"])), (200, json!({"result": "PONG"})));
    // SAFETY: as above.
    let rc = unsafe { libc::kill(stack.server.pid(), libc::SIGINT) };
    assert_eq!(rc, 0);
    let status = stack.server.wait_exit(Duration::from_secs(5));
    assert!(status.success(), "exit status {status}");
}

