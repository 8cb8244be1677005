//! Processes shared by the tools' integration tests: a child killed on drop, a redis-server of
//! our own on a free port, and `upstash-rest-server` started on port 0.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use edge_auth_tools::stack::{locate, probe};

/// A child process killed (and reaped) on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A redis-server (`$REDIS_SERVER_BIN` or `redis-server` on PATH) answering on the returned port;
/// the port is checked to be answered by this very process ([`probe::spawn_redis`]).
pub fn start_redis() -> (Proc, u16) {
    let bin = locate::program("redis-server", "REDIS_SERVER_BIN");
    let (child, port) = probe::spawn_redis(&bin, Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));
    (Proc(child), port)
}

/// `bin --listen 127.0.0.1:0 --redis-url <redis_url> <args>` with the token in the environment;
/// returns the process and the URL of its `LISTENING` line. Its stdout keeps being drained.
pub fn start_server(bin: &Path, redis_url: &str, token: &str, args: &[&str]) -> (Proc, String) {
    assert!(bin.exists(), "{} not found: cargo build -p edge-auth-tools --bin upstash-rest-server (or set UPSTASH_SERVER_BIN)", bin.display());
    let child = Command::new(bin)
        .args(["--listen", "127.0.0.1:0", "--redis-url", redis_url])
        .args(args)
        .env("UPSTASH_REST_TOKEN", token)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let mut proc = Proc(child);
    let stdout = proc.0.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = tx.send(lines.next());
        // Keep draining so the server never blocks on a full pipe.
        for _ in lines {}
    });
    let line = match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Some(Ok(line))) => line,
        other => panic!("{} did not print its LISTENING line: {other:?}", bin.display()),
    };
    let url = line.strip_prefix("LISTENING ").unwrap_or_else(|| panic!("unexpected first stdout line: {line:?}")).to_owned();
    assert!(url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"), "bad url {url}");
    (proc, url)
}
