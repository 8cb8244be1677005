//! [`HostVerifier`]: asymmetric signature checks on the host (tests, host tools) with
//! jsonwebtoken's pure-Rust crypto. Not built for wasm32 (the worker uses WebCrypto).

use jsonwebtoken::DecodingKey;

use super::crypto::{CryptoError, SignatureVerifier};
use super::header::{b64url_encode, Algorithm};
use super::keys::{KeyMaterial, VerifyingKey};

/// Verifies RS*/PS*/ES256/ES384/EdDSA with jsonwebtoken (`rust_crypto`).
#[derive(Debug, Clone, Copy, Default)]
pub struct HostVerifier;

fn jwt_alg(alg: Algorithm) -> jsonwebtoken::Algorithm {
    use jsonwebtoken::Algorithm as J;
    match alg {
        Algorithm::HS256 => J::HS256,
        Algorithm::HS384 => J::HS384,
        Algorithm::HS512 => J::HS512,
        Algorithm::RS256 => J::RS256,
        Algorithm::RS384 => J::RS384,
        Algorithm::RS512 => J::RS512,
        Algorithm::PS256 => J::PS256,
        Algorithm::PS384 => J::PS384,
        Algorithm::PS512 => J::PS512,
        Algorithm::ES256 => J::ES256,
        Algorithm::ES384 => J::ES384,
        Algorithm::EdDSA => J::EdDSA,
    }
}

fn decoding_key(key: &VerifyingKey) -> Result<DecodingKey, CryptoError> {
    match &key.material {
        KeyMaterial::Rsa { n, e } => Ok(DecodingKey::from_rsa_raw_components(n, e)),
        KeyMaterial::Ec { x, y, .. } => DecodingKey::from_ec_components(&b64url_encode(x), &b64url_encode(y))
            .map_err(|e| CryptoError::InvalidKey(e.to_string())),
        KeyMaterial::Ed25519 { x } => {
            DecodingKey::from_ed_components(&b64url_encode(x)).map_err(|e| CryptoError::InvalidKey(e.to_string()))
        }
        KeyMaterial::Hmac(s) => Ok(DecodingKey::from_secret(s.expose())),
    }
}

impl SignatureVerifier for HostVerifier {
    async fn verify(
        &self,
        key: &VerifyingKey,
        alg: Algorithm,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Result<bool, CryptoError> {
        let dk = decoding_key(key)?;
        match jsonwebtoken::crypto::verify(&b64url_encode(signature), signing_input, &dk, jwt_alg(alg)) {
            Ok(ok) => Ok(ok),
            Err(e) => match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidEcdsaKey
                | jsonwebtoken::errors::ErrorKind::InvalidEddsaKey
                | jsonwebtoken::errors::ErrorKind::InvalidRsaKey(_)
                | jsonwebtoken::errors::ErrorKind::InvalidKeyFormat => Err(CryptoError::InvalidKey(e.to_string())),
                // Anything else (e.g. a signature the backend cannot parse) does not verify.
                _ => Ok(false),
            },
        }
    }
}
