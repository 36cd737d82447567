//! The settings the service runs with: every option resolved once, at start. The command line
//! (`cli::args`) produces them; the service reads them. Nothing here does I/O.

use std::path::PathBuf;

use crate::clock::Clock;
use crate::crypto::signing::Alg;
use crate::domain::Cidr;

/// The throttle's limits, from the options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The window failures are counted in, seconds.
    pub window: i64,
    /// Failures of one username from one address before that pair locks.
    pub per_user_address: i32,
    /// Failures from one address (any usernames) before the address locks.
    pub per_address: i32,
    /// Failures of one username (any addresses) before the username locks everywhere.
    pub per_user: i32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            window: 15 * 60,
            per_user_address: 5,
            per_address: 20,
            per_user: 100,
        }
    }
}

/// The settings the service runs with, resolved from [`Options`] once the listener is bound.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The `iss` claim and the base of the metadata URLs, without a trailing slash.
    pub issuer: String,
    /// The default `aud`, and the audience this issuer's own endpoints accept.
    pub audience: String,
    /// Access token lifetime, seconds.
    pub access_ttl: i64,
    /// Refresh token idle lifetime, seconds.
    pub refresh_ttl: i64,
    /// Algorithm of newly generated signing keys.
    pub alg: Alg,
    /// Scheduled rotation interval, seconds.
    pub rotate_every: Option<i64>,
    /// Purge interval, seconds.
    pub purge_every: u64,
    /// Folder of the KEK and the bootstrap password.
    pub keys_dir: PathBuf,
    /// Allowed CORS origins.
    pub cors_origins: Vec<String>,
    /// The longest a session lives, used or not, seconds.
    pub session_max_age: i64,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
    /// The login throttle's limits.
    pub throttle: Limits,
    /// How long audit events are kept, seconds.
    pub audit_retention: i64,
    /// How long a request body may take to arrive.
    pub body_timeout: std::time::Duration,
    /// The clock every time is read from.
    pub clock: Clock,
}

/// Clock leeway when checking `exp`/`nbf`, seconds.
pub const LEEWAY_SECS: i64 = 30;

impl Settings {
    /// The audience of this issuer's admin API (RFC 8725 §3.9: our own API is its own
    /// audience, so a token minted for a resource server never opens it).
    pub fn admin_audience(&self) -> String {
        format!("{}/admin", self.issuer)
    }

    /// The audience of the introspection endpoint.
    pub fn introspect_audience(&self) -> String {
        format!("{}/introspect", self.issuer)
    }

    /// The token endpoint's URL.
    pub fn token_endpoint(&self) -> String {
        format!("{}/oauth/token", self.issuer)
    }
}
