//! The Wycheproof and RFC 7520 vectors through the verifier production runs: the built worker
//! under `wrangler dev` (WebCrypto inside workerd), via `POST /__edge-auth/vectors`
//! (`SELFTEST_ENDPOINT=true`). Every file must give zero failures and exactly the counts the host
//! run (`tests/vectors.rs`, `HostVerifier`) gives for it.
//!
//! The vector files live in `tests/vectors/`; missing → the test fails.
//! Needs the built worker and the tools (`cargo build --workspace --bins`).

mod common;

use std::path::PathBuf;

use common::Stack;
use edge_auth::jwt::host_crypto::HostVerifier;
use edge_auth::jwt::vectors::{run_rfc7520, run_wycheproof, VectorReport, WYCHEPROOF_FILES};
use futures::executor::block_on;
use serde_json::Value;

/// RFC 7520 §4 signature examples (the documents `run_rfc7520` takes), under the names the host
/// test uses (policy deviations are keyed by them).
const RFC7520: &[(&str, &str)] = &[
    ("rfc7520_4_1", "4_1.rsa_v15_signature.json"),
    ("rfc7520_4_2", "4_2.rsa-pss_signature.json"),
    ("rfc7520_4_3", "4_3.ecdsa_signature.json"),
    ("rfc7520_4_4", "4_4.hmac-sha2_integrity_protection.json"),
];

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn read(path: &PathBuf) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("vector file {} missing: {e}", path.display()))
}

/// The counts both runs must agree on.
#[derive(Debug, PartialEq, Eq)]
struct Counts {
    valid_ok: u64,
    invalid_rejected: u64,
    acceptable_accepted: u64,
    acceptable_rejected: u64,
    deviations: u64,
    skipped: u64,
}

fn host_counts(r: &VectorReport) -> Counts {
    Counts {
        valid_ok: r.valid_ok as u64,
        invalid_rejected: r.invalid_rejected as u64,
        acceptable_accepted: r.acceptable_accepted as u64,
        acceptable_rejected: r.acceptable_rejected as u64,
        deviations: r.deviations.len() as u64,
        skipped: r.skipped.len() as u64,
    }
}

fn worker_counts(v: &Value) -> Counts {
    let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("no {k} in {v}"));
    Counts {
        valid_ok: n("valid_ok"),
        invalid_rejected: n("invalid_rejected"),
        acceptable_accepted: n("acceptable_accepted"),
        acceptable_rejected: n("acceptable_rejected"),
        deviations: v["deviations"].as_array().map(|a| a.len() as u64).unwrap_or_else(|| panic!("no deviations in {v}")),
        skipped: n("skipped"),
    }
}

/// Cases a report decided (policy deviations included).
fn cases(r: &VectorReport) -> usize {
    r.valid_ok + r.invalid_rejected + r.acceptable_accepted + r.acceptable_rejected + r.deviations.len()
}

/// POSTs one vector file to the worker and compares with the host run of the same document.
/// Returns a problem description, if any.
fn check(stack: &Stack, kind: &str, name: &str, text: &str, host: &VectorReport, min_run: usize) -> Option<String> {
    let path = format!("/__edge-auth/vectors?kind={kind}&name={name}");
    let reply = stack.request("POST", &path, &[("content-type", "application/json")], Some(text.as_bytes().to_vec()));
    if reply.status != 200 {
        return Some(format!("{name}: the self-test endpoint answered {} {}", reply.status, reply.text()));
    }
    let v = reply.json();
    println!("workerd {kind} {}", v["summary"].as_str().unwrap_or("(no summary)"));
    let failures: Vec<&str> = v["failures"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    for f in &failures {
        println!("    FAILURE {f}");
    }
    let worker = worker_counts(&v);
    let expected = host_counts(host);
    let run = worker.valid_ok + worker.invalid_rejected + worker.acceptable_accepted + worker.acceptable_rejected + worker.deviations;
    if !failures.is_empty() {
        Some(format!("{name}: {} failures in workerd", failures.len()))
    } else if !host.failures.is_empty() {
        Some(format!("{name}: {} failures on the host", host.failures.len()))
    } else if worker != expected {
        Some(format!("{name}: workerd {worker:?} but host {expected:?}"))
    } else if (run as usize) < min_run {
        Some(format!("{name}: only {run} cases ran (expected at least {min_run})"))
    } else {
        None
    }
}

#[test]
fn wycheproof_and_rfc7520_vectors_decide_the_same_inside_workerd() {
    let dir = vectors_dir();
    assert!(dir.join("wycheproof").is_dir(), "test vectors not found at {}", dir.display());
    assert!(dir.join("rfc7520").is_dir(), "test vectors not found at {}", dir.display());
    let stack = Stack::start(&[("SELFTEST_ENDPOINT", "true"), ("ROUTES", r#"[{"name":"all","path":"/**","auth":"public"}]"#)]);

    let mut problems = Vec::new();
    let mut total = 0usize;
    for (stem, min) in WYCHEPROOF_FILES {
        let text = read(&dir.join(format!("wycheproof/{stem}_test.json")));
        let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{stem}: {e}"));
        let host = block_on(run_wycheproof(stem, &doc, &HostVerifier));
        println!("host    wycheproof {}", host.summary());
        total += cases(&host);
        problems.extend(check(&stack, "wycheproof", stem, &text, &host, *min));
    }
    for (stem, file) in RFC7520 {
        let text = read(&dir.join(format!("rfc7520/{file}")));
        let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        let host = block_on(run_rfc7520(stem, &doc, &HostVerifier));
        println!("host    rfc7520 {}", host.summary());
        total += cases(&host);
        problems.extend(check(&stack, "rfc7520", stem, &text, &host, 2));
    }
    println!("{total} vector cases decided identically by the host verifier and by WebCrypto in workerd");
    assert!(problems.is_empty(), "vector mismatches:\n{}", problems.join("\n"));

    // Without SELFTEST_ENDPOINT the path is not special: it goes through routing like any other.
    let plain = Stack::shared(&[("ROUTES", r#"[{"name":"api","path":"/api/**","auth":"public"}]"#)]);
    let reply = plain.request("POST", "/__edge-auth/vectors?kind=rfc7520&name=x", &[], Some(b"{}".to_vec()));
    reply.assert_refusal(403, "no_route");
}
