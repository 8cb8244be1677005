//! JSON Web Keys (RFC 7517/7518/8037) to [`VerifyingKey`]s, and JWK Sets.

use serde_json::Value;

use super::header::{b64url_decode, Algorithm};
use super::keys::{pin_algorithms, strip_leading_zeros, EcCurve, HmacSecret, KeyMaterial, VerifyingKey};

/// How a JWK is read.
#[derive(Debug, Clone, Copy, Default)]
pub struct JwkPolicy<'a> {
    /// Accept `kty: oct` (HMAC) keys. Default false: symmetric keys never come from a JWKS
    /// endpoint or inline config (use `hmac_secrets`).
    pub allow_symmetric: bool,
    /// The issuer's `algorithms` allow-list, if any (default none).
    pub allow_list: Option<&'a [Algorithm]>,
}

fn field<'v>(jwk: &'v serde_json::Map<String, Value>, name: &str) -> Result<Option<&'v str>, String> {
    match jwk.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("JWK member {name:?} must be a string")),
    }
}

fn bytes(jwk: &serde_json::Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    let s = field(jwk, name)?.ok_or_else(|| format!("JWK member {name:?} is missing"))?;
    b64url_decode(s).ok_or_else(|| format!("JWK member {name:?} is not base64url"))
}

/// Reads one JWK. Rejects: `use` other than `sig`; `key_ops` without `verify`; private members
/// (`d`, `p`…); `oct` unless allowed; unknown `kty`/`crv`/`alg`; `alg` that does not fit the key;
/// wrong sizes (RSA < 2048 bits, exponent 1, EC coordinates not full length, HMAC secret shorter
/// than its hash output).
pub fn parse_jwk(jwk: &Value, policy: JwkPolicy<'_>) -> Result<VerifyingKey, String> {
    let jwk = jwk.as_object().ok_or("a JWK must be a JSON object")?;
    if let Some(u) = field(jwk, "use")? {
        if u != "sig" {
            return Err(format!("key use {u:?} is not \"sig\""));
        }
    }
    if let Some(ops) = jwk.get("key_ops") {
        let ok = ops.as_array().map(|a| a.iter().any(|o| o.as_str() == Some("verify"))).unwrap_or(false);
        if !ok {
            return Err("key_ops does not include \"verify\"".into());
        }
    }
    let kty = field(jwk, "kty")?.ok_or("JWK member \"kty\" is missing")?;
    let declared = match field(jwk, "alg")? {
        None => None,
        Some(name) => Some(Algorithm::from_name(name).ok_or_else(|| format!("unsupported alg {name:?}"))?),
    };
    let kid = field(jwk, "kid")?.map(str::to_string);
    let material = match kty {
        "RSA" => {
            if ["d", "p", "q", "dp", "dq", "qi", "oth"].iter().any(|m| jwk.contains_key(*m)) {
                return Err("JWK contains private key members; publish only the public key".into());
            }
            KeyMaterial::Rsa { n: strip_leading_zeros(&bytes(jwk, "n")?), e: strip_leading_zeros(&bytes(jwk, "e")?) }
        }
        "EC" => {
            if jwk.contains_key("d") {
                return Err("JWK contains private key members; publish only the public key".into());
            }
            let crv = field(jwk, "crv")?.ok_or("JWK member \"crv\" is missing")?;
            let curve = EcCurve::from_name(crv).ok_or_else(|| format!("unsupported EC curve {crv:?}"))?;
            KeyMaterial::Ec { curve, x: bytes(jwk, "x")?, y: bytes(jwk, "y")? }
        }
        "OKP" => {
            if jwk.contains_key("d") {
                return Err("JWK contains private key members; publish only the public key".into());
            }
            match field(jwk, "crv")? {
                Some("Ed25519") => KeyMaterial::Ed25519 { x: bytes(jwk, "x")? },
                other => return Err(format!("unsupported OKP curve {:?}", other.unwrap_or(""))),
            }
        }
        "oct" if policy.allow_symmetric => {
            let secret = bytes(jwk, "k")?;
            let alg = declared.ok_or("an oct JWK needs an alg")?;
            check_hmac_len(alg, secret.len())?;
            KeyMaterial::Hmac(HmacSecret::new(secret))
        }
        "oct" => return Err("symmetric (oct) keys are not accepted here".into()),
        other => return Err(format!("unsupported kty {other:?}")),
    };
    material.check()?;
    let algorithms = pin_algorithms(&material, declared, policy.allow_list)?;
    Ok(VerifyingKey::new(kid, material, algorithms))
}

/// An HMAC secret must be at least as long as the hash output (RFC 7518 §3.2).
pub fn check_hmac_len(alg: Algorithm, len: usize) -> Result<(), String> {
    if len < alg.hash_len() {
        return Err(format!("{alg} secret must be at least {} bytes, got {len}", alg.hash_len()));
    }
    Ok(())
}

/// A parsed JWK Set: the usable keys, and how many entries were skipped (with why, for logs).
#[derive(Debug, Clone, Default)]
pub struct JwkSet {
    pub keys: Vec<VerifyingKey>,
    /// One line per skipped entry (`"keys[2]: key use \"enc\" is not \"sig\""`); no key material.
    pub skipped: Vec<String>,
}

/// Reads a JWK Set document (`{"keys": [...]}`). Entries that are not usable signature keys
/// are skipped, not fatal; a document that is not a JSON object with a `keys` array is an error.
pub fn parse_jwks(doc: &Value, policy: JwkPolicy<'_>) -> Result<JwkSet, String> {
    let keys = doc.get("keys").and_then(Value::as_array).ok_or("a JWK Set needs a \"keys\" array")?;
    let mut set = JwkSet::default();
    for (i, k) in keys.iter().enumerate() {
        match parse_jwk(k, policy) {
            Ok(key) => set.keys.push(key),
            Err(e) => set.skipped.push(format!("keys[{i}]: {e}")),
        }
    }
    Ok(set)
}

/// [`parse_jwks`] from raw bytes.
pub fn parse_jwks_bytes(body: &[u8], policy: JwkPolicy<'_>) -> Result<JwkSet, String> {
    let doc: Value = serde_json::from_slice(body).map_err(|_| "JWK Set is not valid JSON".to_string())?;
    parse_jwks(&doc, policy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const N: &str = "n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-oBHqFEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5gHdrNP5zw";

    #[test]
    fn rsa_jwk_pins_rs256_by_default() {
        let k = parse_jwk(&json!({"kty":"RSA","kid":"r1","n":N,"e":"AQAB"}), JwkPolicy::default()).unwrap();
        assert_eq!(k.kid.as_deref(), Some("r1"));
        assert_eq!(k.algorithms, vec![Algorithm::RS256]);
        let k = parse_jwk(&json!({"kty":"RSA","alg":"PS384","n":N,"e":"AQAB"}), JwkPolicy::default()).unwrap();
        assert_eq!(k.algorithms, vec![Algorithm::PS384]);
    }

    #[test]
    fn unusable_jwks_are_refused() {
        let p = JwkPolicy::default();
        for bad in [
            json!({"kty":"RSA","use":"enc","n":N,"e":"AQAB"}),
            json!({"kty":"RSA","key_ops":["encrypt"],"n":N,"e":"AQAB"}),
            json!({"kty":"RSA","n":N,"e":"AQAB","d":"AQAB"}),
            json!({"kty":"RSA","alg":"ES256","n":N,"e":"AQAB"}),
            json!({"kty":"RSA","alg":"RSA-OAEP","n":N,"e":"AQAB"}),
            json!({"kty":"RSA","n":"AQAB","e":"AQAB"}),
            json!({"kty":"oct","alg":"HS256","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}),
            json!({"kty":"EC","crv":"P-521","x":"AA","y":"AA"}),
            json!({"kty":"OKP","crv":"X25519","x":"AA"}),
            json!("not an object"),
        ] {
            assert!(parse_jwk(&bad, p).is_err(), "{bad}");
        }
        let sym = JwkPolicy { allow_symmetric: true, allow_list: None };
        assert!(parse_jwk(&json!({"kty":"oct","alg":"HS256","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}), sym).is_ok());
        assert!(parse_jwk(&json!({"kty":"oct","alg":"HS512","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}), sym).is_err());
    }

    #[test]
    fn jwks_skips_bad_entries() {
        let doc = json!({"keys":[{"kty":"RSA","n":N,"e":"AQAB","kid":"a"},{"kty":"RSA","use":"enc","n":N,"e":"AQAB"},{"kty":"weird"}]});
        let set = parse_jwks(&doc, JwkPolicy::default()).unwrap();
        assert_eq!(set.keys.len(), 1);
        assert_eq!(set.skipped.len(), 2);
        assert!(parse_jwks(&json!({"nokeys":[]}), JwkPolicy::default()).is_err());
    }
}
