//! The one error type of the stack launcher: what failed, plus where to look.

use std::fmt;
use std::path::PathBuf;

use super::child::ManagedChild;

/// Why the stack could not start (or stop cleanly). Its `Display` is the full report: the
/// failure, the last lines of the logs involved, and the logs directory.
#[derive(Debug, Clone)]
pub struct StackError {
    /// One-line description of the failure.
    pub message: String,
    /// Log tails and paths of the children involved (may be empty).
    pub details: String,
    /// The directory holding every child's logs, when one was created.
    pub logs_dir: Option<PathBuf>,
    /// True when the start was interrupted on purpose (signal, stdin EOF), not a failure.
    pub cancelled: bool,
}

impl StackError {
    /// A failure with just a message.
    pub fn msg(message: impl Into<String>) -> Self {
        StackError { message: message.into(), details: String::new(), logs_dir: None, cancelled: false }
    }

    /// An I/O failure while doing `what`.
    pub fn io(what: impl Into<String>, e: std::io::Error) -> Self {
        Self::msg(format!("{}: {e}", what.into()))
    }

    /// A failure of one child; carries its log tails.
    pub fn child(message: impl Into<String>, child: &ManagedChild) -> Self {
        StackError { message: message.into(), details: child.log_tails(30), logs_dir: None, cancelled: false }
    }

    /// The start was interrupted (SIGINT/SIGTERM or stdin EOF).
    pub fn cancelled() -> Self {
        StackError { cancelled: true, ..Self::msg("interrupted while starting") }
    }

    /// Attaches the logs directory.
    pub fn with_logs_dir(mut self, dir: PathBuf) -> Self {
        self.logs_dir = Some(dir);
        self
    }
}

impl fmt::Display for StackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "edge-auth dev stack: {}", self.message)?;
        if !self.details.is_empty() {
            write!(f, "\n{}", self.details.trim_end())?;
        }
        if let Some(dir) = &self.logs_dir {
            write!(f, "\nlogs: {}", dir.display())?;
        }
        Ok(())
    }
}

impl std::error::Error for StackError {}
