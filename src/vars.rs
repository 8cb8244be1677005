//! Reading configuration values: wrangler `[vars]` and secrets arrive as strings by name.
//!
//! Every parser in the crate reads through [`Vars`] and reports a [`ConfigError`] that names the
//! variable (and, inside JSON values, the field) that is wrong.

use std::collections::HashMap;

/// A source of named string settings (wrangler vars and secrets in the worker, a map in tests).
pub trait Vars {
    fn get(&self, name: &str) -> Option<String>;
}

impl Vars for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

impl<const N: usize> Vars for [(&str, &str); N] {
    fn get(&self, name: &str) -> Option<String> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
    }
}

/// A configuration value that is missing or wrong. `field` names it, e.g. `ORIGIN_URL` or
/// `ISSUERS[0].audiences`. The message never contains secret values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { field: field.into(), message: message.into() }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid configuration: {}: {}", self.field, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Helpers for typed reads with defaults.
pub fn get_trimmed(vars: &dyn Vars, name: &str) -> Option<String> {
    vars.get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

pub fn get_u64(vars: &dyn Vars, name: &str, default: u64) -> Result<u64, ConfigError> {
    match get_trimmed(vars, name) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| ConfigError::new(name, format!("expected a non-negative integer, got {v:?}"))),
    }
}

pub fn get_bool(vars: &dyn Vars, name: &str, default: bool) -> Result<bool, ConfigError> {
    match get_trimmed(vars, name).map(|v| v.to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if v == "true" || v == "1" || v == "yes" => Ok(true),
        Some(v) if v == "false" || v == "0" || v == "no" => Ok(false),
        Some(v) => Err(ConfigError::new(name, format!("expected true or false, got {v:?}"))),
    }
}

/// Parses a JSON-valued variable into `T`; serde's message names the path inside the value.
pub fn get_json<T: serde::de::DeserializeOwned>(vars: &dyn Vars, name: &str) -> Result<Option<T>, ConfigError> {
    match get_trimmed(vars, name) {
        None => Ok(None),
        Some(v) => serde_json::from_str(&v).map(Some).map_err(|e| ConfigError::new(name, format!("invalid JSON value: {e}"))),
    }
}
