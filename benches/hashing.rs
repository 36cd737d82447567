//! The machine's password-hashing limit, as the service hashes: the service's own hasher
//! (argon2id m=19456 KiB, t=2, p=1, one thread per core, reused memory), no HTTP, no database.
//! Hashes as fast as the threads take them for a few seconds and prints hashes per second.
//! `scripts/load.py` runs it beside the HTTP load, so logins are compared to a limit measured
//! on the same machine in the same run.
//!
//! `cargo bench --bench hashing` (add `-- SECONDS` to change the 5 s measurement).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use jwt_issuer::domain::Password;
use jwt_issuer::service::passwords::{HashProfile, PasswordHasher};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let seconds: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5.0);
    let threads = PasswordHasher::default_threads();
    let hasher = PasswordHasher::new(threads, HashProfile::Production).unwrap();
    let password = Password::for_login("a password of the usual length").unwrap();
    let stored = hasher.hash(password.clone()).await.unwrap();
    // Keep every thread busy: twice as many hashes in flight as there are threads.
    let run = |until: Instant| {
        let (hasher, password, stored) = (hasher.clone(), password.clone(), stored.clone());
        async move {
            let mut done = 0u64;
            while Instant::now() < until {
                assert!(
                    hasher
                        .verify(password.clone(), Some(stored.clone()))
                        .await
                        .unwrap()
                );
                done += 1;
            }
            done
        }
    };
    // Warm up (the threads allocate their memory, the CPU leaves its idle state).
    futures_util::future::join_all(
        (0..threads * 2).map(|_| run(Instant::now() + Duration::from_secs(1))),
    )
    .await;
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(seconds);
    let done: u64 = futures_util::future::join_all((0..threads * 2).map(|_| run(until)))
        .await
        .into_iter()
        .sum();
    let rate = done as f64 / started.elapsed().as_secs_f64();
    println!("argon2id m=19456 t=2 p=1, {threads} hashing threads: {rate:.1} hashes/s");
}
