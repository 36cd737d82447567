//! Creating, listing and disabling users.

use anyhow::Context as _;
use serde_json::json;
use uuid::Uuid;

use crate::db::audit::{Event, EventKind};
use crate::db::users::{self, NewUser, UserRow};
use std::net::IpAddr;

use crate::db::{DbConn, is_unique_violation, write_tx};
use crate::domain::{Password, UserId};
use crate::domain::{Roles, Username};
use crate::service::Issuer;
use crate::service::credentials::CheckError;
use crate::service::passwords::HashError;
use crate::service::sessions;

/// Why a user operation failed.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("a user named {0} already exists")]
    Duplicate(String),
    #[error("no user named {0}")]
    NotFound(String),
    /// A password that may not be set; the message says which rule.
    #[error("{0}")]
    BadPassword(String),
    /// The current password given for a change is wrong.
    #[error("the current password is wrong")]
    WrongPassword,
    /// Too many failed password checks for this user.
    #[error("too many failed attempts; retry after {0} seconds")]
    Throttled(i64),
    /// Too many password hashes waiting.
    #[error("the server is busy; retry shortly")]
    Busy,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<HashError> for UserError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => Self::Busy,
            HashError::Internal(e) => Self::Internal(e),
        }
    }
}

impl From<diesel::result::Error> for UserError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Internal(anyhow::Error::new(e).context("user storage"))
    }
}

/// Stores a new user whose password is already hashed, and audits it. Returns the new row.
pub fn create(
    conn: &mut DbConn,
    username: &Username,
    password_hash: &str,
    roles: &Roles,
    actor: Option<&str>,
    now: i64,
) -> Result<UserRow, UserError> {
    let id = Uuid::new_v4().to_string();
    let t = now;
    let stored_roles = roles.to_stored();
    let new = NewUser {
        id: &id,
        username: username.as_str(),
        password_hash,
        roles: &stored_roles,
        disabled: false,
        created_at: t,
        updated_at: t,
    };
    let result = write_tx(conn, |conn| {
        users::insert(conn, &new)?;
        Event::new(EventKind::UserCreated, Some(username.as_str()), None)
            .by(actor)
            .with(json!({"roles": stored_roles}))
            .record(conn)
    });
    match result {
        Ok(()) => users::find_by_id(conn, &id)
            .context("reading the new user")?
            .context("the new user vanished")
            .map_err(UserError::Internal),
        Err(e) if is_unique_violation(&e) => Err(UserError::Duplicate(username.to_string())),
        Err(e) => Err(UserError::Internal(
            anyhow::Error::new(e).context("storing the user"),
        )),
    }
}

/// Every user.
pub fn list(conn: &mut DbConn) -> Result<Vec<UserRow>, UserError> {
    Ok(users::list(conn).context("listing users")?)
}

/// A user as shown to operators: never the password hash.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = User)]
pub struct UserView {
    #[schema(value_type = String)]
    pub id: UserId,
    pub username: String,
    pub roles: Vec<String>,
    pub disabled: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl UserView {
    /// The view of a stored user.
    pub fn of(u: &UserRow) -> Self {
        Self {
            id: u.id.clone(),
            username: u.username.clone(),
            roles: Roles::from_stored(&u.roles)
                .names()
                .map(str::to_owned)
                .collect(),
            disabled: u.disabled,
            created_at: crate::service::time::rfc3339(u.created_at),
            updated_at: crate::service::time::rfc3339(u.updated_at),
        }
    }
}

/// The user named `username`.
pub fn named(conn: &mut DbConn, username: &str) -> Result<UserRow, UserError> {
    users::find_by_username(conn, username)?.ok_or_else(|| UserError::NotFound(username.to_owned()))
}

/// A change to a user; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct UserChange {
    pub roles: Option<Roles>,
    pub disabled: Option<bool>,
}

/// Changes a user's roles and enabled state in one transaction. Disabling ends every session
/// and revokes every access token issued to them; enabling lets them log in again; new roles
/// show in their next refresh. Returns the user as stored and how many sessions ended.
pub fn update(
    conn: &mut DbConn,
    username: &str,
    change: &UserChange,
    actor: Option<&str>,
    now: i64,
) -> Result<(UserRow, usize), UserError> {
    let t = now;
    write_tx(conn, |conn| -> Result<(UserRow, usize), UserError> {
        let user = named(conn, username)?;
        let mut ended = 0;
        if let Some(roles) = &change.roles {
            let stored = roles.to_stored();
            if stored != user.roles {
                users::set_roles(conn, &user.id, &stored, t)?;
                Event::new(EventKind::UserRolesChanged, Some(username), None)
                    .by(actor)
                    .with(json!({"from": user.roles, "to": stored}))
                    .record(conn)?;
            }
        }
        match change.disabled {
            Some(true) if !user.disabled => {
                users::set_disabled(conn, &user.id, true, t)?;
                ended = sessions::end_user(conn, &user.id, "user disabled", t)?;
                Event::new(EventKind::UserDisabled, Some(username), None)
                    .by(actor)
                    .with(json!({"revoked_families": ended}))
                    .record(conn)?;
            }
            Some(false) if user.disabled => {
                users::set_disabled(conn, &user.id, false, t)?;
                Event::new(EventKind::UserEnabled, Some(username), None)
                    .by(actor)
                    .record(conn)?;
            }
            _ => {}
        }
        Ok((named(conn, username)?, ended))
    })
}

/// Disables a user (see [`update`]); returns how many sessions it ended.
pub fn disable(
    conn: &mut DbConn,
    username: &str,
    actor: Option<&str>,
    now: i64,
) -> Result<usize, UserError> {
    let change = UserChange {
        roles: None,
        disabled: Some(true),
    };
    update(conn, username, &change, actor, now).map(|(_, ended)| ended)
}

/// An operator's password reset (admin API, CLI): see [`set_password`].
pub fn reset_password(
    conn: &mut DbConn,
    user: &UserRow,
    hash: &str,
    actor: Option<&str>,
    now: i64,
) -> Result<usize, UserError> {
    set_password(conn, user, hash, EventKind::PasswordReset, actor, now)
}

/// Stores a new password hash for `user_id` and ends every session of the user (their access
/// tokens are revoked too): a password change or an admin's reset. `event` is what the audit
/// log calls it.
fn set_password(
    conn: &mut DbConn,
    user: &UserRow,
    hash: &str,
    event: EventKind,
    actor: Option<&str>,
    now: i64,
) -> Result<usize, UserError> {
    let t = now;
    write_tx(conn, |conn| -> Result<usize, UserError> {
        users::set_password_hash(conn, &user.id, hash, t)?;
        let ended = sessions::end_user(conn, &user.id, "password changed", t)?;
        Event::new(event, Some(&user.username), None)
            .by(actor)
            .with(json!({"ended_sessions": ended}))
            .record(conn)?;
        Ok(ended)
    })
}

/// `POST /me/password`: checks the current password (a wrong one counts as a failed login for
/// the throttle), applies the password policy to the new one, stores it and ends every session
/// of the user, this one included.
impl Issuer {
    /// `POST /me/password`: checks the current password (a wrong one counts as a failed login
    /// for the throttle), applies the password policy to the new one, stores it and ends
    /// every session of the user, this one included.
    pub async fn change_password(
        &self,
        user_id: &str,
        current: Password,
        new: &str,
        source: Option<IpAddr>,
    ) -> Result<(), UserError> {
        let now = self.settings.clock.now();
        let id = user_id.to_owned();
        let user = self
            .run(move |conn| -> Result<UserRow, UserError> {
                Ok(users::find_by_id(conn, &id)?.context("the caller's user is gone")?)
            })
            .await?;
        let (user, attempt) = self
            .check_password(
                &user.username,
                current,
                source,
                EventKind::PasswordChangeFailed,
            )
            .await
            .map_err(|e| match e {
                CheckError::Throttled(secs) => UserError::Throttled(secs),
                CheckError::Wrong => UserError::WrongPassword,
                CheckError::Busy => UserError::Busy,
                CheckError::Internal(e) => UserError::Internal(e),
            })?;
        // The current password was right: the attempt is given back whatever follows.
        self.db
            .run(move |conn| Ok(write_tx(conn, |conn| attempt.succeeded(conn, now))?))
            .await?;
        let new = Password::for_new_user(new, &user.username).map_err(UserError::BadPassword)?;
        let hash = self.hasher.hash(new).await?;
        let name = user.username.clone();
        self.run(move |conn| {
            set_password(
                conn,
                &user,
                &hash,
                EventKind::PasswordChanged,
                Some(&name),
                now,
            )
            .map(|_| ())
        })
        .await
    }
}
