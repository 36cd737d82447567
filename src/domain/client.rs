use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A registered client's identifier (RFC 6749 `client_id`): 1–128 characters of
/// `A-Z a-z 0-9 . _ ~ : @ -`, so that it is safe in a URL path, a log line and HTTP Basic.
#[derive(Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct ClientId(String);

impl ClientId {
    /// The built-in public client that serves every request naming no client.
    pub const DEFAULT: &'static str = "default";

    /// Parses a `client_id`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let valid = !s.is_empty()
            && s.len() <= 128
            && s.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b':' | b'@' | b'-')
            });
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err("client_id must be 1-128 characters of letters, digits, '.', '_', '~', ':', '@', '-'".into())
        }
    }

    /// The built-in `default` client.
    pub fn default_client() -> Self {
        Self(Self::DEFAULT.to_owned())
    }

    /// Whether this is the built-in `default` client.
    pub fn is_default(&self) -> bool {
        self.0 == Self::DEFAULT
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

/// An audience a token is meant for (`aud`, RFC 8707 `resource`): an absolute URI without a
/// fragment (`https://payments.internal`, `urn:example:api`) or a plain name (`payments-api`).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Audience(String);

impl Audience {
    /// The longest audience accepted, in bytes.
    pub const MAX_LEN: usize = 256;

    /// Parses an `audience` or `resource` value.
    pub fn parse(s: &str) -> Result<Self, String> {
        let err = || {
            format!(
                "audience {:?} must be an absolute URI without a fragment or a plain name (letters, digits, '.', '_', '-'), at most {} bytes",
                truncate(s, 64),
                Self::MAX_LEN
            )
        };
        if s.is_empty()
            || s.len() > Self::MAX_LEN
            || s.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(err());
        }
        let plain_name = s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if plain_name {
            return Ok(Self(s.to_owned()));
        }
        match url::Url::parse(s) {
            // A URI with a host keeps the spelling it was registered with: it is compared as a
            // string, like every `aud` (RFC 7519 §4.1.3).
            Ok(u)
                if u.fragment().is_none() && s.is_ascii() && !s.contains(['"', '\\', '<', '>']) =>
            {
                Ok(Self(s.to_owned()))
            }
            _ => Err(err()),
        }
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

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// A grant type of the token endpoint.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum GrantType {
    /// `password` (RFC 6749 §4.3).
    Password,
    /// `refresh_token` (RFC 6749 §6).
    RefreshToken,
    /// `client_credentials` (RFC 6749 §4.4); for a public client, only the
    /// `Authorization: JWT` machine login.
    ClientCredentials,
    /// `urn:ietf:params:oauth:grant-type:jwt-bearer` (RFC 7523).
    JwtBearer,
}

impl GrantType {
    /// Every grant type, in the order the metadata lists them.
    pub const ALL: [GrantType; 4] = [
        Self::Password,
        Self::RefreshToken,
        Self::JwtBearer,
        Self::ClientCredentials,
    ];

    /// The wire and stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
            Self::JwtBearer => "urn:ietf:params:oauth:grant-type:jwt-bearer",
        }
    }
}

impl GrantType {
    /// The grant type a token request names: its exact wire name only (no aliases).
    pub fn from_wire(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

/// Operators may also write `jwt-bearer` for the RFC 7523 grant.
impl FromStr for GrantType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|g| g.as_str() == s || (*g == Self::JwtBearer && s == "jwt-bearer"))
            .ok_or_else(|| {
                format!(
                    "unknown grant type {:?}: use one of {}",
                    truncate(s, 64),
                    Self::ALL.map(Self::as_str).join(", ")
                )
            })
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A confidential client's secret. Generated ones carry 256 bits from the OS CSPRNG; only the
/// SHA-256 is stored, and its `Debug` is redacted.
#[derive(Clone)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// The shortest secret an operator may supply: secrets are machine credentials, checked
    /// with a fast hash, so they must be long and random.
    pub const MIN_LEN: usize = 32;
    /// The longest secret accepted.
    pub const MAX_LEN: usize = 256;

    /// A fresh secret: 32 random bytes, base64url.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes)?;
        Ok(Self(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// A secret supplied by an operator.
    pub fn parse_new(s: &str) -> Result<Self, String> {
        if s.len() < Self::MIN_LEN || s.len() > Self::MAX_LEN {
            return Err(format!(
                "a client secret must be {}-{} characters; leave it out to have one generated",
                Self::MIN_LEN,
                Self::MAX_LEN
            ));
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("a client secret must be visible ASCII characters".into());
        }
        Ok(Self(s.to_owned()))
    }

    /// A secret as presented by a client (not validated beyond a length cap: it is only
    /// compared).
    pub fn presented(s: &str) -> Self {
        Self(s.chars().take(Self::MAX_LEN + 1).collect())
    }

    /// The hex SHA-256 stored for this secret.
    pub fn hash(&self) -> String {
        super::sha256_hex(self.0.as_bytes())
    }

    /// Whether this secret is the one whose stored hash is `stored`, compared in constant time.
    pub fn matches(&self, stored: &str) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(self.hash().as_bytes(), stored.as_bytes())
            .is_ok()
    }

    /// The secret itself, for the one answer that shows a generated secret.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

// Every copy is wiped when dropped.
impl Drop for ClientSecret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids() {
        for good in ["default", "payments-web", "svc:billing", "a.b_c~d@e"] {
            assert!(ClientId::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "a b", "a\nb", "a/b", "\"x\"", &"c".repeat(129)] {
            assert!(ClientId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn audiences_are_absolute_uris_or_plain_names() {
        for good in [
            "https://api.example.com",
            "https://payments.internal/v1",
            "urn:example:api",
            "payments-api",
            "api.example.com",
        ] {
            assert!(Audience::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "two words",
            "https://x.example/#frag",
            "/relative/path",
            "a\"b",
            "ünï",
            &"a".repeat(257),
        ] {
            assert!(Audience::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn grant_types_round_trip() {
        for g in GrantType::ALL {
            assert_eq!(g.as_str().parse::<GrantType>(), Ok(g));
        }
        assert_eq!("jwt-bearer".parse::<GrantType>(), Ok(GrantType::JwtBearer));
        assert_eq!(GrantType::from_wire("jwt-bearer"), None);
        assert_eq!(GrantType::from_wire("password"), Some(GrantType::Password));
        assert!("implicit".parse::<GrantType>().is_err());
    }

    #[test]
    fn secrets_are_long_hashed_and_redacted() {
        let s = ClientSecret::generate().unwrap();
        assert_eq!(s.expose().len(), 43);
        assert!(s.matches(&s.hash()));
        assert!(!ClientSecret::presented("wrong").matches(&s.hash()));
        assert!(!format!("{s:?}").contains(s.expose()));
        assert!(ClientSecret::parse_new("short").is_err());
        assert!(ClientSecret::parse_new(&"x".repeat(32)).is_ok());
        assert!(ClientSecret::parse_new(&format!("{} x", "y".repeat(32))).is_err());
    }
}
