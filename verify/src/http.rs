//! What the integrations share: reading `Authorization: Bearer`, and the answer to a request
//! that fails it (RFC 6750 §3).

use crate::error::{Error, challenge};

const MALFORMED: &str = "the Authorization header is not a bearer token";

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// No bearer credentials (RFC 6750 §3.1: 401, `WWW-Authenticate: Bearer` with no error).
    Missing,
    /// An `Authorization: Bearer` header that is not a token (400 `invalid_request`).
    Malformed,
    /// The token was refused.
    Token(Error),
    /// The service was set up without a [`crate::Verifier`] where the integration looks for it
    /// (500; a bug of the service, not of the request).
    NotConfigured,
}

impl Rejection {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::Missing => 401,
            Self::Malformed => 400,
            Self::Token(e) => e.status(),
            Self::NotConfigured => 500,
        }
    }

    /// The `WWW-Authenticate` value, if the answer carries one.
    pub fn www_authenticate(&self, realm: Option<&str>) -> Option<String> {
        match self {
            Self::Missing => Some(challenge(realm, &[])),
            Self::Malformed => Some(challenge(
                realm,
                &[
                    ("error", "invalid_request".to_owned()),
                    ("error_description", MALFORMED.to_owned()),
                ],
            )),
            Self::Token(e) => Some(e.www_authenticate(realm)),
            Self::NotConfigured => None,
        }
    }

    /// A JSON body: `{"error": ..., "error_description": ...}`.
    pub fn body(&self) -> String {
        let (code, description) = match self {
            Self::Missing => ("invalid_token", "a bearer token is required".to_owned()),
            Self::Malformed => ("invalid_request", MALFORMED.to_owned()),
            Self::Token(e) => (
                e.code().unwrap_or("temporarily_unavailable"),
                match e {
                    Error::InvalidToken(reason) => reason.to_string(),
                    other => other.to_string(),
                },
            ),
            Self::NotConfigured => (
                "server_error",
                "the service has no token verifier".to_owned(),
            ),
        };
        serde_json::json!({"error": code, "error_description": description}).to_string()
    }
}

impl From<Error> for Rejection {
    fn from(e: Error) -> Self {
        Self::Token(e)
    }
}

/// The bearer token of a request's `Authorization` header values: none is
/// [`Rejection::Missing`], more than one [`Rejection::Malformed`].
#[cfg(any(feature = "actix", feature = "tower"))]
pub(crate) fn bearer_of<'a>(
    mut values: impl Iterator<Item = &'a [u8]>,
) -> Result<String, Rejection> {
    match (values.next(), values.next()) {
        (None, _) => Err(Rejection::Missing),
        (Some(one), None) => bearer(one).map(str::to_owned),
        (Some(_), Some(_)) => Err(Rejection::Malformed),
    }
}

/// The token of an `Authorization` header value: `Bearer <token>` (scheme case-insensitive,
/// RFC 6750 §2.1 token characters). `None` for other schemes.
pub fn bearer(value: &[u8]) -> Result<&str, Rejection> {
    let value = std::str::from_utf8(value).map_err(|_| Rejection::Malformed)?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Rejection::Missing);
    }
    let token = token.trim_matches(' ');
    let b64token = |c: char| c.is_ascii_alphanumeric() || "-._~+/=".contains(c);
    if token.is_empty() || !token.chars().all(b64token) {
        return Err(Rejection::Malformed);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_headers() {
        assert_eq!(bearer(b"Bearer abc.def-_~+/="), Ok("abc.def-_~+/="));
        assert_eq!(bearer(b"bearer  abc"), Ok("abc"));
        assert_eq!(bearer(b"Basic YWxpY2U6cHc="), Err(Rejection::Missing));
        assert_eq!(bearer(b"Bearer"), Err(Rejection::Malformed));
        assert_eq!(bearer(b"Bearer a b"), Err(Rejection::Malformed));
        assert_eq!(bearer(b"Bearer \xff"), Err(Rejection::Malformed));
    }

    #[test]
    fn rejections_answer_per_rfc_6750() {
        assert_eq!(
            Rejection::Missing.www_authenticate(Some("api")).unwrap(),
            r#"Bearer realm="api""#
        );
        assert_eq!(
            Rejection::Malformed.www_authenticate(Some("api")).unwrap(),
            r#"Bearer realm="api", error="invalid_request", error_description="the Authorization header is not a bearer token""#
        );
        assert_eq!(
            Rejection::Malformed.www_authenticate(None).unwrap(),
            r#"Bearer error="invalid_request", error_description="the Authorization header is not a bearer token""#
        );
        assert_eq!(Rejection::Malformed.status(), 400);
        assert!(Rejection::Missing.body().contains("invalid_token"));
    }
}
