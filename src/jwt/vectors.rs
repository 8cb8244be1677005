//! Runs published test vectors (Wycheproof, RFC 7520) through this crate's key types, JWS
//! parser, key selection and [`verify_signature`]: the same decisions the verifier makes. It
//! takes parsed JSON and any [`SignatureVerifier`], so it runs on the host (`tests/vectors.rs`
//! with `HostVerifier`) and inside workerd (with `WebCryptoVerifier`) alike.

use serde_json::Value;

use super::crypto::{verify_signature, SignatureVerifier};
use super::header::{parse_jws, Algorithm};
use super::jwk::{parse_jwk, JwkPolicy};
use super::keys::{pin_algorithms, select, HmacSecret, KeyMaterial, Selection, VerifyingKey};
use super::pem::parse_public_key_pem;
use crate::error::Reason;

/// The Wycheproof files (stems under `tests/vectors/wycheproof/`, without `_test.json`) the
/// vector tests run, each with the minimum number of cases that must have run. Shared by the host
/// test and the WebCrypto-in-workerd test so both decide the same files.
pub const WYCHEPROOF_FILES: &[(&str, usize)] = &[
    ("json_web_signature", 300),
    ("ecdsa_secp256r1_sha256_p1363", 200),
    ("ecdsa_secp384r1_sha384_p1363", 200),
    ("rsa_signature_2048_sha256", 200),
    ("rsa_signature_3072_sha384", 200),
    ("rsa_signature_4096_sha512", 200),
    ("rsa_pss_2048_sha256_mgf1_32", 80),
    ("ed25519", 100),
    ("hmac_sha256", 50),
    ("hmac_sha384", 50),
    ("hmac_sha512", 50),
];

/// Wycheproof "valid" cases this gateway rejects on purpose, with the reason it gives.
/// (file stem, tcId, expected refusal, why)
pub const POLICY_DEVIATIONS: &[(&str, u64, Reason, &str)] = &[
    ("json_web_signature", 346, Reason::AlgorithmNotAllowed, "JWK pins PS256, token uses PS384: algorithms are pinned per key"),
    ("json_web_signature", 350, Reason::AlgorithmNotAllowed, "JWK pins PS256, token uses PS384: algorithms are pinned per key"),
    ("json_web_signature", 347, Reason::AlgorithmNotAllowed, "ES512 (P-521) is not a supported algorithm"),
    ("json_web_signature", 351, Reason::AlgorithmNotAllowed, "ES512 (P-521) is not a supported algorithm"),
    ("json_web_signature", 372, Reason::MalformedToken, "invalid base64url character: strict decoding"),
    ("json_web_signature", 373, Reason::MalformedToken, "invalid base64url character: strict decoding"),
    ("rfc7520_4_3", 0, Reason::AlgorithmNotAllowed, "ES512 (P-521) is not a supported algorithm"),
];

/// Outcome of one vector file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VectorReport {
    /// File name (stem).
    pub name: String,
    /// "valid" cases that verified.
    pub valid_ok: usize,
    /// "invalid" cases that were rejected.
    pub invalid_rejected: usize,
    /// "acceptable" cases that verified.
    pub acceptable_accepted: usize,
    /// "acceptable" cases that were rejected.
    pub acceptable_rejected: usize,
    /// Listed [`POLICY_DEVIATIONS`] that behaved as listed.
    pub deviations: Vec<String>,
    /// What happened to each "acceptable" case (`tc 7: accepted`).
    pub acceptable: Vec<String>,
    /// Cases not run, with why (e.g. truncated HMAC tags, which JWS never uses).
    pub skipped: Vec<String>,
    /// Cases that went the wrong way. Must be empty.
    pub failures: Vec<String>,
}

impl VectorReport {
    /// One line: `wycheproof ecdsa_…: 340 valid ok, 100 invalid rejected, 3 acceptable (1 accepted, 2 rejected), …`.
    pub fn summary(&self) -> String {
        format!(
            "{}: {} valid ok, {} invalid rejected, {} acceptable ({} accepted, {} rejected), {} policy deviations, {} skipped, {} FAILURES",
            self.name,
            self.valid_ok,
            self.invalid_rejected,
            self.acceptable_accepted + self.acceptable_rejected,
            self.acceptable_accepted,
            self.acceptable_rejected,
            self.deviations.len(),
            self.skipped.len(),
            self.failures.len()
        )
    }

    fn record(&mut self, id: u64, expected: &str, outcome: Result<(), Reason>) {
        let deviation = POLICY_DEVIATIONS.iter().find(|(f, t, _, _)| *f == self.name && *t == id);
        match (expected, outcome, deviation) {
            (_, Err(r), Some((_, _, want, why))) if r == *want => self.deviations.push(format!("tc {id}: rejected ({r}): {why}")),
            (_, got, Some((_, _, want, _))) => self.failures.push(format!("tc {id}: listed deviation expected {want}, got {got:?}")),
            ("valid", Ok(()), None) => self.valid_ok += 1,
            ("invalid", Err(_), None) => self.invalid_rejected += 1,
            ("acceptable", Ok(()), None) => {
                self.acceptable_accepted += 1;
                self.acceptable.push(format!("tc {id}: accepted"));
            }
            ("acceptable", Err(r), None) => {
                self.acceptable_rejected += 1;
                self.acceptable.push(format!("tc {id}: rejected ({r})"));
            }
            (exp, got, None) => self.failures.push(format!("tc {id}: expected {exp}, got {got:?}")),
        }
    }
}

/// Hex to bytes; `None` on odd length or a non-hex digit.
pub fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect()
}

/// The signature decision for a compact JWS against a key set: parse (strict), choose the key
/// by `kid`/alg (pinned), verify. No claims (vector payloads are not JWT claims).
pub async fn decide_compact<C: SignatureVerifier>(token: &str, keys: &[VerifyingKey], crypto: &C) -> Result<(), Reason> {
    let jws = parse_jws(token)?;
    let alg = jws.header.alg;
    let candidates = match select(keys, jws.header.kid.as_deref(), alg) {
        Selection::Candidates(c) => c,
        Selection::AlgorithmNotAllowed => return Err(Reason::AlgorithmNotAllowed),
        Selection::Ambiguous | Selection::NoKey => return Err(Reason::UnknownKey),
    };
    for key in candidates {
        if let Ok(true) = verify_signature(crypto, key, alg, jws.signing_input.as_bytes(), &jws.signature).await {
            return Ok(());
        }
    }
    Err(Reason::BadSignature)
}

fn alg_for_sha(prefix: &str, sha: &str) -> Option<Algorithm> {
    let bits = match sha {
        "SHA-256" => "256",
        "SHA-384" => "384",
        "SHA-512" => "512",
        _ => return None,
    };
    Algorithm::from_name(&format!("{prefix}{bits}"))
}

/// The key of a Wycheproof signature group, from its JWK; when the group also has a PEM, the
/// PEM parser must give the same material.
fn group_key(group: &Value, alg: Algorithm) -> Result<VerifyingKey, String> {
    let jwk = match group.get("publicKeyJwk").or_else(|| group.get("keyJwk")) {
        Some(j) => j,
        None => {
            // Some groups (keys with edge-case coordinates) come only as PEM/DER.
            let pem = group.get("publicKeyPem").and_then(Value::as_str).ok_or("group has neither JWK nor PEM")?;
            let material = parse_public_key_pem(pem)?;
            let algs = pin_algorithms(&material, None, None)?;
            let key = VerifyingKey::new(None, material, algs);
            return if key.allows(alg) { Ok(key) } else { Err(format!("key is not pinned to {alg}")) };
        }
    };
    let mut jwk = jwk.clone();
    if let Some(o) = jwk.as_object_mut() {
        o.remove("kid"); // "none" in the files; keys are used without kid here.
    }
    let key = parse_jwk(&jwk, JwkPolicy::default())?;
    if let Some(pem) = group.get("publicKeyPem").and_then(Value::as_str) {
        let from_pem = parse_public_key_pem(pem)?;
        if from_pem != key.material {
            return Err("PEM and JWK give different key material".into());
        }
    }
    if !key.allows(alg) {
        return Err(format!("key is not pinned to {alg}"));
    }
    Ok(key)
}

/// Runs one Wycheproof file (ECDSA P1363, EdDSA, RSA PKCS#1, RSA-PSS, HMAC, JSON Web Signature).
pub async fn run_wycheproof<C: SignatureVerifier>(name: &str, doc: &Value, crypto: &C) -> VectorReport {
    let mut rep = VectorReport { name: name.to_string(), ..VectorReport::default() };
    let schema = doc.get("schema").and_then(Value::as_str).unwrap_or("");
    let groups = doc.get("testGroups").and_then(Value::as_array).cloned().unwrap_or_default();
    if groups.is_empty() {
        rep.failures.push("no test groups".into());
    }
    for group in &groups {
        let tests = group.get("tests").and_then(Value::as_array).cloned().unwrap_or_default();
        if schema == "json_web_signature_schema_v1.json" {
            run_jws_group(&mut rep, group, &tests, crypto).await;
            continue;
        }
        let sha = group.get("sha").and_then(Value::as_str).unwrap_or("");
        let key: Result<(VerifyingKey, Algorithm), String> = match schema {
            "ecdsa_p1363_verify_schema_v1.json" => {
                alg_for_sha("ES", sha).ok_or_else(|| format!("hash {sha}")).and_then(|a| group_key(group, a).map(|k| (k, a)))
            }
            "eddsa_verify_schema_v1.json" => group_key(group, Algorithm::EdDSA).map(|k| (k, Algorithm::EdDSA)),
            "rsassa_pkcs1_verify_schema_v1.json" => {
                alg_for_sha("RS", sha).ok_or_else(|| format!("hash {sha}")).and_then(|a| group_key(group, a).map(|k| (k, a)))
            }
            "rsassa_pss_verify_schema_v1.json" => {
                let slen = group.get("sLen").and_then(Value::as_u64).unwrap_or(0);
                let mgf_sha = group.get("mgfSha").and_then(Value::as_str).unwrap_or("");
                match alg_for_sha("PS", sha) {
                    Some(a) if mgf_sha == sha && slen as usize == a.hash_len() => group_key(group, a).map(|k| (k, a)),
                    _ => {
                        rep.skipped.push(format!("{} cases: PSS parameters outside JWS (sLen {slen})", tests.len()));
                        continue;
                    }
                }
            }
            "mac_test_schema_v1.json" => {
                let alg = match doc.get("algorithm").and_then(Value::as_str) {
                    Some("HMACSHA256") => Algorithm::HS256,
                    Some("HMACSHA384") => Algorithm::HS384,
                    Some("HMACSHA512") => Algorithm::HS512,
                    _ => {
                        rep.failures.push("unknown MAC algorithm".into());
                        return rep;
                    }
                };
                let tag_bits = group.get("tagSize").and_then(Value::as_u64).unwrap_or(0);
                if tag_bits as usize != alg.hash_len() * 8 {
                    rep.skipped.push(format!("{} cases: {tag_bits}-bit truncated tags (JWS uses full tags)", tests.len()));
                    continue;
                }
                run_mac_group(&mut rep, alg, &tests, crypto).await;
                continue;
            }
            other => {
                rep.failures.push(format!("unsupported schema {other:?}"));
                return rep;
            }
        };
        for t in &tests {
            let id = t.get("tcId").and_then(Value::as_u64).unwrap_or(0);
            let expected = t.get("result").and_then(Value::as_str).unwrap_or("");
            let outcome = match &key {
                Err(_) => Err(Reason::UnknownKey),
                Ok((key, alg)) => {
                    let msg = t.get("msg").and_then(Value::as_str).and_then(hex_decode);
                    let sig = t.get("sig").and_then(Value::as_str).and_then(hex_decode);
                    match (msg, sig) {
                        (Some(m), Some(s)) => match verify_signature(crypto, key, *alg, &m, &s).await {
                            Ok(true) => Ok(()),
                            _ => Err(Reason::BadSignature),
                        },
                        _ => Err(Reason::MalformedToken),
                    }
                }
            };
            if let (Err(e), "valid") = (&key, expected) {
                rep.failures.push(format!("tc {id}: key not usable: {e}"));
                continue;
            }
            rep.record(id, expected, outcome);
        }
    }
    rep
}

async fn run_mac_group<C: SignatureVerifier>(rep: &mut VectorReport, alg: Algorithm, tests: &[Value], crypto: &C) {
    for t in tests {
        let id = t.get("tcId").and_then(Value::as_u64).unwrap_or(0);
        let expected = t.get("result").and_then(Value::as_str).unwrap_or("");
        let field = |n: &str| t.get(n).and_then(Value::as_str).and_then(hex_decode);
        let outcome = match (field("key"), field("msg"), field("tag")) {
            (Some(k), Some(m), Some(tag)) if !k.is_empty() => {
                let key = VerifyingKey::new(None, KeyMaterial::Hmac(HmacSecret::new(k)), vec![alg]);
                match verify_signature(crypto, &key, alg, &m, &tag).await {
                    Ok(true) => Ok(()),
                    _ => Err(Reason::BadSignature),
                }
            }
            _ => Err(Reason::MalformedToken),
        };
        rep.record(id, expected, outcome);
    }
}

async fn run_jws_group<C: SignatureVerifier>(rep: &mut VectorReport, group: &Value, tests: &[Value], crypto: &C) {
    let jwk = group.get("public").or_else(|| group.get("private").filter(|k| k.get("kty").and_then(Value::as_str) == Some("oct")));
    let keys: Vec<VerifyingKey> = jwk
        .and_then(|j| parse_jwk(j, JwkPolicy { allow_symmetric: true, allow_list: None }).ok())
        .into_iter()
        .collect();
    let valid_tokens: Vec<(u64, &Value)> = tests
        .iter()
        .filter(|t| t.get("result").and_then(Value::as_str) == Some("valid"))
        .filter_map(|t| Some((t.get("tcId").and_then(Value::as_u64)?, t.get("jws")?)))
        .collect();
    for t in tests {
        let id = t.get("tcId").and_then(Value::as_u64).unwrap_or(0);
        let expected = t.get("result").and_then(Value::as_str).unwrap_or("");
        // A defective vector: an "invalid" token byte-identical to a "valid" one of the same
        // group cannot be told apart by any implementation.
        if expected == "invalid" {
            if let Some((twin, _)) = valid_tokens.iter().find(|(_, v)| Some(*v) == t.get("jws")) {
                rep.skipped.push(format!("tc {id}: defective vector, token identical to valid tc {twin}"));
                continue;
            }
        }
        let outcome = match t.get("jws") {
            Some(Value::String(s)) => decide_compact(s, &keys, crypto).await,
            _ => Err(Reason::MalformedToken), // JSON serialization: only compact is accepted.
        };
        rep.record(id, expected, outcome);
    }
}

/// Runs one RFC 7520 §4 signature example (`input.key`, `input.alg`, `output.compact`): the
/// private members of the key are dropped and the key is pinned to `input.alg`.
pub async fn run_rfc7520<C: SignatureVerifier>(name: &str, doc: &Value, crypto: &C) -> VectorReport {
    let mut rep = VectorReport { name: name.to_string(), ..VectorReport::default() };
    let input = doc.get("input");
    let mut key = input.and_then(|i| i.get("key")).cloned().unwrap_or(Value::Null);
    let alg = input.and_then(|i| i.get("alg")).cloned().unwrap_or(Value::Null);
    if let Some(o) = key.as_object_mut() {
        for m in ["d", "p", "q", "dp", "dq", "qi"] {
            o.remove(m);
        }
        o.insert("alg".into(), alg);
    }
    let keys: Vec<VerifyingKey> =
        parse_jwk(&key, JwkPolicy { allow_symmetric: true, allow_list: None }).ok().into_iter().collect();
    let compact = doc.get("output").and_then(|o| o.get("compact")).and_then(Value::as_str);
    match compact {
        Some(c) => {
            let outcome = decide_compact(c, &keys, crypto).await;
            rep.record(0, "valid", outcome);
            // The same token with one signature bit flipped must fail.
            let mut bytes = c.as_bytes().to_vec();
            if let Some(last) = bytes.last_mut() {
                *last = if *last == b'A' { b'B' } else { b'A' };
            }
            let flipped = String::from_utf8(bytes).unwrap_or_default();
            let outcome = decide_compact(&flipped, &keys, crypto).await;
            rep.record(1, "invalid", outcome);
        }
        None => rep.failures.push("no output.compact".into()),
    }
    rep
}
