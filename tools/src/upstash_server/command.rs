//! Request bodies: a JSON array of arguments, or an array of such arrays.

use serde_json::Value as Json;

/// One Redis command: the name followed by its arguments, as raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Every word of the command, the name first. Never empty.
    pub args: Vec<Vec<u8>>,
}

/// Commands that would leave state on a pooled connection, hijack it or stop
/// Redis; they are refused as a Redis-style error (transactions go through
/// `/multi-exec`).
const REFUSED: &[&str] = &[
    "AUTH", "CLIENT", "DISCARD", "EXEC", "HELLO", "MONITOR", "MULTI", "PSUBSCRIBE", "PSYNC",
    "PUNSUBSCRIBE", "QUIT", "REPLICAOF", "RESET", "SELECT", "SHUTDOWN", "SLAVEOF", "SSUBSCRIBE",
    "SUBSCRIBE", "SUNSUBSCRIBE", "SYNC", "UNSUBSCRIBE", "UNWATCH", "WATCH",
];

impl Command {
    /// The command name in upper case, lossily decoded (for messages and checks).
    pub fn name(&self) -> String {
        self.args
            .first()
            .map(|name| String::from_utf8_lossy(name).to_ascii_uppercase())
            .unwrap_or_default()
    }

    /// `Some(message)` when this command may not be run through the REST server.
    pub fn refusal(&self) -> Option<String> {
        let name = self.name();
        if REFUSED.contains(&name.as_str()) {
            Some(format!("ERR Command is not allowed over REST: '{}'", printable(&name)))
        } else {
            None
        }
    }
}

/// Why a request body is not a valid command or batch of commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// The body is not JSON.
    NotJson,
    /// The JSON has the wrong shape (message says which).
    Shape(&'static str),
}

impl BodyError {
    /// The message sent back in `{"error": …}`.
    pub fn message(&self) -> String {
        match self {
            BodyError::NotJson => "ERR failed to parse command: body is not valid JSON".to_owned(),
            BodyError::Shape(what) => format!("ERR failed to parse command: {what}"),
        }
    }
}

/// Parses the body of `POST /`: `["SET", "key", "value", "EX", 100]`.
pub fn parse_single(body: &[u8]) -> Result<Command, BodyError> {
    let json: Json = serde_json::from_slice(body).map_err(|_| BodyError::NotJson)?;
    command_from_json(json)
}

/// Parses the body of `POST /pipeline` and `POST /multi-exec`: `[["GET","a"],["EXISTS","b"]]`.
pub fn parse_batch(body: &[u8]) -> Result<Vec<Command>, BodyError> {
    let json: Json = serde_json::from_slice(body).map_err(|_| BodyError::NotJson)?;
    let Json::Array(items) = json else {
        return Err(BodyError::Shape("expected an array of commands"));
    };
    if items.is_empty() {
        return Err(BodyError::Shape("empty command list"));
    }
    items.into_iter().map(command_from_json).collect()
}

fn command_from_json(json: Json) -> Result<Command, BodyError> {
    let Json::Array(words) = json else {
        return Err(BodyError::Shape("a command must be an array"));
    };
    if words.is_empty() {
        return Err(BodyError::Shape("empty command"));
    }
    let mut args = Vec::with_capacity(words.len());
    for (index, word) in words.into_iter().enumerate() {
        match word {
            Json::String(text) => args.push(text.into_bytes()),
            Json::Number(number) if index > 0 => args.push(number.to_string().into_bytes()),
            _ if index == 0 => return Err(BodyError::Shape("the command name must be a string")),
            _ => return Err(BodyError::Shape("arguments must be strings or numbers")),
        }
    }
    Ok(Command { args })
}

/// Keeps error messages on one printable line whatever the client sent.
fn printable(text: &str) -> String {
    text.chars().take(64).map(|c| if c.is_control() { '?' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(command: &Command) -> Vec<String> {
        command.args.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect()
    }

    #[test]
    fn numbers_become_their_decimal_text() {
        let command = parse_single(br#"["SET","k","v","EX",100,"PX","7",1.5]"#).unwrap();
        assert_eq!(words(&command), ["SET", "k", "v", "EX", "100", "PX", "7", "1.5"]);
    }

    #[test]
    fn malformed_bodies_are_refused() {
        assert_eq!(parse_single(b"not json"), Err(BodyError::NotJson));
        assert!(parse_single(b"[]").is_err());
        assert!(parse_single(b"{\"a\":1}").is_err());
        assert!(parse_single(b"[1, \"a\"]").is_err());
        assert!(parse_single(b"[\"GET\", null]").is_err());
        assert!(parse_single(b"[\"GET\", [\"a\"]]").is_err());
        assert!(parse_batch(b"[]").is_err());
        assert!(parse_batch(b"[\"GET\",\"a\"]").is_err());
        assert!(parse_batch(b"[[\"GET\",\"a\"], []]").is_err());
    }

    #[test]
    fn connection_state_commands_are_refused() {
        assert!(parse_single(br#"["multi"]"#).unwrap().refusal().is_some());
        assert!(parse_single(br#"["Select", 1]"#).unwrap().refusal().is_some());
        assert!(parse_single(br#"["GET", "multi"]"#).unwrap().refusal().is_none());
    }
}
