//! Extra worker variables from the command line (`--var KEY=VALUE`) and from a JSON file
//! (`--vars-file`).

use std::path::Path;

use super::error::StackError;

/// Parses `KEY=VALUE` (the value may itself contain `=`; it may be empty).
pub fn parse_var(s: &str) -> Result<(String, String), StackError> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(StackError::msg(format!("--var expects KEY=VALUE, got {s:?}"))),
    }
}

/// Reads a JSON object of variables. String values are taken as they are; any other JSON
/// value (object, array, number, bool) is passed as its JSON text, which is how the worker
/// reads JSON-valued variables.
pub fn read_vars_file(path: &Path) -> Result<Vec<(String, String)>, StackError> {
    let text = std::fs::read_to_string(path).map_err(|e| StackError::io(format!("reading {}", path.display()), e))?;
    vars_from_json(&text).map_err(|m| StackError::msg(format!("{}: {m}", path.display())))
}

/// The variables of a JSON object text, in the object's order.
pub fn vars_from_json(text: &str) -> Result<Vec<(String, String)>, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let serde_json::Value::Object(map) = value else {
        return Err("expected a JSON object of variables".to_string());
    };
    Ok(map
        .into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn var_keeps_equals_signs_in_the_value() {
        assert_eq!(parse_var("A=b=c").unwrap(), ("A".to_string(), "b=c".to_string()));
        assert_eq!(parse_var("A=").unwrap(), ("A".to_string(), String::new()));
        assert!(parse_var("=x").is_err());
        assert!(parse_var("novalue").is_err());
    }

    #[test]
    fn vars_file_stringifies_non_string_values() {
        let vars = vars_from_json(r#"{"S":"x","N":5,"O":{"a":[1]}}"#).unwrap();
        assert!(vars.contains(&("S".to_string(), "x".to_string())));
        assert!(vars.contains(&("N".to_string(), "5".to_string())));
        assert!(vars.contains(&("O".to_string(), r#"{"a":[1]}"#.to_string())));
        assert!(vars_from_json("[1]").is_err());
    }
}
