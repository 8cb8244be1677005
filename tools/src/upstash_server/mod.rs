//! A local server speaking the Upstash Redis REST protocol in front of a real
//! `redis-server` (protocol: the Upstash REST documentation, summarised in docs beside this repository).
//!
//! - `POST /` one command (`["SET","k","v","EX",100]`) -> `{"result": …}` or 400 `{"error": "ERR …"}`.
//! - `POST /pipeline` several commands in one round trip, not atomic -> `[{"result"}|{"error"}, …]`.
//! - `POST /multi-exec` the same inside MULTI/EXEC on one connection -> the array, or 400
//!   `{"error": …}` when Redis discarded the transaction.
//! - `Authorization: Bearer <token>` or `?_token=` (401 otherwise), `Upstash-Encoding: base64`,
//!   503 when Redis cannot be reached or does not answer in time, 404/405 for other paths/methods,
//!   413 over 10 MB. `Content-Type` is not checked (Upstash also accepts curl's form type),
//!   so parameters such as `; charset=utf-8` are fine; `Upstash-Response-Format` and
//!   `upstash-sync-token` are ignored.
//! - Commands that would leave state on a pooled connection (MULTI, EXEC, WATCH, SELECT,
//!   SUBSCRIBE, CLIENT, …) are refused with a Redis-style `ERR` error.
//! - With `admin`: `GET /__stats`, `POST /__stats/reset`, `POST /__fault` (see [`Fault`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use edge_auth_tools::upstash_server::{ServerConfig, UpstashServer};
//! let config = ServerConfig::new("127.0.0.1:0".parse()?, "redis://127.0.0.1:6379", "token");
//! let server = UpstashServer::bind(config).await?;
//! println!("LISTENING http://{}", server.local_addr());
//! server.run_until(async { let _ = tokio::signal::ctrl_c().await; }).await;
//! # Ok(()) }
//! ```

mod auth;
mod backend;
mod command;
mod config;
mod fault;
mod reply;
mod server;
mod service;
mod stats;

pub use config::{ServerConfig, DEFAULT_MAX_BODY_BYTES};
pub use fault::{Fault, MAX_DELAY_MS};
pub use server::{StartError, UpstashServer};
