//! Signature checking: the [`SignatureVerifier`] trait (WebCrypto in the worker, pure Rust on
//! the host), HMAC in pure Rust everywhere, and [`verify_signature`], the one entry point that
//! enforces key/algorithm pinning and signature shapes before any verifier runs.

use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384, Sha512};

use super::header::{Algorithm, Family};
use super::keys::{KeyMaterial, VerifyingKey};

/// Why a verifier could not give a yes/no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CryptoError {
    /// The verifier does not support this key or algorithm.
    Unsupported(String),
    /// The key could not be imported (e.g. an EC point not on its curve).
    InvalidKey(String),
    /// The crypto backend failed unexpectedly.
    Backend(String),
}

impl std::fmt::Display for CryptoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CryptoError::Unsupported(m) => write!(f, "unsupported: {m}"),
            CryptoError::InvalidKey(m) => write!(f, "invalid key: {m}"),
            CryptoError::Backend(m) => write!(f, "crypto backend error: {m}"),
        }
    }
}

/// Verifies asymmetric signatures (RSA, RSA-PSS, ECDSA, Ed25519). `Ok(false)` means "does not
/// verify". Implementations may assume [`verify_signature`]'s checks already passed (the key
/// allows `alg`, ECDSA/Ed25519 signatures have the right length). Futures need not be `Send`.
#[allow(async_fn_in_trait)]
pub trait SignatureVerifier {
    /// Checks `signature` over `signing_input` with `key` under `alg`.
    async fn verify(
        &self,
        key: &VerifyingKey,
        alg: Algorithm,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Result<bool, CryptoError>;
}

/// HMAC-SHA2 check in constant time (`verify_slice`); the tag must be full length.
pub fn verify_hmac(secret: &[u8], alg: Algorithm, signing_input: &[u8], tag: &[u8]) -> bool {
    if tag.len() != alg.hash_len() {
        return false;
    }
    macro_rules! check {
        ($h:ty) => {
            match <Hmac<$h> as Mac>::new_from_slice(secret) {
                Ok(mut mac) => {
                    mac.update(signing_input);
                    mac.verify_slice(tag).is_ok()
                }
                Err(_) => false,
            }
        };
    }
    match alg {
        Algorithm::HS256 => check!(Sha256),
        Algorithm::HS384 => check!(Sha384),
        Algorithm::HS512 => check!(Sha512),
        _ => false,
    }
}

/// The expected signature length for fixed-size schemes (ECDSA r||s, Ed25519); RSA signatures
/// must be exactly the modulus length.
pub fn expected_signature_len(key: &VerifyingKey, alg: Algorithm) -> Option<usize> {
    match (&key.material, alg.family()) {
        (KeyMaterial::Ec { curve, .. }, Family::Ecdsa) => Some(2 * curve.coord_len()),
        (KeyMaterial::Ed25519 { .. }, Family::Ed25519) => Some(64),
        (KeyMaterial::Rsa { n, .. }, Family::RsaPkcs1 | Family::RsaPss) => Some(n.len()),
        (KeyMaterial::Hmac(_), Family::Hmac) => Some(alg.hash_len()),
        _ => None,
    }
}

/// Checks a signature: refuses (`Ok(false)`) when the key is not pinned to `alg` or the
/// signature has the wrong length; HMAC is computed here in pure Rust; everything else goes to
/// `crypto`.
pub async fn verify_signature<C: SignatureVerifier + ?Sized>(
    crypto: &C,
    key: &VerifyingKey,
    alg: Algorithm,
    signing_input: &[u8],
    signature: &[u8],
) -> Result<bool, CryptoError> {
    if !key.allows(alg) {
        return Ok(false);
    }
    match expected_signature_len(key, alg) {
        Some(len) if len == signature.len() => {}
        _ => return Ok(false),
    }
    match &key.material {
        KeyMaterial::Hmac(secret) => Ok(verify_hmac(secret.expose(), alg, signing_input, signature)),
        _ => crypto.verify(key, alg, signing_input, signature).await,
    }
}

/// A verifier for builds without asymmetric crypto: every asymmetric check is `Unsupported`.
/// HMAC still works through [`verify_signature`].
#[derive(Debug, Clone, Copy, Default)]
pub struct HmacOnly;

impl SignatureVerifier for HmacOnly {
    async fn verify(&self, _: &VerifyingKey, alg: Algorithm, _: &[u8], _: &[u8]) -> Result<bool, CryptoError> {
        Err(CryptoError::Unsupported(format!("{alg} needs an asymmetric verifier")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::keys::{EcCurve, HmacSecret};
    use futures::executor::block_on;

    fn mac(secret: &[u8], msg: &[u8]) -> Vec<u8> {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap();
        m.update(msg);
        m.finalize().into_bytes().to_vec()
    }

    #[test]
    fn hmac_full_tags_only() {
        let secret = [9u8; 32];
        let tag = mac(&secret, b"a.b");
        assert!(verify_hmac(&secret, Algorithm::HS256, b"a.b", &tag));
        assert!(!verify_hmac(&secret, Algorithm::HS256, b"a.c", &tag));
        assert!(!verify_hmac(&secret, Algorithm::HS256, b"a.b", &tag[..16]));
        assert!(!verify_hmac(&secret, Algorithm::HS384, b"a.b", &tag));
    }

    #[test]
    fn pinning_is_enforced_before_the_verifier() {
        let secret = vec![9u8; 32];
        let key = VerifyingKey::new(None, KeyMaterial::Hmac(HmacSecret::new(secret.clone())), vec![Algorithm::HS256]);
        let tag = mac(&secret, b"x");
        assert_eq!(block_on(verify_signature(&HmacOnly, &key, Algorithm::HS256, b"x", &tag)), Ok(true));
        assert_eq!(block_on(verify_signature(&HmacOnly, &key, Algorithm::HS384, b"x", &tag)), Ok(false));
        // An EC key with the HMAC of its own coordinates: never an HMAC key.
        let ec = VerifyingKey::new(None, KeyMaterial::Ec { curve: EcCurve::P256, x: vec![1; 32], y: vec![2; 32] }, vec![Algorithm::ES256]);
        assert_eq!(block_on(verify_signature(&HmacOnly, &ec, Algorithm::HS256, b"x", &tag)), Ok(false));
        // Wrong ECDSA signature length never reaches the verifier.
        assert_eq!(block_on(verify_signature(&HmacOnly, &ec, Algorithm::ES256, b"x", &[0; 63])), Ok(false));
        assert!(block_on(verify_signature(&HmacOnly, &ec, Algorithm::ES256, b"x", &[0; 64])).is_err());
    }
}
