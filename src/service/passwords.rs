//! Password hashing (argon2id, m=19456 KiB, t=2, p=1) on a fixed set of hashing threads, one
//! per core, at the lowest scheduling priority (so a login flood uses every idle cycle but
//! never delays token refreshes or JWKS reads), reusing argon2 memory areas from one shared
//! set: however many logins arrive, the process holds at most (threads × 19 MiB) of argon2
//! memory, and the blocking pool (database work) never runs a hash. Once the threads have had
//! nothing to do for [`IDLE_RELEASE`], the areas go back to the operating system, so memory
//! returns to its idle level after a burst. A bounded queue stands in front: beyond
//! [`MAX_WAITING`] waiting hashes, new ones are turned away (503). Unknown users are checked
//! against a dummy hash so that they cost the same as a wrong password.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use tokio::sync::oneshot;

use crate::domain::Password;

/// Hashes allowed to wait for a hashing thread before new ones are turned away.
pub const MAX_WAITING: usize = 512;

/// How long the hashing threads must have had no work before their memory areas are freed.
pub const IDLE_RELEASE: Duration = Duration::from_secs(2);

/// The address space reserved for each argon2 memory area. glibc serves a large allocation
/// from its heap, where a free does not return it to the system, once a freed mapping of that
/// size has raised its mmap threshold; the threshold never rises above 32 MiB (its
/// `DEFAULT_MMAP_THRESHOLD_MAX`), so an area reserved above that is always a mapping of its own,
/// unmapped when dropped. Only the pages a hash touches (19 MiB) become resident.
const AREA_RESERVE_BYTES: usize = 33 << 20;

/// Why a hash could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Too many logins are already waiting.
    #[error("too many logins in progress")]
    Busy,
    /// Something broke (a stopped hashing thread, a corrupt stored hash).
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// How costly new password hashes are. A stored hash carries its own parameters, so any hash
/// verifies whatever the profile.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HashProfile {
    /// The OWASP-recommended argon2id parameters (m=19456 KiB, t=2, p=1), spelled out so that
    /// a dependency update cannot change them silently: every command and every build.
    #[default]
    Production,
    /// argon2id with m=64 KiB, t=1: for the test suite only, which logs in thousands of times.
    /// Reachable only from library code (`startup::Tuning`), never from an option.
    TestOnly,
}

impl HashProfile {
    fn params(self) -> anyhow::Result<Params> {
        let (m, t) = match self {
            Self::Production => (19_456, 2),
            Self::TestOnly => (64, 1),
        };
        Params::new(m, t, 1, None).map_err(|e| anyhow!("argon2 parameters: {e}"))
    }

    /// Hashes a password with a fresh random salt, blocking the calling thread, in memory of
    /// its own (start-up and CLI; the service hashes on its hashing threads).
    pub fn hash(self, password: &Password) -> anyhow::Result<String> {
        let params = self.params()?;
        let mut memory = new_area(params.block_count());
        hash_into(&params, password, &mut memory)
    }
}

/// Hashes a password with the production parameters, blocking the calling thread (~20 ms).
pub fn hash_blocking(password: &Password) -> anyhow::Result<String> {
    HashProfile::Production.hash(password)
}

fn argon2id(params: Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A new PHC hash string of `password` under `params`, computed in `memory`.
fn hash_into(
    params: &Params,
    password: &Password,
    memory: &mut Vec<Block>,
) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).map_err(|e| anyhow!("reading the OS random generator: {e}"))?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    grow(memory, params.block_count());
    argon2id(params.clone())
        .hash_password_into_with_memory(password.expose(), &salt, &mut out, memory.as_mut_slice())
        .map_err(|e| anyhow!("hashing a password: {e}"))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| anyhow!("{e}"))?,
        salt: Some(Salt::new(&salt).map_err(|e| anyhow!("{e}"))?),
        hash: Some(Output::new(&out).map_err(|e| anyhow!("{e}"))?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `stored`, recomputed in `memory` under the
/// stored hash's own parameters; compared in constant time. A malformed hash never matches.
fn verify_into(password: &Password, stored: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let (Ok(params), Ok(algorithm)) = (
        Params::try_from(&parsed),
        Algorithm::try_from(parsed.algorithm.as_str()),
    ) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    grow(memory, params.block_count());
    let computed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password.expose(),
        salt.as_ref(),
        &mut out,
        memory.as_mut_slice(),
    );
    computed.is_ok()
        && aws_lc_rs::constant_time::verify_slices_are_equal(&out, expected.as_bytes()).is_ok()
}

/// A memory area of `blocks` argon2 blocks, in a mapping of its own (see
/// [`AREA_RESERVE_BYTES`]).
fn new_area(blocks: usize) -> Vec<Block> {
    let mut area = Vec::with_capacity(blocks.max(AREA_RESERVE_BYTES / Block::SIZE));
    area.resize(blocks, Block::default());
    area
}

/// Makes `memory` at least `blocks` long.
fn grow(memory: &mut Vec<Block>, blocks: usize) {
    if memory.len() < blocks {
        if memory.capacity() < blocks {
            *memory = new_area(blocks);
        } else {
            memory.resize(blocks, Block::default());
        }
    }
}

/// One piece of work for a hashing thread.
enum Job {
    Hash {
        password: Password,
        reply: oneshot::Sender<anyhow::Result<String>>,
    },
    Verify {
        password: Password,
        stored: String,
        reply: oneshot::Sender<bool>,
    },
}

/// The shared password hasher: a handle on the hashing threads.
#[derive(Clone)]
pub struct PasswordHasher {
    queue: SyncSender<(Instant, Job)>,
    waiting: Arc<AtomicUsize>,
    /// How long jobs waited for a thread.
    wait: Histogram,
    areas: Arc<Areas>,
    dummy_hash: Arc<str>,
    profile: HashProfile,
    threads: usize,
}

/// What each hash queued per hashing thread adds to a login's linger ([`PasswordHasher::linger`]),
/// from [`LINGER_FROM_QUEUED`] on: under a third of what a hash takes (15-35 ms on the machines
/// measured), so that a login lingers for less than the wait its turn at a thread will cost it
/// anyway.
const LINGER_PER_QUEUED: Duration = Duration::from_millis(12);

/// Hashes queued per hashing thread from which logins linger.
const LINGER_FROM_QUEUED: usize = 4;

/// The longest linger. Under a login flood on PostgreSQL (32 connections, 2 cores, the load
/// harness), lingering 100 ms took PostgreSQL's CPU per login from 1.24-1.39 ms (25 ms) to
/// 0.51-0.56, the service's other threads' from 1.93-1.99 to 1.26-1.49, and the logins from
/// 78-80% of the machine's argon2 limit to 94-96%.
const LINGER_MAX: Duration = Duration::from_millis(100);

impl PasswordHasher {
    /// A hasher with `threads` hashing threads, making new hashes with `profile`.
    pub fn new(threads: usize, profile: HashProfile) -> anyhow::Result<Self> {
        Self::with_idle_release(threads, profile, IDLE_RELEASE)
    }

    fn with_idle_release(
        threads: usize,
        profile: HashProfile,
        idle_release: Duration,
    ) -> anyhow::Result<Self> {
        let (queue, jobs) = mpsc::sync_channel::<(Instant, Job)>(MAX_WAITING);
        let jobs = Arc::new(Mutex::new(jobs));
        let waiting = Arc::new(AtomicUsize::new(0));
        // 1 ms to 16 s.
        let wait = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        let params = profile.params()?;
        let areas = Arc::new(Areas {
            blocks: params.block_count(),
            idle: Mutex::new(Vec::new()),
        });
        for i in 0..threads.max(1) {
            let thread = Worker {
                jobs: jobs.clone(),
                waiting: waiting.clone(),
                wait: wait.clone(),
                areas: areas.clone(),
                params: params.clone(),
                idle_release,
            };
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || thread.run())
                .map_err(|e| anyhow!("starting a hashing thread: {e}"))?;
        }
        let dummy =
            Password::for_login("dummy password for unknown users").map_err(|e| anyhow!(e))?;
        Ok(Self {
            queue,
            waiting,
            wait,
            areas,
            // Same profile as real hashes: an unknown user costs what a wrong password does.
            dummy_hash: profile.hash(&dummy)?.into(),
            profile,
            threads: threads.max(1),
        })
    }

    /// One hashing thread per core: hashing is all CPU, and the threads only run when there is
    /// hashing to do.
    pub fn default_threads() -> usize {
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    }

    /// Hashes a new password on the calling thread (start-up, before serving).
    pub fn hash_now(&self, password: &Password) -> anyhow::Result<String> {
        self.profile.hash(password)
    }

    /// Hashes a new password.
    pub async fn hash(&self, password: Password) -> Result<String, HashError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Hash { password, reply })?;
        answer
            .await
            .map_err(|_| HashError::Internal(anyhow!("the hashing thread stopped")))?
            .map_err(HashError::Internal)
    }

    /// Checks `password` against `hash`, or against the dummy hash when there is no user, so
    /// that both cases take the same time. Returns whether it matched a real hash.
    pub async fn verify(
        &self,
        password: Password,
        hash: Option<String>,
    ) -> Result<bool, HashError> {
        let real = hash.is_some();
        let stored = hash.unwrap_or_else(|| self.dummy_hash.to_string());
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Verify {
            password,
            stored,
            reply,
        })?;
        let matched = answer
            .await
            .map_err(|_| HashError::Internal(anyhow!("the hashing thread stopped")))?;
        Ok(real && matched)
    }

    fn submit(&self, job: Job) -> Result<(), HashError> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        match self.queue.try_send((Instant::now(), job)) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                Err(match e {
                    TrySendError::Full(_) => HashError::Busy,
                    TrySendError::Disconnected(_) => {
                        HashError::Internal(anyhow!("the hashing threads stopped"))
                    }
                })
            }
        }
    }

    /// How long a login's database work (its reservation, its session) may wait for other
    /// logins' to share one statement and one commit with them ([`crate::db::batch`]): nothing
    /// while fewer than [`LINGER_FROM_QUEUED`] hashes per thread wait for a thread, then
    /// [`LINGER_PER_QUEUED`] per hash waiting per thread, up to [`LINGER_MAX`]. A login that
    /// lingers then still reaches its thread before the queue ahead of it runs out, so the
    /// threads never wait for it; and a login of a quiet moment never waits. Under a login
    /// flood, the round trips and commits of each login on its own were most of what
    /// PostgreSQL and the service's other threads took from the cores the hashes need; on
    /// SQLite, lingering in the single writer's batches took the service's other threads from
    /// 2.27-2.57 ms per login to 1.69-1.80 (alternated login floods).
    pub fn linger(&self) -> Duration {
        let queued = self.waiting().saturating_sub(self.threads) / self.threads;
        if queued < LINGER_FROM_QUEUED {
            return Duration::ZERO;
        }
        LINGER_PER_QUEUED
            .saturating_mul(u32::try_from(queued).unwrap_or(u32::MAX))
            .min(LINGER_MAX)
    }

    /// How many hashes are queued or running now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// How long jobs waited for a hashing thread (for `/metrics`).
    pub fn wait_histogram(&self) -> Histogram {
        self.wait.clone()
    }

    /// How many argon2 memory areas are kept between jobs now (none once the threads idle).
    pub fn idle_areas(&self) -> usize {
        self.areas.idle.lock().map_or(0, |idle| idle.len())
    }
}

/// The argon2 memory areas not in use by a job: at most one per thread, since a thread takes
/// one for each job and puts it back after.
struct Areas {
    /// The size of an area for the configured parameters.
    blocks: usize,
    idle: Mutex<Vec<Vec<Block>>>,
}

impl Areas {
    fn take(&self) -> Vec<Block> {
        let kept = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        kept.unwrap_or_else(|| new_area(self.blocks))
    }

    /// Keeps `area` for the next job, unless a stored hash made under costlier parameters
    /// than ours made it bigger: that memory goes back at once, so the bound in the module
    /// doc holds whatever is stored.
    fn put_back(&self, area: Vec<Block>) {
        if area.len() <= self.blocks
            && let Ok(mut idle) = self.idle.lock()
        {
            idle.push(area);
        }
    }

    fn release(&self) {
        let freed = self.idle.lock().map(|mut idle| std::mem::take(&mut *idle));
        drop(freed);
    }
}

/// A hashing thread.
struct Worker {
    jobs: Arc<Mutex<mpsc::Receiver<(Instant, Job)>>>,
    waiting: Arc<AtomicUsize>,
    wait: Histogram,
    areas: Arc<Areas>,
    params: Params,
    idle_release: Duration,
}

impl Worker {
    /// Takes jobs until every handle is gone.
    fn run(self) {
        lower_priority();
        loop {
            let next = match self.jobs.lock() {
                Ok(receiver) => receiver.recv_timeout(self.idle_release),
                Err(_) => return,
            };
            let job = match next {
                Ok((queued, job)) => {
                    self.wait.observe(queued.elapsed().as_secs_f64());
                    job
                }
                // Only the thread holding the queue waits with a timeout; when it expires, no
                // job has arrived for that long.
                Err(RecvTimeoutError::Timeout) => {
                    self.areas.release();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut memory = self.areas.take();
            // The area goes back before the answer, so that a caller who has its answer finds
            // the memory already kept (or freed).
            let answer = match job {
                Job::Hash { password, reply } => {
                    Answer::Hashed(reply, hash_into(&self.params, &password, &mut memory))
                }
                Job::Verify {
                    password,
                    stored,
                    reply,
                } => Answer::Verified(reply, verify_into(&password, &stored, &mut memory)),
            };
            self.areas.put_back(memory);
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            // A caller that went away (a closed connection) no longer wants its answer.
            let _ = match answer {
                Answer::Hashed(reply, hashed) => reply.send(hashed).map_err(drop),
                Answer::Verified(reply, matched) => reply.send(matched).map_err(drop),
            };
        }
    }
}

/// A finished job's result, with where it goes.
enum Answer {
    Hashed(
        oneshot::Sender<anyhow::Result<String>>,
        anyhow::Result<String>,
    ),
    Verified(oneshot::Sender<bool>, bool),
}

/// Puts the calling thread at the lowest priority of the normal scheduler (SCHED_BATCH, nice
/// 19): hashes then take whatever CPU the request workers leave, instead of competing with
/// them. Not fatal when refused: hashing only loses its manners.
fn lower_priority() {
    use thread_priority::unix::{
        NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
        thread_native_id,
    };
    let batch = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch);
    if let Err(e) = set_thread_priority_and_policy(
        thread_native_id(),
        thread_priority::ThreadPriority::Min,
        batch,
    ) {
        tracing::warn!(error = ?e, "could not lower the priority of a hashing thread");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verifies_right_and_wrong_passwords_and_unknown_users() {
        let hasher = PasswordHasher::new(1, HashProfile::Production).unwrap();
        let pw = Password::for_login("correct horse").unwrap();
        let hash = hasher.hash(pw.clone()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(hasher.verify(pw.clone(), Some(hash.clone())).await.unwrap());
        let wrong = Password::for_login("battery staple").unwrap();
        assert!(!hasher.verify(wrong, Some(hash)).await.unwrap());
        assert!(!hasher.verify(pw, None).await.unwrap());
    }

    #[tokio::test]
    async fn test_profile_hashes_verify_like_any_other() {
        let cheap = PasswordHasher::new(1, HashProfile::TestOnly).unwrap();
        let real = PasswordHasher::new(1, HashProfile::Production).unwrap();
        let pw = Password::for_login("correct horse").unwrap();
        let hash = cheap.hash(pw.clone()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(real.verify(pw.clone(), Some(hash)).await.unwrap());
        let strong = real.hash(pw.clone()).await.unwrap();
        assert!(cheap.verify(pw, Some(strong)).await.unwrap());
        let garbage = Some("garbage".to_owned());
        assert!(
            !cheap
                .verify(Password::for_login("x").unwrap(), garbage)
                .await
                .unwrap()
        );
    }

    /// Logins linger only behind a deep queue, longer the deeper it is, never beyond the most.
    #[test]
    fn logins_linger_by_the_depth_of_the_queue() {
        let hasher = PasswordHasher::new(2, HashProfile::TestOnly).unwrap();
        let linger = |waiting: usize| {
            hasher.waiting.store(waiting, Ordering::Relaxed);
            hasher.linger()
        };
        assert_eq!(linger(0), Duration::ZERO);
        // Two running and seven queued: 3 per thread.
        assert_eq!(linger(9), Duration::ZERO);
        assert_eq!(linger(10), LINGER_PER_QUEUED * 4);
        assert_eq!(linger(13), LINGER_PER_QUEUED * 5);
        assert_eq!(linger(30), LINGER_MAX);
        assert_eq!(linger(usize::MAX), LINGER_MAX);
        hasher.waiting.store(0, Ordering::Relaxed);
    }

    #[test]
    fn a_costlier_stored_hash_borrows_memory_for_one_job_only() {
        let cheap = HashProfile::TestOnly.params().unwrap();
        let pw = Password::for_login("correct horse").unwrap();
        let stored = HashProfile::Production.hash(&pw).unwrap();
        let areas = Areas {
            blocks: cheap.block_count(),
            idle: Mutex::default(),
        };
        let mut memory = areas.take();
        assert!(verify_into(&pw, &stored, &mut memory));
        assert_eq!(memory.len(), 19_456);
        areas.put_back(memory);
        assert_eq!(areas.idle.lock().unwrap().len(), 0, "the big area was kept");
        let small = areas.take();
        assert_eq!(small.len(), cheap.block_count());
        areas.put_back(small);
        assert_eq!(areas.idle.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn memory_is_kept_while_busy_and_freed_once_idle() {
        let idle = Duration::from_secs(1);
        let hasher = PasswordHasher::with_idle_release(2, HashProfile::TestOnly, idle).unwrap();
        let pw = Password::for_login("correct horse").unwrap();
        for _ in 0..3 {
            hasher.verify(pw.clone(), None).await.unwrap();
            assert_eq!(
                hasher.idle_areas(),
                1,
                "one area serves one job after another"
            );
        }
        // The release runs on a hashing thread's own timer (not the injectable clock: it is
        // about the process's memory, not about tokens), so this waits for it.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while hasher.idle_areas() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the idle area was never freed"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            hasher.verify(pw, None).await.is_ok(),
            "a new area serves the next job"
        );
    }

    #[test]
    fn hashing_threads_run_at_the_lowest_priority() {
        std::thread::spawn(|| {
            lower_priority();
            let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
            let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
            // stat(5): field 19 is the nice value, field 41 the policy (3 = SCHED_BATCH).
            assert_eq!((fields[19 - 3], fields[41 - 3]), ("19", "3"), "{stat}");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn areas_are_mappings_of_their_own() {
        let area = new_area(19_456);
        assert_eq!(area.len(), 19_456);
        assert!(area.capacity() * Block::SIZE > 32 << 20);
    }

    #[test]
    fn hashes_made_elsewhere_verify_here() {
        // A hash the argon2 crate itself made (as every stored hash was, before these threads).
        use argon2::password_hash::PasswordHasher as _;
        let stored = argon2id(HashProfile::TestOnly.params().unwrap())
            .hash_password(b"correct horse")
            .unwrap()
            .to_string();
        let mut memory = Vec::new();
        assert!(verify_into(
            &Password::for_login("correct horse").unwrap(),
            &stored,
            &mut memory
        ));
        assert!(!verify_into(
            &Password::for_login("wrong").unwrap(),
            &stored,
            &mut memory
        ));
    }
}
