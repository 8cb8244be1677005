//! Fault injection behind `POST /__fault`, for end-to-end tests of how a
//! client copes with a slow, failing or lying Redis REST endpoint.

use std::sync::RwLock;
use std::time::Duration;

use serde::Deserialize;

/// Longest delay `POST /__fault` accepts: 10 minutes.
pub const MAX_DELAY_MS: u64 = 600_000;

/// What the data endpoints (`/`, `/pipeline`, `/multi-exec`) do on top of normal service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
pub enum Fault {
    /// Normal service.
    None,
    /// Wait `ms` milliseconds, then serve normally.
    Delay {
        /// The delay in milliseconds (at most [`MAX_DELAY_MS`]).
        ms: u64,
    },
    /// Answer with this HTTP status and a JSON error, without running anything.
    Status {
        /// The status code (400..=599).
        status: u16,
    },
    /// Answer 200 with a body that is not JSON, without running anything.
    Garbage,
}

impl Fault {
    /// Parses and checks the body of `POST /__fault`.
    pub fn parse(body: &[u8]) -> Result<Fault, String> {
        let fault: Fault = serde_json::from_slice(body).map_err(|e| format!("invalid fault: {e}"))?;
        match fault {
            Fault::Delay { ms } if ms > MAX_DELAY_MS => Err(format!("delay above {MAX_DELAY_MS} ms")),
            Fault::Status { status } if !(400..=599).contains(&status) => {
                Err("status must be within 400..=599".to_owned())
            }
            other => Ok(other),
        }
    }

    /// The delay to apply before serving, if any.
    pub fn delay(&self) -> Option<Duration> {
        match self {
            Fault::Delay { ms } => Some(Duration::from_millis(*ms)),
            _ => None,
        }
    }
}

/// The fault currently in force, shared by all connections.
#[derive(Debug)]
pub struct FaultSwitch {
    current: RwLock<Fault>,
}

impl Default for FaultSwitch {
    fn default() -> Self {
        Self { current: RwLock::new(Fault::None) }
    }
}

impl FaultSwitch {
    /// The fault in force now.
    pub fn get(&self) -> Fault {
        match self.current.read() {
            Ok(guard) => *guard,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    /// Puts `fault` in force for the following requests.
    pub fn set(&self, fault: Fault) {
        match self.current.write() {
            Ok(mut guard) => *guard = fault,
            Err(poisoned) => *poisoned.into_inner() = fault,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_mode_and_rejects_nonsense() {
        assert_eq!(Fault::parse(br#"{"mode":"none"}"#), Ok(Fault::None));
        assert_eq!(Fault::parse(br#"{"mode":"delay","ms":250}"#), Ok(Fault::Delay { ms: 250 }));
        assert_eq!(Fault::parse(br#"{"mode":"status","status":401}"#), Ok(Fault::Status { status: 401 }));
        assert_eq!(Fault::parse(br#"{"mode":"garbage"}"#), Ok(Fault::Garbage));
        assert!(Fault::parse(br#"{"mode":"status","status":200}"#).is_err());
        assert!(Fault::parse(br#"{"mode":"delay"}"#).is_err());
        assert!(Fault::parse(br#"{"mode":"delay","ms":99999999}"#).is_err());
        assert!(Fault::parse(br#"{"mode":"explode"}"#).is_err());
        assert!(Fault::parse(b"nope").is_err());
    }
}
