//! Wycheproof and RFC 7520 vectors through the crate's JWS/key/verifier path on the host
//! (`HostVerifier`). The vector files live in `tests/vectors/` (copied from the project's shared
//! reference set, licences beside them); if they are missing, the test fails.

use std::path::PathBuf;

use edge_auth::jwt::host_crypto::HostVerifier;
use edge_auth::jwt::vectors::{run_rfc7520, run_wycheproof, VectorReport, WYCHEPROOF_FILES};
use futures::executor::block_on;
use serde_json::Value;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn load(path: &PathBuf) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("vector file {} missing: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn report(kind: &str, r: &VectorReport) {
    println!("{kind} {}", r.summary());
    for d in &r.deviations {
        println!("    policy deviation {d}");
    }
    for a in &r.acceptable {
        println!("    acceptable {a}");
    }
    for s in &r.skipped {
        println!("    skipped {s}");
    }
    for f in &r.failures {
        println!("    FAILURE {f}");
    }
}

#[test]
fn wycheproof_vectors() {
    let dir = vectors_dir().join("wycheproof");
    assert!(dir.is_dir(), "test vectors not found at {}", dir.display());
    let mut failed = Vec::new();
    for (stem, min) in WYCHEPROOF_FILES {
        let doc = load(&dir.join(format!("{stem}_test.json")));
        let r = block_on(run_wycheproof(stem, &doc, &HostVerifier));
        report("wycheproof", &r);
        let ran = r.valid_ok + r.invalid_rejected + r.acceptable_accepted + r.acceptable_rejected;
        if !r.failures.is_empty() || ran < *min || r.valid_ok == 0 || r.invalid_rejected == 0 {
            failed.push(format!("{stem} ({} failures, {ran} run)", r.failures.len()));
        }
    }
    assert!(failed.is_empty(), "vector files with failures: {failed:?}");
}

#[test]
fn rfc7520_cookbook_signatures() {
    let dir = vectors_dir().join("rfc7520");
    assert!(dir.is_dir(), "test vectors not found at {}", dir.display());
    let mut failed = Vec::new();
    for (stem, file) in [
        ("rfc7520_4_1", "4_1.rsa_v15_signature.json"),
        ("rfc7520_4_2", "4_2.rsa-pss_signature.json"),
        ("rfc7520_4_3", "4_3.ecdsa_signature.json"),
        ("rfc7520_4_4", "4_4.hmac-sha2_integrity_protection.json"),
    ] {
        let r = block_on(run_rfc7520(stem, &load(&dir.join(file)), &HostVerifier));
        report("rfc7520", &r);
        if !r.failures.is_empty() {
            failed.push(stem);
        }
    }
    // The cookbook's key files parse into our key types (P-521 is unsupported and must say so).
    use edge_auth::jwt::jwk::{parse_jwk, JwkPolicy};
    let rsa = load(&dir.join("3_3.rsa_public_key.json"));
    assert!(parse_jwk(&rsa, JwkPolicy::default()).is_ok());
    let ec = load(&dir.join("3_1.ec_public_key.json"));
    assert!(parse_jwk(&ec, JwkPolicy::default()).unwrap_err().contains("P-521"));
    let oct = load(&dir.join("3_5.symmetric_key_mac_computation.json"));
    assert!(parse_jwk(&oct, JwkPolicy { allow_symmetric: true, allow_list: None }).is_ok());
    assert!(failed.is_empty(), "RFC 7520 examples with failures: {failed:?}");
}
