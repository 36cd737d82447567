use std::fmt;

/// A password as typed by a user. Never printed, never logged.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// The shortest password accepted when a user is created.
    pub const MIN_NEW_CHARS: usize = 8;
    /// The longest password accepted anywhere, in bytes: hashing cost must stay bounded.
    pub const MAX_BYTES: usize = 1024;

    /// A password presented at login: any non-empty text up to [`Self::MAX_BYTES`].
    pub fn for_login(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("password must not be empty".into());
        }
        if s.len() > Self::MAX_BYTES {
            return Err(format!(
                "password must be at most {} bytes",
                Self::MAX_BYTES
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// A password for a new user: as for login, and at least [`Self::MIN_NEW_CHARS`] long.
    pub fn for_new_user(s: &str) -> Result<Self, String> {
        let p = Self::for_login(s)?;
        if s.chars().count() < Self::MIN_NEW_CHARS {
            return Err(format!(
                "password must be at least {} characters",
                Self::MIN_NEW_CHARS
            ));
        }
        Ok(p)
    }

    /// The secret bytes, for the hasher only.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let p = Password::for_login("hunter22").unwrap();
        assert!(!format!("{p:?}").contains("hunter22"));
    }

    #[test]
    fn new_passwords_have_a_minimum_and_all_a_maximum() {
        assert!(Password::for_new_user("short").is_err());
        assert!(Password::for_new_user("long enough").is_ok());
        assert!(Password::for_login("x").is_ok());
        assert!(Password::for_login("").is_err());
        assert!(Password::for_login(&"x".repeat(1025)).is_err());
    }
}
