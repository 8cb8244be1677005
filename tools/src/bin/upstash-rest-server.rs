//! `upstash-rest-server`: the Upstash Redis REST protocol in front of a real redis-server.
//!
//! Prints exactly one line to stdout when ready, `LISTENING http://<addr>:<port>`;
//! everything else goes to stderr. Stops on SIGINT/SIGTERM after in-flight requests finish.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use edge_auth_tools::upstash_server::{ServerConfig, UpstashServer, DEFAULT_MAX_BODY_BYTES};

/// Command line (every option can also come from the environment).
#[derive(Parser)]
#[command(name = "upstash-rest-server", version, about = "Upstash Redis REST protocol in front of redis-server")]
struct Cli {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "UPSTASH_REST_LISTEN", default_value = "127.0.0.1:8079")]
    listen: SocketAddr,
    /// Redis to forward to.
    #[arg(long, env = "UPSTASH_REST_REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Bearer token clients must present (prefer the environment variable: argv is visible to all users).
    #[arg(long, env = "UPSTASH_REST_TOKEN", hide_env_values = true)]
    token: String,
    /// Serve the test endpoints /__stats, /__stats/reset and /__fault.
    #[arg(long, env = "UPSTASH_REST_ADMIN")]
    admin: bool,
    /// Redis connect timeout in milliseconds.
    #[arg(long, env = "UPSTASH_REST_CONNECT_TIMEOUT_MS", default_value_t = 2_000)]
    connect_timeout_ms: u64,
    /// Time allowed for one request's Redis work, in milliseconds.
    #[arg(long, env = "UPSTASH_REST_COMMAND_TIMEOUT_MS", default_value_t = 10_000)]
    command_timeout_ms: u64,
    /// Largest number of pooled Redis connections.
    #[arg(long, env = "UPSTASH_REST_POOL_SIZE", default_value_t = 16)]
    pool_size: usize,
    /// Largest accepted request body in bytes.
    #[arg(long, env = "UPSTASH_REST_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut config = ServerConfig::new(cli.listen, cli.redis_url, cli.token);
    config.admin = cli.admin;
    config.connect_timeout = Duration::from_millis(cli.connect_timeout_ms);
    config.command_timeout = Duration::from_millis(cli.command_timeout_ms);
    config.pool_size = cli.pool_size;
    config.max_body_bytes = cli.max_body_bytes;

    let server = match UpstashServer::bind(config).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("upstash-rest-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = server.local_addr();
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "LISTENING http://{addr}").and_then(|()| stdout.flush()).is_err() {
        eprintln!("upstash-rest-server: cannot write to stdout");
    }
    drop(stdout);
    eprintln!("upstash-rest-server: listening on {addr} (admin endpoints {})", if cli.admin { "on" } else { "off" });

    server.run_until(shutdown_signal()).await;
    eprintln!("upstash-rest-server: stopped");
    ExitCode::SUCCESS
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            eprintln!("upstash-rest-server: cannot watch SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("upstash-rest-server: shutting down");
}
