//! Sessions: a session is one refresh-token family, from a login to its end. Ending one — a
//! logout, "log out everywhere", a password change or reset, a disabled user, a reused refresh
//! token — revokes its refresh tokens *and* the access tokens issued from it, which then
//! introspect inactive and appear in the revocation feed, so resource servers following the
//! feed drop them too.

use serde::Serialize;
use serde_json::json;

use crate::db::audit::{Event, EventKind};
use crate::db::refresh::{self, FamilyRow};
use crate::db::users::{self, UserRow};
use crate::db::{DbConn, revocations, write_tx};
use crate::service::time::rfc3339;

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No live session by that id for this user (someone else's looks the same).
    #[error("no session {0}")]
    NotFound(String),
    #[error("no user named {0}")]
    UnknownUser(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<diesel::result::Error> for SessionError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Internal(anyhow::Error::new(e).context("session storage"))
    }
}

/// A session as shown to its user and to operators.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Session)]
pub struct SessionView {
    pub id: String,
    pub client_id: String,
    pub created_at: String,
    pub last_used_at: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// Whether the caller's own access token came from it.
    pub current: bool,
}

impl SessionView {
    fn of(f: FamilyRow, current: Option<&str>) -> Self {
        Self {
            current: current == Some(f.id.as_str()),
            last_used_at: rfc3339(f.last_used_at.unwrap_or(f.created_at)),
            created_at: rfc3339(f.created_at),
            id: f.id,
            client_id: f.client_id,
            ip: f.source,
            user_agent: f.user_agent,
        }
    }
}

/// Ends one session: revokes its family and denies the live access tokens issued from it.
/// Returns whether a live family was revoked (a second call changes nothing).
pub fn end_family(
    conn: &mut DbConn,
    family_id: &str,
    reason: &str,
    t: i64,
) -> diesel::QueryResult<bool> {
    write_tx(conn, |conn| {
        let revoked = refresh::revoke_family(conn, family_id, reason, t)?;
        let access = refresh::live_access_of_family(conn, family_id, t)?;
        revocations::deny_all(conn, &access, t)?;
        Ok(revoked)
    })
}

/// Ends every session of a user and denies every live access token issued to them (machine
/// logins included). Returns how many sessions ended.
pub fn end_user(
    conn: &mut DbConn,
    user_id: &str,
    reason: &str,
    t: i64,
) -> diesel::QueryResult<usize> {
    write_tx(conn, |conn| {
        let ended = refresh::revoke_user_families(conn, user_id, reason, t)?;
        let access = refresh::live_access_of_user(conn, user_id, t)?;
        revocations::deny_all(conn, &access, t)?;
        Ok(ended)
    })
}

/// The live sessions of a user, oldest first; `current_jti` marks the one the caller's access
/// token came from.
pub fn list(
    conn: &mut DbConn,
    user_id: &str,
    current_jti: Option<&str>,
    now: i64,
) -> Result<Vec<SessionView>, SessionError> {
    let current = match current_jti {
        Some(jti) => refresh::family_of_access_token(conn, jti)?,
        None => None,
    };
    Ok(refresh::live_families_of_user(conn, user_id, now)?
        .into_iter()
        .map(|f| SessionView::of(f, current.as_deref()))
        .collect())
}

/// Ends one live session of `user_id`, auditing it as done by `actor` to `username`.
pub fn end(
    conn: &mut DbConn,
    user_id: &str,
    username: &str,
    session_id: &str,
    actor: &str,
    now: i64,
) -> Result<(), SessionError> {
    let t = now;
    write_tx(conn, |conn| -> Result<(), SessionError> {
        let owned = refresh::live_families_of_user(conn, user_id, t)?
            .iter()
            .any(|f| f.id == session_id);
        if !owned || !end_family(conn, session_id, "logout", t)? {
            return Err(SessionError::NotFound(session_id.to_owned()));
        }
        Event::new(EventKind::SessionEnded, Some(username), None)
            .by(actor)
            .with(json!({"session": session_id}))
            .record(conn)?;
        Ok(())
    })
}

/// Ends every session of `user_id` ("log out everywhere"); returns how many ended.
pub fn end_all(
    conn: &mut DbConn,
    user_id: &str,
    username: &str,
    actor: &str,
    now: i64,
) -> Result<usize, SessionError> {
    let t = now;
    write_tx(conn, |conn| -> Result<usize, SessionError> {
        let ended = end_user(conn, user_id, "logout everywhere", t)?;
        Event::new(EventKind::SessionsEnded, Some(username), None)
            .by(actor)
            .with(json!({"sessions": ended}))
            .record(conn)?;
        Ok(ended)
    })
}

/// The user named `username`, for the admin endpoints and the CLI.
pub fn user_named(conn: &mut DbConn, username: &str) -> Result<UserRow, SessionError> {
    users::find_by_username(conn, username)?
        .ok_or_else(|| SessionError::UnknownUser(username.to_owned()))
}
