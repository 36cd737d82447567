use std::fmt;

/// The name of a registered scope: 1–64 characters of `A-Z a-z 0-9 _ . : -` (a strict subset
/// of RFC 6749's scope-token, so it is safe in a URL path and a log line).
#[derive(Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct ScopeName(String);

impl ScopeName {
    /// In a client's list of allowed scopes: every registered scope.
    pub const ANY: &'static str = "*";

    /// Parses a scope name.
    pub fn parse(s: &str) -> Result<Self, String> {
        if super::is_plain_name(s, 64) {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "invalid scope name {:?}: use 1-64 characters of letters, digits, '_', '.', ':', '-'",
                s.chars().take(64).collect::<String>()
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ScopeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An OAuth scope (RFC 6749 §3.3): space-separated scope tokens, repeats dropped, order kept.
/// May be empty.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Scope(Vec<String>);

impl Scope {
    /// The longest scope string accepted.
    pub const MAX_LEN: usize = 1024;

    /// Parses a `scope` parameter.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.len() > Self::MAX_LEN {
            return Err(format!("scope must be at most {} bytes", Self::MAX_LEN));
        }
        let mut tokens: Vec<String> = Vec::new();
        for token in s.split(' ').filter(|t| !t.is_empty()) {
            // scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
            if !token
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
            {
                return Err(format!("invalid character in scope token {token:?}"));
            }
            if !tokens.iter().any(|t| t == token) {
                tokens.push(token.to_owned());
            }
        }
        Ok(Self(tokens))
    }

    /// Whether every token of `self` is in `other`.
    pub fn is_subset_of(&self, other: &Scope) -> bool {
        self.0.iter().all(|t| other.0.contains(t))
    }

    /// Whether there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The scope tokens, in order.
    pub fn tokens(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// The tokens for which `keep` holds, in order.
    pub fn filter(&self, mut keep: impl FnMut(&str) -> bool) -> Scope {
        Scope(self.0.iter().filter(|t| keep(t)).cloned().collect())
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_normalises_and_compares() {
        let s = Scope::parse("read  write read").unwrap();
        assert_eq!(s.to_string(), "read write");
        assert!(Scope::parse("read").unwrap().is_subset_of(&s));
        assert!(!Scope::parse("admin").unwrap().is_subset_of(&s));
        assert!(Scope::parse("").unwrap().is_empty());
    }

    #[test]
    fn scope_names_are_strict() {
        assert!(ScopeName::parse("payments:write").is_ok());
        for bad in ["", "a b", "a\"b", "a/b", "*", &"s".repeat(65)] {
            assert!(ScopeName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rejects_quotes_backslashes_and_controls() {
        for bad in ["a\"b", "a\\b", "a\tb", "é"] {
            assert!(Scope::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Scope::parse(&"a".repeat(1025)).is_err());
    }
}
