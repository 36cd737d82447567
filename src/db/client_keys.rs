//! The `client_keys` table (machine public keys per user) and `assertion_replays` (assertion
//! ids already used, until they expire).

use diesel::prelude::*;

use super::DbConn;
use super::schema::{assertion_replays, client_keys};
use crate::domain::UserId;

/// A registered machine key.
#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = client_keys)]
pub struct ClientKeyRow {
    pub id: String,
    #[diesel(deserialize_as = String, serialize_as = String)]
    pub user_id: UserId,
    pub kty: String,
    pub fingerprint: String,
    pub public_der: Vec<u8>,
    pub comment: String,
    pub created_at: i64,
}

/// Stores a key; the same fingerprint twice for one user is a unique violation.
pub fn insert(conn: &mut DbConn, row: &ClientKeyRow) -> QueryResult<()> {
    diesel::insert_into(client_keys::table)
        .values(row.clone())
        .execute(conn)
        .map(|_| ())
}

/// A user's keys, oldest first (indexed by the unique (user_id, fingerprint)).
pub fn for_user(conn: &mut DbConn, user_id: &str) -> QueryResult<Vec<ClientKeyRow>> {
    client_keys::table
        .filter(client_keys::user_id.eq(user_id))
        .order((client_keys::created_at.asc(), client_keys::id.asc()))
        .select(ClientKeyRow::as_select())
        .load(conn)
}

/// Deletes a user's key; returns whether it existed.
pub fn delete(conn: &mut DbConn, user_id: &str, id: &str) -> QueryResult<bool> {
    diesel::delete(
        client_keys::table
            .filter(client_keys::user_id.eq(user_id))
            .filter(client_keys::id.eq(id)),
    )
    .execute(conn)
    .map(|n| n > 0)
}

/// Records an assertion id as used until `expires_at`. `Ok(false)` when it was used before —
/// a replay, also when another instance recorded it first.
pub fn record_use(
    conn: &mut DbConn,
    user_id: &str,
    jti: &str,
    expires_at: i64,
) -> QueryResult<bool> {
    let result = diesel::insert_into(assertion_replays::table)
        .values((
            assertion_replays::user_id.eq(user_id),
            assertion_replays::jti.eq(jti),
            assertion_replays::expires_at.eq(expires_at),
        ))
        .execute(conn);
    match result {
        Ok(_) => Ok(true),
        Err(e) if super::is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes used assertion ids past their expiry; returns how many.
pub fn purge_expired(conn: &mut DbConn, now: i64) -> QueryResult<usize> {
    diesel::delete(assertion_replays::table.filter(assertion_replays::expires_at.le(now)))
        .execute(conn)
}
