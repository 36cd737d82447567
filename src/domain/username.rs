use std::fmt;

/// A valid username: 1–150 characters, none of them a control character.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    /// The longest username, in characters (Django's limit, which many user stores share).
    pub const MAX_CHARS: usize = 150;

    /// Parses a username, saying what is wrong with it.
    pub fn parse(s: &str) -> Result<Self, String> {
        let chars = s.chars().count();
        if chars == 0 {
            return Err("username must not be empty".into());
        }
        if chars > Self::MAX_CHARS {
            return Err(format!(
                "username must be at most {} characters",
                Self::MAX_CHARS
            ));
        }
        if s.chars().any(char::is_control) {
            return Err("username must not contain control characters".into());
        }
        if s.trim() != s {
            return Err("username must not start or end with whitespace".into());
        }
        Ok(Self(s.to_owned()))
    }

    /// The username as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for ok in [
            "a",
            "alice",
            "bob.smith@example.com",
            "Zoë",
            &"x".repeat(150),
            "a b",
        ] {
            assert!(Username::parse(ok).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn rejects_empty_long_control_and_padded() {
        for bad in [
            "",
            &"x".repeat(151),
            "a\nb",
            "a\u{0}",
            "\u{7f}",
            " alice",
            "alice ",
        ] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        assert!(Username::parse(&"é".repeat(150)).is_ok());
    }
}
