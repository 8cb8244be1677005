//! End-to-end harness: runs the whole local stack (`edge-auth-dev --json`: redis-server, the
//! Upstash REST server, the echoing test origin, `wrangler dev` on the built worker) and talks
//! to it.
//!
//! - [`Stack::start`] starts a stack of its own (stopped when dropped or on [`Stack::stop`]);
//!   [`Stack::shared`] gives one stack per test binary for tests that use the same vars.
//! - The launcher's stdin stays open for the stack's life: when this process ends, however it
//!   ends, the launcher sees EOF and tears everything down.
//! - A stack that cannot start makes the test PANIC with the reason and the log tails; nothing
//!   is ever skipped.
//!
//! Environment: `EDGE_AUTH_DEV_BIN` (the launcher; default `edge-auth-dev` next to the test
//! binary's target dir, i.e. `$CARGO_TARGET_DIR/debug/`), `EDGE_AUTH_BUNDLE_DIR` (default:
//! the launcher's, `<repo>/build`). Build the tools first: `cargo build -p edge-auth-tools`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Admin endpoint of the Upstash REST server (started with `--admin`): GET returns counters.
pub const UPSTASH_STATS_PATH: &str = "/__stats";
/// Admin endpoint of the Upstash REST server: POST resets the counters.
pub const UPSTASH_STATS_RESET_PATH: &str = "/__stats/reset";
/// Admin endpoint of the Upstash REST server: POST a fault, e.g. `{"mode":"delay","ms":500}`,
/// `{"mode":"status","status":503}`, `{"mode":"garbage"}`, `{"mode":"none"}`.
pub const UPSTASH_FAULT_PATH: &str = "/__fault";

/// How long the launcher may take to print its JSON line.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// One process started by the launcher.
#[derive(Debug, Clone, Deserialize)]
pub struct ProcessInfo {
    pub name: String,
    pub pid: u32,
    pub pgid: i32,
}

/// The launcher's JSON line.
#[derive(Debug, Clone, Deserialize)]
pub struct StackInfo {
    pub worker: String,
    pub origin: String,
    pub upstash: String,
    pub upstash_token: String,
    pub redis_port: u16,
    pub logs_dir: String,
    pub launcher_pid: u32,
    pub processes: Vec<ProcessInfo>,
}

/// A running stack.
pub struct Stack {
    /// Where everything can be reached.
    pub info: StackInfo,
    launcher: Mutex<Option<Child>>,
    stdin: Mutex<Option<ChildStdin>>,
    stderr: Arc<Mutex<String>>,
    http: reqwest::blocking::Client,
}

/// An HTTP answer, read whole (by Content-Length or chunks, never until close).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// Header names lower-case, in received order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): status {} body {:?}", self.status, self.text()))
    }

    /// Asserts a gateway refusal: this status, a JSON content type and this `reason` id.
    /// Returns the JSON body.
    pub fn assert_refusal(&self, status: u16, reason: &str) -> serde_json::Value {
        assert_eq!(self.status, status, "expected {status} {reason}; body: {}", self.text());
        let content_type = self.header("content-type");
        assert!(content_type.is_some_and(|c| c.starts_with("application/json")), "content-type: {content_type:?}");
        let body = self.json();
        assert_eq!(body["reason"], reason, "body: {body}");
        body
    }

    /// What the test origin received, if this answer is the origin's echo; panics otherwise.
    pub fn origin_echo(&self) -> OriginEcho {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not an origin echo ({e}): status {} body {:?}", self.status, self.text()))
    }
}

/// The test origin's description of the request it received.
#[derive(Debug, Clone, Deserialize)]
pub struct OriginEcho {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Lower-case names, duplicates kept.
    pub headers: Vec<(String, String)>,
    pub body_length: u64,
    pub body_sha256: String,
}

impl OriginEcho {
    /// The first value of header `name` (give it lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (give it lower-case), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }
}

/// `len` bytes that are not all alike (a body corrupted by a shift or a truncation changes its
/// checksum), from an xorshift seeded with `seed`.
pub fn body_of(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The launcher executable.
fn launcher_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("EDGE_AUTH_DEV_BIN").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    // The test binary is <target>/debug/deps/<name>-<hash>; the tools are in <target>/debug.
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("test binary has no target dir");
    dir.join("edge-auth-dev")
}

/// Shared stacks, keyed by their vars.
type SharedStacks = Mutex<HashMap<Vec<(String, String)>, &'static Stack>>;

/// Stacks shared by the tests of one binary, keyed by their vars.
fn shared_stacks() -> &'static SharedStacks {
    static SHARED: OnceLock<SharedStacks> = OnceLock::new();
    SHARED.get_or_init(|| Mutex::new(HashMap::new()))
}

impl Stack {
    /// Starts a stack whose worker gets `vars` (on top of ORIGIN_URL and the Upstash URL and
    /// token, which a var of the same name overrides). Panics with the reason and log tails if
    /// it cannot start.
    pub fn start(vars: &[(&str, &str)]) -> Stack {
        Self::try_start(vars).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The stack shared by every test of this binary that asks for the same `vars`; started
    /// on first use, stopped when the test binary exits (the launcher sees stdin close).
    pub fn shared(vars: &[(&str, &str)]) -> &'static Stack {
        let key: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut map = shared_stacks().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = map.get(&key) {
            return s;
        }
        let s: &'static Stack = Box::leak(Box::new(Self::start(vars)));
        map.insert(key, s);
        s
    }

    /// Like [`Stack::start`], returning the failure report instead of panicking.
    pub fn try_start(vars: &[(&str, &str)]) -> Result<Stack, String> {
        let bin = launcher_bin();
        if !bin.is_file() {
            return Err(format!(
                "the stack launcher {} does not exist: build the tools first (`cargo build -p edge-auth-tools`) or set EDGE_AUTH_DEV_BIN",
                bin.display()
            ));
        }
        let mut cmd = Command::new(&bin);
        cmd.arg("--json").env("EDGE_AUTH_ROOT", env!("CARGO_MANIFEST_DIR"));
        if let Some(dir) = std::env::var_os("EDGE_AUTH_BUNDLE_DIR").filter(|v| !v.is_empty()) {
            cmd.arg("--bundle-dir").arg(dir);
        }
        for (k, v) in vars {
            cmd.arg("--var").arg(format!("{k}={v}"));
        }
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let stderr_pipe = child.stderr.take().ok_or("no stderr pipe")?;

        let stderr = Arc::new(Mutex::new(String::new()));
        drain_into(stderr_pipe, stderr.clone());
        let rx = first_line(stdout);
        let stderr_now = |stderr: &Arc<Mutex<String>>| {
            std::thread::sleep(Duration::from_millis(200));
            stderr.lock().map(|s| s.clone()).unwrap_or_default()
        };
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(l) => l,
            Err(_) => {
                drop(stdin);
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("the stack did not start within {START_TIMEOUT:?}\n{}", stderr_now(&stderr)));
            }
        };
        let value: serde_json::Value = match serde_json::from_str(line.trim()) {
            Ok(v) => v,
            Err(_) => {
                drop(stdin);
                let status = child.wait();
                return Err(format!(
                    "the stack launcher exited ({status:?}) without its JSON line; stdout: {line:?}\n{}",
                    stderr_now(&stderr)
                ));
            }
        };
        if let Some(err) = value.get("error").and_then(|e| e.as_str()) {
            drop(stdin);
            let _ = child.wait();
            return Err(format!("the stack could not start:\n{err}"));
        }
        let info: StackInfo = serde_json::from_value(value).map_err(|e| format!("unexpected launcher JSON ({e}): {line}"))?;
        let http = reqwest::blocking::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(Stack { info, launcher: Mutex::new(Some(child)), stdin: Mutex::new(stdin), stderr, http })
    }

    /// `<worker><path>`.
    pub fn worker_url(&self, path: &str) -> String {
        format!("{}{}", self.info.worker, path)
    }

    /// `GET <worker><path>` with `headers`.
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.request("GET", path, headers, None)
    }

    /// A request to the worker. Panics (with the launcher's stderr) if no answer comes.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<Vec<u8>>) -> Reply {
        self.send(method, &self.worker_url(path), headers, body)
    }

    /// A request to any URL with this stack's client.
    pub fn send(&self, method: &str, url: &str, headers: &[(&str, &str)], body: Option<Vec<u8>>) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("valid method");
        let mut req = self.http.request(method, url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().unwrap_or_else(|e| panic!("request to {url} failed: {e}\n{}", self.diagnostics()));
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let body = resp.bytes().unwrap_or_else(|e| panic!("reading the answer of {url} failed: {e}")).to_vec();
        Reply { status, headers, body }
    }

    /// A command through the Upstash REST server, e.g. `["SET", "k", "v"]`; returns `result`
    /// (panics on an `error` answer).
    pub fn redis_cmd(&self, args: &[&str]) -> serde_json::Value {
        let body = serde_json::to_vec(args).expect("serialize");
        let auth = format!("Bearer {}", self.info.upstash_token);
        let url = format!("{}/", self.info.upstash);
        let reply = self.send("POST", &url, &[("authorization", &auth), ("content-type", "application/json")], Some(body));
        let v = reply.json();
        match v.get("result") {
            Some(r) if reply.status == 200 => r.clone(),
            _ => panic!("redis command {args:?} failed: {} {}", reply.status, reply.text()),
        }
    }

    /// The Upstash REST server's counters (admin endpoint).
    pub fn upstash_stats(&self) -> serde_json::Value {
        let url = format!("{}{UPSTASH_STATS_PATH}", self.info.upstash);
        let auth = format!("Bearer {}", self.info.upstash_token);
        let reply = self.send("GET", &url, &[("authorization", &auth)], None);
        assert_eq!(reply.status, 200, "upstash stats: {}", reply.text());
        reply.json()
    }

    /// Resets the Upstash REST server's counters (admin endpoint).
    pub fn upstash_stats_reset(&self) {
        let url = format!("{}{UPSTASH_STATS_RESET_PATH}", self.info.upstash);
        let auth = format!("Bearer {}", self.info.upstash_token);
        let reply = self.send("POST", &url, &[("authorization", &auth)], None);
        assert_eq!(reply.status, 200, "upstash stats reset: {}", reply.text());
    }

    /// Sets a fault on the Upstash REST server (admin endpoint), e.g.
    /// `json!({"mode": "delay", "ms": 500})`; `json!({"mode": "none"})` clears it.
    pub fn upstash_fault(&self, fault: serde_json::Value) {
        let url = format!("{}{UPSTASH_FAULT_PATH}", self.info.upstash);
        let auth = format!("Bearer {}", self.info.upstash_token);
        let body = serde_json::to_vec(&fault).expect("serialize");
        let reply = self.send("POST", &url, &[("authorization", &auth), ("content-type", "application/json")], Some(body));
        assert!(reply.status < 300, "upstash fault {fault}: {} {}", reply.status, reply.text());
    }

    /// Every JSON object with a `request_id` the worker printed on a line of its console
    /// (wrangler's stdout and stderr in the logs dir): the per-request log lines.
    pub fn log_records(&self) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        for file in ["wrangler.stdout.log", "wrangler.stderr.log"] {
            let text = std::fs::read_to_string(PathBuf::from(&self.info.logs_dir).join(file)).unwrap_or_default();
            for line in text.lines() {
                let Some(start) = line.find('{') else { continue };
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(line[start..].trim()) {
                    if v.get("request_id").is_some() {
                        out.push(v);
                    }
                }
            }
        }
        out
    }

    /// Waits (up to 10 s) for a log line matching `pred`; panics naming `what` otherwise.
    pub fn wait_for_log_record(&self, what: &str, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(r) = self.log_records().into_iter().find(|r| pred(r)) {
                return r;
            }
            if Instant::now() > deadline {
                panic!("no log line for {what}\n{}", self.diagnostics());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The launcher's stderr so far and the tails of every child's logs.
    pub fn diagnostics(&self) -> String {
        let mut out = String::new();
        out.push_str("--- launcher stderr ---\n");
        out.push_str(&self.stderr.lock().map(|s| s.clone()).unwrap_or_default());
        for p in &self.info.processes {
            for stream in ["stdout", "stderr"] {
                let path = PathBuf::from(&self.info.logs_dir).join(format!("{}.{stream}.log", p.name));
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(30)..].join("\n");
                out.push_str(&format!("--- {} {stream} ({}) ---\n{tail}\n", p.name, path.display()));
            }
        }
        out
    }

    /// Stops the stack by closing the launcher's stdin (as if this process had died) and waits
    /// for the launcher to exit. Returns its exit code and stderr.
    pub fn stop(&self) -> (Option<i32>, String) {
        drop(self.stdin.lock().unwrap_or_else(|p| p.into_inner()).take());
        let mut guard = self.launcher.lock().unwrap_or_else(|p| p.into_inner());
        let code = match guard.take() {
            Some(mut child) => {
                let deadline = Instant::now() + Duration::from_secs(20);
                loop {
                    match child.try_wait() {
                        Ok(Some(status)) => break status.code(),
                        Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                        _ => {
                            let _ = child.kill();
                            let _ = child.wait();
                            panic!("the launcher did not exit within 20 s of stdin closing\n{}", self.diagnostics());
                        }
                    }
                }
            }
            None => None,
        };
        std::thread::sleep(Duration::from_millis(100));
        (code, self.stderr.lock().map(|s| s.clone()).unwrap_or_default())
    }

    /// Live processes (not zombies) that belong to this stack: the launcher, every child and
    /// every member of the children's process groups.
    pub fn live_processes(&self) -> Vec<(i32, String)> {
        let pgids: Vec<i32> = self.info.processes.iter().map(|p| p.pgid).collect();
        let mut pids: Vec<i32> = self.info.processes.iter().map(|p| p.pid as i32).collect();
        pids.push(self.info.launcher_pid as i32);
        let mut live = Vec::new();
        let Ok(dir) = std::fs::read_dir("/proc") else { return live };
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
            let comm = stat[open + 1..close].to_string();
            let mut rest = stat[close + 1..].split_whitespace();
            let state = rest.next().unwrap_or("?");
            let _ppid = rest.next();
            let pgrp: i32 = rest.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            if state == "Z" || state == "X" {
                continue;
            }
            if pids.contains(&pid) || pgids.contains(&pgrp) {
                live.push((pid, comm));
            }
        }
        live
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // Closing stdin makes the launcher tear the stack down.
        drop(self.stdin.get_mut().ok().and_then(|s| s.take()));
        if let Ok(Some(mut child)) = self.launcher.get_mut().map(|c| c.take()) {
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP/1.1 on a socket: the only way to choose header letter case and to send CR/LF bytes.

/// Sends `head` (the request line and headers, already terminated by an empty line) and then
/// whatever `body` writes, and reads one answer. `None` when the server closed without
/// answering (a rejection too).
pub fn raw_exchange(stack: &Stack, head: &[u8], body: impl FnOnce(&mut TcpStream) -> std::io::Result<()>) -> Option<Reply> {
    let addr = stack.info.worker.trim_start_matches("http://").trim_end_matches('/');
    let mut conn = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    conn.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    // A server that rejects the request may close the socket while we still write: that is an
    // answer too, read below.
    let _ = conn.write_all(head).and_then(|_| body(&mut conn)).and_then(|_| conn.flush());
    read_reply(&mut conn)
}

/// Reads one HTTP/1.1 answer: complete by Content-Length or chunks (the runtime keeps the
/// connection open despite `Connection: close`), or whatever came before the server closed.
fn read_reply(conn: &mut TcpStream) -> Option<Reply> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        if let Some(reply) = parse_raw_reply(&raw, false) {
            return Some(reply);
        }
        match conn.read(&mut buf) {
            Ok(0) => return parse_raw_reply(&raw, true),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
                panic!("no complete answer within 30 s; read so far: {:?}", String::from_utf8_lossy(&raw))
            }
            Err(_) => return parse_raw_reply(&raw, true), // reset: what came is the answer
        }
    }
}

/// Parses an answer; `None` while incomplete. Without Content-Length or chunking, the body
/// runs to the end of the connection (`at_eof`).
fn parse_raw_reply(raw: &[u8], at_eof: bool) -> Option<Reply> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        let mut out = Vec::new();
        let mut at = rest;
        loop {
            let line_end = at.windows(2).position(|w| w == b"\r\n")?;
            let size_text = String::from_utf8_lossy(&at[..line_end]);
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            at = &at[line_end + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(at.get(..size)?);
            at = at.get(size + 2..)?;
        }
        out
    } else if let Some(len) = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse::<usize>().ok()) {
        rest.get(..len)?.to_vec()
    } else if at_eof {
        rest.to_vec()
    } else {
        return None;
    };
    Some(Reply { status, headers, body })
}

// ---------------------------------------------------------------------------------------------
// Child-process pipes.

/// Appends everything `pipe` writes to `sink`, line by line, on a thread (so the child never
/// blocks on a full pipe).
pub fn drain_into(pipe: impl Read + Send + 'static, sink: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut r = BufReader::new(pipe);
        let mut line = String::new();
        while matches!(r.read_line(&mut line), Ok(n) if n > 0) {
            sink.lock().unwrap_or_else(|p| p.into_inner()).push_str(&line);
            line.clear();
        }
    });
}

/// The first line `pipe` writes (for a ready line such as the launcher's JSON), then keeps
/// draining the rest on the same thread.
pub fn first_line(pipe: impl Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(pipe);
        let mut line = String::new();
        let _ = r.read_line(&mut line);
        let _ = tx.send(line);
        let mut sink = Vec::new();
        let _ = r.read_to_end(&mut sink);
    });
    rx
}
