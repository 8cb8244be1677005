//! Minting test tokens and reading a JWT's claims WITHOUT verifying it (for `revoke-token`).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, AlgorithmFamily, EncodingKey, Header};
use rand::RngCore;
use serde_json::{Map, Value};

/// Current Unix time in seconds.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `n` random bytes as lower-case hex.
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The claims a revocation needs, read from an UNVERIFIED token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnverifiedClaims {
    pub iss: String,
    pub jti: String,
    pub exp: u64,
    pub sub: Option<String>,
}

/// Decodes the payload of a compact JWS without checking its signature.
pub fn decode_unverified(token: &str) -> Result<UnverifiedClaims, String> {
    let parts: Vec<&str> = token.trim().split('.').collect();
    if parts.len() != 3 {
        return Err(format!("not a compact JWT (expected 3 dot-separated parts, got {})", parts.len()));
    }
    let payload = URL_SAFE_NO_PAD
        .decode(parts[1].trim_end_matches('='))
        .map_err(|_| "JWT payload is not base64url".to_string())?;
    let claims: Map<String, Value> = serde_json::from_slice(&payload).map_err(|_| "JWT payload is not a JSON object".to_string())?;
    let iss = claims.get("iss").and_then(Value::as_str).ok_or("token has no string \"iss\" claim")?;
    let jti = claims.get("jti").and_then(Value::as_str).filter(|j| !j.is_empty()).ok_or("token has no \"jti\" claim: revoke its subject with revoke-subject instead")?;
    let exp = claims.get("exp").and_then(Value::as_u64).ok_or("token has no numeric \"exp\" claim: use revoke-jti --exp")?;
    Ok(UnverifiedClaims { iss: iss.to_string(), jti: jti.to_string(), exp, sub: claims.get("sub").and_then(Value::as_str).map(str::to_string) })
}

/// What `mint` signs.
pub struct MintSpec {
    pub alg: String,
    /// A file path (PEM for RS/PS/ES/EdDSA, raw bytes for HS) or, for HS*, the secret itself.
    pub key: String,
    pub kid: Option<String>,
    pub typ: String,
    pub iss: Option<String>,
    pub sub: Option<String>,
    pub aud: Vec<String>,
    pub exp_in: Option<i64>,
    pub nbf_in: Option<i64>,
    pub iat: Option<u64>,
    /// `auto` (random), `none` (omit) or a value.
    pub jti: String,
    /// `k=v`; `v` is JSON when it parses as JSON, else a string.
    pub claims: Vec<String>,
}

/// Signs a token.
pub fn mint(spec: &MintSpec) -> Result<String, String> {
    let alg: Algorithm = spec.alg.parse().map_err(|_| format!("unknown --alg {:?} (HS256/384/512, RS256/384/512, PS256/384/512, ES256/384, EdDSA)", spec.alg))?;
    let material = match std::fs::read(&spec.key) {
        Ok(bytes) => bytes,
        Err(_) if alg.family() == AlgorithmFamily::Hmac => spec.key.as_bytes().to_vec(),
        Err(e) => return Err(format!("cannot read --key file {:?}: {e}", spec.key)),
    };
    let key = match alg.family() {
        AlgorithmFamily::Hmac => Ok(EncodingKey::from_secret(&material)),
        AlgorithmFamily::Rsa => EncodingKey::from_rsa_pem(&material),
        AlgorithmFamily::Ec => EncodingKey::from_ec_pem(&material),
        AlgorithmFamily::Ed => EncodingKey::from_ed_pem(&material),
    }
    .map_err(|e| format!("--key is not a usable {:?} key: {e}", alg.family()))?;

    let now = spec.iat.unwrap_or_else(now);
    let mut claims = Map::new();
    if let Some(iss) = &spec.iss {
        claims.insert("iss".into(), iss.clone().into());
    }
    if let Some(sub) = &spec.sub {
        claims.insert("sub".into(), sub.clone().into());
    }
    match spec.aud.len() {
        0 => {}
        1 => {
            claims.insert("aud".into(), spec.aud[0].clone().into());
        }
        _ => {
            claims.insert("aud".into(), spec.aud.clone().into());
        }
    }
    claims.insert("iat".into(), now.into());
    if let Some(secs) = spec.exp_in {
        claims.insert("exp".into(), now.saturating_add_signed(secs).into());
    }
    if let Some(secs) = spec.nbf_in {
        claims.insert("nbf".into(), now.saturating_add_signed(secs).into());
    }
    match spec.jti.as_str() {
        "none" => {}
        "auto" => {
            claims.insert("jti".into(), random_hex(16).into());
        }
        j => {
            claims.insert("jti".into(), j.into());
        }
    }
    for kv in &spec.claims {
        let (k, v) = kv.split_once('=').ok_or_else(|| format!("--claim {kv:?}: expected key=value"))?;
        if k.is_empty() {
            return Err(format!("--claim {kv:?}: empty key"));
        }
        let v = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        claims.insert(k.to_string(), v);
    }
    let mut header = Header::new(alg);
    header.typ = Some(spec.typ.clone());
    header.kid = spec.kid.clone();
    jsonwebtoken::encode(&header, &claims, &key).map_err(|e| format!("signing failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> MintSpec {
        MintSpec {
            alg: "HS256".into(),
            key: "not-a-file-secret".into(),
            kid: Some("k1".into()),
            typ: "at+jwt".into(),
            iss: Some("https://i.example/".into()),
            sub: Some("u1".into()),
            aud: vec!["api".into()],
            exp_in: Some(60),
            nbf_in: None,
            iat: Some(1000),
            jti: "j-1".into(),
            claims: vec!["scope=orders:read".into(), "n=5".into(), "roles=[\"a\"]".into()],
        }
    }

    #[test]
    fn minted_token_verifies_and_decodes() {
        let t = mint(&spec()).unwrap();
        let mut v = jsonwebtoken::Validation::new(Algorithm::HS256);
        v.validate_exp = false;
        v.set_audience(&["api"]);
        let data = jsonwebtoken::decode::<Map<String, Value>>(&t, &jsonwebtoken::DecodingKey::from_secret(b"not-a-file-secret"), &v).unwrap();
        assert_eq!(data.header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(data.header.kid.as_deref(), Some("k1"));
        assert_eq!(data.claims["exp"], 1060);
        assert_eq!(data.claims["scope"], "orders:read");
        assert_eq!(data.claims["n"], 5);
        assert_eq!(data.claims["roles"][0], "a");
        assert_eq!(decode_unverified(&t).unwrap(), UnverifiedClaims { iss: "https://i.example/".into(), jti: "j-1".into(), exp: 1060, sub: Some("u1".into()) });
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        assert!(mint(&MintSpec { alg: "none".into(), ..spec() }).unwrap_err().contains("unknown --alg"));
        assert!(mint(&MintSpec { alg: "RS256".into(), ..spec() }).unwrap_err().contains("cannot read --key"));
        assert!(mint(&MintSpec { claims: vec!["novalue".into()], ..spec() }).unwrap_err().contains("key=value"));
        assert!(decode_unverified("a.b").unwrap_err().contains("3 dot-separated"));
        assert!(decode_unverified("a.!!!.c").unwrap_err().contains("base64url"));
        let no_jti = mint(&MintSpec { jti: "none".into(), ..spec() }).unwrap();
        assert!(decode_unverified(&no_jti).unwrap_err().contains("revoke-subject"));
    }
}
