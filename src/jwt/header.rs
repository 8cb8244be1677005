//! The compact JWS layer: algorithm names, strict base64url, the protected header and the three
//! segments of a token. Nothing here looks at keys or claims.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::Reason;

/// A JWS signature algorithm this gateway implements (RFC 7518 names, plus `EdDSA` for Ed25519).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// HMAC with SHA-256.
    HS256,
    /// HMAC with SHA-384.
    HS384,
    /// HMAC with SHA-512.
    HS512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256, MGF1 SHA-256, salt length 32.
    PS256,
    /// RSASSA-PSS with SHA-384, MGF1 SHA-384, salt length 48.
    PS384,
    /// RSASSA-PSS with SHA-512, MGF1 SHA-512, salt length 64.
    PS512,
    /// ECDSA P-256 with SHA-256, signature r||s (64 bytes).
    ES256,
    /// ECDSA P-384 with SHA-384, signature r||s (96 bytes).
    ES384,
    /// Ed25519 (RFC 8037), signature 64 bytes.
    EdDSA,
}

/// The primitive behind an [`Algorithm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// HS256/384/512.
    Hmac,
    /// RS256/384/512.
    RsaPkcs1,
    /// PS256/384/512.
    RsaPss,
    /// ES256/ES384.
    Ecdsa,
    /// EdDSA (Ed25519).
    Ed25519,
}

impl Algorithm {
    /// Every supported algorithm.
    pub const ALL: &'static [Algorithm] = &[
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];

    /// The JOSE name (`"RS256"`); exact, case-sensitive match. `none` and unknown names give `None`.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.iter().copied().find(|a| a.name() == name)
    }

    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// The primitive.
    pub fn family(self) -> Family {
        match self {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => Family::Hmac,
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => Family::RsaPkcs1,
            Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512 => Family::RsaPss,
            Algorithm::ES256 | Algorithm::ES384 => Family::Ecdsa,
            Algorithm::EdDSA => Family::Ed25519,
        }
    }

    /// Output length in bytes of the SHA-2 hash the algorithm uses (Ed25519: 64, SHA-512 inside).
    pub fn hash_len(self) -> usize {
        match self {
            Algorithm::HS256 | Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256 => 32,
            Algorithm::HS384 | Algorithm::RS384 | Algorithm::PS384 | Algorithm::ES384 => 48,
            Algorithm::HS512 | Algorithm::RS512 | Algorithm::PS512 | Algorithm::EdDSA => 64,
        }
    }

    /// WebCrypto hash name (`"SHA-256"`…).
    pub fn hash_name(self) -> &'static str {
        match self.hash_len() {
            32 => "SHA-256",
            48 => "SHA-384",
            _ => "SHA-512",
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Strict base64url without padding (RFC 7515 §2): `=`, `+`, `/`, whitespace and non-canonical
/// trailing bits are all rejected.
pub fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.as_bytes()).ok()
}

/// Base64url without padding.
pub fn b64url_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A JSON object whose top level has no duplicate member names (duplicates are an attack vector:
/// two parsers could read different values).
pub struct StrictObject(pub Map<String, Value>);

impl<'de> Deserialize<'de> for StrictObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrictObject;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<StrictObject, A::Error> {
                let mut map = Map::new();
                while let Some(key) = access.next_key::<String>()? {
                    if map.contains_key(&key) {
                        return Err(A::Error::custom("duplicate member"));
                    }
                    let value: Value = access.next_value()?;
                    map.insert(key, value);
                }
                Ok(StrictObject(map))
            }
        }
        d.deserialize_map(V)
    }
}

/// Parses bytes as a JSON object without duplicate top-level members.
pub fn parse_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    serde_json::from_slice::<StrictObject>(bytes).ok().map(|o| o.0)
}

/// The protected header fields the gateway acts on. `jku`, `x5u`, `jwk` and `x5c` are never read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub alg: Algorithm,
    /// Key id, when present.
    pub kid: Option<String>,
    /// Media type of the token (`at+jwt`…), when present.
    pub typ: Option<String>,
}

/// A compact JWS split and decoded; the signature is not checked yet.
#[derive(Debug, Clone)]
pub struct Jws<'a> {
    pub header: Header,
    /// `BASE64URL(header) || '.' || BASE64URL(payload)`: the bytes the signature covers.
    pub signing_input: &'a str,
    /// Decoded payload bytes (for a JWT: the claims JSON).
    pub payload: Vec<u8>,
    /// Decoded signature bytes.
    pub signature: Vec<u8>,
}

/// Splits and decodes a compact JWS. Errors: 5 segments → `EncryptedToken`; any other count,
/// bad base64url, a header that is not a JSON object (or has duplicate members), a missing or
/// non-string `alg`, or an empty signature → `MalformedToken`; `alg` `none` or unknown →
/// `AlgorithmNotAllowed`; any `crit` entry or `b64` other than `true` → `UnsupportedCritical`.
pub fn parse_jws(token: &str) -> Result<Jws<'_>, Reason> {
    let segments = token.split('.').count();
    if segments == 5 {
        return Err(Reason::EncryptedToken);
    }
    if segments != 3 {
        return Err(Reason::MalformedToken);
    }
    let mut parts = token.splitn(3, '.');
    let (h, p, s) = match (parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s)) => (h, p, s),
        _ => return Err(Reason::MalformedToken),
    };
    let signing_input = token.get(..h.len() + 1 + p.len()).ok_or(Reason::MalformedToken)?;
    let header_bytes = b64url_decode(h).ok_or(Reason::MalformedToken)?;
    let header = parse_object(&header_bytes).ok_or(Reason::MalformedToken)?;
    let header = read_header(&header)?;
    let payload = b64url_decode(p).ok_or(Reason::MalformedToken)?;
    let signature = b64url_decode(s).ok_or(Reason::MalformedToken)?;
    if signature.is_empty() {
        return Err(Reason::MalformedToken);
    }
    Ok(Jws { header, signing_input, payload, signature })
}

fn read_header(h: &Map<String, Value>) -> Result<Header, Reason> {
    let alg = match h.get("alg") {
        Some(Value::String(name)) => Algorithm::from_name(name).ok_or(Reason::AlgorithmNotAllowed)?,
        _ => return Err(Reason::MalformedToken),
    };
    match h.get("crit") {
        None => {}
        // We implement no extension, so any listed one is unsupported; `crit` must not be empty.
        Some(Value::Array(_)) => return Err(Reason::UnsupportedCritical),
        Some(_) => return Err(Reason::MalformedToken),
    }
    match h.get("b64") {
        None | Some(Value::Bool(true)) => {}
        Some(_) => return Err(Reason::UnsupportedCritical),
    }
    let kid = match h.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(Reason::MalformedToken),
    };
    let typ = match h.get("typ") {
        None => None,
        Some(Value::String(t)) => Some(t.clone()),
        Some(_) => return Err(Reason::MalformedToken),
    };
    Ok(Header { alg, kid, typ })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(header: &str, payload: &str) -> String {
        format!("{}.{}.c2ln", b64url_encode(header.as_bytes()), b64url_encode(payload.as_bytes()))
    }

    #[test]
    fn parses_a_compact_jws() {
        let t = tok(r#"{"alg":"ES256","kid":"k1","typ":"at+jwt","jku":"https://evil"}"#, "{}");
        let jws = parse_jws(&t).unwrap();
        assert_eq!(jws.header, Header { alg: Algorithm::ES256, kid: Some("k1".into()), typ: Some("at+jwt".into()) });
        assert_eq!(jws.signature, b"sig");
        assert_eq!(jws.signing_input, &t[..t.rfind('.').unwrap()]);
    }

    #[test]
    fn rejects_bad_structure() {
        assert_eq!(parse_jws("a.b.c.d.e").unwrap_err(), Reason::EncryptedToken);
        assert_eq!(parse_jws("a.b").unwrap_err(), Reason::MalformedToken);
        assert_eq!(parse_jws("a.b.c.d").unwrap_err(), Reason::MalformedToken);
        assert_eq!(parse_jws("").unwrap_err(), Reason::MalformedToken);
        let good = tok(r#"{"alg":"HS256"}"#, "{}");
        assert!(parse_jws(&good).is_ok());
        // Padding, standard-alphabet chars and whitespace are malformed.
        assert_eq!(parse_jws(&format!("{good}=")).unwrap_err(), Reason::MalformedToken);
        assert_eq!(parse_jws(&good.replacen('.', "=.", 1)).unwrap_err(), Reason::MalformedToken);
        assert_eq!(parse_jws(&format!(" {good}")).unwrap_err(), Reason::MalformedToken);
        assert_eq!(parse_jws(&good.replacen('e', "+", 1)).unwrap_err(), Reason::MalformedToken);
        // Empty signature.
        assert_eq!(parse_jws(&good[..good.rfind('.').unwrap() + 1]).unwrap_err(), Reason::MalformedToken);
    }

    #[test]
    fn header_rules() {
        let e = |h: &str| parse_jws(&tok(h, "{}")).unwrap_err();
        assert_eq!(e(r#"{"alg":"none"}"#), Reason::AlgorithmNotAllowed);
        assert_eq!(e(r#"{"alg":"NONE"}"#), Reason::AlgorithmNotAllowed);
        assert_eq!(e(r#"{"alg":"ES512"}"#), Reason::AlgorithmNotAllowed);
        assert_eq!(e(r#"{"alg":"rs256"}"#), Reason::AlgorithmNotAllowed);
        assert_eq!(e(r#"{"kid":"x"}"#), Reason::MalformedToken);
        assert_eq!(e(r#"{"alg":256}"#), Reason::MalformedToken);
        assert_eq!(e(r#"["alg","HS256"]"#), Reason::MalformedToken);
        assert_eq!(e(r#"{"alg":"HS256","alg":"none"}"#), Reason::MalformedToken);
        assert_eq!(e(r#"{"alg":"HS256","crit":["exp"],"exp":1}"#), Reason::UnsupportedCritical);
        assert_eq!(e(r#"{"alg":"HS256","b64":false,"crit":["b64"]}"#), Reason::UnsupportedCritical);
        assert_eq!(e(r#"{"alg":"HS256","b64":false}"#), Reason::UnsupportedCritical);
        assert_eq!(e(r#"{"alg":"HS256","kid":7}"#), Reason::MalformedToken);
    }

    #[test]
    fn duplicate_members_are_rejected_only_at_top_level_check() {
        assert!(parse_object(br#"{"a":1,"a":2}"#).is_none());
        assert!(parse_object(br#"[1]"#).is_none());
        assert!(parse_object(br#"{"a":{"b":1}}"#).is_some());
    }
}
