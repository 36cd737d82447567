//! The `login_attempts` table: password attempts counted per key (a username and address, an
//! address, a username), kept in the database so the throttle holds across restarts and across
//! instances.
//!
//! An attempt is *reserved* before its password is hashed: in one write transaction every key
//! is checked for a lock and, when none is locked, counted as a failure (locking the keys that
//! reach their limit). A successful login gives its reservation back. So N parallel guesses
//! cannot all slip in before the first failure is recorded: at most `limit` of them are ever
//! hashed. On PostgreSQL the keys are serialised with transaction-scoped advisory locks, taken
//! in a fixed order; on SQLite the write transaction holds the database lock.

use diesel::prelude::*;
use diesel::sql_types::Text;

use super::schema::login_attempts;
use super::{DbConn, write_tx};

/// The first lock; each further failure beyond the limit doubles it, up to [`MAX_LOCK_SECS`].
pub const BASE_LOCK_SECS: i64 = 30;
/// The longest lock.
pub const MAX_LOCK_SECS: i64 = 15 * 60;

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = login_attempts)]
struct AttemptRow {
    key: String,
    failures: i32,
    window_start: i64,
    locked_until: i64,
}

/// One counted key and the failures it allows inside a window before it locks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    pub key: String,
    pub limit: i32,
}

/// The lock that follows the `failures`-th failure inside one window, for a key allowing
/// `limit`.
pub fn lock_after(failures: i32, limit: i32) -> i64 {
    if failures < limit {
        return 0;
    }
    let doublings = u32::try_from(failures - limit).unwrap_or(u32::MAX).min(10);
    (BASE_LOCK_SECS << doublings).min(MAX_LOCK_SECS)
}

/// Serialises transactions on these keys (PostgreSQL; SQLite's write lock already does).
fn lock_keys(conn: &mut DbConn, counters: &[Counter]) -> QueryResult<()> {
    if let DbConn::Pg(pg) = conn {
        let mut keys: Vec<&str> = counters.iter().map(|c| c.key.as_str()).collect();
        keys.sort_unstable();
        for key in keys {
            diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))")
                .bind::<Text, _>(key)
                .execute(pg)?;
        }
    }
    Ok(())
}

fn rows(conn: &mut DbConn, counters: &[Counter]) -> QueryResult<Vec<AttemptRow>> {
    let keys: Vec<&str> = counters.iter().map(|c| c.key.as_str()).collect();
    login_attempts::table
        .filter(login_attempts::key.eq_any(keys))
        .select(AttemptRow::as_select())
        .load(conn)
}

fn store(conn: &mut DbConn, row: &AttemptRow, existed: bool) -> QueryResult<()> {
    if existed {
        diesel::update(login_attempts::table.find(&row.key))
            .set((
                login_attempts::failures.eq(row.failures),
                login_attempts::window_start.eq(row.window_start),
                login_attempts::locked_until.eq(row.locked_until),
            ))
            .execute(conn)?;
    } else {
        diesel::insert_into(login_attempts::table)
            .values(row)
            .execute(conn)?;
    }
    Ok(())
}

/// Reserves one attempt on every counter: `Some(seconds)` when a key is locked (nothing is
/// counted then), else `None` after counting the attempt as a failure on each key.
pub fn reserve(
    conn: &mut DbConn,
    counters: &[Counter],
    window: i64,
    now: i64,
) -> QueryResult<Option<i64>> {
    write_tx(conn, |conn| {
        lock_keys(conn, counters)?;
        let stored = rows(conn, counters)?;
        if let Some(wait) = stored
            .iter()
            .filter(|r| r.locked_until > now)
            .map(|r| r.locked_until - now)
            .max()
        {
            return Ok(Some(wait));
        }
        for counter in counters {
            let existing = stored.iter().find(|r| r.key == counter.key);
            let (failures, window_start) = match existing {
                Some(r) if now - r.window_start < window => {
                    (r.failures.saturating_add(1), r.window_start)
                }
                _ => (1, now),
            };
            let lock = lock_after(failures, counter.limit);
            let row = AttemptRow {
                key: counter.key.clone(),
                failures,
                window_start,
                locked_until: if lock > 0 { now + lock } else { 0 },
            };
            store(conn, &row, existing.is_some())?;
        }
        Ok(None)
    })
}

/// Gives back a reservation whose attempt succeeded: each counter drops by one (unlocking it
/// when it falls under its limit); the `forget` keys are deleted outright.
pub fn release(
    conn: &mut DbConn,
    counters: &[Counter],
    forget: &[&str],
    _now: i64,
) -> QueryResult<()> {
    write_tx(conn, |conn| {
        lock_keys(conn, counters)?;
        for row in rows(conn, counters)? {
            if forget.contains(&row.key.as_str()) {
                diesel::delete(login_attempts::table.find(&row.key)).execute(conn)?;
                continue;
            }
            let Some(counter) = counters.iter().find(|c| c.key == row.key) else {
                continue;
            };
            let failures = (row.failures - 1).max(0);
            let locked_until = if failures < counter.limit {
                0
            } else {
                row.locked_until
            };
            store(
                conn,
                &AttemptRow {
                    failures,
                    locked_until,
                    ..row
                },
                true,
            )?;
        }
        Ok(())
    })
}

/// Seconds until any of `counters` may try again, or `None` when none is locked.
pub fn locked_for(conn: &mut DbConn, counters: &[Counter], now: i64) -> QueryResult<Option<i64>> {
    Ok(rows(conn, counters)?
        .iter()
        .filter(|r| r.locked_until > now)
        .map(|r| r.locked_until - now)
        .max())
}

/// Deletes rows whose lock has ended and whose window has closed; returns how many.
pub fn purge_stale(conn: &mut DbConn, window: i64, now: i64) -> QueryResult<usize> {
    diesel::delete(
        login_attempts::table
            .filter(login_attempts::locked_until.le(now))
            .filter(login_attempts::window_start.le(now - window)),
    )
    .execute(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_grow_and_cap() {
        assert_eq!(lock_after(1, 5), 0);
        assert_eq!(lock_after(4, 5), 0);
        assert_eq!(lock_after(5, 5), 30);
        assert_eq!(lock_after(6, 5), 60);
        assert_eq!(lock_after(9, 5), 480);
        assert_eq!(lock_after(10, 5), MAX_LOCK_SECS);
        assert_eq!(lock_after(i32::MAX, 5), MAX_LOCK_SECS);
        assert_eq!(lock_after(20, 20), 30);
    }
}
