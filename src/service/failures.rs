//! Logging for the background loops (key ring and client registry refreshes), which retry
//! every second or two: a failure that lasts (PostgreSQL down, a key this instance's
//! key-encryption keys cannot open) is logged when it starts, when its error changes, and then
//! once a minute with the number of repeats in between, not on every retry; the first success
//! after it is logged too.

use std::time::{Duration, Instant};

/// How often a failure that goes on is logged again.
pub const REPEAT_EVERY: Duration = Duration::from_secs(60);

/// What a failure or a success should log.
#[derive(Debug, PartialEq, Eq)]
pub enum Report {
    /// Nothing: the same failure was logged less than [`REPEAT_EVERY`] ago.
    Quiet,
    /// A failure to log, and how many retries failed the same way since it was last logged.
    Failed { repeats: u64 },
    /// The first success after `failures` failures in a row.
    Recovered { failures: u64 },
}

/// The failure state of one background loop.
#[derive(Debug, Default)]
pub struct Failures {
    /// The error being reported, when it was last logged, retries since, failures in a row.
    current: Option<(String, Instant, u64, u64)>,
}

impl Failures {
    /// A retry failed with `error` (what tells failures apart) at `now`.
    pub fn failed(&mut self, error: &str, now: Instant) -> Report {
        match &mut self.current {
            Some((last, logged, repeats, total)) if last == error => {
                *total += 1;
                if now.duration_since(*logged) < REPEAT_EVERY {
                    *repeats += 1;
                    return Report::Quiet;
                }
                let report = Report::Failed { repeats: *repeats };
                (*logged, *repeats) = (now, 0);
                report
            }
            current => {
                let total = current.as_ref().map_or(0, |c| c.3) + 1;
                *current = Some((error.to_owned(), now, 0, total));
                Report::Failed { repeats: 0 }
            }
        }
    }

    /// A retry succeeded.
    pub fn succeeded(&mut self) -> Report {
        match self.current.take() {
            Some((.., failures)) => Report::Recovered { failures },
            None => Report::Quiet,
        }
    }

    /// Logs the outcome of one retry of `what` (warning on failures, info on recovery).
    pub fn log(&mut self, what: &str, outcome: &anyhow::Result<impl Sized>) {
        match outcome {
            Ok(_) => {
                if let Report::Recovered { failures } = self.succeeded() {
                    tracing::info!(failures, "{what} recovered");
                }
            }
            Err(e) => {
                // Told apart by the outermost error only: the causes below it can vary from one
                // retry to the next (a pool timeout with or without the last connection error).
                if let Report::Failed { repeats } = self.failed(&e.to_string(), Instant::now()) {
                    let error = format!("{e:#}");
                    tracing::warn!(
                        error,
                        repeats,
                        "{what} failed; this instance keeps what it has"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lasting_failure_is_logged_once_a_minute_and_its_end_once() {
        let mut f = Failures::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(f.succeeded(), Report::Quiet);
        assert_eq!(f.failed("down", at(0)), Report::Failed { repeats: 0 });
        for s in 1..60 {
            assert_eq!(f.failed("down", at(s)), Report::Quiet);
        }
        assert_eq!(f.failed("down", at(60)), Report::Failed { repeats: 59 });
        assert_eq!(f.failed("down", at(61)), Report::Quiet);
        // Another error is logged at once.
        assert_eq!(f.failed("no key", at(62)), Report::Failed { repeats: 0 });
        assert_eq!(f.failed("no key", at(63)), Report::Quiet);
        assert_eq!(f.succeeded(), Report::Recovered { failures: 64 });
        assert_eq!(f.succeeded(), Report::Quiet);
        // A new failure after the recovery is logged at once.
        assert_eq!(f.failed("down", at(64)), Report::Failed { repeats: 0 });
    }
}
