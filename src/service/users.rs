//! Creating and listing users.

use anyhow::Context as _;
use uuid::Uuid;

use crate::db::users::{self, NewUser, UserRow};
use crate::db::{DbConn, is_unique_violation, now};
use crate::domain::{Roles, Username};

/// Why a user could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("a user named {0} already exists")]
    Duplicate(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Stores a new user whose password is already hashed. Returns the new user's id.
pub fn create(
    conn: &mut DbConn,
    username: &Username,
    password_hash: &str,
    roles: &Roles,
) -> Result<String, CreateUserError> {
    let id = Uuid::new_v4().to_string();
    let t = now();
    let stored_roles = roles.to_stored();
    let result = users::insert(
        conn,
        &NewUser {
            id: &id,
            username: username.as_str(),
            password_hash,
            roles: &stored_roles,
            disabled: false,
            created_at: t,
            updated_at: t,
        },
    );
    match result {
        Ok(()) => Ok(id),
        Err(e) if is_unique_violation(&e) => Err(CreateUserError::Duplicate(username.to_string())),
        Err(e) => Err(CreateUserError::Internal(
            anyhow::Error::new(e).context("storing the user"),
        )),
    }
}

/// Every user.
pub fn list(conn: &mut DbConn) -> anyhow::Result<Vec<UserRow>> {
    users::list(conn).context("listing users")
}
