use std::fmt;

/// A public client's identifier (RFC 6749 `client_id`): 1–128 visible ASCII characters.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ClientId(String);

impl ClientId {
    /// The `client_id` of tokens whose caller named none.
    pub const DEFAULT: &'static str = "jwt-issuer";

    /// Parses a `client_id`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > 128 || !s.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err("client_id must be 1-128 printable ASCII characters".into());
        }
        Ok(Self(s.to_owned()))
    }

    /// The default client.
    pub fn default_client() -> Self {
        Self(Self::DEFAULT.to_owned())
    }

    /// The identifier.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An audience a token is meant for (`aud`): 1–256 characters, no whitespace or controls.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Audience(String);

impl Audience {
    /// Parses an `audience` parameter or option.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty()
            || s.chars().count() > 256
            || s.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err("audience must be 1-256 characters without whitespace".into());
        }
        Ok(Self(s.to_owned()))
    }

    /// The audience value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Audience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_and_audiences() {
        assert!(ClientId::parse("spa-frontend").is_ok());
        assert!(ClientId::parse("").is_err());
        assert!(ClientId::parse("a\nb").is_err());
        assert!(Audience::parse("https://api.example.com").is_ok());
        assert!(Audience::parse("two words").is_err());
    }
}
