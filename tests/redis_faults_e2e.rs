//! The revocation store failing, end to end: the built worker under `wrangler dev`, in front of
//! a redis-server and an Upstash REST server started by this test (so that redis-server can be
//! killed and restarted on the same port while the rest of the stack keeps running).
//!
//! For both `REVOCATION_FAILURE_POLICY=closed` (the default) and `open`, and for each outage —
//! Redis stopped (killed), the REST call slower than `REVOCATION_TIMEOUT_MS`, the REST server
//! answering 500, 401, or garbage:
//! - closed: access tokens get 503 `revocation_unavailable` with `Retry-After`;
//! - open: access tokens reach the origin marked `X-Auth-Revocation: skipped` (only after the
//!   isolate saw the store healthy: one that never did fails closed);
//! - sessions and refresh tokens fail closed under both policies;
//! - every request is answered (nothing panics), the circuit breaker keeps the REST request
//!   count low while requests continue, and service resumes by itself once the store is back.
//!
//! Needs the built worker (`build/`), the tools (`cargo build --workspace --bins`) and
//! `redis-server` on PATH (or `REDIS_SERVER_BIN`).

mod common;
mod rev_support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Reply, Stack};
use rev_support::*;
use serde_json::{json, Value};

/// Worker settings of these tests: a 300 ms store timeout, a breaker that opens after 3
/// failures for 2 s.
const TIMEOUT_MS: &str = "300";
const BREAKER_FAILURES: u64 = 3;
const BREAKER_COOLDOWN_SECS: u64 = 2;
/// How long each outage lasts while requests keep coming (longer than one breaker cooldown,
/// so at least one half-open probe happens during it).
const OUTAGE: Duration = Duration::from_millis(3000);

// ---------- a redis-server + Upstash REST server pair of our own ----------

/// A process started through `sh`, which kills it when our end of its stdin closes (so it
/// never outlives this test process, however that ends).
struct Guarded {
    wrapper: Child,
    stdin: Option<ChildStdin>,
    pid: u32,
    lines: mpsc::Receiver<String>,
    /// Lines the program printed before the wrapper printed its pid (both share the pipe).
    early: std::collections::VecDeque<String>,
}

impl Guarded {
    fn spawn(program: &Path, args: &[String], env: &[(&str, &str)], stderr_log: &Path) -> Guarded {
        let stderr = std::fs::File::create(stderr_log).expect("create log");
        let mut wrapper = Command::new("sh")
            .arg("-c")
            // Background jobs of a non-interactive shell read /dev/null; `cat` reads our pipe.
            .arg(r#""$@" & child=$!; echo "guarded-pid $child"; cat >/dev/null; kill -TERM "$child" 2>/dev/null; wait "$child""#)
            .arg("sh")
            .arg(program)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let stdin = wrapper.stdin.take();
        let stdout = wrapper.stdout.take().expect("stdout pipe");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // The program may print before the wrapper does: its lines are kept for `next_line`.
        let mut early = std::collections::VecDeque::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        let pid = loop {
            let line = lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("{} did not start", program.display()));
            match line.strip_prefix("guarded-pid ").and_then(|p| p.trim().parse().ok()) {
                Some(pid) => break pid,
                None => early.push_back(line),
            }
        };
        Guarded { wrapper, stdin, pid, lines, early }
    }

    /// The program's next line on stdout, waiting up to `timeout`.
    fn next_line(&mut self, timeout: Duration) -> Option<String> {
        self.early.pop_front().or_else(|| self.lines.recv_timeout(timeout).ok())
    }

    /// Kills the process at once (SIGKILL, as when it crashes) and reaps the wrapper.
    fn kill(&mut self) {
        let _ = Command::new("kill").args(["-KILL", &self.pid.to_string()]).status();
        drop(self.stdin.take());
        let _ = self.wrapper.wait();
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.wrapper.wait();
    }
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

fn redis_bin() -> PathBuf {
    std::env::var_os("REDIS_SERVER_BIN").filter(|v| !v.is_empty()).map(PathBuf::from).unwrap_or_else(|| PathBuf::from("redis-server"))
}

fn tools_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent().and_then(|d| d.parent()).expect("target dir").to_path_buf()
}

/// redis-server and upstash-rest-server (with `--admin`), ours to stop and restart.
struct Backend {
    dir: PathBuf,
    redis_port: u16,
    redis: Option<Guarded>,
    /// Held for its lifetime: dropping it stops the server.
    _upstash: Guarded,
    url: String,
    token: String,
    http: reqwest::blocking::Client,
}

impl Backend {
    fn start(name: &str) -> Backend {
        let dir = std::env::temp_dir().join(format!("edge-auth-{}", unique(name)));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let redis_port = free_port();
        let redis = Self::spawn_redis(&dir, redis_port);
        let token = format!("t{}", unique("tok").replace('-', ""));
        let upstash_bin = tools_dir().join("upstash-rest-server");
        assert!(upstash_bin.is_file(), "{} missing: cargo build --workspace --bins", upstash_bin.display());
        let args = ["--listen", "127.0.0.1:0", "--redis-url", &format!("redis://127.0.0.1:{redis_port}"), "--admin"];
        // The token through the environment (argv is visible to every user), like the launcher.
        let mut upstash = Guarded::spawn(&upstash_bin, &args.map(String::from), &[("UPSTASH_REST_TOKEN", &token)], &dir.join("upstash.log"));
        let line = upstash.next_line(Duration::from_secs(15)).unwrap_or_else(|| {
            panic!("upstash-rest-server printed no LISTENING line: {}", std::fs::read_to_string(dir.join("upstash.log")).unwrap_or_default())
        });
        let url = line.strip_prefix("LISTENING ").unwrap_or_else(|| panic!("unexpected line {line:?}")).trim_end_matches('/').to_string();
        let http = reqwest::blocking::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().expect("client");
        Backend { dir, redis_port, redis: Some(redis), _upstash: upstash, url, token, http }
    }

    fn spawn_redis(dir: &Path, port: u16) -> Guarded {
        let args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
            "--bind",
            "127.0.0.1",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--dir",
            &dir.display().to_string(),
            "--logfile",
            &dir.join("redis.log").display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let g = Guarded::spawn(&redis_bin(), &args, &[], &dir.join("redis.stderr.log"));
        // Ours must answer, not another test's redis-server that took the port meanwhile
        // (ours would then fail to bind, and a PING would still be answered).
        let up = poll(Duration::from_secs(10), Duration::from_millis(50), || (redis_pid(port) == Some(g.pid)).then_some(()));
        assert!(
            up.is_some(),
            "our redis-server (pid {}) is not the one answering on {port} (that is pid {:?}): {}",
            g.pid,
            redis_pid(port),
            std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default()
        );
        g
    }

    /// Kills redis-server (SIGKILL) and waits until its port refuses connections.
    fn kill_redis(&mut self) {
        if let Some(mut r) = self.redis.take() {
            r.kill();
        }
        let down = poll(Duration::from_secs(5), Duration::from_millis(20), || redis_pid(self.redis_port).is_none().then_some(()));
        assert!(down.is_some(), "redis-server still answers after SIGKILL");
    }

    /// Starts redis-server again on the same port with the same arguments (empty: no persistence).
    fn restart_redis(&mut self) {
        assert!(self.redis.is_none(), "redis-server is running");
        self.redis = Some(Self::spawn_redis(&self.dir, self.redis_port));
    }

    fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method.parse().expect("method"), format!("{}{path}", self.url)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().expect("admin request");
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        assert!(status < 300, "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    fn fault(&self, fault: Value) {
        self.admin("POST", "/__fault", Some(fault));
    }

    fn stats_reset(&self) {
        self.admin("POST", "/__stats/reset", None);
    }

    fn rest_requests(&self) -> u64 {
        self.admin("GET", "/__stats", None)["requests"].as_u64().expect("stats.requests")
    }

    fn cli_ok(&self, args: &[&str]) -> String {
        let out = cli_at(&self.url, &self.token, args, &[]);
        assert!(out.status.success(), "edge-auth {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.redis.take();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `process_id` (from `INFO server`) of the Redis server answering on 127.0.0.1:`port`.
fn redis_pid(port: u16) -> Option<u32> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    s.write_all(b"INFO server\r\n").ok()?;
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    while got.len() < 64 * 1024 {
        if let Some((pid, _)) = got.split("process_id:").nth(1).and_then(|rest| rest.split_once("\r\n")) {
            return pid.trim().parse().ok();
        }
        let n = s.read(&mut buf).ok().filter(|&n| n > 0)?;
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    None
}

// ---------- the scenarios ----------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Policy {
    Closed,
    Open,
}

#[derive(Clone, Copy, Debug)]
enum Outage {
    RedisStopped,
    SlowerThanTimeout,
    Status500,
    Status401,
    Garbage,
}

impl Outage {
    fn begin(self, b: &mut Backend) {
        match self {
            Outage::RedisStopped => b.kill_redis(),
            Outage::SlowerThanTimeout => b.fault(json!({"mode": "delay", "ms": 1500})),
            Outage::Status500 => b.fault(json!({"mode": "status", "status": 500})),
            Outage::Status401 => b.fault(json!({"mode": "status", "status": 401})),
            Outage::Garbage => b.fault(json!({"mode": "garbage"})),
        }
    }

    fn end(self, b: &mut Backend) {
        match self {
            Outage::RedisStopped => b.restart_redis(),
            _ => b.fault(json!({"mode": "none"})),
        }
    }
}

/// A worker in front of our own backend.
struct Env {
    backend: Backend,
    stack: Stack,
    policy: Policy,
}

impl Env {
    fn start(policy: Policy) -> Env {
        let backend = Backend::start(&format!("{policy:?}").to_lowercase());
        let policy_var = if policy == Policy::Open { "open" } else { "closed" };
        let failures = BREAKER_FAILURES.to_string();
        let cooldown = BREAKER_COOLDOWN_SECS.to_string();
        let v = vars(&[
            ("UPSTASH_REDIS_REST_URL", &backend.url),
            ("UPSTASH_REDIS_REST_TOKEN", &backend.token),
            ("REVOCATION_TIMEOUT_MS", TIMEOUT_MS),
            ("REVOCATION_FAILURE_POLICY", policy_var),
            ("CIRCUIT_BREAKER_FAILURES", &failures),
            ("CIRCUIT_BREAKER_COOLDOWN_SECS", &cooldown),
        ]);
        let refs: Vec<(&str, &str)> = v.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let stack = Stack::start(&refs);
        Env { backend, stack, policy }
    }

    /// Credentials valid in the store as it is now (a restarted Redis starts empty).
    fn credentials(&self) -> Creds {
        let sub = unique("sub");
        let session = self.backend.cli_ok(&["session", "create", "--sub", &sub, "--device", "d"]);
        let rt = Tok::refresh(ISS_A, &sub);
        self.backend.cli_ok(&["refresh", "add", "--iss", ISS_A, "--jti", rt.jti.as_deref().unwrap_or(""), "--ttl", "600"]);
        Creds { access: Tok::access(ISS_A, &sub).sign(), session, refresh: rt.sign(), sub }
    }

    fn access(&self, c: &Creds) -> Reply {
        get_with(&self.stack, "/api/x", &c.access)
    }

    /// Polls until an access token is checked against the store again; returns how long it took.
    fn wait_healthy(&self, c: &Creds, what: &str) -> Duration {
        let started = Instant::now();
        let limit = Duration::from_secs(2 * BREAKER_COOLDOWN_SECS + 8);
        poll(limit, Duration::from_millis(100), || {
            let r = self.access(c);
            (r.status == 200 && r.origin_echo().header("x-auth-revocation") == Some("checked")).then_some(())
        })
        .unwrap_or_else(|| panic!("{what}: the worker did not check the store again within {limit:?}: {}", self.access(c).text()));
        started.elapsed()
    }

    /// Runs [`Env::outage`]; on failure, adds the worker's log lines that are not request
    /// lines (reloads, errors) and the last request lines to the report.
    fn scenario(&mut self, outage: Outage) {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.outage(outage)));
        if let Err(e) = result {
            let log = worker_log(&self.stack);
            let other: Vec<&str> = log.lines().filter(|l| !l.starts_with('{') && !l.contains("[wrangler:info] GET") && !l.contains("[wrangler:info] POST")).collect();
            let requests: Vec<&str> = log.lines().filter(|l| l.starts_with('{')).collect();
            eprintln!(
                "--- worker log, other lines ---\n{}\n--- last request lines ---\n{}",
                other[other.len().saturating_sub(40)..].join("\n"),
                requests[requests.len().saturating_sub(15)..].join("\n")
            );
            std::panic::resume_unwind(e);
        }
    }

    fn outage(&mut self, outage: Outage) {
        let what = format!("{:?} policy, {outage:?}", self.policy);
        let c = self.credentials();
        self.wait_healthy(&c, &what);
        assert_passes(&get_with(&self.stack, "/s/x", &c.session), &format!("{what}: session while healthy"));
        assert_passes(&get_with(&self.stack, "/refresh/x", &c.refresh), &format!("{what}: refresh token while healthy"));

        self.backend.stats_reset();
        outage.begin(&mut self.backend);
        let started = Instant::now();
        let mut requests = 0u64;
        let mut slowest = Duration::ZERO;
        let mut round = 0u64;
        while started.elapsed() < OUTAGE {
            round += 1;
            let sent = Instant::now();
            let reply = self.access(&c);
            slowest = slowest.max(sent.elapsed());
            requests += 1;
            match self.policy {
                Policy::Closed => assert_unavailable(&reply, &format!("{what}: access token #{requests}")),
                Policy::Open => {
                    assert_eq!(assert_passes(&reply, &format!("{what}: access token #{requests}")), "skipped", "{what}")
                }
            }
            // Sessions and refresh tokens are only valid while their record can be read.
            if round.is_multiple_of(5) {
                assert_unavailable(&get_with(&self.stack, "/s/x", &c.session), &format!("{what}: session"));
                assert_unavailable(&get_with(&self.stack, "/refresh/x", &c.refresh), &format!("{what}: refresh token"));
                requests += 2;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let elapsed = started.elapsed();
        let calls = self.backend.rest_requests();
        // Closed breaker: BREAKER_FAILURES calls; then one probe per cooldown.
        let bound = BREAKER_FAILURES + elapsed.as_secs() / BREAKER_COOLDOWN_SECS + 1;
        assert!(requests >= 15, "{what}: only {requests} requests during the outage");
        assert!(calls >= 1, "{what}: the store was never asked");
        assert!(calls <= bound, "{what}: {calls} REST requests for {requests} worker requests in {elapsed:?} (bound {bound})");
        // A slow store costs at most the timeout (300 ms), never its full delay (1.5 s).
        assert!(slowest < Duration::from_millis(1200), "{what}: a request took {slowest:?}");

        // Logging out needs the store as well: refused, never a false success.
        // (With another token of the subject: a write that timed out may still land later.)
        let other = Tok::access(ISS_A, &c.sub).sign();
        for (cred, kind) in [(&other, "access token"), (&c.session, "session")] {
            let reply = self.stack.request("POST", "/auth/logout", &[("authorization", &bearer(cred))], None);
            assert_unavailable(&reply, &format!("{what}: logout with a {kind}"));
        }

        outage.end(&mut self.backend);
        let c = if matches!(outage, Outage::RedisStopped) { self.credentials() } else { c };
        let took = self.wait_healthy(&c, &format!("{what}: recovery"));
        assert_passes(&get_with(&self.stack, "/s/x", &c.session), &format!("{what}: session after recovery"));
        assert_passes(&get_with(&self.stack, "/refresh/x", &c.refresh), &format!("{what}: refresh token after recovery"));
        eprintln!("{what}: {requests} requests (slowest {slowest:?}), {calls} REST calls during {elapsed:?}; service back {took:?} after the store");
    }
}

struct Creds {
    sub: String,
    access: String,
    session: String,
    refresh: String,
}

/// 503 `revocation_unavailable` with a `Retry-After` of 1..=cooldown seconds.
fn assert_unavailable(reply: &Reply, what: &str) {
    assert_refused(reply, 503, "revocation_unavailable", what);
    let retry = reply.header("retry-after").unwrap_or_else(|| panic!("{what}: 503 without Retry-After"));
    let secs: u64 = retry.parse().unwrap_or_else(|_| panic!("{what}: Retry-After {retry:?}"));
    assert!((1..=BREAKER_COOLDOWN_SECS).contains(&secs), "{what}: Retry-After {secs}");
}

const OUTAGES: [Outage; 5] = [Outage::Status500, Outage::Status401, Outage::Garbage, Outage::SlowerThanTimeout, Outage::RedisStopped];

#[test]
fn closed_policy_refuses_with_503_during_every_outage_and_recovers_by_itself() {
    let mut env = Env::start(Policy::Closed);
    for outage in OUTAGES {
        env.scenario(outage);
    }
    assert_no_panic(&env.stack);
}

#[test]
fn open_policy_skips_the_check_for_access_tokens_only_and_recovers_by_itself() {
    let mut env = Env::start(Policy::Open);
    // An isolate that never saw the store healthy fails closed, even under `open`.
    let c = env.credentials();
    env.backend.fault(json!({"mode": "status", "status": 500}));
    assert_unavailable(&env.access(&c), "open policy, store never seen healthy");
    env.backend.fault(json!({"mode": "none"}));
    for outage in OUTAGES {
        env.scenario(outage);
    }
    assert_no_panic(&env.stack);
}
