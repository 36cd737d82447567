//! What a verified access token says.

use serde::Deserialize;

use crate::error::Error;
use serde::de::DeserializeOwned;

/// The claims of a verified access token (RFC 9068), with the issuer's own claims (or yours)
/// in `extra`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(bound = "T: DeserializeOwned")]
pub struct Claims<T = IssuerClaims> {
    /// The issuer.
    pub iss: String,
    /// The subject: a user id, or a client id for `client_credentials` tokens.
    pub sub: String,
    /// The audiences (a single string in the token is read as a list of one).
    #[serde(deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before, when present.
    #[serde(default)]
    pub nbf: Option<i64>,
    /// The token's unique id (what revocation names).
    pub jti: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// Space-separated scopes (empty when none).
    #[serde(default)]
    pub scope: String,
    /// Everything else, as `T`.
    #[serde(flatten)]
    pub extra: T,
}

/// jwt-issuer's own claims beside the registered ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct IssuerClaims {
    /// The user's name (absent for client tokens).
    #[serde(default)]
    pub username: Option<String>,
    /// The user's roles at issue.
    #[serde(default)]
    pub roles: Vec<String>,
}

impl<T> Claims<T> {
    /// The scopes, one by one.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split_ascii_whitespace()
    }

    /// Whether the token has `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    /// `Ok` when the token has every one of `scopes`, else [`Error::InsufficientScope`] (403).
    pub fn require_scopes(&self, scopes: &[&str]) -> Result<(), Error> {
        if scopes.iter().all(|s| self.has_scope(s)) {
            return Ok(());
        }
        Err(Error::InsufficientScope {
            required: scopes.iter().map(|s| (*s).to_owned()).collect(),
        })
    }
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Aud {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Aud::deserialize(d)? {
        Aud::One(a) => vec![a],
        Aud::Many(list) => list,
    })
}

/// jwt-issuer's claims read in one pass, without `flatten` (which buffers every claim it does
/// not know first): what [`crate::Verifier::verify`] reads.
#[derive(Deserialize)]
pub(crate) struct IssuerToken {
    iss: String,
    sub: String,
    #[serde(deserialize_with = "one_or_many")]
    aud: Vec<String>,
    exp: i64,
    iat: i64,
    #[serde(default)]
    nbf: Option<i64>,
    jti: String,
    client_id: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
}

impl From<IssuerToken> for Claims {
    fn from(t: IssuerToken) -> Self {
        Self {
            iss: t.iss,
            sub: t.sub,
            aud: t.aud,
            exp: t.exp,
            iat: t.iat,
            nbf: t.nbf,
            jti: t.jti,
            client_id: t.client_id,
            scope: t.scope,
            extra: IssuerClaims {
                username: t.username,
                roles: t.roles,
            },
        }
    }
}
