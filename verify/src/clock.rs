//! Time, injectable: the verifier reads the time and sleeps through a [`Clock`], so that tests
//! (ours and yours) move time by hand instead of sleeping.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;

/// A sleep in progress.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Where the verifier gets the time from.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
    /// A future that completes after `d` has passed on this clock.
    fn sleep(&self, d: Duration) -> Sleep;
}

/// The system's clock and tokio's timers (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep(&self, d: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(d))
    }
}

/// A clock that moves only when told to ([`ManualClock::advance`]); sleepers wake when it
/// passes their deadline.
#[derive(Clone, Default)]
pub struct ManualClock {
    state: Arc<Mutex<Manual>>,
}

#[derive(Default)]
struct Manual {
    /// Time since the Unix epoch.
    now: Duration,
    sleepers: Vec<(Duration, oneshot::Sender<()>)>,
}

impl ManualClock {
    /// A clock showing `now`.
    pub fn at(now: SystemTime) -> Self {
        let clock = Self::default();
        clock.lock().now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        clock
    }

    /// Moves the clock forward by `d`, waking every sleeper whose deadline has come.
    pub fn advance(&self, d: Duration) {
        let due: Vec<_> = {
            let mut state = self.lock();
            state.now += d;
            let now = state.now;
            let (due, waiting) = std::mem::take(&mut state.sleepers)
                .into_iter()
                .partition(|(deadline, _)| *deadline <= now);
            state.sleepers = waiting;
            due
        };
        for (_, wake) in due {
            let _ = wake.send(());
        }
    }

    /// How many sleeps are waiting for the clock to move.
    pub fn sleepers(&self) -> usize {
        self.lock()
            .sleepers
            .iter()
            .filter(|(_, s)| !s.is_closed())
            .count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Manual> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + self.lock().now
    }

    fn sleep(&self, d: Duration) -> Sleep {
        let (wake, woken) = oneshot::channel();
        {
            let mut state = self.lock();
            let deadline = state.now + d;
            if d.is_zero() {
                return Box::pin(async {});
            }
            state.sleepers.push((deadline, wake));
        }
        Box::pin(async move {
            // Dropped clock: never wakes, as a timer that never fires.
            if woken.await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

/// Seconds since the Unix epoch (0 before it).
pub(crate) fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
