//! The service's clock for what the course calendar decides: when a submission was
//! received (and so whether it is late), whether an assignment is open, whether held
//! results are due for release. Production reads the system clock; tests move it
//! ([`Clock::set`]) instead of sleeping to a deadline. Each service has its own, so tests
//! running side by side in one process do not move each other's.
//!
//! Durations the service measures for itself (leases, backoff, token caches) keep the
//! system clock: a test that moves the calendar by a week does not expire every lease.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Milliseconds since the Unix epoch, as the calendar sees them. Cheap to clone; clones
/// share one offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// Now, in ms.
    pub fn now(&self) -> i64 {
        system_ms() + self.offset_ms.load(Ordering::Relaxed)
    }

    /// From now on, `now()` reads `at_ms` and runs on from there (tests).
    pub fn set(&self, at_ms: i64) {
        self.offset_ms.store(at_ms - system_ms(), Ordering::Relaxed);
    }
}

/// The system clock, in ms since the Unix epoch.
fn system_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moved_clock_runs_on_from_where_it_was_set_and_clones_share_it() {
        let c = Clock::system();
        let other = c.clone();
        c.set(1_000_000);
        let now = other.now();
        assert!((1_000_000..1_000_000 + 5_000).contains(&now), "{now}");
        assert!(Clock::system().now() > 1_700_000_000_000);
    }
}
