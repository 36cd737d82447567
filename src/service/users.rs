//! Creating, listing and disabling users.

use anyhow::Context as _;
use serde_json::json;
use uuid::Uuid;

use crate::db::audit::Event;
use crate::db::users::{self, NewUser, UserRow};
use crate::db::{DbConn, is_unique_violation, now, write_tx};
use crate::domain::{Roles, Username};
use crate::service::sessions;

/// Why a user operation failed.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("a user named {0} already exists")]
    Duplicate(String),
    #[error("no user named {0}")]
    NotFound(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
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
) -> Result<UserRow, UserError> {
    let id = Uuid::new_v4().to_string();
    let t = now();
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
        Event::new("user_created", Some(username.as_str()), None)
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
pub fn list(conn: &mut DbConn) -> anyhow::Result<Vec<UserRow>> {
    users::list(conn).context("listing users")
}

/// Disables a user and revokes all their refresh families, in one transaction. Returns how many
/// families were revoked.
pub fn disable(conn: &mut DbConn, username: &str, actor: Option<&str>) -> Result<usize, UserError> {
    let t = now();
    write_tx(conn, |conn| -> Result<usize, UserError> {
        let user_id = users::disable(conn, username, t)
            .context("disabling the user")?
            .ok_or_else(|| UserError::NotFound(username.to_owned()))?;
        let revoked = sessions::end_user(conn, &user_id, "user disabled", t)
            .context("revoking the user's refresh tokens")?;
        Event::new("user_disabled", Some(username), None)
            .by(actor)
            .with(json!({"revoked_families": revoked}))
            .record(conn)
            .context("auditing")?;
        Ok(revoked)
    })
}
