//! Listening, accepting and shutting down.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::auth::TokenCheck;
use super::backend::Backend;
use super::config::ServerConfig;
use super::fault::FaultSwitch;
use super::service::{handle, App};
use super::stats::Stats;

/// Why the server could not start.
#[derive(Debug)]
pub enum StartError {
    /// The configuration is unusable (e.g. an invalid Redis URL or an empty token).
    Config(String),
    /// The listen address could not be bound.
    Bind(std::io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Config(why) => write!(f, "invalid configuration: {why}"),
            StartError::Bind(e) => write!(f, "cannot listen: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// A bound, not yet serving, Upstash-REST server.
pub struct UpstashServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    app: Arc<App>,
    shutdown_grace: Duration,
}

impl UpstashServer {
    /// Binds the listen address and prepares the Redis pool (connections open on first use,
    /// so this succeeds even when Redis is down).
    pub async fn bind(config: ServerConfig) -> Result<Self, StartError> {
        if config.token.is_empty() {
            return Err(StartError::Config("the token must not be empty".to_owned()));
        }
        let stats = Arc::new(Stats::default());
        let backend = Backend::new(
            &config.redis_url,
            config.pool_size,
            config.connect_timeout,
            config.command_timeout,
            Arc::clone(&stats),
        )
        .map_err(StartError::Config)?;
        let listener = TcpListener::bind(config.listen).await.map_err(StartError::Bind)?;
        let local_addr = listener.local_addr().map_err(StartError::Bind)?;
        let app = Arc::new(App {
            token: TokenCheck::new(&config.token),
            backend,
            stats,
            fault: FaultSwitch::default(),
            admin: config.admin,
            max_body_bytes: config.max_body_bytes,
        });
        Ok(Self { listener, local_addr, app, shutdown_grace: config.shutdown_grace })
    }

    /// The address actually bound (the real port when the configuration asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight
    /// requests finish (up to the configured grace period) and returns.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _peer)) => {
                        connections.spawn(serve_connection(stream, Arc::clone(&self.app), stop_rx.clone()));
                    }
                    Err(e) => {
                        // Usually out of file descriptors: back off instead of spinning.
                        eprintln!("upstash-rest-server: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        drop(self.listener);
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(self.shutdown_grace, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            eprintln!("upstash-rest-server: grace period over, dropping {} connection(s)", connections.len());
            connections.abort_all();
        }
    }
}

async fn serve_connection(stream: TcpStream, app: Arc<App>, mut stop: watch::Receiver<bool>) {
    // Without this every response waits on Nagle + delayed ACK (~40 ms).
    if let Err(e) = stream.set_nodelay(true) {
        eprintln!("upstash-rest-server: cannot set TCP_NODELAY: {e}");
    }
    let service = service_fn(move |request| handle(Arc::clone(&app), request));
    let connection = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let stopping = tokio::select! {
        _ = connection.as_mut() => false,
        stopped = stop.wait_for(|stopping| *stopping) => stopped.is_ok(),
    };
    if stopping {
        // Finish the request in flight (if any), then close.
        connection.as_mut().graceful_shutdown();
        let _ = connection.await;
    }
}
