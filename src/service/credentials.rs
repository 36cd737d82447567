//! Checking a user's password, the one way every password check goes (logins, and the current
//! password of a change): the attempt is counted by the throttle before the hash, an unknown
//! user costs a dummy hash, a failure is audited, and a hasher that could not check gives the
//! attempt back.

use std::net::IpAddr;

use crate::db::audit::{Event, EventKind};
use crate::db::throttle::{self, Reserved};
use crate::db::users::UserRow;
use crate::domain::Password;
use crate::service::Issuer;
use crate::service::passwords::HashError;
use crate::service::throttle::Attempt;

/// Why a password check failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Too many failures: retry after this many seconds.
    #[error("too many failed attempts; retry after {0} seconds")]
    Throttled(i64),
    /// No enabled user by that name, or the wrong password (the caller cannot tell which).
    #[error("invalid username or password")]
    Wrong,
    /// Too many hashes waiting.
    #[error("the server is busy; retry shortly")]
    Busy,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl Issuer {
    /// Checks `password` for `username` from `source`. On success the user and the attempt
    /// are returned: the caller gives the attempt back ([`Attempt::succeeded`]) in the
    /// transaction that acts on the success. A failure is audited as `failed`.
    pub async fn check_password(
        &self,
        username: &str,
        password: Password,
        source: Option<IpAddr>,
        failed: EventKind,
    ) -> Result<(UserRow, Attempt), CheckError> {
        let limits = self.settings.throttle;
        let attempt = Attempt::new(&limits, username, source);
        let t = self.settings.clock.now();
        let reservation = attempt.reservation(&limits, t, username);
        // Counted before the hash: parallel guesses cannot outrun the throttle. On PostgreSQL
        // with concurrent logins' reservations, in one statement ([`crate::db::batch`]).
        let reserved = self
            .db
            .batched(
                |b| &b.reservations,
                reservation,
                self.hasher.linger(),
                throttle::reserve,
            )
            .await?;
        let source = source.map(|ip| ip.to_string());
        let user = match reserved {
            Reserved::Counted(user) => user,
            Reserved::Throttled(secs) => {
                tracing::warn!(?source, "password check refused: throttled");
                self.record(Event::new(
                    EventKind::LoginThrottled,
                    Some(username),
                    source.as_deref(),
                ))
                .await?;
                return Err(CheckError::Throttled(secs));
            }
        };
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        let matched = match self.hasher.verify(password, stored).await {
            Ok(matched) => matched,
            Err(e) => {
                // Nothing was checked: the reservation is not a failure.
                self.db
                    .run(move |conn| Ok(attempt.cancel(conn, t)?))
                    .await?;
                return Err(match e {
                    HashError::Busy => CheckError::Busy,
                    HashError::Internal(e) => CheckError::Internal(e),
                });
            }
        };
        match user {
            Some(u) if matched && !u.disabled => Ok((u, attempt)),
            _ => {
                // The reservation stands as the failure.
                tracing::warn!(?source, "password check failed");
                self.record(Event::new(failed, Some(username), source.as_deref()))
                    .await?;
                Err(CheckError::Wrong)
            }
        }
    }

    /// Appends an audit event, off the async workers.
    pub async fn record(&self, event: Event) -> anyhow::Result<()> {
        self.db.run(move |conn| Ok(event.record(conn)?)).await
    }
}
