//! The `revoked_access_tokens` table: the deny list of access token ids (`jti`) until their
//! `exp`, and the feed resource servers follow to keep their own copy.

use diesel::prelude::*;
use diesel::sql_types::BigInt;

use super::schema::revoked_access_tokens as rat;
use super::{DbConn, write_tx};

/// One entry of the feed.
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = rat)]
pub struct Revoked {
    pub seq: i64,
    pub jti: String,
    pub exp: i64,
}

#[derive(Insertable)]
#[diesel(table_name = rat)]
struct NewRevoked<'a> {
    jti: &'a str,
    exp: i64,
    revoked_at: i64,
}

/// Denies `jti` until `exp`. Idempotent.
pub fn deny(conn: &mut DbConn, jti: &str, exp: i64, now: i64) -> QueryResult<()> {
    deny_all(conn, &[(jti.to_owned(), exp)], now).map(|_| ())
}

/// Denies each `(jti, exp)` not denied yet, in one transaction; returns how many were new.
/// Insertions are serialised (an advisory lock on PostgreSQL, the write lock on SQLite) so that
/// they commit in `seq` order: a feed reader that has seen `seq` N has seen every entry below N.
pub fn deny_all(conn: &mut DbConn, tokens: &[(String, i64)], now: i64) -> QueryResult<usize> {
    /// An arbitrary constant naming "the revocation feed" among advisory locks.
    const FEED_LOCK: i64 = 0x6a77_745f_6665_6564;
    if tokens.is_empty() {
        return Ok(0);
    }
    write_tx(conn, |conn| {
        if let DbConn::Pg(pg) = conn {
            diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
                .bind::<BigInt, _>(FEED_LOCK)
                .execute(pg)?;
        }
        let mut added = 0;
        for (jti, exp) in tokens {
            if is_denied(conn, jti)? {
                continue;
            }
            diesel::insert_into(rat::table)
                .values(&NewRevoked {
                    jti,
                    exp: *exp,
                    revoked_at: now,
                })
                .execute(conn)?;
            added += 1;
        }
        Ok(added)
    })
}

/// Whether `jti` is denied (one indexed lookup).
pub fn is_denied(conn: &mut DbConn, jti: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(rat::table.filter(rat::jti.eq(jti)))).get_result(conn)
}

/// Entries after `after`, not yet expired, oldest first; and the highest `seq` stored (so an
/// empty page can still move the cursor forward).
pub fn feed(
    conn: &mut DbConn,
    after: i64,
    limit: i64,
    now: i64,
) -> QueryResult<(Vec<Revoked>, i64)> {
    let top: Option<i64> = rat::table
        .select(diesel::dsl::max(rat::seq))
        .get_result(conn)?;
    let rows = rat::table
        .filter(rat::seq.gt(after))
        .filter(rat::exp.gt(now))
        .order(rat::seq.asc())
        .limit(limit)
        .select(Revoked::as_select())
        .load(conn)?;
    Ok((rows, top.unwrap_or(0)))
}

/// Deletes entries whose token has expired; returns how many.
pub fn purge_expired(conn: &mut DbConn, now: i64, limit: i64) -> QueryResult<usize> {
    let chunk: Vec<i64> = rat::table
        .filter(rat::exp.le(now))
        .select(rat::seq)
        .limit(limit)
        .load(conn)?;
    diesel::delete(rat::table.filter(rat::seq.eq_any(chunk))).execute(conn)
}

/// Revoked access tokens not yet expired.
pub fn count_live(conn: &mut DbConn, now: i64) -> QueryResult<i64> {
    rat::table.filter(rat::exp.gt(now)).count().get_result(conn)
}
