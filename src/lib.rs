//! edge-auth: an authentication gateway for the CDN edge.
//!
//! Everything here except `glue` is a pure core: it compiles and is tested on the host with
//! `cargo test`. Time comes in as an argument (`now`, Unix seconds), I/O through small traits
//! ([`http::HttpClient`], [`jwt::crypto::SignatureVerifier`]). `glue` (wasm32 only) is the one
//! file that names the `worker` crate.

pub mod error;
pub mod http;
pub mod vars;
pub mod identity;

pub mod jwt;
pub mod revocation;

pub mod routes;
pub mod forward;
pub mod assertion;

pub mod config;
pub mod gateway;
pub mod log;

#[cfg(target_arch = "wasm32")]
mod glue;
