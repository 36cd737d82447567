//! Metrics hooks: what the verifier does, told to a [`Events`] implementation of yours (and to
//! `tracing`, always), with no dependency on a metrics crate.

use crate::fetch::FetchError;

/// How a JWK Set fetch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    /// A new key set (200) with this many usable keys.
    Updated {
        /// Usable keys in the new set.
        keys: usize,
    },
    /// 304: the keys we have are current; their freshness was extended.
    NotModified,
    /// The fetch failed; the last good set stays (within `max_stale`).
    Failed(FetchError),
    /// The answer was not a usable set (malformed, or no usable key); the last good set stays.
    Rejected(&'static str),
}

/// What became of a token whose `kid` was not in the key set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownKid {
    /// Found after a (shared) refetch.
    Found,
    /// Still unknown after a refetch: rejected, and remembered for a while.
    NotFound,
    /// Rejected at once: refetches were rate-limited.
    Limited,
    /// Rejected at once: still unknown after a recent refetch.
    RecentlyNotFound,
}

/// Receives the verifier's events. Every method has an empty default.
pub trait Events: Send + Sync + 'static {
    /// A JWK Set fetch ended.
    fn jwks_fetch(&self, _outcome: &FetchOutcome) {}
    /// A token was checked against keys past their freshness (the issuer could not be reached
    /// to revalidate them), within `max_stale`.
    fn stale_keys_used(&self) {}
    /// A token named a `kid` the key set did not have.
    fn unknown_kid(&self, _outcome: UnknownKid) {}
    /// The revocation feed was read; `lag` is how long since it was last read to its end
    /// (zero when this read got there).
    fn revocation_feed(&self, _lag: std::time::Duration) {}
}

/// No hooks.
pub(crate) struct NoEvents;

impl Events for NoEvents {}
