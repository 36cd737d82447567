//! SQLite's single writer with group commit. SQLite runs one write transaction at a time
//! whatever the number of connections, each commit appends every page it touched to the
//! write-ahead log, and a connection's page cache is dropped whenever another one commits. So
//! the service does all its SQLite work on one connection, on one thread: work that arrives
//! while a transaction runs waits in a queue, and the next transaction takes everything queued
//! (up to [`MAX_BATCH`] pieces) and commits it at once. Pages that several pieces touch (the
//! ends of tables and of time-ordered indexes) reach the log once per batch instead of once
//! per request, and the cache stays warm.
//!
//! Each piece of work sees the writes of those before it, as it would one after another; its
//! own `write_tx` becomes a savepoint. Nobody hears of the result of a piece until the
//! transaction holding it has committed: when the commit fails, every piece of the batch is
//! answered with [`Unavailable`] (503) and nothing of it was stored.
//!
//! Checkpoints (copying the log back into the database file, then `fsync`) do not run on the
//! writer's thread, where SQLite would run them every 1,000 pages of log and every piece
//! waiting in the queue would wait for the disk too (a third of the writer's time under a
//! refresh flood). A checkpointer thread copies the log in the background without holding the
//! writer up, then takes the writer's lock only to copy the few pages written meanwhile, so
//! that the next transaction can start the log over and it stays bounded. With
//! `synchronous = NORMAL` a commit is durable against a crash of the process as soon as it is
//! in the log; the checkpoints are what makes it durable against a crash of the machine, as
//! they were before.
//!
//! SQLite `fsync`s the database file only at the copy that reaches the end of the log, the
//! last one, under the writer's lock: that `fsync` wrote every page the copies before it had
//! left dirty since the log last started over, scattered over the whole file (the tokens'
//! hashes are random, and so are their index's pages). It grew with the database, 50-117 ms
//! at 0.1-0.5 GB under an ES256 refresh flood, and every refresh waited for it: the p99 rose
//! from 23 to 91-100 ms over four floods in a row. The checkpointer now `fdatasync`s the
//! database file itself beside the writer, before it catches up (130-150 ms there) and after
//! each copy meanwhile, so that the last `fsync` has only the last copy's pages left to write:
//! 2-4 ms for that copy, and a p99 of 5.3-5.6 ms over five floods in a row (`scripts/load.py`'s
//! ES256 refresh row, repeated on one server).

use std::fs::File;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use diesel::connection::{
    AnsiTransactionManager, Connection, SimpleConnection, TransactionManager,
};
use diesel::r2d2::{self, R2D2Connection};
use tokio::sync::oneshot;

use super::{DbConn, Manager, SQLITE_WRITER};

/// Pieces of work committed together at most.
pub const MAX_BATCH: usize = 64;

/// Pieces of work allowed to wait for the writer; beyond, new ones are answered 503 at once.
pub const MAX_QUEUED: usize = 4_096;

/// The checkpointer's pause after each checkpoint: the log written meanwhile (a few MiB under
/// the heaviest load) is what the next one copies.
const CHECKPOINT_PAUSE: Duration = Duration::from_millis(100);

/// A copy of the log this quick leaves little for the last one, which holds the writer up.
const CATCH_UP: Duration = Duration::from_millis(4);

/// Copies beside the writer before the last one at most, when the writer writes as fast as
/// they copy.
const MAX_UNLOCKED_COPIES: usize = 4;

/// While the checkpointer catches up with the writer before the log starts over, the writer
/// pauses this long after each batch. Unpaced, the writer kept appending as fast as the copies
/// beside it went, so the last copy, under the writer's lock, still had tens of milliseconds
/// of log to copy and two `fsync`s to wait for (30-60 ms, growing with the database, once
/// every second or two under an ES256 refresh flood of 11-12k refreshes a second): the refresh
/// p99 was 22-30 ms in every run. Paced, the last copy is often under 15 ms and the p99 was
/// 8.6-18.5 ms in 7 runs out of 9, at the same rate; when the disk's `fsync`s are slow the last
/// copy still takes 30-60 ms, pace or not (p99 30-31 ms in the other two). The pause lasts
/// only for those few copies.
const CATCH_UP_PACE: Duration = Duration::from_millis(2);

/// Frames of log (with 2 KiB pages, 256 MiB) beyond which the checkpointer makes sure the
/// writer starts the log over. Every such time holds the writer up for a copy and two `fsync`s
/// (paced, see [`CATCH_UP_PACE`]: often under 15 ms on the development machine, 30–60 ms when
/// its disk is slow): under a flood of refreshes, every 1–2 s (with a 64 MiB limit, twice a
/// second, and a refresh p99 of 20–21 ms instead of 10–12.5 ms; with 1 GiB, a p99 of
/// 140–220 ms).
const MAX_LOG_FRAMES: i32 = 131_072;

/// The database could not take the work (no connection, a lock held elsewhere beyond the busy
/// timeout, a failed commit, a full queue): answered 503, like an outage.
#[derive(Debug, thiserror::Error)]
#[error("the database is unavailable")]
pub struct Unavailable;

/// What the writer thread runs: the work on the connection, or `None` when it cannot run,
/// returning what to do once the batch's fate is known (`true`: committed).
type Job = Box<dyn FnOnce(Option<&mut DbConn>) -> Settle + Send>;
type Settle = Box<dyn FnOnce(bool) + Send>;

/// A handle on the writer thread of one SQLite database.
#[derive(Clone)]
pub struct Serial {
    /// Each piece with until when it lets its batch wait for more ([`Serial::run_within`]).
    queue: SyncSender<(Job, Option<Instant>)>,
}

impl Serial {
    /// Starts the writer thread, which takes connections from `pool` (one at a time) and ends
    /// when the last handle is dropped; `path` is the database file, which the checkpointer
    /// flushes (see the module's notes).
    pub fn start(pool: r2d2::Pool<Manager>, path: &Path) -> anyhow::Result<Self> {
        let (queue, jobs) = mpsc::sync_channel(MAX_QUEUED);
        let (nudge, nudged) = mpsc::sync_channel(1);
        let checkpoints = pool.clone();
        let catching_up = Arc::new(AtomicBool::new(false));
        let pace = Arc::clone(&catching_up);
        let file = database_file(path)?;
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpointer(&checkpoints, &nudged, &catching_up, &file))?;
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || work(&pool, &jobs, &nudge, &pace))?;
        Ok(Self { queue })
    }

    /// Runs `f` in the next batch; answers once the batch has committed.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<anyhow::Error> + Send + 'static,
    {
        self.run_within(f, Duration::ZERO).await
    }

    /// Runs `f` in the next batch, which may wait up to `linger` for more pieces (until the
    /// earliest end of its pieces' lingers, or until it is full: [`super::batch::gather`]);
    /// answers once the batch has committed.
    pub async fn run_within<T, E, F>(&self, f: F, linger: Duration) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<anyhow::Error> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<Result<T, E>>();
        let job: Job = Box::new(move |conn| match conn {
            None => {
                let _ = reply.send(Err(unavailable()));
                Box::new(|_| {})
            }
            Some(conn) => {
                let outcome = f(conn);
                Box::new(move |committed| {
                    let _ = reply.send(if committed {
                        outcome
                    } else {
                        Err(unavailable())
                    });
                })
            }
        });
        match self.queue.try_send((job, super::batch::deadline(linger))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(unavailable()),
            Err(TrySendError::Disconnected(_)) => {
                return Err(E::from(anyhow::anyhow!("the SQLite writer thread stopped")));
            }
        }
        answer
            .await
            .map_err(|_| E::from(anyhow::anyhow!("database task panicked")))?
    }
}

fn unavailable<E: From<anyhow::Error>>() -> E {
    E::from(anyhow::Error::new(Unavailable))
}

/// The database file at `path`, for the checkpointer's flushes (`fdatasync` writes a file's
/// dirty pages whichever descriptor asks): opened once per process and never closed. Closing
/// any descriptor of a file drops every POSIX lock the process holds on it, SQLite's own
/// included (the shared lock that tells every other connection, in this process or another,
/// that the database is in use, and without which the last one to close deletes the log), so
/// a descriptor of ours must outlive every connection to the file, which only the process's
/// end guarantees. Opened with write access, which some systems' flush needs; nothing is
/// written through it.
fn database_file(path: &Path) -> std::io::Result<Arc<File>> {
    static OPEN: Mutex<Vec<(PathBuf, Arc<File>)>> = Mutex::new(Vec::new());
    let mut open = OPEN.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, file)) = open.iter().find(|(p, _)| p == path) {
        return Ok(Arc::clone(file));
    }
    let file = Arc::new(std::fs::OpenOptions::new().write(true).open(path)?);
    open.push((path.to_owned(), Arc::clone(&file)));
    Ok(file)
}

/// The writer thread: one batch after another until every handle is gone. After each commit it
/// nudges the checkpointer (`nudge`), which ends when the writer does; while the checkpointer
/// catches up (`catching_up`), it paces itself ([`CATCH_UP_PACE`]).
fn work(
    pool: &r2d2::Pool<Manager>,
    jobs: &Receiver<(Job, Option<Instant>)>,
    nudge: &SyncSender<()>,
    catching_up: &AtomicBool,
) {
    let mut conn: Option<r2d2::PooledConnection<Manager>> = None;
    while let Ok(first) = jobs.recv() {
        let batch: Vec<Job> = super::batch::gather(jobs, first, MAX_BATCH, |job| job.1)
            .into_iter()
            .map(|(job, _)| job)
            .collect();
        if conn.as_mut().is_some_and(|c| c.is_broken()) {
            conn = None;
        }
        if conn.is_none() {
            // The checkpointer checkpoints, not the writer.
            conn = super::checkout(pool)
                .ok()
                .filter(|c| matches!(&**c, DbConn::Sqlite(_)))
                .and_then(|mut c| {
                    c.batch_execute("PRAGMA wal_autocheckpoint = 0")
                        .ok()
                        .map(|()| c)
                });
        }
        let Some(c) = conn.as_mut() else {
            refuse(batch);
            continue;
        };
        let writer = SQLITE_WRITER.lock().unwrap_or_else(PoisonError::into_inner);
        let began = match &mut **c {
            DbConn::Sqlite(s) => {
                AnsiTransactionManager::begin_transaction_sql(s, "BEGIN IMMEDIATE")
            }
            DbConn::Pg(p) => AnsiTransactionManager::begin_transaction(p),
        };
        if began.is_err() {
            drop(writer);
            refuse(batch);
            continue;
        }
        let settles: Vec<Settle> = batch
            .into_iter()
            .map(|job| {
                // A piece that panics is answered as a failed task (its reply is dropped); the
                // transaction decides below whether the rest can still commit.
                catch_unwind(AssertUnwindSafe(|| job(Some(&mut **c))))
                    .unwrap_or_else(|_| Box::new(|_| {}))
            })
            .collect();
        let committed = commit(c);
        if !committed {
            // Perhaps left inside a transaction or a savepoint: the pool drops it as broken,
            // which ends SQLite's transaction, before the next writer goes.
            conn = None;
        }
        drop(writer);
        for settle in settles {
            settle(committed);
        }
        if committed {
            // Full: a nudge is already waiting.
            let _ = nudge.try_send(());
        }
        if catching_up.load(Ordering::Relaxed) {
            std::thread::sleep(CATCH_UP_PACE);
        }
    }
}

/// The checkpointer thread: after a commit, a checkpoint, then a pause; ends with the writer.
/// `file` is the database file.
fn checkpointer(
    pool: &r2d2::Pool<Manager>,
    nudged: &Receiver<()>,
    catching_up: &AtomicBool,
    file: &File,
) {
    while nudged.recv().is_ok() {
        if let Err(e) = checkpoint(
            pool,
            MAX_LOG_FRAMES,
            catching_up,
            || file.sync_data(),
            || {},
        ) {
            tracing::warn!(error = %e, "SQLite checkpoint failed; retrying after the next commit");
        }
        std::thread::sleep(CHECKPOINT_PAUSE);
    }
}

/// Copies the log into the database file beside the writer (`PASSIVE`: what is there when it
/// starts, while the writer goes on). When the log has grown past `max_log_frames` — a
/// writer that never pauses long enough for a copy to catch up with it — it copies again for
/// what was written meanwhile until that is little (a copy quicker than [`CATCH_UP`]), and
/// once more under the writer's lock: then the whole log is in the database file, and the
/// writer's next transaction starts it over from its beginning (readers permitting). Before
/// those copies, and after each copy beside the writer, `flush` writes the pages they left
/// dirty in the database file (`fdatasync`; the first one unpaced, as the writer goes on at
/// full speed): the last copy's `fsync`, under the writer's lock, is left with only its own
/// pages to write. A copy is quick enough to stop at when the copy and its flush are.
/// `catching_up` is set from the first of those copies to the end of the last, so that the
/// writer paces itself meanwhile. `meanwhile` runs just before the last copy (tests write
/// there, as the writer would).
fn checkpoint(
    pool: &r2d2::Pool<Manager>,
    max_log_frames: i32,
    catching_up: &AtomicBool,
    flush: impl Fn() -> std::io::Result<()>,
    meanwhile: impl FnOnce(),
) -> anyhow::Result<()> {
    struct Caught<'a>(&'a AtomicBool);
    impl Drop for Caught<'_> {
        fn drop(&mut self) {
            self.0.store(false, Ordering::Relaxed);
        }
    }
    let mut conn = super::checkout(pool)?;
    if passive(&mut conn)?.log < max_log_frames {
        return Ok(());
    }
    // Only sooner, not safer: SQLite's own `fsync` still follows the last copy. A flush that
    // fails is logged and the copies go on, so that the log still starts over.
    let flush = || {
        if let Err(e) = flush() {
            tracing::warn!(error = %e, "flushing the SQLite database file before its last checkpoint copy failed");
        }
    };
    flush();
    catching_up.store(true, Ordering::Relaxed);
    // Cleared however this ends, a failed copy included.
    let _caught = Caught(catching_up);
    for _ in 0..MAX_UNLOCKED_COPIES {
        let started = Instant::now();
        passive(&mut conn)?;
        flush();
        if started.elapsed() < CATCH_UP {
            break;
        }
    }
    meanwhile();
    let _writer = SQLITE_WRITER.lock().unwrap_or_else(PoisonError::into_inner);
    passive(&mut conn)?;
    Ok(())
}

/// What `PRAGMA wal_checkpoint` reports (besides `busy` and `checkpointed`): the frames in the
/// log.
#[derive(diesel::QueryableByName)]
struct Copied {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    log: i32,
}

fn passive(conn: &mut DbConn) -> diesel::QueryResult<Copied> {
    use diesel::RunQueryDsl;
    diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)").get_result(conn)
}

/// Commits the batch's transaction if every piece left it as it found it (one level deep);
/// otherwise, or when the commit fails, rolls it all back. Returns whether it committed.
fn commit(conn: &mut DbConn) -> bool {
    let depth = <DbConn as Connection>::TransactionManager::transaction_manager_status_mut(conn)
        .transaction_depth();
    if matches!(depth, Ok(Some(d)) if d.get() == 1)
        && <DbConn as Connection>::TransactionManager::commit_transaction(conn).is_ok()
    {
        return true;
    }
    let _ = <DbConn as Connection>::TransactionManager::rollback_transaction(conn);
    false
}

fn refuse(batch: Vec<Job>) {
    for job in batch {
        job(None)(false);
    }
}

#[cfg(test)]
mod tests {
    use diesel::RunQueryDsl;
    use diesel::connection::SimpleConnection;

    use super::*;
    use crate::db::{DatabaseUrl, Db, write_tx};

    fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::parse(&format!("sqlite://{}/t.db", dir.path().display())).unwrap();
        let db = Db::open(&url).unwrap();
        db.conn()
            .unwrap()
            .batch_execute("CREATE TABLE t (x INTEGER NOT NULL)")
            .unwrap();
        (dir, db)
    }

    fn count(conn: &mut DbConn) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        diesel::sql_query("SELECT count(*) AS n FROM t")
            .get_result::<N>(conn)
            .unwrap()
            .n
    }

    fn insert(conn: &mut DbConn, x: i64) -> diesel::QueryResult<usize> {
        diesel::sql_query(format!("INSERT INTO t (x) VALUES ({x})")).execute(conn)
    }

    #[tokio::test]
    async fn concurrent_work_is_committed_in_batches_each_seeing_the_writes_before_it() {
        let (_dir, db) = db();
        let runs = (0..300).map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                db.run(move |conn| {
                    write_tx(conn, |conn| {
                        let before = count(conn);
                        insert(conn, i)?;
                        assert_eq!(count(conn), before + 1);
                        Ok::<_, anyhow::Error>(())
                    })
                })
                .await
            })
        });
        for run in futures_util::future::join_all(runs).await {
            run.unwrap().unwrap();
        }
        // Committed: another connection sees all of it.
        assert_eq!(count(&mut db.conn().unwrap()), 300);
    }

    /// Pieces that linger share their batch with those that follow them, until one that may not
    /// wait joins: the last piece sees the first two's writes uncommitted (another connection
    /// does not). A lingering piece alone is answered when its linger ends.
    #[tokio::test]
    async fn lingering_pieces_wait_for_each_other_until_one_may_not() {
        let (_dir, db) = db();
        let serial = db.serial.clone().unwrap();
        let long = Duration::from_secs(60);
        let started = Instant::now();
        let piece = |x: i64| {
            let db = db.clone();
            move |conn: &mut DbConn| {
                insert(conn, x)?;
                let committed = count(&mut *db.conn()?);
                Ok::<_, anyhow::Error>((count(conn), committed))
            }
        };
        // `join3` polls them in order: each is queued before the next.
        let (a, b, c) = futures_util::future::join3(
            serial.run_within(piece(1), long),
            serial.run_within(piece(2), long),
            serial.run(piece(3)),
        )
        .await;
        assert_eq!(
            (a.unwrap(), b.unwrap(), c.unwrap()),
            ((1, 0), (2, 0), (3, 0))
        );
        assert!(
            started.elapsed() < long / 2,
            "the last piece ended the wait"
        );
        let short = Duration::from_millis(50);
        let started = Instant::now();
        assert_eq!(serial.run_within(piece(4), short).await.unwrap(), (4, 3));
        assert!(
            started.elapsed() >= short,
            "a lingering piece waits its linger"
        );
    }

    #[tokio::test]
    async fn a_failed_piece_undoes_only_its_own_writes() {
        let (_dir, db) = db();
        let failing = db.run(|conn| {
            write_tx(conn, |conn| {
                insert(conn, 1)?;
                Err::<(), _>(anyhow::anyhow!("refused after writing"))
            })
        });
        let fine = db.run(|conn| write_tx(conn, |conn| Ok::<_, anyhow::Error>(insert(conn, 2)?)));
        let (failing, fine) = tokio::join!(failing, fine);
        assert!(failing.is_err());
        assert_eq!(fine.unwrap(), 1);
        assert_eq!(count(&mut db.conn().unwrap()), 1);
    }

    #[tokio::test]
    async fn a_piece_that_panics_inside_a_transaction_fails_its_batch_and_the_writer_goes_on() {
        let (_dir, db) = db();
        let panicking = db
            .run(|conn| {
                write_tx(conn, |conn| -> anyhow::Result<()> {
                    insert(conn, 1)?;
                    panic!("a bug in a piece of work");
                })
            })
            .await;
        assert!(panicking.is_err());
        let after = db.run(|conn| Ok(insert(conn, 2)?)).await;
        assert_eq!(after.unwrap(), 1);
        assert_eq!(
            count(&mut db.conn().unwrap()),
            1,
            "the panicked write was kept"
        );
    }

    /// 4,096 rows of random numbers: about 50 KiB of pages.
    fn insert_many(conn: &mut DbConn) -> diesel::QueryResult<usize> {
        diesel::sql_query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4096) \
             INSERT INTO t (x) SELECT random() FROM n",
        )
        .execute(conn)
    }

    fn database_file_size(dir: &tempfile::TempDir) -> u64 {
        std::fs::metadata(dir.path().join("t.db")).unwrap().len()
    }

    #[tokio::test]
    async fn the_checkpointer_copies_the_log_into_the_database_file() {
        let (dir, db) = db();
        let before = database_file_size(&dir);
        // 4 MiB of rows, in the log first: the writer never checkpoints itself.
        for _ in 0..64 {
            db.run(|conn| Ok(insert_many(conn)?)).await.unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while database_file_size(&dir) < before + 1_000_000 {
            assert!(
                std::time::Instant::now() < deadline,
                "the database file did not grow: nothing was checkpointed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs [`checkpoint`] past its limit beside a writer that never pauses, with `flush`;
    /// returns the frames in the log after the writer's next commit.
    fn catch_up(flush: impl Fn(&AtomicBool) -> std::io::Result<()>) -> i32 {
        // A pool without the single writer (nor its checkpointer): this test is the writer.
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::parse(&format!("sqlite://{}/t.db", dir.path().display())).unwrap();
        let pool = r2d2::Pool::builder()
            .max_size(2)
            .build(Manager { url })
            .unwrap();
        let mut writer = pool.get().unwrap();
        writer
            .batch_execute("PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (x INTEGER NOT NULL)")
            .unwrap();
        for _ in 0..4 {
            insert_many(&mut writer).unwrap();
        }
        // The writer writes while the log is being copied, after the copies beside it; it is
        // asked to pace itself until the last copy is done.
        let catching_up = AtomicBool::new(false);
        checkpoint(
            &pool,
            0,
            &catching_up,
            || flush(&catching_up),
            || {
                assert!(catching_up.load(Ordering::Relaxed));
                insert_many(&mut writer).unwrap();
            },
        )
        .unwrap();
        assert!(!catching_up.load(Ordering::Relaxed));
        insert(&mut writer, 1).unwrap();
        passive(&mut pool.get().unwrap()).unwrap().log
    }

    #[test]
    fn past_its_limit_the_log_starts_over_although_the_writer_never_pauses() {
        // Whether the writer was being paced at each flush of the database file.
        let flushes = std::sync::Mutex::new(Vec::new());
        let frames = catch_up(|catching_up| {
            flushes
                .lock()
                .unwrap()
                .push(catching_up.load(Ordering::Relaxed));
            Ok(())
        });
        assert!(frames < 20, "the log did not start over: {frames} frames");
        // The copies so far flushed unpaced; then each copy beside the writer's flushed, all
        // before the last copy, under the writer's lock.
        let flushes = flushes.into_inner().unwrap();
        assert!(
            matches!(flushes.as_slice(), [false, paced @ ..] if !paced.is_empty() && paced.iter().all(|&p| p)),
            "{flushes:?}"
        );
    }

    #[test]
    fn a_flush_that_fails_does_not_keep_the_log_from_starting_over() {
        let frames = catch_up(|_| Err(std::io::Error::other("the disk said no")));
        assert!(frames < 20, "the log did not start over: {frames} frames");
    }

    #[tokio::test]
    async fn the_flushed_descriptor_outlives_its_database_handle() {
        let (dir, db) = db();
        let path = dir.path().join("t.db");
        let file = database_file(&path).unwrap();
        drop(db);
        // Never closed while the process runs (see `database_file`), and never opened twice.
        assert!(Arc::ptr_eq(&file, &database_file(&path).unwrap()));
        assert!(Arc::strong_count(&file) >= 2);
    }

    #[tokio::test]
    async fn a_full_queue_answers_unavailable_at_once() {
        let (_dir, db) = db();
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let blocker = tokio::spawn({
            let db = db.clone();
            async move {
                db.run(move |_| {
                    let _ = blocked.recv();
                    Ok(())
                })
                .await
            }
        });
        // The writer is now (or soon) inside the blocker: fill the queue behind it.
        let mut queued = Vec::new();
        let mut refused = None;
        for _ in 0..MAX_QUEUED + MAX_BATCH + 2 {
            let db = db.clone();
            let run = tokio::spawn(async move { db.run(|conn| Ok(insert(conn, 1)?)).await });
            tokio::task::yield_now().await;
            if run.is_finished() {
                refused = Some(run.await.unwrap());
                break;
            }
            queued.push(run);
        }
        let refused = refused.expect("the queue never filled");
        let e = refused.unwrap_err();
        assert!(crate::db::is_outage(&e), "{e:#}");
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        for run in queued {
            run.await.unwrap().unwrap();
        }
    }
}
