//! Counters behind `GET /__stats`.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value as Json};

/// Requests and Redis commands served since start (or the last reset).
#[derive(Debug, Default)]
pub struct Stats {
    requests: AtomicU64,
    commands: AtomicU64,
}

impl Stats {
    /// Counts one POST to `/`, `/pipeline` or `/multi-exec`, whatever its outcome
    /// (401, 400, injected fault or success); other methods (405) are not counted.
    pub fn add_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts Redis commands sent on behalf of a client (MULTI/EXEC wrappers excluded).
    pub fn add_commands(&self, n: usize) {
        self.commands.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Sets both counters back to zero.
    pub fn reset(&self) {
        self.requests.store(0, Ordering::Relaxed);
        self.commands.store(0, Ordering::Relaxed);
    }

    /// `{"requests": N, "commands": M}`.
    pub fn to_json(&self) -> Json {
        json!({
            "requests": self.requests.load(Ordering::Relaxed),
            "commands": self.commands.load(Ordering::Relaxed),
        })
    }
}
