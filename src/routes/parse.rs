//! Parsing `ROUTES` into rules, with errors that name the offending field.

use serde_json::{Map, Value};

use super::{AuthMode, HostPattern, PathPattern, Rule};
use crate::vars::{get_trimmed, ConfigError, Vars};

const VAR: &str = "ROUTES";

const FIELDS: &[&str] = &[
    "name", "host", "path", "methods", "auth", "issuers", "scopes_any", "scopes_all", "allow_preflight", "keep_credential",
];

pub(super) fn from_vars(vars: &dyn Vars) -> Result<Vec<Rule>, ConfigError> {
    let Some(text) = get_trimmed(vars, VAR) else {
        return Ok(vec![default_rule()]);
    };
    let value: Value =
        serde_json::from_str(&text).map_err(|e| ConfigError::new(VAR, format!("invalid JSON value: {e}")))?;
    let Value::Array(items) = value else {
        return Err(ConfigError::new(VAR, "expected a JSON array of rules"));
    };
    if items.is_empty() {
        return Err(ConfigError::new(VAR, "must list at least one rule"));
    }
    let mut rules: Vec<Rule> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let rule = parse_rule(i, item)?;
        if rules.iter().any(|r| r.name == rule.name) {
            return Err(ConfigError::new(format!("{VAR}[{i}].name"), format!("duplicate rule name {:?}", rule.name)));
        }
        rules.push(rule);
    }
    Ok(rules)
}

fn default_rule() -> Rule {
    Rule {
        name: "default".into(),
        host: None,
        path: PathPattern::parse("/**").unwrap_or_else(|_| unreachable!("constant pattern")),
        methods: None,
        auth: AuthMode::JwtRevocation,
        issuers: None,
        scopes_any: Vec::new(),
        scopes_all: Vec::new(),
        allow_preflight: false,
        keep_credential: false,
    }
}

fn parse_rule(i: usize, item: &Value) -> Result<Rule, ConfigError> {
    let at = |field: &str| format!("{VAR}[{i}].{field}");
    let Value::Object(obj) = item else {
        return Err(ConfigError::new(format!("{VAR}[{i}]"), "expected a JSON object"));
    };
    if let Some(unknown) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(ConfigError::new(at(unknown), format!("unknown field (known: {})", FIELDS.join(", "))));
    }

    let name = match opt_str(obj, "name", &at)? {
        Some(n) if n.is_empty() || !n.chars().all(|c| c.is_ascii_graphic()) => {
            return Err(ConfigError::new(at("name"), "must be non-empty visible ASCII without spaces"));
        }
        Some(n) => n,
        None => format!("rule{i}"),
    };

    let host = opt_str(obj, "host", &at)?.map(|h| parse_host(&h).map_err(|m| ConfigError::new(at("host"), m))).transpose()?;

    let path_src = opt_str(obj, "path", &at)?.ok_or_else(|| ConfigError::new(at("path"), "required"))?;
    let path = PathPattern::parse(&path_src).map_err(|m| ConfigError::new(at("path"), m))?;

    let methods = opt_list(obj, "methods", &at)?
        .map(|list| {
            if list.is_empty() {
                return Err(ConfigError::new(at("methods"), "an empty list matches nothing; omit it to match any method"));
            }
            list.into_iter()
                .map(|m| {
                    if !m.is_empty() && m.chars().all(|c| c.is_ascii_alphabetic()) {
                        Ok(m.to_ascii_uppercase())
                    } else {
                        Err(ConfigError::new(at("methods"), format!("{m:?} is not an HTTP method")))
                    }
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;

    let auth = match opt_str(obj, "auth", &at)?.as_deref() {
        Some("public") => AuthMode::Public,
        Some("jwt") => AuthMode::Jwt,
        Some("jwt+revocation") => AuthMode::JwtRevocation,
        Some("session") => AuthMode::Session,
        Some("refresh") => AuthMode::Refresh,
        Some(other) => {
            return Err(ConfigError::new(
                at("auth"),
                format!("{other:?} is not one of public, jwt, jwt+revocation, session, refresh"),
            ))
        }
        None => return Err(ConfigError::new(at("auth"), "required")),
    };

    let issuers = opt_list(obj, "issuers", &at)?;
    if let Some(list) = &issuers {
        if list.is_empty() {
            return Err(ConfigError::new(at("issuers"), "an empty list accepts no token; omit it to accept any issuer"));
        }
    }
    let scopes_any = opt_list(obj, "scopes_any", &at)?.unwrap_or_default();
    let scopes_all = opt_list(obj, "scopes_all", &at)?.unwrap_or_default();
    for (field, list) in [("scopes_any", &scopes_any), ("scopes_all", &scopes_all)] {
        if let Some(bad) = list.iter().find(|s| !is_scope_token(s)) {
            return Err(ConfigError::new(at(field), format!("{bad:?} is not a scope token (RFC 6749 §3.3)")));
        }
    }
    if auth == AuthMode::Public {
        for (field, set) in [("issuers", issuers.is_some()), ("scopes_any", !scopes_any.is_empty()), ("scopes_all", !scopes_all.is_empty())] {
            if set {
                return Err(ConfigError::new(at(field), "a public rule has no identity to check this against"));
            }
        }
    }

    Ok(Rule {
        name,
        host,
        path,
        methods,
        auth,
        issuers,
        scopes_any,
        scopes_all,
        allow_preflight: opt_bool(obj, "allow_preflight", &at)?.unwrap_or(false),
        keep_credential: opt_bool(obj, "keep_credential", &at)?.unwrap_or(false),
    })
}

fn parse_host(h: &str) -> Result<HostPattern, String> {
    let h = h.trim().to_ascii_lowercase();
    let h = h.strip_suffix('.').unwrap_or(&h).to_string();
    let valid_name = |s: &str| {
        !s.is_empty() && s.split('.').all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    };
    if let Some(suffix) = h.strip_prefix("*.") {
        if valid_name(suffix) {
            return Ok(HostPattern::Subdomains(format!(".{suffix}")));
        }
    } else if valid_name(&h) || (h.starts_with('[') && h.ends_with(']')) {
        return Ok(HostPattern::Exact(h));
    }
    Err(format!("{h:?} is not a host name or '*.' followed by one (no port, no scheme)"))
}

/// Whether `s` is an RFC 6749 scope-token (%x21 / %x23-5B / %x5D-7E: no space, `"` or `\`).
pub fn is_scope_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

fn opt_str(obj: &Map<String, Value>, key: &str, at: &dyn Fn(&str) -> String) -> Result<Option<String>, ConfigError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ConfigError::new(at(key), "expected a string")),
    }
}

fn opt_bool(obj: &Map<String, Value>, key: &str, at: &dyn Fn(&str) -> String) -> Result<Option<bool>, ConfigError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ConfigError::new(at(key), "expected true or false")),
    }
}

fn opt_list(obj: &Map<String, Value>, key: &str, at: &dyn Fn(&str) -> String) -> Result<Option<Vec<String>>, ConfigError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(j, v)| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(ConfigError::new(format!("{}[{j}]", at(key)), "expected a string")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(ConfigError::new(at(key), "expected an array of strings")),
    }
}
