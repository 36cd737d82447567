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
//!
//! On PostgreSQL the reservations of concurrent logins, and their releases with the sessions
//! they start, are each one call of a function (`reserve_login_attempts`,
//! `start_login_sessions`, migration `2026-11-29-000013_login_batches`, [`super::batch`]),
//! one round trip for many logins instead of five and ten for each: the same rules as
//! [`reserve`] and [`release`] here, which SQLite runs. Change them together; the throttle's
//! HTTP tests run against both backends. The reservation commits there without waiting for its
//! WAL flush (since migration `2026-11-27-000012_reserve_without_flush_wait`): the advisory locks
//! are held until the commit ends, and two fsyncs in a row under them, the reservation's and
//! the session's, were what every login of one address waited for. A crash of PostgreSQL may
//! forget the failures counted in its last moments; the session's commit stays durable.

use diesel::backend::Backend;
use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment};
use diesel::serialize::ToSql;
use diesel::sql_types::{Array, BigInt, Bool, Integer, Nullable, Text};

use super::batch::Batched;
use super::schema::login_attempts;
use super::users::{self, UserRow};
use super::{DbConn, binds, kept_prepared, on_backend, postgres_only, write_tx};

/// The first lock; each further failure beyond the limit doubles it, up to [`MAX_LOCK_SECS`].
pub const BASE_LOCK_SECS: i64 = 30;
/// The longest lock.
pub const MAX_LOCK_SECS: i64 = 15 * 60;

#[derive(Queryable, Selectable, Debug, Clone)]
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

/// The keys of one attempt: every function here takes all of them at once, so that each
/// statement has one shape, prepared once per connection.
pub type Counters = [Counter; 3];

/// Serialises transactions on these keys (PostgreSQL; SQLite's write lock already does), in
/// one statement taking the locks in a fixed order (`login_lock_keys`, which the login
/// functions of PostgreSQL take too).
fn lock_keys(conn: &mut DbConn, counters: &Counters) -> QueryResult<()> {
    if let DbConn::Pg(pg) = conn {
        LockKeys(keys(counters)).execute(pg)?;
    }
    Ok(())
}

pub(super) fn keys(counters: &Counters) -> Vec<&str> {
    counters.iter().map(|c| c.key.as_str()).collect()
}

pub(super) fn limits(counters: &Counters) -> Vec<i32> {
    counters.iter().map(|c| c.limit).collect()
}

/// `lock_keys`'s statement. Each statement here has its own type, rather than `sql_query`
/// (which diesel never keeps prepared), so that each connection parses and plans it once:
/// parsing them anew at every login was a measurable part of PostgreSQL's work in a login
/// flood.
struct LockKeys<'a>(Vec<&'a str>);

kept_prepared!(LockKeys);

impl QueryFragment<Pg> for LockKeys<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("SELECT login_lock_keys(");
        out.push_bind_param::<Array<Text>, _>(&self.0)?;
        out.push_sql(")");
        Ok(())
    }
}

impl RunQueryDsl<PgConnection> for LockKeys<'_> {}

/// One attempt to reserve ([`reserve`]), as an item of a batch.
#[derive(Debug, Clone)]
pub struct Reservation {
    pub counters: Counters,
    pub window: i64,
    pub now: i64,
    pub username: String,
}

/// Reservations on PostgreSQL, many in one call of `reserve_login_attempts` (migration
/// 000013, [`super::batch`]), in order: items sharing keys each see the counts of those before
/// them. Each batch is a transaction of its own, which the function makes commit without
/// waiting for its flush.
pub struct Reservations;

impl Batched for Reservations {
    type Item = Reservation;
    type Output = Reserved;
    const NAME: &'static str = "pg-login-reserve";

    fn run(conn: &mut DbConn, items: &[Reservation]) -> QueryResult<Vec<Reserved>> {
        let DbConn::Pg(pg) = conn else {
            return Err(postgres_only());
        };
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let depth = AnsiTransactionManager::transaction_manager_status_mut(pg).transaction_depth();
        if depth?.is_some() {
            return Err(diesel::result::Error::QueryBuilderError(
                "reservations run in a transaction of their own".into(),
            ));
        }
        // The window is the service's setting: one per batch.
        let window = items[0].window;
        if items.iter().any(|r| r.window != window) {
            return Err(diesel::result::Error::QueryBuilderError(
                "the reservations of one batch share their window".into(),
            ));
        }
        let rows = ReserveCall {
            keys: items.iter().flat_map(|r| keys(&r.counters)).collect(),
            limits: items.iter().flat_map(|r| limits(&r.counters)).collect(),
            window,
            now: items.iter().map(|r| r.now).collect(),
            usernames: items.iter().map(|r| r.username.as_str()).collect(),
        }
        .load::<(i32, Option<i64>, Option<UserRow>)>(pg)?;
        let mut found: Vec<Option<Reserved>> = items.iter().map(|_| None).collect();
        for (item, wait, user) in rows {
            let slot = usize::try_from(item - 1)
                .ok()
                .and_then(|i| found.get_mut(i))
                .ok_or_else(|| diesel::result::Error::QueryBuilderError("no such item".into()))?;
            *slot = Some(match wait {
                Some(wait) => Reserved::Throttled(wait),
                None => Reserved::Counted(user),
            });
        }
        found
            .into_iter()
            .map(|r| r.ok_or(diesel::result::Error::NotFound))
            .collect()
    }
}

/// [`Reservations`]' statement: `reserve_login_attempts` joined to each item's user, whose row
/// is returned only when nothing is locked. The function runs first, whole (a set-returning
/// PL/pgSQL function is read into a tuple store), so every user is read after the counting.
struct ReserveCall<'a> {
    keys: Vec<&'a str>,
    limits: Vec<i32>,
    window: i64,
    now: Vec<i64>,
    usernames: Vec<&'a str>,
}

kept_prepared!(ReserveCall);

impl Query for ReserveCall<'_> {
    type SqlType = (
        Integer,
        Nullable<BigInt>,
        Nullable<(Text, Text, Text, Text, Bool, BigInt, BigInt)>,
    );
}

impl QueryFragment<Pg> for ReserveCall<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(
            "SELECT r.item, r.wait, u.id, u.username, u.password_hash, u.roles, u.disabled, \
             u.created_at, u.updated_at FROM reserve_login_attempts(",
        );
        binds!(out:
            Array<Text> = &self.keys,
            Array<Integer> = &self.limits,
            BigInt = &self.window,
            Array<BigInt> = &self.now,
            BigInt = &BASE_LOCK_SECS,
            BigInt = &MAX_LOCK_SECS,
        );
        out.push_sql(") AS r(item, wait) LEFT JOIN users u ON r.wait IS NULL AND u.username = (");
        out.push_bind_param::<Array<Text>, _>(&self.usernames)?;
        out.push_sql(")[r.item] ORDER BY r.item");
        Ok(())
    }
}

impl RunQueryDsl<PgConnection> for ReserveCall<'_> {}

/// What a successful login gives back of its reservation: one failure on each key, and all
/// of them on `forget` (the username at this address). Written with the session the login
/// starts ([`super::refresh::start_login`]).
#[derive(Debug, Clone)]
pub struct LoginRelease {
    pub counters: Counters,
    pub forget: String,
    pub now: i64,
}

impl LoginRelease {
    /// The release alone, inside the caller's write transaction.
    pub fn run(&self, conn: &mut DbConn) -> QueryResult<()> {
        release(conn, &self.counters, &[self.forget.as_str()], self.now)
    }
}

fn rows(conn: &mut DbConn, counters: &Counters) -> QueryResult<Vec<AttemptRow>> {
    let [a, b, c] = counters;
    on_backend!(conn, |conn| {
        login_attempts::table
            .filter(
                login_attempts::key
                    .eq(&a.key)
                    .or(login_attempts::key.eq(&b.key))
                    .or(login_attempts::key.eq(&c.key)),
            )
            .select(AttemptRow::as_select())
            .load(conn)
    })
}

/// Writes the three rows, inserting those that are missing, in one statement.
fn store(conn: &mut DbConn, rows: &[AttemptRow; 3]) -> QueryResult<()> {
    on_backend!(conn, |c| Store(rows).execute(c).map(drop))
}

/// `store`'s statement: a three-row upsert. Written out because diesel's own upsert (`DO
/// UPDATE`) is never kept prepared, and has no multi-row form on SQLite; this one is prepared
/// once per connection on both backends.
struct Store<'a>(&'a [AttemptRow; 3]);

kept_prepared!(Store);

impl<DB> QueryFragment<DB> for Store<'_>
where
    DB: Backend,
    String: ToSql<Text, DB>,
    i32: ToSql<Integer, DB>,
    i64: ToSql<BigInt, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql(
            "INSERT INTO login_attempts (key, failures, window_start, locked_until) VALUES ",
        );
        for (i, row) in self.0.iter().enumerate() {
            out.push_sql(if i == 0 { "(" } else { ", (" });
            binds!(out:
                Text = &row.key,
                Integer = &row.failures,
                BigInt = &row.window_start,
                BigInt = &row.locked_until,
            );
            out.push_sql(")");
        }
        out.push_sql(
            " ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, \
             window_start = excluded.window_start, locked_until = excluded.locked_until",
        );
        Ok(())
    }
}

impl<Conn> RunQueryDsl<Conn> for Store<'_> {}

/// What a reservation found.
#[derive(Debug)]
pub enum Reserved {
    /// A key is locked for this many seconds more: nothing was counted.
    Throttled(i64),
    /// The attempt is counted as a failure on each key; the user it names, if there is one.
    Counted(Option<UserRow>),
}

/// Reserves `r`'s attempt on every counter, and reads the user it names when the attempt is not
/// throttled: on PostgreSQL in one statement (a batch of one, [`Reservations`]), on SQLite in
/// one write transaction.
pub fn reserve(conn: &mut DbConn, r: &Reservation) -> QueryResult<Reserved> {
    if let DbConn::Pg(_) = conn {
        return Reservations::run(conn, std::slice::from_ref(r))?
            .pop()
            .ok_or(diesel::result::Error::NotFound);
    }
    write_tx(conn, |conn| {
        Ok(match count(conn, &r.counters, r.window, r.now)? {
            Some(wait) => Reserved::Throttled(wait),
            None => Reserved::Counted(users::find_by_username(conn, &r.username)?),
        })
    })
}

/// [`reserve`]'s counting on SQLite, inside its write transaction: `Some(seconds)` when a key
/// is locked (nothing is counted then), else `None` after counting the attempt as a failure
/// on each key.
fn count(
    conn: &mut DbConn,
    counters: &Counters,
    window: i64,
    now: i64,
) -> QueryResult<Option<i64>> {
    super::debug_assert_in_tx(conn);
    let stored = rows(conn, counters)?;
    if let Some(wait) = stored
        .iter()
        .filter(|r| r.locked_until > now)
        .map(|r| r.locked_until - now)
        .max()
    {
        return Ok(Some(wait));
    }
    let counted = counters.clone().map(|counter| {
        let (failures, window_start) = match stored.iter().find(|r| r.key == counter.key) {
            // A counter given back to zero starts a new window at its next failure.
            Some(r) if r.failures > 0 && now - r.window_start < window => {
                (r.failures.saturating_add(1), r.window_start)
            }
            _ => (1, now),
        };
        let lock = lock_after(failures, counter.limit);
        AttemptRow {
            key: counter.key,
            failures,
            window_start,
            locked_until: if lock > 0 { now + lock } else { 0 },
        }
    });
    store(conn, &counted)?;
    Ok(None)
}

/// Gives back a reservation whose attempt succeeded, as part of the caller's write
/// transaction: each counter drops by one (unlocking it when it falls under its limit); the
/// `forget` keys start over, as if they had never failed.
pub fn release(
    conn: &mut DbConn,
    counters: &Counters,
    forget: &[&str],
    now: i64,
) -> QueryResult<()> {
    super::debug_assert_in_tx(conn);
    lock_keys(conn, counters)?;
    let stored = rows(conn, counters)?;
    let given_back = counters.clone().map(|counter| {
        let fresh = AttemptRow {
            key: counter.key.clone(),
            failures: 0,
            window_start: now,
            locked_until: 0,
        };
        match stored.iter().find(|r| r.key == counter.key) {
            Some(row) if !forget.contains(&row.key.as_str()) => {
                let failures = (row.failures - 1).max(0);
                AttemptRow {
                    failures,
                    locked_until: if failures < counter.limit {
                        0
                    } else {
                        row.locked_until
                    },
                    ..row.clone()
                }
            }
            _ => fresh,
        }
    });
    store(conn, &given_back)
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
    use diesel::query_builder::QueryId;

    use super::*;

    /// Both statements of a login's throttle are kept prepared (diesel's `sql_query` and its
    /// upsert never are).
    #[test]
    fn the_throttle_statements_are_kept_prepared() {
        use diesel::sqlite::Sqlite;
        let row = |key: &str| AttemptRow {
            key: key.into(),
            failures: 1,
            window_start: 0,
            locked_until: 0,
        };
        let rows = [row("ua"), row("a"), row("u")];
        let lock = LockKeys(vec!["a", "u", "ua"]);
        const { assert!(LockKeys::HAS_STATIC_QUERY_ID && Store::HAS_STATIC_QUERY_ID) };
        assert!(lock.is_safe_to_cache_prepared(&Pg).unwrap());
        assert!(QueryFragment::<Pg>::is_safe_to_cache_prepared(&Store(&rows), &Pg).unwrap());
        assert!(
            QueryFragment::<Sqlite>::is_safe_to_cache_prepared(&Store(&rows), &Sqlite).unwrap()
        );
    }

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
