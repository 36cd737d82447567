//! The `users` table.

use diesel::prelude::*;

use super::schema::users;
use super::{DbConn, on_backend};
use crate::domain::UserId;

/// A stored user.
#[derive(Queryable, Selectable, Clone)]
#[diesel(table_name = users)]
pub struct UserRow {
    #[diesel(deserialize_as = String)]
    pub id: UserId,
    pub username: String,
    pub password_hash: String,
    pub roles: String,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

// The hash is not a secret in the cryptographic sense, but it has no business in logs.
impl std::fmt::Debug for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("roles", &self.roles)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// A user to insert.
#[derive(Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub id: &'a str,
    pub username: &'a str,
    pub password_hash: &'a str,
    pub roles: &'a str,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Inserts a user; a duplicate username is a unique violation.
pub fn insert(conn: &mut DbConn, user: &NewUser<'_>) -> QueryResult<()> {
    diesel::insert_into(users::table)
        .values(user)
        .execute(conn)
        .map(|_| ())
}

/// Looks a user up by username (an indexed lookup).
pub fn find_by_username(conn: &mut DbConn, username: &str) -> QueryResult<Option<UserRow>> {
    on_backend!(conn, |c| {
        users::table
            .filter(users::username.eq(username))
            .select(UserRow::as_select())
            .get_result(c)
            .optional()
    })
}

/// Looks a user up by id.
pub fn find_by_id(conn: &mut DbConn, id: &str) -> QueryResult<Option<UserRow>> {
    users::table
        .find(id)
        .select(UserRow::as_select())
        .get_result(conn)
        .optional()
}

/// Every user, by username.
pub fn list(conn: &mut DbConn) -> QueryResult<Vec<UserRow>> {
    users::table
        .order(users::username.asc())
        .select(UserRow::as_select())
        .load(conn)
}

/// How many users exist.
pub fn count(conn: &mut DbConn) -> QueryResult<i64> {
    users::table.count().get_result(conn)
}

/// Sets a user's `disabled` flag at time `t`; returns whether the user exists.
pub fn set_disabled(conn: &mut DbConn, id: &str, disabled: bool, t: i64) -> QueryResult<bool> {
    diesel::update(users::table.find(id))
        .set((users::disabled.eq(disabled), users::updated_at.eq(t)))
        .execute(conn)
        .map(|n| n > 0)
}

/// Replaces a user's roles (stored form) at time `t`.
pub fn set_roles(conn: &mut DbConn, id: &str, roles: &str, t: i64) -> QueryResult<bool> {
    diesel::update(users::table.find(id))
        .set((users::roles.eq(roles), users::updated_at.eq(t)))
        .execute(conn)
        .map(|n| n > 0)
}

/// Replaces a user's password hash at time `t`.
pub fn set_password_hash(conn: &mut DbConn, id: &str, hash: &str, t: i64) -> QueryResult<bool> {
    diesel::update(users::table.find(id))
        .set((users::password_hash.eq(hash), users::updated_at.eq(t)))
        .execute(conn)
        .map(|n| n > 0)
}
