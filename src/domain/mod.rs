//! Domain values, parsed once at the edge and trusted inside: a `Username` is always valid,
//! a `Password` never prints, a `RefreshToken` is always 256 random bits.
//!
//! Nothing here does I/O, and nothing here uses any other module of the crate: every other
//! layer may use it.

mod client;
mod ids;
mod keys;
mod net;
mod password;
mod refresh_token;
mod roles;
mod scope;
mod username;

pub use client::{Audience, ClientId, ClientSecret, GrantType};
pub use ids::{Kid, UserId};
pub use keys::{Alg, KeyState};
pub use net::Cidr;
pub use password::Password;
pub use refresh_token::RefreshToken;
pub use roles::{Role, Roles};
pub use scope::{Scope, ScopeName};
pub use username::Username;

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// The hex SHA-256 of `bytes`: how refresh tokens and client secrets are stored.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref())
}

/// Whether `s` is 1 to `max` characters of `A-Z a-z 0-9 _ . : -`: the alphabet of role and
/// scope names, safe in a URL path, a log line and a space-separated list.
fn is_plain_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}
