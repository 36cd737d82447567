//! The one clock: every time the issuer reads (token lifetimes, refresh and session expiry,
//! throttle windows, purges, scheduled rotation) comes from the [`Clock`] in its settings, so
//! that tests move time instead of sleeping. The binary always runs on the system clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Unix seconds, from the system clock, optionally moved forward by a test.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock a test can move ([`Clock::advance`]); starts at the system time. Clones share
    /// it.
    pub fn adjustable() -> Self {
        Self {
            offset: Some(Arc::new(AtomicI64::new(0))),
        }
    }

    /// Now, as unix seconds.
    pub fn now(&self) -> i64 {
        let offset = self
            .offset
            .as_ref()
            .map_or(0, |o| o.load(Ordering::Relaxed));
        chrono::Utc::now().timestamp() + offset
    }

    /// Moves an adjustable clock forward (or back) by `secs`; the system clock cannot move.
    pub fn advance(&self, secs: i64) {
        if let Some(offset) = &self.offset {
            offset.fetch_add(secs, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjustable_clocks_move_and_the_system_clock_does_not() {
        let system = Clock::system();
        let before = system.now();
        system.advance(3600);
        assert!(system.now() - before < 5);
        let test = Clock::adjustable();
        let shared = test.clone();
        test.advance(86_400);
        assert!(shared.now() - before >= 86_400);
    }
}
