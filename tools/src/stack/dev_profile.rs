//! The configuration `edge-auth-dev --dev` (the README's dev command) runs the worker with: an
//! HS256 issuer with a fresh random secret, public / protected / scoped / session routes, and a
//! signed origin assertion. It also mints a working token and prints the lines to try.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;

use super::StackInfo;
use crate::cli::token::{mint, MintSpec};

/// `iss` of the dev issuer.
pub const DEV_ISSUER: &str = "https://dev.edge-auth.local";
/// `aud` the dev issuer's tokens carry.
pub const DEV_AUDIENCE: &str = "dev-api";
/// `kid` of the dev HMAC key.
pub const DEV_KID: &str = "dev-hs256";

/// A dev configuration with freshly generated secrets.
pub struct DevProfile {
    secret: String,
    assertion_seed: String,
}

fn random_b64(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

impl DevProfile {
    /// New random HMAC secret (48 bytes of text) and Ed25519 assertion seed.
    pub fn generate() -> Self {
        DevProfile { secret: random_b64(36), assertion_seed: random_b64(32) }
    }

    /// The worker vars of the profile (explicit `--var`s given after them win).
    pub fn vars(&self) -> Vec<(String, String)> {
        let issuers = serde_json::json!([{
            "issuer": DEV_ISSUER,
            "audiences": [DEV_AUDIENCE],
            "hmac_secrets": [{"kid": DEV_KID, "alg": "HS256", "secret_var": "DEV_JWT_SECRET"}],
        }]);
        let routes = serde_json::json!([
            {"name": "health", "path": "/health", "auth": "public"},
            {"name": "session", "path": "/session/**", "auth": "session"},
            {"name": "admin", "path": "/admin/**", "auth": "jwt+revocation", "scopes_all": ["admin"]},
            {"name": "api", "path": "/**", "auth": "jwt+revocation"},
        ]);
        vec![
            ("DEV_JWT_SECRET".into(), self.secret.clone()),
            ("ISSUERS".into(), issuers.to_string()),
            ("ROUTES".into(), routes.to_string()),
            ("TOKEN_SOURCES".into(), "header:authorization,cookie:session".into()),
            ("ASSERTION_KEY".into(), self.assertion_seed.clone()),
        ]
    }

    /// An HS256 access token for `sub` with `scope`, valid for `ttl` seconds, with a random `jti`.
    pub fn mint(&self, sub: &str, scope: &str, ttl: i64) -> Result<String, String> {
        mint(&MintSpec {
            alg: "HS256".into(),
            key: self.secret.clone(),
            kid: Some(DEV_KID.into()),
            typ: "JWT".into(),
            iss: Some(DEV_ISSUER.into()),
            sub: Some(sub.into()),
            aud: vec![DEV_AUDIENCE.into()],
            exp_in: Some(ttl),
            nbf_in: None,
            iat: None,
            jti: "auto".into(),
            claims: vec![format!("scope={scope}")],
        })
    }

    /// Banner lines: a working token and the curl/CLI lines that use it, one refusal each.
    pub fn banner_lines(&self, info: &StackInfo, cli: &Path) -> Vec<String> {
        let token = match self.mint("dev-user", "read write", 3600) {
            Ok(t) => t,
            Err(e) => return vec![format!("(could not mint a dev token: {e})")],
        };
        let w = &info.worker;
        let cli = format!(
            "{} --url {} --token {}",
            cli.display(),
            info.upstash,
            info.upstash_token
        );
        vec![
            String::new(),
            "A dev token (HS256, sub=dev-user, scope \"read write\", valid 1 h):".into(),
            format!("  TOKEN={token}"),
            format!("  curl -s {w}/api/hello -H \"Authorization: Bearer $TOKEN\"   # 200: the origin's echo with X-Auth-* identity headers"),
            format!("  curl -si {w}/api/hello                                       # 401 missing_token"),
            format!("  curl -si {w}/admin/x -H \"Authorization: Bearer $TOKEN\"     # 403 insufficient_scope (needs scope admin)"),
            format!("  curl -s {w}/health                                            # public route: no token needed"),
            format!("  {cli} revoke-token \"$TOKEN\"   # then the first curl answers 401 revoked"),
            format!("  SESSION=$({cli} session create --sub dev-user --device laptop --perm orders:read)"),
            format!("  curl -s {w}/session/me --cookie \"session=$SESSION\"          # opaque session token, looked up in Redis"),
            format!("  {cli} session kick --sub dev-user --device laptop             # then that session is refused"),
            format!("  curl -s {w}/.well-known/edge-auth/jwks.json                   # key the origin verifies X-Auth-Assertion with"),
        ]
    }
}
