//! Why a token was refused, as RFC 6750 names it.

/// Why a token is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The token is not a valid access token of this issuer for this service (RFC 6750
    /// `invalid_token`, 401).
    #[error("invalid token: {0}")]
    InvalidToken(Reason),
    /// The token is valid but lacks scopes this service requires (RFC 6750
    /// `insufficient_scope`, 403).
    #[error("insufficient scope: {} required", .required.join(" "))]
    InsufficientScope {
        /// The scopes required, all of them.
        required: Vec<String>,
    },
    /// The token cannot be checked now: no key set was ever fetched, or the revocation feed
    /// has been unreachable for longer than allowed (fail closed). 503.
    #[error("the token cannot be checked now: {0}")]
    Unavailable(&'static str),
}

/// What is wrong with an invalid token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    /// Not a compact JWS, or its header or claims are not JSON of the expected shape.
    #[error("the token is malformed")]
    Malformed,
    /// The header has no `kid`.
    #[error("the token has no key id")]
    NoKeyId,
    /// The `kid` is not in the issuer's key set, even after looking again.
    #[error("the token's key is unknown")]
    UnknownKey,
    /// An unknown `kid` arrived while lookups of unknown keys were rate-limited.
    #[error("the token's key is unknown (not looked up again yet)")]
    UnknownKeyLimited,
    /// `alg` is not RS256 or ES256, or not the algorithm of the key it names.
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    /// The header carries `jku`, `x5u`, `jwk`, `x5c` or `crit`: never honoured.
    #[error("the token's header carries a parameter that is never accepted")]
    ForbiddenHeader,
    /// `typ` is not `at+jwt` (RFC 9068).
    #[error("the token is not an access token")]
    Type,
    /// The signature does not verify.
    #[error("the token's signature is invalid")]
    Signature,
    /// `iss` is not the issuer.
    #[error("the token is from another issuer")]
    Issuer,
    /// `aud` does not contain this service's audience.
    #[error("the token is meant for another audience")]
    Audience,
    /// `exp` has passed (beyond the leeway).
    #[error("the token has expired")]
    Expired,
    /// `nbf` has not come yet (beyond the leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    #[error("the token was issued in the future")]
    IssuedInFuture,
    /// A claim RFC 9068 requires is missing or empty (`iss`, `sub`, `aud`, `exp`, `iat`,
    /// `jti`, `client_id`).
    #[error("the token lacks a required claim")]
    MissingClaim,
    /// The token's `jti` is in the revocation feed.
    #[error("the token has been revoked")]
    Revoked,
    /// The issuer answered introspection with `active: false` (revoked, its session ended,
    /// its user disabled).
    #[error("the token is no longer active")]
    Inactive,
}

impl Error {
    /// The HTTP status to answer with: 401, 403 or 503.
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidToken(_) => 401,
            Self::InsufficientScope { .. } => 403,
            Self::Unavailable(_) => 503,
        }
    }

    /// The RFC 6750 error code (`invalid_token`, `insufficient_scope`), or `None` for
    /// [`Error::Unavailable`], which is no fault of the token.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            Self::InvalidToken(_) => Some("invalid_token"),
            Self::InsufficientScope { .. } => Some("insufficient_scope"),
            Self::Unavailable(_) => None,
        }
    }

    /// The `WWW-Authenticate` value to send with the answer (RFC 6750 §3), e.g.
    /// `Bearer realm="api", error="invalid_token", error_description="the token has expired"`.
    pub fn www_authenticate(&self, realm: Option<&str>) -> String {
        let mut params = Vec::new();
        if let Some(code) = self.code() {
            params.push(("error", code.to_owned()));
            let description = match self {
                Self::InvalidToken(reason) => reason.to_string(),
                _ => self.to_string(),
            };
            params.push(("error_description", description));
        }
        if let Self::InsufficientScope { required } = self {
            params.push(("scope", required.join(" ")));
        }
        challenge(realm, &params)
    }
}

/// A `Bearer` challenge with `realm` first, then `params` (RFC 6750 §3).
pub(crate) fn challenge(realm: Option<&str>, params: &[(&str, String)]) -> String {
    let mut parts = Vec::new();
    if let Some(realm) = realm {
        parts.push(format!("realm=\"{}\"", quoted(realm)));
    }
    for (name, value) in params {
        parts.push(format!("{name}=\"{}\"", quoted(value)));
    }
    if parts.is_empty() {
        "Bearer".to_owned()
    } else {
        format!("Bearer {}", parts.join(", "))
    }
}

/// RFC 6750 §3: the values are quoted strings of %x20-21 / %x23-5B / %x5D-7E.
fn quoted(s: &str) -> String {
    s.chars()
        .filter(|c| matches!(c, ' '..='~') && *c != '"' && *c != '\\')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn www_authenticate_follows_rfc_6750() {
        assert_eq!(
            Error::InvalidToken(Reason::Expired).www_authenticate(Some("api")),
            r#"Bearer realm="api", error="invalid_token", error_description="the token has expired""#
        );
        let scope = Error::InsufficientScope {
            required: vec!["orders:read".into(), "orders:write".into()],
        };
        assert_eq!(scope.status(), 403);
        assert!(
            scope
                .www_authenticate(None)
                .ends_with(r#"scope="orders:read orders:write""#)
        );
        assert_eq!(Error::Unavailable("x").www_authenticate(None), "Bearer");
        assert_eq!(
            Error::InvalidToken(Reason::Malformed).www_authenticate(Some("a\"b\\c\u{1}")),
            r#"Bearer realm="abc", error="invalid_token", error_description="the token is malformed""#
        );
    }
}
