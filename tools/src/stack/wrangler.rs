//! The temporary wrangler configuration for the prebuilt worker bundle, and the
//! `wrangler dev` command line that serves it.
//!
//! The config has no `[build]` section: wrangler serves `<bundle>/index.js` as is and is ready
//! in about 1.5 s (a `[build]` would rebuild twice at start).

use std::path::Path;
use std::process::Command;

/// Compatibility date written into the temporary config.
pub const COMPATIBILITY_DATE: &str = "2025-09-01";

/// Whether a var is a secret: it then goes to `.dev.vars`, which wrangler loads as secrets and
/// does not print in its start-up banner, instead of `[vars]`. Only values that need no quoting
/// in the dotenv format qualify; anything else stays in `[vars]`.
pub fn is_secret(name: &str, value: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["TOKEN", "SECRET", "KEY", "PASSWORD"].iter().any(|w| upper.contains(w))
        && !value.is_empty()
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~+/=".contains(&b))
}

/// The `.dev.vars` text (`NAME=value` lines) of the secret vars, last occurrence winning.
pub fn dev_vars(vars: &[(String, String)]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in vars.iter().enumerate() {
        if vars.iter().skip(i + 1).any(|(n, _)| n == name) || !is_secret(name, value) {
            continue;
        }
        out.push_str(&format!("{name}={value}\n"));
    }
    out
}

/// The TOML text of the temporary config. `vars` are written in order under `[vars]`; a name
/// given twice keeps its last value; secrets ([`is_secret`]) are left to [`dev_vars`].
pub fn config_toml(main: &Path, vars: &[(String, String)]) -> String {
    let mut out = String::new();
    out.push_str("# Written by edge-auth-dev for one run; serves a prebuilt bundle, no build step.\n");
    out.push_str("name = \"edge-auth-dev\"\n");
    out.push_str(&format!("main = {}\n", toml_string(&main.to_string_lossy())));
    out.push_str(&format!("compatibility_date = {}\n", toml_string(COMPATIBILITY_DATE)));
    out.push_str("\n[vars]\n");
    for (i, (name, value)) in vars.iter().enumerate() {
        // Keep only the last occurrence of each name.
        if vars.iter().skip(i + 1).any(|(n, _)| n == name) || is_secret(name, value) {
            continue;
        }
        out.push_str(&format!("{} = {}\n", toml_string(name), toml_string(value)));
    }
    out
}

/// A TOML basic string. JSON string escapes (`\"`, `\\`, `\n`, `\uXXXX`, …) are all valid
/// TOML escapes, so serde_json's quoting is reused.
pub fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

/// Settings for one `wrangler dev` run.
pub struct DevArgs<'a> {
    /// The wrangler executable (`<repo>/node_modules/.bin/wrangler`).
    pub wrangler: &'a Path,
    /// The temporary config file.
    pub config: &'a Path,
    /// Port for the worker.
    pub port: u16,
    /// Port for the devtools inspector.
    pub inspector_port: u16,
    /// `--log-level` (debug, info, log, warn, error, none).
    pub log_level: &'a str,
    /// Directory for wrangler's local state and its own debug logs.
    pub state_dir: &'a Path,
}

/// The `wrangler dev` command: bound to 127.0.0.1, no metrics, no network lookups, no
/// interactive session, state kept in `state_dir`.
pub fn dev_command(a: &DevArgs<'_>) -> Command {
    let mut cmd = Command::new(a.wrangler);
    cmd.arg("dev")
        .arg("--config")
        .arg(a.config)
        .arg("--ip")
        .arg("127.0.0.1")
        .arg("--port")
        .arg(a.port.to_string())
        .arg("--inspector-port")
        .arg(a.inspector_port.to_string())
        .arg("--log-level")
        .arg(a.log_level)
        .arg("--persist-to")
        .arg(a.state_dir.join("persist"))
        .arg("--show-interactive-dev-session=false")
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .env("WRANGLER_LOG_PATH", a.state_dir.join("wrangler-debug.log"))
        .env("NO_COLOR", "1")
        .env("FORCE_COLOR", "0")
        .current_dir(a.state_dir);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_no_build_section_and_escapes_values() {
        let vars = vec![
            ("ORIGIN_URL".to_string(), "http://127.0.0.1:1".to_string()),
            ("X".to_string(), "a \"quoted\"\nline\\".to_string()),
            ("ORIGIN_URL".to_string(), "not a url".to_string()),
        ];
        let text = config_toml(Path::new("/r/build/index.js"), &vars);
        assert!(!text.contains("[build]"), "{text}");
        assert!(text.contains("main = \"/r/build/index.js\"\n"), "{text}");
        assert!(text.contains("compatibility_date = \"2025-09-01\"\n"), "{text}");
        assert!(text.contains("\"X\" = \"a \\\"quoted\\\"\\nline\\\\\"\n"), "{text}");
        assert!(text.contains("\"ORIGIN_URL\" = \"not a url\"\n"), "{text}");
        assert_eq!(text.matches("ORIGIN_URL").count(), 1, "{text}");
    }
}

#[cfg(test)]
mod secret_tests {
    use super::*;

    #[test]
    fn secrets_go_to_dev_vars_and_not_to_the_config() {
        let vars = vec![
            ("UPSTASH_REDIS_REST_TOKEN".to_string(), "abc123".to_string()),
            ("DEV_JWT_SECRET".to_string(), "s3cr3t-value_x".to_string()),
            ("ISSUERS".to_string(), "[{\"issuer\":\"x\"}]".to_string()),
            ("ODD_KEY".to_string(), "has space".to_string()),
        ];
        let toml = config_toml(Path::new("/b/index.js"), &vars);
        let env = dev_vars(&vars);
        assert!(!toml.contains("abc123") && !toml.contains("s3cr3t"), "{toml}");
        assert!(toml.contains("ISSUERS") && toml.contains("has space"), "{toml}");
        assert_eq!(env, "UPSTASH_REDIS_REST_TOKEN=abc123\nDEV_JWT_SECRET=s3cr3t-value_x\n");
    }
}
