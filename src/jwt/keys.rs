//! Verification keys: typed key material (an RSA/EC/Ed25519 public key can never be used as an
//! HMAC secret), the algorithms each key is pinned to, and key selection for a token.

use sha2::{Digest, Sha256};

use super::header::{Algorithm, Family};

/// Smallest accepted RSA modulus, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// A named elliptic curve for ECDSA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EcCurve {
    /// NIST P-256 (secp256r1).
    P256,
    /// NIST P-384 (secp384r1).
    P384,
}

impl EcCurve {
    /// The JWK / WebCrypto curve name.
    pub fn name(self) -> &'static str {
        match self {
            EcCurve::P256 => "P-256",
            EcCurve::P384 => "P-384",
        }
    }
    /// Length in bytes of one coordinate (and of r and s in a signature).
    pub fn coord_len(self) -> usize {
        match self {
            EcCurve::P256 => 32,
            EcCurve::P384 => 48,
        }
    }
    /// The one algorithm this curve is used with in JOSE.
    pub fn algorithm(self) -> Algorithm {
        match self {
            EcCurve::P256 => Algorithm::ES256,
            EcCurve::P384 => Algorithm::ES384,
        }
    }
    /// Curve from its JWK name.
    pub fn from_name(name: &str) -> Option<EcCurve> {
        match name {
            "P-256" => Some(EcCurve::P256),
            "P-384" => Some(EcCurve::P384),
            _ => None,
        }
    }
}

/// An HMAC secret. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct HmacSecret(Vec<u8>);

impl HmacSecret {
    /// Wraps secret bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        HmacSecret(bytes)
    }
    /// The secret bytes (for the MAC computation only).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for HmacSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HmacSecret({} bytes)", self.0.len())
    }
}

/// Key material, typed by kind. Integers are big-endian without leading zero bytes; EC
/// coordinates are fixed-length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyMaterial {
    /// RSA public key.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// EC public key (uncompressed point coordinates).
    Ec { curve: EcCurve, x: Vec<u8>, y: Vec<u8> },
    /// Ed25519 public key (32 bytes).
    Ed25519 { x: Vec<u8> },
    /// Shared HMAC secret.
    Hmac(HmacSecret),
}

impl KeyMaterial {
    /// The algorithms this kind of key can ever be used with.
    pub fn compatible(&self, alg: Algorithm) -> bool {
        match self {
            KeyMaterial::Rsa { .. } => matches!(alg.family(), Family::RsaPkcs1 | Family::RsaPss),
            KeyMaterial::Ec { curve, .. } => alg == curve.algorithm(),
            KeyMaterial::Ed25519 { .. } => alg == Algorithm::EdDSA,
            KeyMaterial::Hmac(_) => alg.family() == Family::Hmac,
        }
    }

    /// Checks sizes: RSA modulus >= 2048 bits and exponent odd and > 1, EC coordinates and
    /// Ed25519 keys of the exact length. (Whether an EC point is on its curve is checked by the
    /// verifier when it imports the key.)
    pub fn check(&self) -> Result<(), String> {
        match self {
            KeyMaterial::Rsa { n, e } => {
                let bits = n.len() * 8 - n.first().map(|b| b.leading_zeros() as usize).unwrap_or(8);
                if bits < MIN_RSA_BITS {
                    return Err(format!("RSA modulus of {bits} bits is too small (minimum {MIN_RSA_BITS})"));
                }
                let odd = e.last().map(|b| b & 1 == 1).unwrap_or(false);
                if !odd || e.as_slice() == [1] || e.len() > 8 {
                    return Err("RSA public exponent is invalid".into());
                }
                Ok(())
            }
            KeyMaterial::Ec { curve, x, y } => {
                if x.len() != curve.coord_len() || y.len() != curve.coord_len() {
                    return Err(format!("{} coordinates must be {} bytes", curve.name(), curve.coord_len()));
                }
                Ok(())
            }
            KeyMaterial::Ed25519 { x } => {
                if x.len() != 32 {
                    return Err("Ed25519 public key must be 32 bytes".into());
                }
                Ok(())
            }
            KeyMaterial::Hmac(s) => {
                if s.expose().is_empty() {
                    return Err("HMAC secret is empty".into());
                }
                Ok(())
            }
        }
    }

    /// Stable fingerprint of the key (hex SHA-256 over kind and components), used to cache
    /// imported keys. For HMAC it is a hash of the secret; never log it next to the secret length.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        let mut put = |tag: &[u8], bytes: &[u8]| {
            h.update(tag);
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        };
        match self {
            KeyMaterial::Rsa { n, e } => {
                put(b"RSA", n);
                put(b"e", e);
            }
            KeyMaterial::Ec { curve, x, y } => {
                put(curve.name().as_bytes(), x);
                put(b"y", y);
            }
            KeyMaterial::Ed25519 { x } => put(b"Ed25519", x),
            KeyMaterial::Hmac(s) => put(b"HMAC", s.expose()),
        }
        hex::encode(&h.finalize()[..16])
    }
}

/// Strips leading zero bytes of a big-endian unsigned integer.
pub fn strip_leading_zeros(bytes: &[u8]) -> Vec<u8> {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes[start..].to_vec()
}

/// A key a token may be verified with: material plus the algorithms it is pinned to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    /// Stable fingerprint of the material ([`KeyMaterial::fingerprint`]); verifiers cache
    /// imported keys under it.
    pub id: String,
    /// The key id (`kid`), when the key has one.
    pub kid: Option<String>,
    /// The algorithms a token signed with this key may use. Never empty for a usable key.
    pub algorithms: Vec<Algorithm>,
    pub material: KeyMaterial,
}

impl VerifyingKey {
    /// Builds a key with the given pinned algorithms (incompatible ones are dropped).
    pub fn new(kid: Option<String>, material: KeyMaterial, algorithms: Vec<Algorithm>) -> Self {
        let algorithms = algorithms.into_iter().filter(|a| material.compatible(*a)).collect();
        VerifyingKey { id: material.fingerprint(), kid, algorithms, material }
    }

    /// Whether a token with `alg` may be verified with this key.
    pub fn allows(&self, alg: Algorithm) -> bool {
        self.algorithms.contains(&alg) && self.material.compatible(alg)
    }
}

/// Decides which algorithms a key is pinned to.
///
/// `declared` is the key's own `alg` (JWK `alg`, PEM entry `alg`, HMAC entry `alg`); it must fit
/// the material. Without it: EC P-256 → ES256, P-384 → ES384, Ed25519 → EdDSA, RSA → the RS*/PS*
/// of `allow_list` or, if there is none, RS256; HMAC needs a declared alg. The result is then
/// intersected with `allow_list` (the issuer's `algorithms`), and must not be empty.
pub fn pin_algorithms(
    material: &KeyMaterial,
    declared: Option<Algorithm>,
    allow_list: Option<&[Algorithm]>,
) -> Result<Vec<Algorithm>, String> {
    let base: Vec<Algorithm> = match declared {
        Some(alg) if material.compatible(alg) => vec![alg],
        Some(alg) => return Err(format!("alg {alg} does not fit this kind of key")),
        None => match material {
            KeyMaterial::Ec { curve, .. } => vec![curve.algorithm()],
            KeyMaterial::Ed25519 { .. } => vec![Algorithm::EdDSA],
            KeyMaterial::Rsa { .. } => match allow_list {
                Some(list) => list.iter().copied().filter(|a| material.compatible(*a)).collect(),
                None => vec![Algorithm::RS256],
            },
            KeyMaterial::Hmac(_) => return Err("an HMAC key needs an explicit alg".into()),
        },
    };
    let pinned: Vec<Algorithm> = match allow_list {
        Some(list) => base.into_iter().filter(|a| list.contains(a)).collect(),
        None => base,
    };
    if pinned.is_empty() {
        return Err("none of the key's algorithms is in the issuer's algorithms".into());
    }
    Ok(pinned)
}

/// Most keys tried for one token without a `kid` (each costs a signature check).
pub const MAX_KIDLESS_CANDIDATES: usize = 3;

/// The outcome of choosing keys for a token.
#[derive(Debug, PartialEq, Eq)]
pub enum Selection<'k> {
    /// Keys to try, in order (one when the token has a `kid`).
    Candidates(Vec<&'k VerifyingKey>),
    /// A key with the token's `kid` exists but is not pinned to the token's `alg`.
    AlgorithmNotAllowed,
    /// More than one key has the token's `kid` and allows its `alg`: ambiguous, refused.
    Ambiguous,
    /// No key matches.
    NoKey,
}

/// Chooses the keys a token may be verified with: by `kid` when the token has one (and the key
/// must allow `alg`), otherwise the keys pinned to `alg` (at most [`MAX_KIDLESS_CANDIDATES`]).
pub fn select<'k, I>(keys: I, kid: Option<&str>, alg: Algorithm) -> Selection<'k>
where
    I: IntoIterator<Item = &'k VerifyingKey>,
{
    match kid {
        Some(kid) => {
            let same_kid: Vec<&VerifyingKey> = keys.into_iter().filter(|k| k.kid.as_deref() == Some(kid)).collect();
            if same_kid.is_empty() {
                return Selection::NoKey;
            }
            let usable: Vec<&VerifyingKey> = same_kid.into_iter().filter(|k| k.allows(alg)).collect();
            match usable.len() {
                0 => Selection::AlgorithmNotAllowed,
                1 => Selection::Candidates(usable),
                _ => Selection::Ambiguous,
            }
        }
        None => {
            let usable: Vec<&VerifyingKey> =
                keys.into_iter().filter(|k| k.allows(alg)).take(MAX_KIDLESS_CANDIDATES).collect();
            if usable.is_empty() {
                Selection::NoKey
            } else {
                Selection::Candidates(usable)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ec(kid: &str) -> VerifyingKey {
        let m = KeyMaterial::Ec { curve: EcCurve::P256, x: vec![1; 32], y: vec![2; 32] };
        VerifyingKey::new(Some(kid.into()), m, vec![Algorithm::ES256])
    }
    fn rsa(kid: Option<&str>, algs: Vec<Algorithm>) -> VerifyingKey {
        let m = KeyMaterial::Rsa { n: vec![0xc5; 256], e: vec![1, 0, 1] };
        VerifyingKey::new(kid.map(Into::into), m, algs)
    }

    #[test]
    fn pinning_rules() {
        let rsa_m = KeyMaterial::Rsa { n: vec![0xc5; 256], e: vec![1, 0, 1] };
        let ec_m = KeyMaterial::Ec { curve: EcCurve::P384, x: vec![1; 48], y: vec![2; 48] };
        let hm = KeyMaterial::Hmac(HmacSecret::new(vec![7; 32]));
        assert_eq!(pin_algorithms(&rsa_m, None, None).unwrap(), vec![Algorithm::RS256]);
        let allow = [Algorithm::PS256, Algorithm::RS512, Algorithm::ES256];
        assert_eq!(pin_algorithms(&rsa_m, None, Some(&allow)).unwrap(), vec![Algorithm::PS256, Algorithm::RS512]);
        assert_eq!(pin_algorithms(&ec_m, None, None).unwrap(), vec![Algorithm::ES384]);
        assert!(pin_algorithms(&ec_m, None, Some(&allow)).is_err());
        assert!(pin_algorithms(&ec_m, Some(Algorithm::ES256), None).is_err());
        assert!(pin_algorithms(&rsa_m, Some(Algorithm::HS256), None).is_err());
        assert!(pin_algorithms(&hm, None, None).is_err());
        assert_eq!(pin_algorithms(&hm, Some(Algorithm::HS384), None).unwrap(), vec![Algorithm::HS384]);
        assert!(pin_algorithms(&hm, Some(Algorithm::RS256), None).is_err());
    }

    #[test]
    fn public_keys_never_allow_hmac() {
        let k = rsa(Some("r"), vec![Algorithm::RS256, Algorithm::HS256]);
        assert_eq!(k.algorithms, vec![Algorithm::RS256]);
        assert!(!k.allows(Algorithm::HS256));
        assert!(!ec("e").allows(Algorithm::HS256));
    }

    #[test]
    fn selection_by_kid_then_alg() {
        let keys = vec![ec("a"), rsa(Some("b"), vec![Algorithm::RS256]), rsa(None, vec![Algorithm::PS256])];
        assert_eq!(select(&keys, Some("a"), Algorithm::ES256), Selection::Candidates(vec![&keys[0]]));
        assert_eq!(select(&keys, Some("a"), Algorithm::RS256), Selection::AlgorithmNotAllowed);
        assert_eq!(select(&keys, Some("zz"), Algorithm::ES256), Selection::NoKey);
        assert_eq!(select(&keys, None, Algorithm::PS256), Selection::Candidates(vec![&keys[2]]));
        assert_eq!(select(&keys, None, Algorithm::ES384), Selection::NoKey);
        let dup = vec![ec("a"), ec("a")];
        assert_eq!(select(&dup, Some("a"), Algorithm::ES256), Selection::Ambiguous);
    }

    #[test]
    fn material_checks() {
        assert!(KeyMaterial::Rsa { n: vec![0xff; 128], e: vec![1, 0, 1] }.check().is_err());
        assert!(KeyMaterial::Rsa { n: vec![0xff; 256], e: vec![1] }.check().is_err());
        assert!(KeyMaterial::Rsa { n: vec![0xff; 256], e: vec![1, 0, 1] }.check().is_ok());
        assert!(KeyMaterial::Ec { curve: EcCurve::P256, x: vec![1; 31], y: vec![2; 32] }.check().is_err());
        assert!(KeyMaterial::Ed25519 { x: vec![0; 31] }.check().is_err());
    }
}
