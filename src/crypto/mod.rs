//! Keys and tokens, with no I/O beyond the key-encryption key file: generating and holding
//! signing keys, encrypting them at rest, publishing their public halves (JWK, PEM), and
//! encoding and verifying access tokens. Everything here is pure enough to unit-test. It
//! uses `domain` only: no database, no HTTP, no service logic.

pub mod client_key;
pub mod encoding;
pub mod import;
pub mod jwt;
pub mod kek;
pub mod public_key;
pub mod signing;

/// Unpadded base64url, the encoding of every JOSE field.
pub fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
