//! Batched PostgreSQL statements for the refresh grant. Under a refresh flood, PostgreSQL
//! spent its time on the overhead of each statement and each commit rather than on the rows:
//! one lookup and one rotation per request ran 2,160 refreshes/s on the development machine,
//! the same two statements taking eight requests at a time ran 11,900/s (pgbench, same
//! database). So the lookups and the rotations of concurrent requests are each handed to a
//! worker thread, which takes everything queued (up to [`MAX_BATCH`] items) into one
//! statement. Nobody waits for a batch to fill: a lone request is a batch of one, so batching
//! costs nothing at low load and appears by itself when requests arrive faster than a round
//! trip.
//!
//! Work that may wait says so: an item given a *linger* lets its batch wait that long for more
//! items (a login's, while the password hashes queued ahead of it leave time to spare; see
//! [`Batcher::run_within`]). An item that may not wait ends the wait of the batch it joins.
//!
//! A batch that fails (a lock conflict, a constraint) is retried item by item, so that one bad
//! item cannot fail the others; a failed connection answers every item with
//! [`Unavailable`](super::serial::Unavailable) (503), like an outage.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use diesel::QueryResult;
use diesel::connection::SimpleConnection;
use diesel::r2d2::{self, R2D2Connection};
use tokio::sync::oneshot;

use super::serial::{MAX_QUEUED, Unavailable};
use super::{CHECKED_RECENTLY, DbConn, Manager};

/// Items one statement takes at most.
pub const MAX_BATCH: usize = 64;

/// Threads of each kind of batch: batches in flight at once. One: what a batch costs
/// PostgreSQL is mostly per statement and per commit, so one batch taking everything queued
/// while the previous one ran does more with less than two running half as full side by
/// side. Measured with two against one (refresh flood, 32 connections, same machine, runs
/// alternated): ES256 5,914-6,006 against 6,699-6,786 refreshes/s, RS256 2,475-2,596 (p99
/// 22-28 ms) against 2,774-2,784 (p99 18-20 ms), and under a login flood the steady refreshes'
/// p99 27-38 ms against 14-22 ms.
const WORKERS: usize = 1;

/// A statement that serves many requests at once.
pub trait Batched: Send + Sync + 'static {
    type Item: Send + 'static;
    type Output: Send + 'static;

    /// The threads' name.
    const NAME: &'static str;

    /// Does the work of every item in one statement; returns one output per item, in order.
    fn run(conn: &mut DbConn, items: &[Self::Item]) -> QueryResult<Vec<Self::Output>>;
}

type Reply<B> = oneshot::Sender<anyhow::Result<<B as Batched>::Output>>;
/// An item, where its answer goes, and until when its batch may wait for more items.
type Job<B> = (<B as Batched>::Item, Reply<B>, Option<Instant>);

/// A handle on the workers of one kind of batch. Dropping it stops them and waits for them
/// to end, so that the last connections of their pool are closed before the drop returns.
/// Otherwise a worker, woken by the closed queue, could close them (libpq's TLS teardown)
/// while the process exits and OpenSSL's exit handlers free what that teardown uses: a CLI
/// command on PostgreSQL was once killed by a signal that way, after it had printed its result.
pub struct Batcher<B: Batched> {
    queue: SyncSender<Job<B>>,
    workers: Vec<JoinHandle<()>>,
}

impl<B: Batched> Drop for Batcher<B> {
    fn drop(&mut self) {
        // The queue's last sender goes: each worker's `recv` fails once the queue is empty.
        let (closed, _) = mpsc::sync_channel(0);
        drop(std::mem::replace(&mut self.queue, closed));
        for worker in self.workers.drain(..) {
            // A worker that panicked has nothing left to close.
            let _ = worker.join();
        }
    }
}

impl<B: Batched> Batcher<B> {
    /// Starts the workers, which take connections from `pool` and end when the last handle is
    /// dropped.
    pub fn start(pool: &r2d2::Pool<Manager>) -> anyhow::Result<Self> {
        let (queue, jobs) = mpsc::sync_channel::<Job<B>>(MAX_QUEUED);
        let jobs = Arc::new(Mutex::new(jobs));
        let mut workers = Vec::with_capacity(WORKERS);
        for i in 0..WORKERS {
            let (pool, jobs) = (pool.clone(), jobs.clone());
            workers.push(
                std::thread::Builder::new()
                    .name(format!("{}-{i}", B::NAME))
                    .spawn(move || work::<B>(&pool, &jobs))?,
            );
        }
        Ok(Self { queue, workers })
    }

    /// Does `item`'s work in the next batch.
    pub async fn run(&self, item: B::Item) -> anyhow::Result<B::Output> {
        self.run_within(item, Duration::ZERO).await
    }

    /// Does `item`'s work in the next batch, which may wait up to `linger` for more items
    /// (until the earliest end of its items' lingers, or until it is full).
    pub async fn run_within(&self, item: B::Item, linger: Duration) -> anyhow::Result<B::Output> {
        let (reply, answer) = oneshot::channel();
        match self.queue.try_send((item, reply, deadline(linger))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(anyhow::Error::new(Unavailable)),
            Err(TrySendError::Disconnected(_)) => anyhow::bail!("the {} threads stopped", B::NAME),
        }
        answer
            .await
            .map_err(|_| anyhow::anyhow!("database task panicked"))?
    }
}

/// Settings of a worker's connection. Batches touch a few rows, each found by its primary
/// key: a plan that scans a table is never the good one, but PostgreSQL picks one while a table
/// is small or before it has statistics (a new database), and keeps it once the statement is
/// prepared, scanning a table that has since grown to thousands of rows on every call (a
/// third of PostgreSQL's time in a refresh flood on a new database). And one plan, made once:
/// planned for each call's arrays, the rotation took longer to plan (0.8 ms) than to run.
const SESSION: &str = "SET enable_seqscan = off; SET enable_hashjoin = off; \
                       SET enable_mergejoin = off; SET plan_cache_mode = force_generic_plan";

/// One worker: takes what is queued (waiting for the first item, then for as long as every
/// item taken lingers), runs it, answers. It keeps one connection (with [`SESSION`]'s settings)
/// for as long as it works.
fn work<B: Batched>(pool: &r2d2::Pool<Manager>, jobs: &Mutex<Receiver<Job<B>>>) {
    let mut conn: Option<r2d2::PooledConnection<Manager>> = None;
    // When `conn` last answered.
    let mut answered = Instant::now();
    loop {
        let batch = {
            let jobs = jobs.lock().unwrap_or_else(PoisonError::into_inner);
            let Ok(first) = jobs.recv() else { return };
            gather(&jobs, first, MAX_BATCH, |job| job.2)
        };
        let (items, replies): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .map(|(item, reply, _)| (item, reply))
            .unzip();
        // Like a connection of the pool ([`super::checkout`]), the worker's is checked before
        // it is used when it has not answered within [`CHECKED_RECENTLY`]: it may have died
        // while the worker had nothing to do (an outage, a restarted server).
        if conn.as_mut().is_some_and(|c| {
            c.is_broken() || (answered.elapsed() >= CHECKED_RECENTLY && c.ping().is_err())
        }) {
            conn = None;
        }
        if conn.is_none() {
            conn = super::checkout(pool).ok().and_then(|mut c| {
                let set = match &mut *c {
                    DbConn::Pg(pg) => pg.batch_execute(SESSION),
                    DbConn::Sqlite(_) => Ok(()),
                };
                set.ok().map(|()| c)
            });
        }
        let Some(c) = conn.as_mut() else {
            for reply in replies {
                let _ = reply.send(Err(anyhow::Error::new(Unavailable)));
            }
            continue;
        };
        for (reply, outcome) in replies.into_iter().zip(run_isolated::<B>(c, &items)) {
            let _ = reply.send(outcome);
        }
        answered = Instant::now();
    }
}

/// Until when an item that may wait `linger` lets its batch wait for more: not at all
/// (`None`) when it may not. Also the SQLite writer's ([`super::serial`]).
pub(super) fn deadline(linger: Duration) -> Option<Instant> {
    (!linger.is_zero()).then(|| Instant::now() + linger)
}

/// A batch of at most `max`: `first`, everything queued behind it in `jobs`, and, for as long as
/// every item taken lingers (`until`: until when an item lets its batch wait), what arrives
/// meanwhile. Also the SQLite writer's ([`super::serial`]).
pub(super) fn gather<J>(
    jobs: &Receiver<J>,
    first: J,
    max: usize,
    until: impl Fn(&J) -> Option<Instant>,
) -> Vec<J> {
    let mut deadline = until(&first);
    let mut batch = vec![first];
    while batch.len() < max {
        let next = match deadline.and_then(|d| d.checked_duration_since(Instant::now())) {
            Some(left) => jobs.recv_timeout(left).ok(),
            None => jobs.try_recv().ok(),
        };
        let Some(job) = next else { break };
        deadline = deadline.zip(until(&job)).map(|(a, b)| a.min(b));
        batch.push(job);
    }
    batch
}

/// The outputs of `items`, in order: from one statement, or, when it fails, from one statement
/// per item.
fn run_isolated<B: Batched>(
    conn: &mut DbConn,
    items: &[B::Item],
) -> Vec<anyhow::Result<B::Output>> {
    match B::run(conn, items) {
        Ok(outputs) if outputs.len() == items.len() => outputs.into_iter().map(Ok).collect(),
        Ok(_) => items
            .iter()
            .map(|_| Err(anyhow::anyhow!("{}: one output per item expected", B::NAME)))
            .collect(),
        Err(_) if items.len() > 1 => items
            .iter()
            .map(|item| {
                B::run(conn, std::slice::from_ref(item))
                    .map_err(anyhow::Error::from)
                    .and_then(|mut one| one.pop().ok_or_else(|| anyhow::anyhow!("no output")))
            })
            .collect(),
        Err(e) => vec![Err(e.into())],
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::db::{DatabaseUrl, Db};

    static LARGEST: AtomicUsize = AtomicUsize::new(0);

    /// Doubles numbers, slowly; a batch holding 13 fails as a whole, and 13 alone fails.
    struct Double;

    impl Batched for Double {
        type Item = i64;
        type Output = i64;
        const NAME: &'static str = "test-double";

        fn run(_: &mut DbConn, items: &[i64]) -> QueryResult<Vec<i64>> {
            LARGEST.fetch_max(items.len(), Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20));
            if items.contains(&13) {
                return Err(diesel::result::Error::NotFound);
            }
            Ok(items.iter().map(|x| x * 2).collect())
        }
    }

    fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::parse(&format!("sqlite://{}/t.db", dir.path().display())).unwrap();
        (dir, Db::open(&url).unwrap())
    }

    #[tokio::test]
    async fn concurrent_items_share_statements_and_one_bad_item_fails_alone() {
        let (_dir, db) = db();
        let batcher = Batcher::<Double>::start(&db.pool).unwrap();
        let answers = futures_util::future::join_all((0..40).map(|x| batcher.run(x))).await;
        for (x, answer) in answers.into_iter().enumerate() {
            match answer {
                Ok(doubled) => assert_eq!(doubled, 2 * x as i64),
                Err(_) => assert_eq!(x, 13, "only the bad item fails"),
            }
        }
        // Items that arrive while both workers are busy wait and go together.
        let largest = LARGEST.load(Ordering::SeqCst);
        assert!(largest > 10, "the largest batch held {largest} items of 40");
        assert_eq!(
            batcher.run(21).await.unwrap(),
            42,
            "a lone item is a batch of one"
        );
    }

    /// Answers each item with the size of its batch.
    struct Sizes;

    impl Batched for Sizes {
        type Item = u32;
        type Output = usize;
        const NAME: &'static str = "test-sizes";

        fn run(_: &mut DbConn, items: &[u32]) -> QueryResult<Vec<usize>> {
            Ok(vec![items.len(); items.len()])
        }
    }

    /// A lingering item keeps its batch open for the items that follow it, until one that may
    /// not wait joins; a lingering item alone is answered when its linger ends.
    #[tokio::test]
    async fn lingering_items_wait_for_each_other_until_one_may_not() {
        let (_dir, db) = db();
        let batcher = Batcher::<Sizes>::start(&db.pool).unwrap();
        let long = Duration::from_secs(60);
        let started = Instant::now();
        // `join3` polls them in order: each is queued before the next.
        let sizes = futures_util::future::join3(
            batcher.run_within(1, long),
            batcher.run_within(2, long),
            batcher.run(3),
        )
        .await;
        assert_eq!(
            (sizes.0.unwrap(), sizes.1.unwrap(), sizes.2.unwrap()),
            (3, 3, 3)
        );
        assert!(started.elapsed() < long / 2, "the last item ended the wait");

        let short = Duration::from_millis(50);
        let started = Instant::now();
        assert_eq!(batcher.run_within(4, short).await.unwrap(), 1);
        assert!(
            started.elapsed() >= short,
            "a lingering item waits its linger"
        );
        assert_eq!(
            batcher.run(5).await.unwrap(),
            1,
            "an item that may not wait"
        );
    }

    static FINISHED: AtomicUsize = AtomicUsize::new(0);

    /// Counts its items once their (slow) batch is done.
    struct Slow;

    impl Batched for Slow {
        type Item = ();
        type Output = ();
        const NAME: &'static str = "test-slow";

        fn run(_: &mut DbConn, items: &[()]) -> QueryResult<Vec<()>> {
            std::thread::sleep(Duration::from_millis(150));
            FINISHED.fetch_add(items.len(), Ordering::SeqCst);
            Ok(vec![(); items.len()])
        }
    }

    /// Dropping a batcher waits for its workers: the batch they run ends, and they with it,
    /// before the drop returns (what they hold of the pool is released by then).
    #[tokio::test]
    async fn dropping_a_batcher_waits_for_its_workers() {
        let (_dir, db) = db();
        let batcher = Batcher::<Slow>::start(&db.pool).unwrap();
        let (reply, answer) = oneshot::channel();
        batcher.queue.try_send(((), reply, None)).unwrap();
        drop(batcher);
        assert_eq!(
            FINISHED.load(Ordering::SeqCst),
            1,
            "the batch had not ended"
        );
        assert!(answer.await.unwrap().is_ok());
    }
}
