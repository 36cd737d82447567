//! The `login_throttle` table: failed password logins per username, kept in the database so
//! the throttle holds across restarts and across instances.

use diesel::prelude::*;

use super::DbConn;
use super::schema::login_throttle;

/// Failures allowed inside one window before the username is locked.
pub const FREE_FAILURES: i32 = 5;
/// The window in which failures are counted.
pub const WINDOW_SECS: i64 = 15 * 60;
/// The first lock; each further failure doubles it, up to [`MAX_LOCK_SECS`].
pub const BASE_LOCK_SECS: i64 = 30;
/// The longest lock.
pub const MAX_LOCK_SECS: i64 = 15 * 60;

#[derive(Queryable, Selectable, Insertable, AsChangeset, Debug)]
#[diesel(table_name = login_throttle)]
struct ThrottleRow {
    username: String,
    failures: i32,
    window_start: i64,
    locked_until: i64,
}

/// Seconds until `username` may try again, or `None` when it is not locked.
pub fn locked_for(conn: &mut DbConn, username: &str, now: i64) -> QueryResult<Option<i64>> {
    let until: Option<i64> = login_throttle::table
        .find(username)
        .select(login_throttle::locked_until)
        .first(conn)
        .optional()?;
    Ok(until.filter(|&u| u > now).map(|u| u - now))
}

/// The lock that follows the `failures`-th failure inside one window.
pub fn lock_after(failures: i32) -> i64 {
    if failures < FREE_FAILURES {
        return 0;
    }
    let doublings = u32::try_from(failures - FREE_FAILURES)
        .unwrap_or(u32::MAX)
        .min(10);
    (BASE_LOCK_SECS << doublings).min(MAX_LOCK_SECS)
}

/// Records one failed login for `username`.
pub fn record_failure(conn: &mut DbConn, username: &str, now: i64) -> QueryResult<()> {
    // Two instances may record the first failure of a name at once: the loser of the insert
    // race finds the row on its second pass and updates it.
    match record_failure_once(conn, username, now) {
        Err(e) if super::is_unique_violation(&e) => record_failure_once(conn, username, now),
        other => other,
    }
}

fn record_failure_once(conn: &mut DbConn, username: &str, now: i64) -> QueryResult<()> {
    super::write_tx(conn, |conn| {
        let existing: Option<ThrottleRow> = login_throttle::table
            .find(username)
            .select(ThrottleRow::as_select())
            .first(conn)
            .optional()?;
        let row = match existing {
            Some(r) if now - r.window_start < WINDOW_SECS => {
                let failures = r.failures.saturating_add(1);
                ThrottleRow {
                    username: r.username,
                    failures,
                    window_start: r.window_start,
                    locked_until: now + lock_after(failures),
                }
            }
            _ => ThrottleRow {
                username: username.to_owned(),
                failures: 1,
                window_start: now,
                locked_until: now + lock_after(1),
            },
        };
        let updated = diesel::update(login_throttle::table.find(username))
            .set(&row)
            .execute(conn)?;
        if updated == 0 {
            diesel::insert_into(login_throttle::table)
                .values(&row)
                .execute(conn)?;
        }
        Ok(())
    })
}

/// Forgets the failures of `username` after a successful login.
pub fn clear(conn: &mut DbConn, username: &str) -> QueryResult<()> {
    diesel::delete(login_throttle::table.find(username))
        .execute(conn)
        .map(|_| ())
}

/// Deletes rows whose lock has ended and whose window has closed; returns how many.
pub fn purge_stale(conn: &mut DbConn, now: i64) -> QueryResult<usize> {
    diesel::delete(
        login_throttle::table
            .filter(login_throttle::locked_until.le(now))
            .filter(login_throttle::window_start.le(now - WINDOW_SECS)),
    )
    .execute(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_grow_and_cap() {
        assert_eq!(lock_after(1), 0);
        assert_eq!(lock_after(4), 0);
        assert_eq!(lock_after(5), 30);
        assert_eq!(lock_after(6), 60);
        assert_eq!(lock_after(9), 480);
        assert_eq!(lock_after(10), MAX_LOCK_SECS);
        assert_eq!(lock_after(i32::MAX), MAX_LOCK_SECS);
    }
}
