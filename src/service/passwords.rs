//! Password hashing (argon2id, m=19456 KiB, t=2, p=1) off the async workers, with bounded
//! concurrency: at most `permits` hashes run at once, so a flood of logins leaves CPU and
//! threads for JWKS and refresh requests. Unknown users are checked against a dummy hash so
//! that they cost the same as a wrong password.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context as _, anyhow};
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::domain::Password;

/// Logins allowed to wait for a hashing slot before new ones are turned away.
const MAX_WAITING: usize = 512;

/// Why a hash could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Too many logins are already waiting.
    #[error("too many logins in progress")]
    Busy,
    /// Something broke (a panicked task, a corrupt stored hash).
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The shared password hasher.
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    dummy_hash: Arc<str>,
    profile: HashProfile,
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
    fn argon2(self) -> anyhow::Result<Argon2<'static>> {
        let (m, t) = match self {
            Self::Production => (19_456, 2),
            Self::TestOnly => (64, 1),
        };
        let params = Params::new(m, t, 1, None).map_err(|e| anyhow!("argon2 parameters: {e}"))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// Hashes a password with a fresh random salt, blocking the calling thread.
    pub fn hash(self, password: &Password) -> anyhow::Result<String> {
        self.argon2()?
            .hash_password(password.expose())
            .map(|h| h.to_string())
            .map_err(|e| anyhow!("hashing a password: {e}"))
    }
}

/// Hashes a password with the production parameters, blocking the calling thread (~20 ms).
pub fn hash_blocking(password: &Password) -> anyhow::Result<String> {
    HashProfile::Production.hash(password)
}

fn verify_blocking(password: &Password, hash: &str) -> bool {
    // The hash's own parameters decide; the profile only chooses how new hashes are made.
    match argon2::PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.expose(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

impl PasswordHasher {
    /// A hasher running at most `permits` hashes at once, making new hashes with `profile`.
    pub fn new(permits: usize, profile: HashProfile) -> anyhow::Result<Self> {
        let dummy =
            Password::for_login("dummy password for unknown users").map_err(|e| anyhow!(e))?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(permits.max(1))),
            waiting: Arc::new(AtomicUsize::new(0)),
            // Same profile as real hashes: an unknown user costs what a wrong password does.
            dummy_hash: profile.hash(&dummy)?.into(),
            profile,
        })
    }

    /// Hashes a new password on the calling thread (start-up, before serving).
    pub fn hash_now(&self, password: &Password) -> anyhow::Result<String> {
        self.profile.hash(password)
    }

    /// One slot per core but one, so a core stays free for everything else.
    pub fn default_permits() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
    }

    /// Hashes a new password.
    pub async fn hash(&self, password: Password) -> Result<String, HashError> {
        let profile = self.profile;
        self.run(move || profile.hash(&password))
            .await?
            .map_err(HashError::Internal)
    }

    /// Checks `password` against `hash`, or against the dummy hash when there is no user, so
    /// that both cases take the same time. Returns whether it matched a real hash.
    pub async fn verify(
        &self,
        password: Password,
        hash: Option<String>,
    ) -> Result<bool, HashError> {
        let dummy = self.dummy_hash.clone();
        self.run(move || match hash {
            Some(h) => verify_blocking(&password, &h),
            None => {
                verify_blocking(&password, &dummy);
                false
            }
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= MAX_WAITING {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(HashError::Busy);
        }
        let guard = Waiting(&self.waiting);
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| HashError::Internal(anyhow!("hasher closed")))?;
        drop(guard);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f()
        })
        .await
        .context("password hashing task panicked")
        .map_err(HashError::Internal)
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
        assert!(
            !cheap
                .verify(Password::for_login("x").unwrap(), Some("garbage".into()))
                .await
                .unwrap()
        );
    }
}
