use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// An opaque refresh token: 256 bits from the OS CSPRNG, base64url without padding.
/// Only its SHA-256 is ever stored; its `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken(String);

impl RefreshToken {
    const BYTES: usize = 32;
    const ENCODED_LEN: usize = 43;

    /// A fresh token from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; Self::BYTES];
        getrandom::getrandom(&mut bytes)?;
        Ok(Self(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Parses a presented token; anything that could not have come from us is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        let well_formed = s.len() == Self::ENCODED_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| Self(s.to_owned()))
    }

    /// The hex SHA-256 of the token, the form stored in the database.
    pub fn hash(&self) -> String {
        super::sha256_hex(self.0.as_bytes())
    }

    /// The token itself, for the one response that hands it out.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_differ() {
        let a = RefreshToken::generate().unwrap();
        let b = RefreshToken::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(RefreshToken::parse(a.expose()), Some(a.clone()));
        assert_eq!(a.hash().len(), 64);
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn rejects_what_we_never_issue() {
        assert!(RefreshToken::parse("").is_none());
        assert!(RefreshToken::parse(&"a".repeat(44)).is_none());
        assert!(RefreshToken::parse(&format!("{}=", "a".repeat(42))).is_none());
    }
}
