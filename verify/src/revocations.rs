//! Following the issuer's revocation feed (`GET /oauth/revocations?after=CURSOR`): a local
//! deny list of revoked tokens' `jti`s, each kept until its `exp`, polled in the background.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use serde::Deserialize;
use url::Url;

use crate::clock::{self, Clock};
use crate::error::{Error, Reason};
use crate::events::Events;
use crate::fetch::{FetchError, Fetched, Http};

/// What to do with tokens while the feed has not been read for longer than allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Refuse them ([`Error::Unavailable`], 503): a revoked token is never accepted.
    Closed,
    /// Accept them (when signature and claims are good): the service stays up, and a token
    /// revoked meanwhile may be accepted until the feed is read again.
    Open,
}

/// How the feed is followed.
#[derive(Debug, Clone)]
pub(crate) struct FeedPolicy {
    pub interval: Duration,
    pub max_lag: Duration,
    pub fail: FailMode,
}

/// The largest page the feed serves; a full page means more are waiting.
const PAGE: usize = 1000;

/// Pages read in a row at most before the follower pauses (a feed that never ends).
const MAX_PAGES: usize = 100;

pub(crate) struct Follower {
    uri: Url,
    http: Http,
    pub policy: FeedPolicy,
    denied: ArcSwap<HashMap<String, i64>>,
    /// When the follower last read the feed to its end, in ns since the epoch (0: never); read
    /// on every verification, so an atomic rather than behind the lock.
    caught_up: AtomicU64,
    /// Where the next read starts.
    cursor: Mutex<Option<String>>,
}

#[derive(Deserialize)]
struct Page {
    revoked: Vec<Entry>,
    cursor: String,
}

#[derive(Deserialize)]
struct Entry {
    jti: String,
    exp: i64,
}

impl Follower {
    pub fn new(uri: Url, http: Http, policy: FeedPolicy) -> Self {
        Self {
            uri,
            http,
            policy,
            denied: ArcSwap::from_pointee(HashMap::new()),
            caught_up: AtomicU64::new(0),
            cursor: Mutex::new(None),
        }
    }

    /// How long since the feed was last read to its end (`None`: never).
    pub fn lag(&self, now: SystemTime) -> Option<Duration> {
        let ns = self.caught_up.load(Ordering::Acquire);
        if ns == 0 {
            return None;
        }
        let caught_up = UNIX_EPOCH + Duration::from_nanos(ns);
        Some(now.duration_since(caught_up).unwrap_or_default())
    }

    /// Refuses a revoked `jti`, and any token while the feed is too far behind in
    /// [`FailMode::Closed`].
    pub fn check(&self, jti: &str, now: SystemTime) -> Result<(), Error> {
        let behind = self.lag(now).is_none_or(|lag| lag > self.policy.max_lag);
        if behind && self.policy.fail == FailMode::Closed {
            return Err(Error::Unavailable(
                "the revocation feed has not been read recently",
            ));
        }
        if self.denied.load().contains_key(jti) {
            return Err(Error::InvalidToken(Reason::Revoked));
        }
        Ok(())
    }

    /// Reads the feed from the last cursor to its end (or [`MAX_PAGES`] pages), adds what it
    /// names and drops what has expired.
    pub async fn poll(&self, clock: &dyn Clock, events: &dyn Events) -> Result<(), FetchError> {
        let result = self.read(clock).await;
        let now = clock.now();
        match &result {
            Ok(()) => {
                let lag = self.lag(now).unwrap_or_default();
                events.revocation_feed(lag);
            }
            Err(e) => {
                tracing::warn!(uri = %self.uri, error = %e, "reading the revocation feed failed");
            }
        }
        result
    }

    async fn read(&self, clock: &dyn Clock) -> Result<(), FetchError> {
        for _ in 0..MAX_PAGES {
            let mut url = self.uri.clone();
            if let Some(cursor) = self.lock().clone() {
                url.query_pairs_mut().append_pair("after", &cursor);
            }
            let body = match self.http.get(&url, None).await? {
                Fetched::Fresh { body, .. } => body,
                Fetched::NotModified { .. } => return Err(FetchError::Status(304)),
            };
            let page: Page = serde_json::from_slice(&body)
                .map_err(|_| FetchError::Invalid("the revocation feed's page is malformed"))?;
            let now = clock::unix(clock.now());
            let full = page.revoked.len() >= PAGE;
            let current = self.denied.load();
            // A new map only when something comes or goes (most reads bring nothing).
            if !page.revoked.is_empty() || current.values().any(|exp| *exp <= now) {
                let mut denied = HashMap::clone(&current);
                denied.retain(|_, exp| *exp > now);
                for entry in page.revoked {
                    if entry.exp > now {
                        denied.insert(entry.jti, entry.exp);
                    }
                }
                self.denied.store(Arc::new(denied));
            }
            *self.lock() = Some(page.cursor);
            if !full {
                let ns = clock
                    .now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
                    .unwrap_or(1)
                    .max(1);
                self.caught_up.store(ns, Ordering::Release);
                return Ok(());
            }
        }
        Ok(())
    }

    /// Revoked tokens known and not yet expired.
    pub fn len(&self) -> usize {
        self.denied.load().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.cursor.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
