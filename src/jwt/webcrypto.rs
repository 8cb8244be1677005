//! [`WebCryptoVerifier`]: asymmetric signature checks with the runtime's `crypto.subtle`
//! (wasm32 only). Keys are imported once per isolate and cached by key fingerprint and
//! algorithm. HMAC never comes here (see [`super::crypto::verify_signature`]).

use std::cell::RefCell;
use std::collections::HashMap;

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{CryptoKey, SubtleCrypto, WorkerGlobalScope};

use super::crypto::{CryptoError, SignatureVerifier};
use super::header::{b64url_encode, Algorithm, Family};
use super::keys::{KeyMaterial, VerifyingKey};

/// Most imported keys kept per isolate; the cache is emptied when it would grow beyond.
pub const MAX_IMPORTED_KEYS: usize = 256;

/// Verifies RS*/PS*/ES256/ES384/EdDSA with WebCrypto. One per isolate (it caches imported keys).
#[derive(Default)]
pub struct WebCryptoVerifier {
    /// Imported key and its `verify` parameters object, by key fingerprint and algorithm: both
    /// are built once, not on every request.
    keys: RefCell<HashMap<String, (CryptoKey, Object)>>,
    subtle: RefCell<Option<SubtleCrypto>>,
}

fn js_err(e: JsValue) -> String {
    e.as_string()
        .or_else(|| Reflect::get(&e, &JsValue::from_str("message")).ok().and_then(|m| m.as_string()))
        .unwrap_or_else(|| "unknown error".into())
}

fn obj(pairs: &[(&str, JsValue)]) -> Result<Object, CryptoError> {
    let o = Object::new();
    for (k, v) in pairs {
        Reflect::set(&o, &JsValue::from_str(k), v).map_err(|e| CryptoError::Backend(js_err(e)))?;
    }
    Ok(o)
}

fn s(v: &str) -> JsValue {
    JsValue::from_str(v)
}

fn subtle() -> Result<SubtleCrypto, CryptoError> {
    let scope: WorkerGlobalScope = js_sys::global().unchecked_into();
    Ok(scope.crypto().map_err(|e| CryptoError::Backend(js_err(e)))?.subtle())
}

/// The `importKey` algorithm for a key used with `alg`.
fn import_algorithm(key: &VerifyingKey, alg: Algorithm) -> Result<Object, CryptoError> {
    let hash = || obj(&[("name", s(alg.hash_name()))]).map(JsValue::from);
    match (&key.material, alg.family()) {
        (KeyMaterial::Rsa { .. }, Family::RsaPkcs1) => obj(&[("name", s("RSASSA-PKCS1-v1_5")), ("hash", hash()?)]),
        (KeyMaterial::Rsa { .. }, Family::RsaPss) => obj(&[("name", s("RSA-PSS")), ("hash", hash()?)]),
        (KeyMaterial::Ec { curve, .. }, Family::Ecdsa) => obj(&[("name", s("ECDSA")), ("namedCurve", s(curve.name()))]),
        (KeyMaterial::Ed25519 { .. }, Family::Ed25519) => obj(&[("name", s("Ed25519"))]),
        _ => Err(CryptoError::Unsupported(format!("{alg} with this key"))),
    }
}

/// The key as a public JWK object for `importKey("jwk", …)`.
fn jwk_object(key: &VerifyingKey) -> Result<Object, CryptoError> {
    match &key.material {
        KeyMaterial::Rsa { n, e } => obj(&[("kty", s("RSA")), ("n", s(&b64url_encode(n))), ("e", s(&b64url_encode(e)))]),
        KeyMaterial::Ec { curve, x, y } => obj(&[
            ("kty", s("EC")),
            ("crv", s(curve.name())),
            ("x", s(&b64url_encode(x))),
            ("y", s(&b64url_encode(y))),
        ]),
        KeyMaterial::Ed25519 { x } => obj(&[("kty", s("OKP")), ("crv", s("Ed25519")), ("x", s(&b64url_encode(x)))]),
        KeyMaterial::Hmac(_) => Err(CryptoError::Unsupported("HMAC is verified in Rust".into())),
    }
}

/// The `verify` algorithm parameters.
fn verify_params(key: &VerifyingKey, alg: Algorithm) -> Result<Object, CryptoError> {
    match (&key.material, alg.family()) {
        (KeyMaterial::Rsa { .. }, Family::RsaPkcs1) => obj(&[("name", s("RSASSA-PKCS1-v1_5"))]),
        (KeyMaterial::Rsa { .. }, Family::RsaPss) => {
            obj(&[("name", s("RSA-PSS")), ("saltLength", JsValue::from_f64(alg.hash_len() as f64))])
        }
        (KeyMaterial::Ec { .. }, Family::Ecdsa) => {
            obj(&[("name", s("ECDSA")), ("hash", obj(&[("name", s(alg.hash_name()))])?.into())])
        }
        (KeyMaterial::Ed25519 { .. }, Family::Ed25519) => obj(&[("name", s("Ed25519"))]),
        _ => Err(CryptoError::Unsupported(format!("{alg} with this key"))),
    }
}

impl WebCryptoVerifier {
    /// A verifier with an empty key cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// `crypto.subtle`, looked up once.
    fn subtle(&self) -> Result<SubtleCrypto, CryptoError> {
        if let Some(s) = self.subtle.borrow().as_ref() {
            return Ok(s.clone());
        }
        let subtle = subtle()?;
        *self.subtle.borrow_mut() = Some(subtle.clone());
        Ok(subtle)
    }

    /// The imported key for (`key`, `alg`) with its `verify` parameters, importing it on first use.
    async fn crypto_key(&self, subtle: &SubtleCrypto, key: &VerifyingKey, alg: Algorithm) -> Result<(CryptoKey, Object), CryptoError> {
        // RSA keys are bound to one hash and scheme at import; EC/Ed25519 to their curve.
        let cache_key = format!("{}|{}", key.id, alg.name());
        if let Some(k) = self.keys.borrow().get(&cache_key) {
            return Ok(k.clone());
        }
        let usages = Array::of1(&s("verify"));
        let promise = subtle
            .import_key_with_object("jwk", &jwk_object(key)?, &import_algorithm(key, alg)?, false, &usages)
            .map_err(|e| CryptoError::InvalidKey(js_err(e)))?;
        let imported = crate::glue::promise::settled(&promise).await.map_err(|e| CryptoError::InvalidKey(js_err(e)))?;
        let crypto_key: CryptoKey = imported.dyn_into().map_err(|_| CryptoError::Backend("importKey gave no CryptoKey".into()))?;
        let entry = (crypto_key, verify_params(key, alg)?);
        let mut keys = self.keys.borrow_mut();
        if keys.len() >= MAX_IMPORTED_KEYS {
            keys.clear();
        }
        keys.insert(cache_key, entry.clone());
        Ok(entry)
    }
}

impl SignatureVerifier for WebCryptoVerifier {
    async fn verify(
        &self,
        key: &VerifyingKey,
        alg: Algorithm,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Result<bool, CryptoError> {
        if !key.allows(alg) {
            return Ok(false);
        }
        // JWS ECDSA signatures are raw r||s, WebCrypto's format too; the length must be exact.
        if let KeyMaterial::Ec { curve, .. } = &key.material {
            if signature.len() != 2 * curve.coord_len() {
                return Ok(false);
            }
        }
        if matches!(key.material, KeyMaterial::Ed25519 { .. }) && signature.len() != 64 {
            return Ok(false);
        }
        let subtle = self.subtle()?;
        let (crypto_key, params) = self.crypto_key(&subtle, key, alg).await?;
        let promise = subtle
            .verify_with_object_and_u8_array_and_u8_array(&params, &crypto_key, signature, signing_input)
            .map_err(|e| CryptoError::Backend(js_err(e)))?;
        match crate::glue::promise::settled(&promise).await {
            Ok(v) => Ok(v.as_bool().unwrap_or(false)),
            // A rejected verify (e.g. malformed signature) does not verify.
            Err(_) => Ok(false),
        }
    }
}
