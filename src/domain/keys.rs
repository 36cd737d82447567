use std::fmt;
use std::str::FromStr;

/// The algorithms this issuer signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys.
    RS256,
    /// ECDSA on P-256 with SHA-256.
    ES256,
}

impl Alg {
    /// The JOSE name, also the stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::ES256 => "ES256",
        }
    }
}

impl FromStr for Alg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "RS256" => Ok(Self::RS256),
            "ES256" => Ok(Self::ES256),
            other => Err(format!(
                "unsupported algorithm {:?}: use RS256 or ES256",
                other.chars().take(32).collect::<String>()
            )),
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A signing key's place in its lifecycle (docs/CONTRACT.md §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// Published, not yet signing.
    Next,
    /// Signing; exactly one.
    Active,
    /// No longer signing; published until every token it signed has expired.
    Retired,
    /// Withdrawn at once.
    Revoked,
}

impl KeyState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Active => "active",
            Self::Retired => "retired",
            Self::Revoked => "revoked",
        }
    }
}

impl FromStr for KeyState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [Self::Next, Self::Active, Self::Retired, Self::Revoked]
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown key state {s:?}"))
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored value that is not one of an enum's names.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotAName(String);

// The database boundary: stored as text, read back through a checked conversion.
macro_rules! stored_as_text {
    ($($t:ty),*) => {$(
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.as_str().to_owned()
            }
        }
        impl TryFrom<String> for $t {
            type Error = NotAName;
            fn try_from(s: String) -> Result<Self, NotAName> {
                s.parse().map_err(NotAName)
            }
        }
    )*};
}
stored_as_text!(Alg, KeyState);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_garbage_is_refused() {
        for alg in [Alg::RS256, Alg::ES256] {
            assert_eq!(Alg::try_from(String::from(alg)).unwrap(), alg);
        }
        for state in [
            KeyState::Next,
            KeyState::Active,
            KeyState::Retired,
            KeyState::Revoked,
        ] {
            assert_eq!(KeyState::try_from(String::from(state)).unwrap(), state);
        }
        assert!(Alg::try_from("HS256".to_owned()).is_err());
        assert!(KeyState::try_from("ACTIVE".to_owned()).is_err());
    }
}
