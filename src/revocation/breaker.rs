//! A per-isolate circuit breaker in front of the revocation store.
//!
//! Closed: every check calls the store; `threshold` consecutive failures open it. Open: no call
//! for `cooldown` seconds (answers follow the failure policy). Then half-open: exactly ONE probe
//! call goes through; success closes the breaker, failure opens it for another cooldown. A probe
//! that never reports back (its request was cancelled) is forgotten after one cooldown.

use std::cell::Cell;

/// What the breaker allows for one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Call the store normally.
    Call,
    /// Call the store as the half-open probe.
    Probe,
    /// Do not call; the store is presumed down. `retry_after` seconds until the next probe.
    Reject { retry_after: u64 },
}

/// Circuit breaker state (interior mutability: the worker is single-threaded).
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: u64,
    failures: Cell<u32>,
    open_until: Cell<Option<u64>>,
    probe_started: Cell<Option<u64>>,
}

impl Breaker {
    /// `threshold` consecutive failures open it (0 = never opens); `cooldown` in seconds.
    pub fn new(threshold: u32, cooldown: u64) -> Self {
        Breaker { threshold, cooldown, failures: Cell::new(0), open_until: Cell::new(None), probe_started: Cell::new(None) }
    }

    /// Decides whether a check at `now` may call the store.
    pub fn gate(&self, now: u64) -> Gate {
        let Some(until) = self.open_until.get() else { return Gate::Call };
        if now < until {
            return Gate::Reject { retry_after: (until - now).max(1) };
        }
        match self.probe_started.get() {
            Some(started) if now < started.saturating_add(self.cooldown.max(1)) => {
                Gate::Reject { retry_after: (started.saturating_add(self.cooldown.max(1)) - now).max(1) }
            }
            _ => {
                self.probe_started.set(Some(now));
                Gate::Probe
            }
        }
    }

    /// The store answered.
    pub fn on_success(&self) {
        self.failures.set(0);
        self.open_until.set(None);
        self.probe_started.set(None);
    }

    /// The store failed at `now`.
    pub fn on_failure(&self, now: u64) {
        if self.threshold == 0 {
            return;
        }
        if self.open_until.get().is_some() {
            // A failed probe (or a late failure of a call made before opening): stay open.
            self.open_until.set(Some(now.saturating_add(self.cooldown)));
            self.probe_started.set(None);
            return;
        }
        let failures = self.failures.get().saturating_add(1);
        if failures >= self.threshold {
            self.failures.set(0);
            self.open_until.set(Some(now.saturating_add(self.cooldown)));
        } else {
            self.failures.set(failures);
        }
    }

    /// Whether the breaker is currently open or half-open.
    pub fn is_open(&self) -> bool {
        self.open_until.get().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_probes_once_and_closes_on_success() {
        let b = Breaker::new(3, 10);
        for _ in 0..2 {
            assert_eq!(b.gate(100), Gate::Call);
            b.on_failure(100);
        }
        assert_eq!(b.gate(100), Gate::Call);
        b.on_failure(100);
        assert_eq!(b.gate(101), Gate::Reject { retry_after: 9 });
        assert_eq!(b.gate(109), Gate::Reject { retry_after: 1 });
        // Cooldown over: one probe, the others keep waiting.
        assert_eq!(b.gate(110), Gate::Probe);
        assert!(matches!(b.gate(110), Gate::Reject { .. }));
        assert!(matches!(b.gate(111), Gate::Reject { .. }));
        b.on_success();
        assert_eq!(b.gate(111), Gate::Call);
        assert!(!b.is_open());
    }

    #[test]
    fn failed_probe_reopens_for_a_full_cooldown() {
        let b = Breaker::new(1, 10);
        b.on_failure(0);
        assert_eq!(b.gate(10), Gate::Probe);
        b.on_failure(12);
        assert_eq!(b.gate(15), Gate::Reject { retry_after: 7 });
        assert_eq!(b.gate(22), Gate::Probe);
    }

    #[test]
    fn lost_probe_is_replaced_after_a_cooldown() {
        let b = Breaker::new(1, 5);
        b.on_failure(0);
        assert_eq!(b.gate(5), Gate::Probe);
        assert!(matches!(b.gate(9), Gate::Reject { .. }));
        assert_eq!(b.gate(10), Gate::Probe);
    }

    #[test]
    fn success_resets_the_failure_count_and_zero_threshold_never_opens() {
        let b = Breaker::new(2, 5);
        b.on_failure(0);
        b.on_success();
        b.on_failure(0);
        assert_eq!(b.gate(0), Gate::Call);
        let off = Breaker::new(0, 5);
        for _ in 0..100 {
            off.on_failure(0);
        }
        assert_eq!(off.gate(0), Gate::Call);
    }
}
