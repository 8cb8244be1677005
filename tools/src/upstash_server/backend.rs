//! Running commands on Redis through a connection pool, with timeouts.

use std::sync::Arc;
use std::time::Duration;

use redis::{aio::ConnectionLike, RedisError, Value};
use deadpool_redis::{Connection, Pool, PoolError, Runtime};
use tokio::time::{timeout_at, Instant};

use super::command::Command;
use super::reply::error_text;
use super::stats::Stats;

/// Why Redis could not answer (as opposed to answering with an error reply).
#[derive(Debug)]
pub enum BackendError {
    /// No connection could be obtained or the connection broke (HTTP 503).
    Unavailable(String),
    /// Redis did not answer within the command timeout (HTTP 503).
    TimedOut,
    /// Redis answered the whole request with an error reply (HTTP 400).
    Refused(String),
}

impl BackendError {
    /// The message sent back in `{"error": …}`.
    pub fn message(&self) -> String {
        match self {
            BackendError::Unavailable(why) => format!("ERR redis unavailable: {why}"),
            BackendError::TimedOut => "ERR redis did not answer in time".to_owned(),
            BackendError::Refused(text) => text.clone(),
        }
    }
}

/// How a `/multi-exec` transaction ended.
#[derive(Debug)]
pub enum TransactionOutcome {
    /// EXEC ran: one reply per command (a reply may be an error).
    Committed(Vec<Value>),
    /// Redis discarded the transaction; nothing ran. The message says why.
    Discarded(String),
}

/// The pool of Redis connections and the rules for using it.
pub struct Backend {
    pool: Pool,
    command_timeout: Duration,
    stats: Arc<Stats>,
}

impl Backend {
    /// Builds the pool (connections are opened lazily, on first use).
    pub fn new(
        redis_url: &str,
        pool_size: usize,
        connect_timeout: Duration,
        command_timeout: Duration,
        stats: Arc<Stats>,
    ) -> Result<Self, String> {
        let pool = deadpool_redis::Config::from_url(redis_url)
            .builder()
            .map_err(|e| format!("invalid redis url: {e}"))?
            .max_size(pool_size.max(1))
            .wait_timeout(Some(command_timeout))
            .create_timeout(Some(connect_timeout))
            .recycle_timeout(Some(connect_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| format!("cannot build redis pool: {e}"))?;
        Ok(Self { pool, command_timeout, stats })
    }

    /// Runs one command and returns its reply (an error reply is `Value::ServerError`).
    pub async fn run_one(&self, command: &Command) -> Result<Value, BackendError> {
        let mut pipe = redis::pipe();
        pipe.add_command(to_cmd(command));
        let mut replies = self.send(&pipe, 1, 1).await?;
        Ok(replies.pop().unwrap_or(Value::Nil))
    }

    /// Runs the commands in one round trip, not atomically: one reply per command.
    pub async fn run_pipeline(&self, commands: &[Command]) -> Result<Vec<Value>, BackendError> {
        let mut pipe = redis::pipe();
        for command in commands {
            pipe.add_command(to_cmd(command));
        }
        self.send(&pipe, commands.len(), commands.len()).await
    }

    /// Runs the commands between MULTI and EXEC on one connection, in one round trip.
    pub async fn run_transaction(&self, commands: &[Command]) -> Result<TransactionOutcome, BackendError> {
        let mut pipe = redis::pipe();
        pipe.add_command(redis::cmd("MULTI"));
        for command in commands {
            pipe.add_command(to_cmd(command));
        }
        pipe.add_command(redis::cmd("EXEC"));
        let mut replies = self.send(&pipe, commands.len() + 2, commands.len()).await?;
        let exec = replies.pop().unwrap_or(Value::Nil);
        // The first error while queueing (or from MULTI) is what made Redis
        // discard the transaction; it tells the client more than EXECABORT.
        let queue_error = replies.iter().find_map(error_text);
        Ok(match (exec, queue_error) {
            (_, Some(first)) => TransactionOutcome::Discarded(first),
            (Value::Array(items), None) => TransactionOutcome::Committed(items),
            (other, None) => TransactionOutcome::Discarded(
                error_text(&other).unwrap_or_else(|| "EXECABORT Transaction discarded".to_owned()),
            ),
        })
    }

    /// Sends the packed pipeline and reads `count` replies, within the command
    /// timeout (which also bounds the wait for a pooled connection). A
    /// connection that timed out or broke is dropped, never returned to the pool.
    /// `user_commands` is what the stats count (MULTI/EXEC are not counted).
    async fn send(
        &self,
        pipe: &redis::Pipeline,
        count: usize,
        user_commands: usize,
    ) -> Result<Vec<Value>, BackendError> {
        let deadline = Instant::now() + self.command_timeout;
        let mut conn = match timeout_at(deadline, self.pool.get()).await {
            Err(_) | Ok(Err(PoolError::Timeout(_))) => return Err(BackendError::TimedOut),
            Ok(Err(PoolError::Backend(e))) => return Err(BackendError::Unavailable(describe(&e))),
            Ok(Err(e)) => return Err(BackendError::Unavailable(e.to_string())),
            Ok(Ok(conn)) => conn,
        };
        self.stats.add_commands(user_commands);
        let outcome = timeout_at(deadline, conn.req_packed_commands(pipe, 0, count)).await;
        match outcome {
            Ok(Ok(replies)) => Ok(replies),
            Ok(Err(e)) => match e.code() {
                // An error reply surfaced as Err: the connection is fine, report the error.
                Some(code) => Err(BackendError::Refused(match e.detail() {
                    Some(detail) => format!("{code} {detail}"),
                    None => code.to_owned(),
                })),
                None => {
                    drop(Connection::take(conn));
                    Err(BackendError::Unavailable(describe(&e)))
                }
            },
            Err(_) => {
                drop(Connection::take(conn));
                Err(BackendError::TimedOut)
            }
        }
    }
}

fn to_cmd(command: &Command) -> redis::Cmd {
    let mut cmd = redis::Cmd::new();
    for arg in &command.args {
        cmd.arg(arg.as_slice());
    }
    cmd
}

fn describe(error: &RedisError) -> String {
    // redis errors name the failure (e.g. "Connection refused (os error 111)"), never the URL.
    error.to_string()
}
