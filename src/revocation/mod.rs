//! Revocation and sessions in Redis, reached only through the Upstash REST protocol.
//!
//! - [`keys`]: the one key schema (worker, CLI and tests share it).
//! - [`config`]: settings from wrangler vars ([`RevocationConfig::from_vars`]).
//! - [`check`]: the per-request check ([`Revocation::check`]): one REST round trip per request,
//!   failure policy, circuit breaker ([`breaker`]) and staleness cache ([`cache`]).
//! - [`writes`]: the commands that revoke tokens, set cutoffs and manage sessions.
//! - [`store`]: building pipeline requests and reading replies; [`scripts`]: the Lua scripts.
//! - [`session`]: opaque tokens and the session record.

pub mod breaker;
pub mod cache;
pub mod check;
pub mod config;
pub mod keys;
pub mod scripts;
pub mod session;
pub mod store;
pub mod writes;

#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
mod tests;

pub use check::{CheckOutcome, Credential, JwtCredential, Revocation, WriteRequest};
pub use config::{Endpoint, FailurePolicy, RateLimit, RateLimitKey, RevocationConfig, SessionLimitPolicy};
pub use keys::KeySchema;
pub use session::Session;
pub use store::{Command, RedisValue, StoreError};
