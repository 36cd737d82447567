use std::collections::HashSet;
use std::fmt;
use std::sync::LazyLock;

/// The 19,640 most common passwords (lower-cased), as Django ships them: Royce Williams' list
/// (https://gist.github.com/roycewilliams/226886fd01572964e1431ac8afc999ce), one per line.
const COMMON_PASSWORDS: &str = include_str!("common-passwords.txt");

/// The list as a set, built on first use.
static COMMON: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| COMMON_PASSWORDS.lines().collect());

/// A password as typed by a user. Never printed, never logged, wiped from memory on drop.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// The shortest password that may be set, in characters.
    pub const MIN_NEW_CHARS: usize = 8;
    /// The longest password accepted anywhere, in characters: hashing cost must stay bounded.
    pub const MAX_CHARS: usize = 1024;

    /// A password presented at login: any non-empty text up to [`Self::MAX_CHARS`].
    pub fn for_login(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("password must not be empty".into());
        }
        if s.chars().count() > Self::MAX_CHARS {
            return Err(format!(
                "password must be at most {} characters",
                Self::MAX_CHARS
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// A password being set for `username` (creation, change, reset): 8 to 1024 characters,
    /// not the username, not one of the most common passwords. The error says which rule.
    pub fn for_new_user(s: &str, username: &str) -> Result<Self, String> {
        let p = Self::for_login(s)?;
        if s.chars().count() < Self::MIN_NEW_CHARS {
            return Err(format!(
                "password must be at least {} characters",
                Self::MIN_NEW_CHARS
            ));
        }
        let folded = s.trim().to_lowercase();
        if folded == username.trim().to_lowercase() {
            return Err("password must not be the username".into());
        }
        if COMMON.contains(folded.as_str()) {
            return Err(
                "password is too common: it is on a list of the 20,000 most used passwords".into(),
            );
        }
        Ok(p)
    }

    /// The secret bytes, for the hasher only.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

// Every copy is wiped when dropped.
impl Drop for Password {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
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
        assert!(Password::for_new_user("short", "bob").is_err());
        assert!(Password::for_new_user("long enough", "bob").is_ok());
        assert!(Password::for_login("x").is_ok());
        assert!(Password::for_login("").is_err());
        assert!(Password::for_login(&"x".repeat(1025)).is_err());
        // Characters, not bytes: a long password of multi-byte characters can be set and used.
        let wide = "é".repeat(1024);
        assert!(Password::for_new_user(&wide, "bob").is_ok());
        assert!(Password::for_login(&wide).is_ok());
    }

    #[test]
    fn the_username_and_common_passwords_are_refused() {
        let err = Password::for_new_user("Rosalind.F", "rosalind.f").unwrap_err();
        assert!(err.contains("username"), "{err}");
        for common in [
            "password",
            "Password1",
            "iloveyou",
            "qwertyuiop",
            "  PASSWORD  ",
        ] {
            let err = Password::for_new_user(common, "bob").unwrap_err();
            assert!(
                err.contains("common") || err.contains("at least"),
                "{common}: {err}"
            );
        }
        assert!(COMMON.len() >= 10_000, "{}", COMMON.len());
        assert!(Password::for_new_user("correct horse battery staple", "bob").is_ok());
    }
}
