//! What the issuer does, independent of HTTP: logins with throttling, refresh rotation,
//! minting access tokens, sessions, accounts, clients and scopes, the key ring and its
//! lifecycle, revocation, first-run bootstrap.
//!
//! One style: each module's operations are synchronous functions over a `&mut DbConn` (plus
//! what else they need), so that several compose inside one transaction and the CLI calls them
//! as they are. [`Issuer`] is the one value the HTTP edge holds: it owns each shared thing once
//! (the pool, the key ring, the registry, the hasher, the settings), runs those functions off
//! the async workers ([`Issuer::run`]), and is where what must be async lives (the grants,
//! whose password hashing waits for a bounded hasher). Functions take parsed domain values and
//! return their module's error type; the HTTP layer maps those to responses.

pub mod audit;
pub mod bootstrap;
pub mod clients;
pub mod credentials;
pub mod failures;
pub mod grants;
pub mod kek;
pub mod keyring;
pub mod keys;
pub mod machine;
pub mod maintenance;
pub mod passwords;
pub mod registry;
pub mod revocation;
pub mod sessions;
pub mod throttle;
pub mod time;
pub mod users;

use std::sync::Arc;

use crate::config::Settings;
use crate::db::{Db, DbConn};
use keyring::KeyStore;
use passwords::PasswordHasher;
use registry::RegistryStore;

/// The issuer's shared state: each thing once.
#[derive(Clone)]
pub struct Issuer {
    /// The connection pool.
    pub db: Db,
    /// The signing keys, parsed, and the pre-serialized JWKS.
    pub keys: Arc<KeyStore>,
    /// Registered clients and scopes.
    pub registry: Arc<RegistryStore>,
    /// The bounded password hasher.
    pub hasher: PasswordHasher,
    /// The resolved configuration.
    pub settings: Arc<Settings>,
}

impl Issuer {
    /// Runs service functions over one pooled connection, off the async workers.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<anyhow::Error> + Send + 'static,
    {
        self.db.run_typed(f).await
    }

    /// For `/metrics`: the live sessions and the revoked, not yet expired, access tokens.
    pub async fn gauge_counts(&self) -> anyhow::Result<(i64, i64)> {
        let now = self.settings.clock.now();
        let created_after = now.saturating_sub(self.settings.session_max_age);
        self.db
            .run(move |conn| {
                Ok((
                    crate::db::refresh::count_live_families(conn, created_after)?,
                    crate::db::revocations::count_live(conn, now)?,
                ))
            })
            .await
    }
}

/// Whether an error means the database could not be reached (the request may be retried).
pub fn is_outage(e: &anyhow::Error) -> bool {
    crate::db::is_outage(e)
}
