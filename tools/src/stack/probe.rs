//! Readiness probes over plain TCP: a Redis `PING`, whose redis-server answers, an HTTP request
//! that accepts any status, and picking free ports; and a bare redis-server for tests.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, release it).
pub fn free_port() -> std::io::Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(l.local_addr()?.port())
}

/// True if a Redis server on `127.0.0.1:port` answers `PING` with `+PONG`.
pub fn redis_ping(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// The `process_id` of the redis-server answering on `127.0.0.1:port` (`INFO server`), or
/// `None` if none answers. A PONG alone does not say whose server it is: with stacks started in
/// parallel, a port probed free can be taken by another stack's redis-server, ours then fails
/// to bind, and a PING would be answered by theirs.
pub fn redis_pid(port: u16) -> Option<u32> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    s.write_all(b"INFO server\r\n").ok()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // A bulk string: `$<len>\r\n<text>\r\n`; read until the `process_id:` line is complete.
    loop {
        let text = String::from_utf8_lossy(&got);
        if let Some(rest) = text.split("process_id:").nth(1) {
            if let Some((pid, _)) = rest.split_once("\r\n") {
                return pid.trim().parse().ok();
            }
        }
        if got.len() > 64 * 1024 {
            return None;
        }
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&buf[..n]);
    }
}

/// The status code of `GET <path>` on `127.0.0.1:port`, reading only the status line (the
/// connection may stay open after the answer). `None` if nothing answered within `timeout`.
pub fn http_status(port: u16, path: &str, timeout: Duration) -> Option<u16> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    let _ = s.set_nodelay(true);
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: edge-auth-dev-probe\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !got.windows(2).any(|w| w == b"\r\n") {
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(buf.get(..n)?);
    }
    let line = String::from_utf8_lossy(&got);
    let mut parts = line.split_whitespace();
    let version = parts.next()?;
    if !version.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

/// Starts `redis-server` (no persistence, 127.0.0.1) on a free port and waits until that very
/// process answers there ([`redis_pid`]); when another process took the port first, tries
/// another (up to five ports). For tests: the caller owns (kills and reaps) the child.
pub fn spawn_redis(bin: &Path, timeout: Duration) -> Result<(Child, u16), String> {
    let mut last = String::new();
    for _ in 0..5 {
        let port = free_port().map_err(|e| format!("finding a free port: {e}"))?;
        let mut child = Command::new(bin)
            .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1", "--port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {} ({e}); install it (apt-get install redis-server)", bin.display()))?;
        let deadline = Instant::now() + timeout;
        loop {
            if redis_pid(port) == Some(child.id()) {
                return Ok((child, port));
            }
            if let Ok(Some(status)) = child.try_wait() {
                last = format!("redis-server on port {port} exited: {status}");
                break;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("redis-server did not answer on port {port} within {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Err(last)
}
