//! What the issuer does, independent of HTTP: password logins with throttling, refresh token
//! rotation, minting access tokens, user creation, the key ring and first-run bootstrap.
//! Functions here take parsed domain values and return domain errors; the HTTP layer maps
//! those to responses.

pub mod bootstrap;
pub mod clients;
pub mod grants;
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
