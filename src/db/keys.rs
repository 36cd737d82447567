//! The `signing_keys` table: every signing key ever made, its encrypted private half, its
//! state and the time of each transition. Rows are never deleted; each transition time is
//! written once.

use diesel::prelude::*;
use diesel::sql_types::BigInt;

use super::DbConn;
use super::schema::signing_keys;
use crate::domain::{Alg, KeyState, Kid};

/// A stored signing key.
#[derive(Queryable, Selectable, Insertable, Clone)]
#[diesel(table_name = signing_keys)]
pub struct KeyRow {
    #[diesel(deserialize_as = String, serialize_as = String)]
    pub kid: Kid,
    #[diesel(deserialize_as = String, serialize_as = String)]
    pub alg: Alg,
    #[diesel(deserialize_as = String, serialize_as = String)]
    pub state: KeyState,
    pub public_der: Vec<u8>,
    pub private_enc: Vec<u8>,
    pub kek_id: String,
    pub created_at: i64,
    pub activated_at: Option<i64>,
    pub retired_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// The order of creation; assigned by [`insert`].
    pub seq: i64,
}

impl std::fmt::Debug for KeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRow")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// Serialises key-management transactions across instances. SQLite's `BEGIN IMMEDIATE`
/// already does; PostgreSQL takes a transaction-scoped advisory lock.
pub fn lock_key_table(conn: &mut DbConn) -> QueryResult<()> {
    /// An arbitrary constant naming "the signing keys" among advisory locks.
    const KEYS_LOCK: i64 = 0x6a77_745f_6b65_7973;
    if let DbConn::Pg(pg) = conn {
        diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
            .bind::<BigInt, _>(KEYS_LOCK)
            .execute(pg)?;
    }
    Ok(())
}

/// Inserts a new key, numbering it after every existing one. Call it under
/// [`lock_key_table`], which keeps the numbers strictly increasing across instances.
pub fn insert(conn: &mut DbConn, row: &KeyRow) -> QueryResult<()> {
    use diesel::dsl::max;
    let last: Option<i64> = signing_keys::table
        .select(max(signing_keys::seq))
        .get_result(conn)?;
    let row = KeyRow {
        seq: last.unwrap_or(0) + 1,
        ..row.clone()
    };
    diesel::insert_into(signing_keys::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// Every key, oldest first: the rotation history.
pub fn list(conn: &mut DbConn) -> QueryResult<Vec<KeyRow>> {
    signing_keys::table
        .order(signing_keys::seq.asc())
        .select(KeyRow::as_select())
        .load(conn)
}

/// Keys in the given states, oldest first.
pub fn in_states(conn: &mut DbConn, states: &[KeyState]) -> QueryResult<Vec<KeyRow>> {
    let names: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
    signing_keys::table
        .filter(signing_keys::state.eq_any(names))
        .order(signing_keys::seq.asc())
        .select(KeyRow::as_select())
        .load(conn)
}

/// Makes `kid` (a `next` key) the active key at time `t`.
pub fn activate(conn: &mut DbConn, kid: &str, t: i64) -> QueryResult<()> {
    diesel::update(
        signing_keys::table
            .filter(signing_keys::kid.eq(kid))
            .filter(signing_keys::state.eq(KeyState::Next.as_str())),
    )
    .set((
        signing_keys::state.eq(KeyState::Active.as_str()),
        signing_keys::activated_at.eq(t),
    ))
    .execute(conn)
    .map(|_| ())
}

/// The published keys: `next`, `active`, and `retired` ones retired after `retired_after`.
pub fn published(conn: &mut DbConn, retired_after: i64) -> QueryResult<Vec<KeyRow>> {
    signing_keys::table
        .filter(
            signing_keys::state
                .eq_any([KeyState::Next.as_str(), KeyState::Active.as_str()])
                .or(signing_keys::state
                    .eq(KeyState::Retired.as_str())
                    .and(signing_keys::retired_at.gt(retired_after))),
        )
        .order(signing_keys::seq.asc())
        .select(KeyRow::as_select())
        .load(conn)
}

/// One key by kid.
pub fn find(conn: &mut DbConn, kid: &str) -> QueryResult<Option<KeyRow>> {
    signing_keys::table
        .find(kid)
        .select(KeyRow::as_select())
        .get_result(conn)
        .optional()
}

/// Moves `kid` from `active` or `next` to `retired` at time `t`.
pub fn retire(conn: &mut DbConn, kid: &str, t: i64) -> QueryResult<()> {
    diesel::update(
        signing_keys::table
            .filter(signing_keys::kid.eq(kid))
            .filter(
                signing_keys::state.eq_any([KeyState::Active.as_str(), KeyState::Next.as_str()]),
            ),
    )
    .set((
        signing_keys::state.eq(KeyState::Retired.as_str()),
        signing_keys::retired_at.eq(t),
    ))
    .execute(conn)
    .map(|_| ())
}

/// Moves `kid` from any other state to `revoked` at time `t`.
pub fn revoke(conn: &mut DbConn, kid: &str, t: i64) -> QueryResult<()> {
    diesel::update(
        signing_keys::table
            .filter(signing_keys::kid.eq(kid))
            .filter(signing_keys::state.ne(KeyState::Revoked.as_str())),
    )
    .set((
        signing_keys::state.eq(KeyState::Revoked.as_str()),
        signing_keys::revoked_at.eq(t),
    ))
    .execute(conn)
    .map(|_| ())
}

/// Stores `kid`'s private key encrypted anew, under the KEK `kek_id`.
pub fn set_private(
    conn: &mut DbConn,
    kid: &str,
    private_enc: &[u8],
    kek_id: &str,
) -> QueryResult<()> {
    diesel::update(signing_keys::table.find(kid))
        .set((
            signing_keys::private_enc.eq(private_enc),
            signing_keys::kek_id.eq(kek_id),
        ))
        .execute(conn)
        .map(|_| ())
}

/// How many stored keys each KEK encrypted, by KEK id.
pub fn count_by_kek(conn: &mut DbConn) -> QueryResult<Vec<(String, i64)>> {
    signing_keys::table
        .group_by(signing_keys::kek_id)
        .select((signing_keys::kek_id, diesel::dsl::count_star()))
        .load(conn)
}
