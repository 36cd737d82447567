//! The JWK Set cache: an immutable key set swapped whole after each fetch and read without a
//! lock; one fetch at a time, shared by everyone waiting for it; refreshed ahead of expiry by
//! the background task; unknown `kid`s looked up again at a limited rate.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use url::Url;

use crate::clock::Clock;
use crate::error::{Error, Reason};
use crate::events::{Events, FetchOutcome, UnknownKid};
use crate::fetch::{FetchError, Fetched, Http};
use crate::keys::{self, Key, KeySet};

/// How long keys are trusted, and how often unknown keys are looked up.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    /// The bounds of the freshness a `Cache-Control: max-age` may give.
    pub min_age: Duration,
    pub max_age: Duration,
    /// The freshness of an answer without `max-age`.
    pub default_age: Duration,
    /// How long past its freshness a key set is still used while the issuer cannot be reached.
    pub max_stale: Duration,
    /// At most one refetch for unknown keys per `cooldown` (a token bucket of one), and how
    /// long a kid still unknown after one is rejected without asking again.
    pub cooldown: Duration,
}

/// The keys as of one fetch.
pub(crate) struct Snapshot {
    pub keys: Arc<KeySet>,
    etag: Option<String>,
    /// When the keys were last fetched or revalidated (`None`: never).
    confirmed: Option<SystemTime>,
    /// Until when they are fresh.
    fresh_until: SystemTime,
    /// Failed fetches since the last good one.
    failures: u32,
}

pub(crate) struct Jwks {
    uri: Url,
    http: Http,
    policy: Policy,
    current: ArcSwap<Snapshot>,
    fetching: tokio::sync::Mutex<()>,
    in_flight: AtomicBool,
    /// Completed fetches (successful or not).
    generation: AtomicU64,
    bucket: Mutex<Bucket>,
    /// Kids still unknown after a refetch, until when they are rejected without asking again.
    unknown: Mutex<HashMap<String, SystemTime>>,
    /// The kid the fetch under way was made for, if one was.
    fetching_for: Mutex<Option<String>>,
}

/// Remembered unknown kids at most; beyond, the oldest knowledge is dropped.
const MAX_UNKNOWN: usize = 1024;

/// The longest wait between attempts while the issuer cannot be reached.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

impl Jwks {
    pub fn new(uri: Url, http: Http, policy: Policy) -> Self {
        Self {
            uri,
            http,
            policy,
            current: ArcSwap::from_pointee(Snapshot {
                keys: Arc::new(KeySet::new()),
                etag: None,
                confirmed: None,
                fresh_until: SystemTime::UNIX_EPOCH,
                failures: 0,
            }),
            fetching: tokio::sync::Mutex::new(()),
            in_flight: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            bucket: Mutex::new(Bucket {
                tokens: 1.0,
                at: None,
            }),
            unknown: Mutex::new(HashMap::new()),
            fetching_for: Mutex::new(None),
        }
    }

    pub fn uri(&self) -> &Url {
        &self.uri
    }

    /// The key named `kid`, as of now: from the cached set while it is usable (fresh, or stale
    /// within `max_stale`); when the set lacks it, after one shared refetch if the rate limit
    /// allows, else refused at once.
    pub async fn key(
        &self,
        kid: &str,
        clock: &dyn Clock,
        events: &dyn Events,
    ) -> Result<Keys, Error> {
        let now = clock.now();
        let snapshot = self.current.load();
        if let Some(stale) = self.usable(&snapshot, now) {
            if snapshot.keys.contains_key(kid) {
                if stale {
                    events.stale_keys_used();
                }
                return Ok(snapshot);
            }
        } else if snapshot.confirmed.is_none() {
            // Never fetched (the issuer was down at start-up): try now, as for a new kid.
        } else {
            return Err(Error::Unavailable(
                "the issuer's keys are too old and cannot be fetched again",
            ));
        }
        drop(snapshot);
        self.unknown_kid(kid, clock, events).await
    }

    /// `Some(stale)` when the set may be used at `now`; `None` when it is empty or too old.
    fn usable(&self, snapshot: &Snapshot, now: SystemTime) -> Option<bool> {
        snapshot.confirmed?;
        if now <= snapshot.fresh_until {
            Some(false)
        } else if now <= snapshot.fresh_until + self.policy.max_stale {
            Some(true)
        } else {
            None
        }
    }

    async fn unknown_kid(
        &self,
        kid: &str,
        clock: &dyn Clock,
        events: &dyn Events,
    ) -> Result<Keys, Error> {
        let now = clock.now();
        let recently = self
            .lock_unknown()
            .get(kid)
            .is_some_and(|until| now < *until);
        if recently {
            events.unknown_kid(UnknownKid::RecentlyNotFound);
            return Err(Error::InvalidToken(Reason::UnknownKey));
        }
        let same_kid_in_flight = self.in_flight.load(Ordering::Acquire)
            && self.lock_fetching_for().as_deref() == Some(kid);
        if same_kid_in_flight {
            // A fetch for this very kid is under way (a rotation nobody announced: every
            // request carries the new kid): its result is what a new one would say.
            drop(self.fetching.lock().await);
        } else if self.take_token(now) {
            *self.lock_fetching_for() = Some(kid.to_owned());
            let _ = self.refresh(clock, events).await;
            *self.lock_fetching_for() = None;
        } else {
            events.unknown_kid(UnknownKid::Limited);
            tracing::debug!(kid, "unknown kid rejected: refetches are rate-limited");
            return Err(Error::InvalidToken(Reason::UnknownKeyLimited));
        }
        let now = clock.now();
        let snapshot = self.current.load();
        match self.usable(&snapshot, now) {
            Some(_) if snapshot.keys.contains_key(kid) => {
                events.unknown_kid(UnknownKid::Found);
                Ok(snapshot)
            }
            None => Err(Error::Unavailable("the issuer's keys cannot be fetched")),
            Some(_) => {
                self.remember_unknown(kid, now);
                events.unknown_kid(UnknownKid::NotFound);
                tracing::debug!(
                    kid,
                    "unknown kid rejected: not in the key set after a refetch"
                );
                Err(Error::InvalidToken(Reason::UnknownKey))
            }
        }
    }

    fn take_token(&self, now: SystemTime) -> bool {
        let mut bucket = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
        bucket.take(now, self.policy.cooldown)
    }

    fn lock_fetching_for(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.fetching_for
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_unknown(&self) -> std::sync::MutexGuard<'_, HashMap<String, SystemTime>> {
        self.unknown.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn remember_unknown(&self, kid: &str, now: SystemTime) {
        let mut unknown = self.lock_unknown();
        if unknown.len() >= MAX_UNKNOWN {
            unknown.retain(|_, until| now < *until);
            if unknown.len() >= MAX_UNKNOWN {
                unknown.clear();
            }
        }
        unknown.insert(kid.to_owned(), now + self.policy.cooldown);
    }

    /// Fetches the set now, unless a fetch completed while this one waited for its turn (then
    /// that one's result stands). Only one fetch runs at a time.
    pub async fn refresh(&self, clock: &dyn Clock, events: &dyn Events) -> Result<(), FetchError> {
        let seen = self.generation.load(Ordering::Acquire);
        let _turn = self.fetching.lock().await;
        if self.generation.load(Ordering::Acquire) != seen {
            return Ok(());
        }
        self.in_flight.store(true, Ordering::Release);
        let outcome = self.fetch(clock, events).await;
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.in_flight.store(false, Ordering::Release);
        outcome
    }

    async fn fetch(&self, clock: &dyn Clock, events: &dyn Events) -> Result<(), FetchError> {
        let before = self.current.load_full();
        let answer = self.http.get(&self.uri, before.etag.as_deref()).await;
        let now = clock.now();
        let (outcome, result) = match answer {
            Ok(Fetched::NotModified { max_age }) => {
                self.current.store(Arc::new(Snapshot {
                    keys: before.keys.clone(),
                    etag: before.etag.clone(),
                    confirmed: Some(now),
                    fresh_until: now + self.freshness(max_age),
                    failures: 0,
                }));
                (FetchOutcome::NotModified, Ok(()))
            }
            Ok(Fetched::Fresh {
                body,
                etag,
                max_age,
            }) => match keys::parse(&body) {
                Ok(keys) => {
                    let count = keys.len();
                    self.current.store(Arc::new(Snapshot {
                        keys: Arc::new(keys),
                        etag,
                        confirmed: Some(now),
                        fresh_until: now + self.freshness(max_age),
                        failures: 0,
                    }));
                    self.lock_unknown().clear();
                    (FetchOutcome::Updated { keys: count }, Ok(()))
                }
                Err(e) => {
                    let why = match e {
                        keys::SetError::Malformed => "the JWK Set is malformed",
                        keys::SetError::Empty => "the JWK Set holds no usable key",
                    };
                    self.failed(&before);
                    (FetchOutcome::Rejected(why), Err(FetchError::Invalid(why)))
                }
            },
            Err(e) => {
                self.failed(&before);
                (FetchOutcome::Failed(e.clone()), Err(e))
            }
        };
        match &outcome {
            FetchOutcome::Updated { keys } => {
                tracing::debug!(uri = %self.uri, keys, "JWK Set fetched");
            }
            FetchOutcome::NotModified => tracing::debug!(uri = %self.uri, "JWK Set not modified"),
            FetchOutcome::Failed(e) => {
                tracing::warn!(uri = %self.uri, error = %e, "JWK Set fetch failed; keeping the last good set");
            }
            FetchOutcome::Rejected(why) => {
                tracing::warn!(uri = %self.uri, why, "JWK Set refused; keeping the last good set");
            }
        }
        events.jwks_fetch(&outcome);
        result
    }

    fn failed(&self, before: &Snapshot) {
        self.current.store(Arc::new(Snapshot {
            keys: before.keys.clone(),
            etag: before.etag.clone(),
            confirmed: before.confirmed,
            fresh_until: before.fresh_until,
            failures: before.failures.saturating_add(1),
        }));
    }

    fn freshness(&self, max_age: Option<Duration>) -> Duration {
        max_age
            .unwrap_or(self.policy.default_age)
            .clamp(self.policy.min_age, self.policy.max_age)
    }

    /// How long the background task waits before its next fetch: while healthy, until 80–90%
    /// of the freshness has gone (the jitter spreads the fetches of many verifiers); after
    /// failures, a backoff of 1 s doubling up to a minute, with jitter.
    pub fn next_refresh_in(&self, now: SystemTime, jitter: f64) -> Duration {
        let snapshot = self.current.load();
        if snapshot.failures > 0 || snapshot.confirmed.is_none() {
            let exp = snapshot.failures.saturating_sub(1).min(6);
            let backoff = Duration::from_secs(1u64 << exp).min(MAX_BACKOFF);
            return backoff.mul_f64(0.5 + jitter / 2.0);
        }
        let confirmed = snapshot.confirmed.unwrap_or(now);
        let lifetime = snapshot
            .fresh_until
            .duration_since(confirmed)
            .unwrap_or_default();
        let at = confirmed + lifetime.mul_f64(0.8 + 0.1 * jitter);
        at.duration_since(now).unwrap_or_default()
    }
}

/// A token bucket of one: a token every `cooldown`.
struct Bucket {
    tokens: f64,
    at: Option<SystemTime>,
}

impl Bucket {
    fn take(&mut self, now: SystemTime, cooldown: Duration) -> bool {
        if let Some(at) = self.at {
            let passed = now.duration_since(at).unwrap_or_default();
            let per = cooldown.as_secs_f64().max(f64::MIN_POSITIVE);
            self.tokens = (self.tokens + passed.as_secs_f64() / per).min(1.0);
        }
        self.at = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The key set as of one load, held without a lock or a reference count of its own.
pub(crate) type Keys = arc_swap::Guard<Arc<Snapshot>>;

/// A key of the set.
pub(crate) fn get<'a>(keys: &'a Keys, kid: &str) -> Option<&'a Key> {
    keys.keys.get(kid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_gives_one_token_per_cooldown() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let cooldown = Duration::from_secs(10);
        let mut bucket = Bucket {
            tokens: 1.0,
            at: None,
        };
        assert!(bucket.take(t0, cooldown));
        assert!(!bucket.take(t0, cooldown));
        assert!(!bucket.take(t0 + Duration::from_secs(9), cooldown));
        assert!(bucket.take(t0 + Duration::from_secs(10), cooldown));
        // Idle for long: still one token, not many.
        assert!(bucket.take(t0 + Duration::from_secs(1_000), cooldown));
        assert!(!bucket.take(t0 + Duration::from_secs(1_000), cooldown));
    }
}
