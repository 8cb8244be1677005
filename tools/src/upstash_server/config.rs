//! Settings of the Upstash-REST server.

use std::net::SocketAddr;
use std::time::Duration;

/// Upstash caps a request body at 10 MB; so do we.
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// Everything the server needs to run.
#[derive(Clone)]
pub struct ServerConfig {
    /// Address to listen on. Port 0 picks a free port (read it back from
    /// [`crate::upstash_server::UpstashServer::local_addr`]).
    pub listen: SocketAddr,
    /// Redis to forward commands to, e.g. `redis://127.0.0.1:6379`.
    pub redis_url: String,
    /// The Bearer token every request must carry. Never logged.
    pub token: String,
    /// Serve the test instrumentation (`/__stats`, `/__fault`). Default: false.
    pub admin: bool,
    /// Time allowed to open a Redis connection. Default: 2 s.
    pub connect_timeout: Duration,
    /// Time allowed for one request's Redis work (single command, pipeline or
    /// transaction), including waiting for a pooled connection. Default: 10 s.
    pub command_timeout: Duration,
    /// Largest number of Redis connections kept in the pool. Default: 16.
    pub pool_size: usize,
    /// Largest accepted request body in bytes. Default: 10 MB ([`DEFAULT_MAX_BODY_BYTES`]).
    pub max_body_bytes: usize,
    /// Time in-flight requests get to finish after a shutdown signal. Default: 10 s.
    pub shutdown_grace: Duration,
}

impl ServerConfig {
    /// A configuration with the defaults stated on each field.
    pub fn new(listen: SocketAddr, redis_url: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            listen,
            redis_url: redis_url.into(),
            token: token.into(),
            admin: false,
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(10),
            pool_size: 16,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("redis_url", &"<redacted>")
            .field("token", &"<redacted>")
            .field("admin", &self.admin)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("pool_size", &self.pool_size)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("shutdown_grace", &self.shutdown_grace)
            .finish()
    }
}
