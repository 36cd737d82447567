//! Domain values, parsed once at the edge and trusted inside: a `Username` is always valid,
//! a `Password` never prints, a `RefreshToken` is always 256 random bits.
//!
//! Nothing here does I/O.

mod client;
mod password;
mod refresh_token;
mod roles;
mod scope;
mod username;

pub use client::{Audience, ClientId};
pub use password::Password;
pub use refresh_token::RefreshToken;
pub use roles::{Role, Roles};
pub use scope::Scope;
pub use username::Username;
