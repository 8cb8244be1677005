//! The edge's assertion signing key: parsing `ASSERTION_KEY`, signing, and the public JWK.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use ed25519_dalek::Signer as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Smallest accepted HS256 secret (bytes).
pub const MIN_HMAC_SECRET: usize = 32;

/// A signing key. `Debug` never shows secret material.
#[derive(Clone)]
pub enum AssertionKey {
    /// `EdDSA` (Ed25519).
    Ed25519(Box<ed25519_dalek::SigningKey>),
    /// `HS256` with this secret (the bytes of `ASSERTION_KEY`).
    Hs256(Vec<u8>),
}

impl std::fmt::Debug for AssertionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AssertionKey::Ed25519(_) => f.write_str("AssertionKey::Ed25519(..)"),
            AssertionKey::Hs256(_) => f.write_str("AssertionKey::Hs256(..)"),
        }
    }
}

impl AssertionKey {
    /// Parses an Ed25519 private key: a 32-byte seed in base64url (padding and the standard
    /// alphabet tolerated), or a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`, as written by
    /// `openssl genpkey -algorithm ed25519`). Errors never quote the key.
    pub fn ed25519(text: &str) -> Result<AssertionKey, String> {
        let text = text.trim();
        let key = if text.contains("-----BEGIN") {
            let body = pem_body(text).ok_or("PEM must be a PKCS#8 'PRIVATE KEY' block")?;
            let der = STANDARD.decode(body).map_err(|_| "PEM body is not valid base64")?;
            ed25519_dalek::SigningKey::from_pkcs8_der(&der).map_err(|_| "PEM is not a PKCS#8 Ed25519 private key")?
        } else {
            let normalised: String =
                text.trim_end_matches('=').chars().map(|c| match c { '+' => '-', '/' => '_', c => c }).collect();
            let seed = URL_SAFE_NO_PAD.decode(normalised).map_err(|_| "expected a base64url 32-byte seed or a PKCS#8 PEM")?;
            let seed: [u8; 32] = seed.try_into().map_err(|_| "the seed must be exactly 32 bytes")?;
            ed25519_dalek::SigningKey::from_bytes(&seed)
        };
        Ok(AssertionKey::Ed25519(Box::new(key)))
    }

    /// An HS256 key; the secret must be at least [`MIN_HMAC_SECRET`] bytes.
    pub fn hs256(secret: &[u8]) -> Result<AssertionKey, String> {
        if secret.len() < MIN_HMAC_SECRET {
            return Err(format!("an HS256 secret needs at least {MIN_HMAC_SECRET} bytes"));
        }
        Ok(AssertionKey::Hs256(secret.to_vec()))
    }

    /// The JWS `alg`: `EdDSA` or `HS256`.
    pub fn alg(&self) -> &'static str {
        match self {
            AssertionKey::Ed25519(_) => "EdDSA",
            AssertionKey::Hs256(_) => "HS256",
        }
    }

    /// Signs `input` (the JWS signing input `header.payload`).
    pub fn sign(&self, input: &[u8]) -> Vec<u8> {
        match self {
            AssertionKey::Ed25519(k) => k.sign(input).to_bytes().to_vec(),
            AssertionKey::Hs256(secret) => match Hmac::<Sha256>::new_from_slice(secret) {
                Ok(mut mac) => {
                    mac.update(input);
                    mac.finalize().into_bytes().to_vec()
                }
                // HMAC takes keys of any length; unreachable, and an empty signature verifies nowhere.
                Err(_) => Vec::new(),
            },
        }
    }

    /// The public key as a JWK (Ed25519 only; an HMAC secret is never published).
    pub fn public_jwk(&self) -> Option<serde_json::Value> {
        let AssertionKey::Ed25519(k) = self else { return None };
        let x = URL_SAFE_NO_PAD.encode(k.verifying_key().as_bytes());
        Some(serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "x": x, "kid": okp_thumbprint(&x), "alg": "EdDSA", "use": "sig",
        }))
    }

    /// The `kid`: the RFC 7638 thumbprint of the public key (Ed25519), `None` for HS256.
    pub fn kid(&self) -> Option<String> {
        let AssertionKey::Ed25519(k) = self else { return None };
        Some(okp_thumbprint(&URL_SAFE_NO_PAD.encode(k.verifying_key().as_bytes())))
    }
}

/// RFC 7638 / RFC 8037 §A.3 thumbprint of an Ed25519 public key given as base64url `x`.
pub fn okp_thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The base64 body of a `PRIVATE KEY` PEM block, whitespace (and literal `\n` from env files)
/// removed.
fn pem_body(text: &str) -> Option<String> {
    let start = text.find("-----BEGIN PRIVATE KEY-----")? + "-----BEGIN PRIVATE KEY-----".len();
    let end = text.find("-----END PRIVATE KEY-----")?;
    let body = text.get(start..end)?;
    Some(body.replace("\\n", "").chars().filter(|c| !c.is_whitespace()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 8037 appendix A.
    const D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
    const X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    #[test]
    fn rfc8037_vectors() {
        let key = AssertionKey::ed25519(D).unwrap();
        let jwk = key.public_jwk().unwrap();
        assert_eq!(jwk["x"], X);
        assert_eq!(key.kid().unwrap(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
        let sig = key.sign(b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc");
        assert_eq!(
            URL_SAFE_NO_PAD.encode(sig),
            "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
        );
    }

    #[test]
    fn pkcs8_pem_and_seed_give_the_same_key() {
        let seed = URL_SAFE_NO_PAD.decode(D).unwrap();
        let mut der = vec![0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
        der.extend_from_slice(&seed);
        let pem = format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", STANDARD.encode(&der));
        assert_eq!(AssertionKey::ed25519(&pem).unwrap().kid(), AssertionKey::ed25519(D).unwrap().kid());
        let escaped = pem.replace('\n', "\\n");
        assert_eq!(AssertionKey::ed25519(&escaped).unwrap().kid(), AssertionKey::ed25519(D).unwrap().kid());
        let padded_std = STANDARD.encode(&seed);
        assert_eq!(AssertionKey::ed25519(&padded_std).unwrap().kid(), AssertionKey::ed25519(D).unwrap().kid());
    }

    #[test]
    fn bad_keys_are_refused_without_echoing_them() {
        for bad in ["", "short", &URL_SAFE_NO_PAD.encode([7u8; 31]), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
            "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----"] {
            let e = AssertionKey::ed25519(bad).unwrap_err();
            assert!(bad.len() < 5 || !e.contains(bad), "{e}");
        }
        assert!(AssertionKey::hs256(&[1u8; 31]).is_err());
        assert!(AssertionKey::hs256(&[1u8; 32]).is_ok());
        assert_eq!(format!("{:?}", AssertionKey::hs256(b"0123456789abcdef0123456789abcdef").unwrap()), "AssertionKey::Hs256(..)");
        assert!(AssertionKey::hs256(&[1u8; 32]).unwrap().public_jwk().is_none());
    }
}
