//! JWT verification: token extraction, compact JWS parsing, keys pinned to algorithms, per-issuer
//! configuration, JWKS caching, claim validation and the verifier entry point.
//!
//! The gateway uses [`verify::JwtConfig`], [`verify::Verifier`] and [`verify::VerifiedToken`];
//! the glue supplies a [`crypto::SignatureVerifier`] (WebCrypto on wasm32,
//! [`webcrypto::WebCryptoVerifier`]), an [`crate::http::HttpClient`] and optionally a
//! [`jwks_cache::JwksStore`].

pub mod claims;
pub mod crypto;
pub mod extract;
pub mod header;
pub mod issuer;
pub mod jwk;
pub mod jwks_cache;
pub mod keys;
pub mod pem;
pub mod token_cache;
pub mod vectors;
pub mod verify;

#[cfg(all(not(target_arch = "wasm32"), any(test, feature = "host-crypto")))]
pub mod host_crypto;

#[cfg(target_arch = "wasm32")]
pub mod webcrypto;

pub use crypto::{CryptoError, SignatureVerifier};
pub use header::Algorithm;
pub use keys::VerifyingKey;
pub use verify::{JwksRefresh, JwtConfig, VerifiedToken, Verifier};
