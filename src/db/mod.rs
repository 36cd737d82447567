//! Storage: one connection type over SQLite and PostgreSQL, the pool, embedded migrations,
//! and the query modules. This layer knows SQL and rows; it knows nothing about HTTP, keys or
//! the rules of the service (it uses `domain` only), and nothing above `service` uses it.
//!
//! Every function here is blocking; callers on the async side go through [`Db::run`], which
//! moves the work onto the blocking thread pool.
//!
//! A query for one row by a unique key ends in `.get_result`, not `.first`: `.first` adds
//! `LIMIT ?`, and SQLite re-prepares (parses and plans again) a statement whose `LIMIT` is a
//! bound parameter every time it is bound, since the plan may depend on the value; that was a
//! fifth of a refresh's cost.

pub mod audit;
pub mod batch;
pub mod client_keys;
pub mod keys;
pub mod refresh;
pub mod registry;
pub mod revocations;
pub mod schema;
pub mod serial;
pub mod throttle;
pub mod users;

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection, R2D2Connection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgresql");

/// How long a SQLite writer waits for the lock before giving up.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 10_000;

/// How long a request waits for a database connection before it is answered 503 (and a CLI
/// command gives up): together with the query itself, well within the 3 seconds the contract
/// allows.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs a query written once on the connection of its own backend: `on_backend!(conn, |c|
/// query.execute(c))`. Through [`DbConn`] diesel renders a query's SQL again at every
/// execution, twice (to find whether it may be cached, and beside collecting its binds); on
/// the backend's own connection a query of fixed shape is found in the prepared-statement cache
/// by its type. Under a refresh flood that rendering was about a tenth of the SQLite writer's
/// time, so the statements of the hot paths (refresh, login) run this way; the rest go through
/// [`DbConn`].
///
/// The Insertable rows they write say `treat_none_as_default_value = false`: a `None` is then
/// bound as NULL (none of their nullable columns has another default) instead of leaving the
/// column out, which would give the statement a shape per combination of `None`s.
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConn::Pg($c) => $body,
            $crate::db::DbConn::Sqlite($c) => $body,
        }
    };
}
pub(crate) use on_backend;

/// Pushes bind parameters separated by commas, into a statement's `walk_ast`:
/// `binds!(out: Text = &a, BigInt = &b)`.
macro_rules! binds {
    ($out:ident: $($ty:ty = $value:expr),+ $(,)?) => {{
        let mut separator = "";
        $(
            $out.push_sql(separator);
            $out.push_bind_param::<$ty, _>($value)?;
            separator = ", ";
        )+
        let _ = separator;
    }};
}
pub(crate) use binds;

/// The error of a batched statement ([`batch`]) given a connection to SQLite.
fn postgres_only() -> diesel::result::Error {
    diesel::result::Error::QueryBuilderError("a batched statement of PostgreSQL only".into())
}

/// Gives statement types of our own (one lifetime, their SQL fixed by the type) a static query
/// id, so that each connection prepares them once and keeps them: diesel parses `sql_query`,
/// every `UPDATE` it builds and its upserts anew at each execution.
macro_rules! kept_prepared {
    ($($ty:ident),+ $(,)?) => {
        $(
            impl diesel::query_builder::QueryId for $ty<'_> {
                type QueryId = $ty<'static>;
                const HAS_STATIC_QUERY_ID: bool = true;
            }
        )+
    };
}
pub(crate) use kept_prepared;

/// A connection to either backend; queries written once against it run on both.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    /// PostgreSQL, for several instances sharing one database.
    Pg(PgConnection),
    /// SQLite, the embedded default.
    Sqlite(SqliteConnection),
}

/// A parsed `--database` value.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite://PATH`; the file (and its folder) is created on first use.
    Sqlite(PathBuf),
    /// `postgres://…` or `postgresql://…`, passed to libpq as is.
    Postgres(String),
}

impl DatabaseUrl {
    /// Parses the `--database` option.
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("sqlite:// needs a file path, e.g. sqlite://data/issuer.db".into());
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            url::Url::parse(s).map_err(|e| format!("not a valid PostgreSQL URL: {e}"))?;
            return Ok(Self::Postgres(s.to_owned()));
        }
        Err("expected sqlite://PATH, postgres://… or postgresql://…".into())
    }

    /// `"sqlite"` or `"postgresql"`, for logs.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgresql",
        }
    }
}

// The PostgreSQL URL may carry a password: never print it.
impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(p) => write!(f, "sqlite://{}", p.display()),
            Self::Postgres(u) => match url::Url::parse(u) {
                Ok(mut parsed) => {
                    if parsed.password().is_some() {
                        let _ = parsed.set_password(Some("***"));
                    }
                    // libpq also takes it as a parameter: `?password=…`.
                    let pairs: Vec<(String, String)> = parsed
                        .query_pairs()
                        .map(|(k, v)| {
                            let v = if k == "password" { "***".into() } else { v };
                            (k.into_owned(), v.into_owned())
                        })
                        .collect();
                    if !pairs.is_empty() {
                        parsed.query_pairs_mut().clear().extend_pairs(pairs);
                    }
                    write!(f, "{parsed}")
                }
                Err(_) => f.write_str("postgres://…"),
            },
        }
    }
}

/// The URL with libpq's `connect_timeout` set (unless it already is), so that connecting to an
/// unreachable host fails instead of hanging.
fn with_connect_timeout(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if !parsed.query_pairs().any(|(k, _)| k == "connect_timeout") => {
            parsed
                .query_pairs_mut()
                .append_pair("connect_timeout", &CONNECT_TIMEOUT.as_secs().to_string());
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Opens connections of exactly the backend the URL names (diesel's generic manager would try
/// each backend in turn and hide the real error).
pub struct Manager {
    url: DatabaseUrl,
}

impl ManageConnection for Manager {
    type Connection = DbConn;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConn, r2d2::Error> {
        match &self.url {
            DatabaseUrl::Sqlite(path) => {
                let path = path.to_str().ok_or_else(|| {
                    r2d2::Error::ConnectionError(ConnectionError::InvalidConnectionUrl(
                        "the SQLite path is not valid UTF-8".into(),
                    ))
                })?;
                let mut conn =
                    SqliteConnection::establish(path).map_err(r2d2::Error::ConnectionError)?;
                // WAL lets readers run beside the writer; the busy timeout makes writers queue
                // instead of failing with "database is locked". Savepoints (a `write_tx` inside
                // a batch of the single writer) journal the pages they change: in memory, not
                // in a temporary file written on every change. Pages of 2 KiB (for a new
                // database; an existing one keeps its own): a refresh changes a handful of
                // entries of indexes on random keys (token hashes, families), each a whole
                // page in the log, and the log's bytes are what the disk must take (with 4 KiB
                // pages, 9% fewer refreshes a second). The log file is cut back to 512 MiB
                // after a burst that grew it beyond; the checkpointer keeps it near 256 MiB
                // under any load, so a flood does not truncate and regrow it every time the
                // log starts over.
                conn.batch_execute(&format!(
                    "PRAGMA page_size = 2048;
                     PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS};
                     PRAGMA journal_mode = WAL;
                     PRAGMA journal_size_limit = 536870912;
                     PRAGMA synchronous = NORMAL;
                     PRAGMA foreign_keys = ON;
                     PRAGMA temp_store = MEMORY;"
                ))
                .map_err(r2d2::Error::QueryError)?;
                Ok(DbConn::Sqlite(conn))
            }
            DatabaseUrl::Postgres(url) => connect_postgres(&with_connect_timeout(url))
                .map(DbConn::Pg)
                .map_err(r2d2::Error::ConnectionError),
        }
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), r2d2::Error> {
        conn.ping().map(|_| ()).map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConn) -> bool {
        conn.is_broken()
    }
}

/// A connection to the PostgreSQL server at `url`. Every PostgreSQL connection of the process
/// is opened here (the tests' too), so that OpenSSL, which libpq uses for TLS, is initialised
/// first without its exit-time cleanup (`OPENSSL_INIT_NO_ATEXIT`, which `openssl_sys::init`
/// asks for; the first initialisation decides). That cleanup ran in the exiting thread while
/// other threads still held TLS connections (a pool's, a blocking task's), and crashed in
/// libcrypto: a segfault after a test binary's last test had passed (CI). A process that exits
/// has nothing of OpenSSL's to clean up.
pub fn connect_postgres(url: &str) -> ConnectionResult<PgConnection> {
    openssl_sys::init();
    PgConnection::establish(url)
}

/// A pool of at most `max_size` connections to `url`. It hands out connections unchecked:
/// [`checkout`] checks them.
fn pool(url: &DatabaseUrl, max_size: u32) -> Result<r2d2::Pool<Manager>, r2d2::PoolError> {
    r2d2::Pool::builder()
        .max_size(max_size)
        // No idle minimum: r2d2 would refill it on a background thread, which can still be
        // inside libpq when a CLI command exits (a segfault in libpq's TLS teardown).
        .min_idle(Some(0))
        .connection_timeout(CONNECT_TIMEOUT)
        .test_on_check_out(false)
        .build(Manager { url: url.clone() })
}

/// A pooled connection that answered a check this recently is handed out without another:
/// HikariCP's default, and its reasoning. A check is a round trip (`SELECT 1`) before every
/// piece of work, the dearest part of the cheap ones: a PostgreSQL login made two of them
/// beside three that did its work, and under a login flood each round trip costs both
/// processes a wakeup with caches the password hashes have just thrown out. A connection that
/// dies within this window (the server restarted) fails the work it is given instead, which
/// answers 503 like any outage, until its next check throws it away.
pub(crate) const CHECKED_RECENTLY: Duration = Duration::from_millis(500);

/// When a pooled connection last answered a check; kept with it in the pool.
struct Checked(Instant);

/// A connection from `pool` that answered a check within [`CHECKED_RECENTLY`] (now, if not
/// before). One that fails its check is thrown away and the next one tried.
pub fn checkout(pool: &r2d2::Pool<Manager>) -> anyhow::Result<r2d2::PooledConnection<Manager>> {
    checkout_at(pool, Instant::now())
}

/// [`checkout`] at the instant `now`.
fn checkout_at(
    pool: &r2d2::Pool<Manager>,
    now: Instant,
) -> anyhow::Result<r2d2::PooledConnection<Manager>> {
    // Every pooled connection may have died at once (a restarted server); past them, the pool
    // opens new ones.
    let mut tries = 0;
    loop {
        let mut conn = pool.get().context("no database connection available")?;
        let checked = r2d2::PooledConnection::extensions(&conn).get::<Checked>();
        if checked.is_some_and(|c| now.saturating_duration_since(c.0) < CHECKED_RECENTLY) {
            return Ok(conn);
        }
        match conn.ping() {
            Ok(_) => {
                r2d2::PooledConnection::extensions_mut(&mut conn).insert(Checked(now));
                return Ok(conn);
            }
            Err(e) => {
                // Broken, so that the pool closes it when it comes back (`has_broken`).
                <DbConn as Connection>::TransactionManager::transaction_manager_status_mut(
                    &mut conn,
                )
                .set_in_error();
                tries += 1;
                if tries > pool.max_size() {
                    return Err(anyhow::Error::new(e).context("no database connection available"));
                }
            }
        }
    }
}

/// The connection pool, shared by the HTTP workers and background tasks.
#[derive(Clone)]
pub struct Db {
    pool: r2d2::Pool<Manager>,
    backend: &'static str,
    url: DatabaseUrl,
    /// SQLite only: the single writer that [`Db::run`] hands its work to ([`serial`]).
    serial: Option<serial::Serial>,
    /// PostgreSQL only: the batched statements of the refresh grant and of logins ([`batch`]).
    batches: Option<Arc<Batches>>,
}

/// Statements batched across concurrent requests: the refresh grant's lookups and rotations,
/// and password logins' reservations and sessions.
pub struct Batches {
    pub lookups: batch::Batcher<refresh::Lookups>,
    pub rotations: batch::Batcher<refresh::Rotations>,
    pub reservations: batch::Batcher<throttle::Reservations>,
    pub logins: batch::Batcher<refresh::Logins>,
}

impl Db {
    /// Connects (creating the SQLite file and folder if needed) and applies pending migrations.
    pub fn open(url: &DatabaseUrl) -> anyhow::Result<Self> {
        let max_size = match url {
            DatabaseUrl::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    crate::files::create_private_dir(dir)?;
                }
                // SQLite would create it world-readable (0644): create it first, 0600. Its
                // -wal and -shm files take the same mode.
                crate::files::create_private_file_if_missing(path)?;
                crate::files::warn_if_shared(path, "the SQLite database");
                8
            }
            DatabaseUrl::Postgres(_) => 16,
        };
        let pool = pool(url, max_size).with_context(|| format!("connecting to {url:?}"))?;
        let db = Self {
            pool,
            backend: url.backend(),
            url: url.clone(),
            serial: None,
            batches: None,
        };
        db.migrate()?;
        let serial = match url {
            DatabaseUrl::Sqlite(path) => Some(serial::Serial::start(db.pool.clone(), path)?),
            DatabaseUrl::Postgres(_) => None,
        };
        let batches = match url {
            DatabaseUrl::Sqlite(_) => None,
            DatabaseUrl::Postgres(_) => Some(Arc::new(Batches {
                lookups: batch::Batcher::start(&db.pool)?,
                rotations: batch::Batcher::start(&db.pool)?,
                reservations: batch::Batcher::start(&db.pool)?,
                logins: batch::Batcher::start(&db.pool)?,
            })),
        };
        Ok(Self {
            serial,
            batches,
            ..db
        })
    }

    /// Applies every pending migration of this backend.
    pub fn migrate(&self) -> anyhow::Result<usize> {
        let mut conn = self.conn().map_err(|e| {
            // The first connection of a command: say which database, in one line.
            let cause = e.root_cause().to_string();
            let cause = cause.split_whitespace().collect::<Vec<_>>().join(" ");
            anyhow::anyhow!("cannot reach the database {:?}: {cause}", self.url)
        })?;
        let applied = match &mut *conn {
            DbConn::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
            DbConn::Pg(c) => c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|v| v.len()),
        }
        .map_err(|e| anyhow::anyhow!("applying migrations: {e}"))?;
        Ok(applied)
    }

    /// `"sqlite"` or `"postgresql"`.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// The batched statements, on PostgreSQL. On SQLite the single writer batches every
    /// piece of work already ([`serial`]).
    pub fn batches(&self) -> Option<&Batches> {
        self.batches.as_deref()
    }

    /// One item of batched work: on PostgreSQL in the next batch of `batcher`, which may wait
    /// `linger` for more items ([`batch::Batcher::run_within`]); elsewhere by `alone` (on
    /// SQLite in the single writer's next batch, which may wait as long: [`Db::run_within`]).
    pub async fn batched<B: batch::Batched>(
        &self,
        batcher: fn(&Batches) -> &batch::Batcher<B>,
        item: B::Item,
        linger: Duration,
        alone: fn(&mut DbConn, &B::Item) -> QueryResult<B::Output>,
    ) -> anyhow::Result<B::Output> {
        match self.batches() {
            Some(batches) => batcher(batches).run_within(item, linger).await,
            None => {
                self.run_within(move |conn| Ok(alone(conn, &item)?), linger)
                    .await
            }
        }
    }

    /// A pooled connection, for blocking code (the CLI, background threads).
    pub fn conn(&self) -> anyhow::Result<r2d2::PooledConnection<Manager>> {
        checkout(&self.pool)
    }

    /// Runs blocking database work on the blocking pool, off the async workers.
    pub async fn run<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        F: FnOnce(&mut DbConn) -> anyhow::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.run_typed(f).await
    }

    /// Like [`Db::run`], for work with its own error type.
    pub async fn run_typed<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<anyhow::Error> + Send + 'static,
    {
        self.run_within(f, Duration::ZERO).await
    }

    /// Like [`Db::run_typed`]; on SQLite the single writer's batch holding `f` may wait
    /// `linger` for more work ([`serial::Serial::run_within`]).
    async fn run_within<T, E, F>(&self, f: F, linger: Duration) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<anyhow::Error> + Send + 'static,
    {
        if let Some(serial) = &self.serial {
            return serial.run_within(f, linger).await;
        }
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = checkout(&pool)?;
            f(&mut conn)
        })
        .await
        .context("database task panicked")?
    }
}

/// The one writer of SQLite in this process. SQLite lets one transaction write at a time, and a
/// writer that finds the lock taken sleeps in its busy handler (1, 2, 5 … 100 ms) before trying
/// again: under concurrent refreshes those sleeps were the latency tail (p99 303 ms against a
/// p50 of 6.6 ms). Queued on this lock instead, writers wake the moment the previous one
/// commits. It is one lock for every SQLite database the process opens (the tests open many;
/// a service opens one), held only for the transaction. Other processes on the same file (the
/// CLI beside a running service) still meet SQLite's own lock and its busy timeout.
static SQLITE_WRITER: Mutex<()> = Mutex::new(());

/// Runs `f` in a write transaction. On SQLite the transaction takes the process's writer lock
/// ([`SQLITE_WRITER`]) and then SQLite's write lock up front (`BEGIN IMMEDIATE`), so it waits
/// instead of failing when it upgrades a read lock; on PostgreSQL it is an ordinary transaction
/// whose conditional updates carry the row locks.
pub fn write_tx<T, E, F>(conn: &mut DbConn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    let nested = <DbConn as Connection>::TransactionManager::transaction_manager_status_mut(conn)
        .transaction_depth()?
        .is_some();
    // A transaction that panicked left nothing behind the lock worth refusing for (SQLite rolls
    // it back), so a poisoned lock is taken as it is.
    let _writer = matches!(conn, DbConn::Sqlite(_) if !nested)
        .then(|| SQLITE_WRITER.lock().unwrap_or_else(PoisonError::into_inner));
    match conn {
        // Inside a transaction, the lock is already held: a savepoint suffices.
        DbConn::Sqlite(c) if !nested => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?
        }
        DbConn::Sqlite(c) => AnsiTransactionManager::begin_transaction(c)?,
        DbConn::Pg(c) => AnsiTransactionManager::begin_transaction(c)?,
    }
    match f(conn) {
        Ok(value) => match <DbConn as Connection>::TransactionManager::commit_transaction(conn) {
            Ok(()) => Ok(value),
            Err(commit_err) => {
                let _ = <DbConn as Connection>::TransactionManager::rollback_transaction(conn);
                Err(commit_err.into())
            }
        },
        Err(e) => {
            <DbConn as Connection>::TransactionManager::rollback_transaction(conn)?;
            Err(e)
        }
    }
}

/// Checks, in debug builds, that `conn` is inside a transaction: for functions that are one
/// part of their caller's write transaction and would be wrong alone (an advisory lock outside
/// a transaction ends with its statement).
pub fn debug_assert_in_tx(conn: &mut DbConn) {
    debug_assert!(
        matches!(
            <DbConn as Connection>::TransactionManager::transaction_manager_status_mut(conn)
                .transaction_depth(),
            Ok(Some(_))
        ),
        "expected to run inside a transaction"
    );
}

/// Whether `e` says the database could not be reached (no connection within the pool's
/// timeout, a connection lost mid-request) rather than that a query was wrong: such a request
/// answers 503 and may be retried, and the service recovers by itself when the database
/// returns.
pub fn is_outage(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        if cause.downcast_ref::<r2d2::PoolError>().is_some()
            || cause.downcast_ref::<serial::Unavailable>().is_some()
            || cause.downcast_ref::<r2d2::Error>().is_some()
            || cause.downcast_ref::<ConnectionError>().is_some()
        {
            return true;
        }
        match cause.downcast_ref::<diesel::result::Error>() {
            Some(diesel::result::Error::DatabaseError(kind, info)) => {
                use diesel::result::DatabaseErrorKind::{ClosedConnection, UnableToSendCommand};
                matches!(kind, ClosedConnection | UnableToSendCommand)
                    || lost_connection(info.message())
            }
            Some(diesel::result::Error::BrokenTransactionManager) => true,
            _ => false,
        }
    })
}

/// Messages of libpq and SQLite that mean the connection, not the query, failed.
fn lost_connection(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "server closed the connection",
        "terminating connection",
        "no connection to the server",
        "could not receive data",
        "could not send data",
        "connection refused",
        "connection reset",
        "unable to open database file",
        "disk i/o error",
    ]
    .iter()
    .any(|pattern| m.contains(pattern))
}

/// True when `e` is a unique-constraint violation (a lost race, a duplicate).
pub fn is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

/// One round trip to the database.
pub fn ping(conn: &mut DbConn) -> QueryResult<()> {
    diesel::sql_query("SELECT 1").execute(conn).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(conn: &r2d2::PooledConnection<Manager>) -> Option<Instant> {
        r2d2::PooledConnection::extensions(conn)
            .get::<Checked>()
            .map(|c| c.0)
    }

    /// A pooled connection is checked again only once its last check is older than
    /// [`CHECKED_RECENTLY`].
    #[test]
    fn a_connection_is_checked_again_only_after_a_while() {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::parse(&format!("sqlite://{}/t.db", dir.path().display())).unwrap();
        let pool = pool(&url, 1).unwrap();
        let t0 = Instant::now();
        let later = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(checked(&checkout_at(&pool, t0).unwrap()), Some(t0));
        assert_eq!(checked(&checkout_at(&pool, later(499)).unwrap()), Some(t0));
        assert_eq!(
            checked(&checkout_at(&pool, later(500)).unwrap()),
            Some(later(500))
        );
    }

    /// A connection whose server end went away is thrown away at its next check, and the work
    /// gets a new one.
    #[test]
    #[ignore = "PostgreSQL: set TEST_POSTGRES_URL and run with --include-ignored"]
    fn a_dead_connection_is_replaced_at_its_next_check() {
        #[derive(QueryableByName)]
        struct Pid {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            pid: i32,
        }
        fn pid(conn: &mut DbConn) -> i32 {
            diesel::sql_query("SELECT pg_backend_pid() AS pid")
                .get_result::<Pid>(conn)
                .unwrap()
                .pid
        }
        let url = std::env::var("TEST_POSTGRES_URL").expect("TEST_POSTGRES_URL");
        let pool = pool(&DatabaseUrl::parse(&url).unwrap(), 1).unwrap();
        let t0 = Instant::now();
        let first = pid(&mut checkout_at(&pool, t0).unwrap());
        let mut other = connect_postgres(&url).unwrap();
        diesel::sql_query(format!("SELECT pg_terminate_backend({first}, 5000)"))
            .execute(&mut other)
            .unwrap();
        // Within the window the dead connection is handed out unchecked, and its work fails.
        let mut unchecked = checkout_at(&pool, t0 + Duration::from_millis(100)).unwrap();
        assert!(ping(&mut unchecked).is_err());
        drop(unchecked);
        let mut conn = checkout_at(&pool, t0 + CHECKED_RECENTLY).unwrap();
        assert_ne!(pid(&mut conn), first);
    }

    #[test]
    fn parses_database_urls() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/issuer.db"),
            Ok(DatabaseUrl::Sqlite("data/issuer.db".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///tmp/x.db"),
            Ok(DatabaseUrl::Sqlite("/tmp/x.db".into()))
        );
        assert!(matches!(
            DatabaseUrl::parse("postgresql://postgres@127.0.0.1/test"),
            Ok(DatabaseUrl::Postgres(_))
        ));
        assert!(DatabaseUrl::parse("mysql://x").is_err());
        assert!(DatabaseUrl::parse("sqlite://").is_err());
        assert!(DatabaseUrl::parse("data/issuer.db").is_err());
    }

    #[test]
    fn debug_hides_the_password() {
        let url = DatabaseUrl::parse("postgres://u:secret@h/db").unwrap();
        assert!(!format!("{url:?}").contains("secret"));
        let url =
            DatabaseUrl::parse("postgres://h/db?user=u&password=secret&sslmode=require").unwrap();
        assert_eq!(
            format!("{url:?}"),
            "postgres://h/db?user=u&password=***&sslmode=require"
        );
    }
}
