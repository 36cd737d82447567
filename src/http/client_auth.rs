//! Client credentials on the wire (RFC 6749 §2.3): HTTP Basic (`client_secret_basic`, id and
//! secret each form-urlencoded), or `client_id` / `client_secret` in the body
//! (`client_secret_post`). A client uses one method: a secret in both places is refused.
//! Whether the credentials are good is the registry's business, not this module's.

use actix_web::HttpRequest;
use actix_web::http::header;
use base64::Engine as _;

use super::error::ApiError;
use super::params::Params;
use crate::domain::ClientSecret;
use crate::service::registry::Credentials;

/// The client credentials a request carries. `Authorization` schemes other than Basic
/// (`Bearer`, `JWT`) are not client credentials and are left alone.
pub fn credentials(req: &HttpRequest, params: &Params) -> Result<Credentials, ApiError> {
    let basic = basic_credentials(req)?;
    let body_id = params.optional("client_id");
    let body_secret = params.optional("client_secret");
    let Some((id, secret)) = basic else {
        // A secret without an id is a secret for `default`, which is public: invalid_client.
        return Ok(Credentials {
            client_id: body_id.map(str::to_owned),
            secret: body_secret.map(ClientSecret::presented),
        });
    };
    if body_secret.is_some() {
        return Err(ApiError::InvalidRequest(
            "use one client authentication method: HTTP Basic or client_secret in the body, not both"
                .into(),
        ));
    }
    if body_id.is_some_and(|b| b != id) {
        return Err(ApiError::InvalidRequest(
            "client_id differs between the body and the Authorization header".into(),
        ));
    }
    Ok(Credentials {
        client_id: Some(id),
        // An empty Basic secret is how a public client names itself.
        secret: (!secret.is_empty()).then(|| ClientSecret::presented(&secret)),
    })
}

/// Whether the request carries HTTP Basic credentials (the 401 must then challenge Basic).
pub fn tried_basic(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
}

/// The (id, secret) of an `Authorization: Basic` header, decoded; `None` for other schemes.
fn basic_credentials(req: &HttpRequest) -> Result<Option<(String, String)>, ApiError> {
    match req.headers().get(header::AUTHORIZATION) {
        Some(value) => parse_basic(value.as_bytes()),
        None => Ok(None),
    }
}

/// The (id, secret) of an `Authorization` header value if it is `Basic` credentials, decoded
/// (RFC 6749 §2.3.1); `None` for other schemes.
pub fn parse_basic(value: &[u8]) -> Result<Option<(String, String)>, ApiError> {
    let bad = || ApiError::InvalidClient("malformed Basic credentials".into());
    let value = std::str::from_utf8(value).map_err(|_| bad())?;
    let Some((scheme, rest)) = value.split_once(' ') else {
        return Err(bad());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()
        .and_then(|d| String::from_utf8(d).ok())
        .ok_or_else(bad)?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    let (id, secret) = (form_decode(id), form_decode(secret));
    if id.is_empty() {
        return Err(bad());
    }
    Ok(Some((id, secret)))
}

/// RFC 6749 §2.3.1: Basic credentials are form-urlencoded before they are joined.
fn form_decode(s: &str) -> String {
    // Parsed as one form key: a raw '&' or '=' must not split it.
    let escaped = s.replace('&', "%26").replace('=', "%3D");
    url::form_urlencoded::parse(escaped.as_bytes())
        .next()
        .map(|(k, _)| k.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_parts_are_form_decoded_whole() {
        assert_eq!(form_decode("my%20app"), "my app");
        assert_eq!(form_decode("a+b"), "a b");
        assert_eq!(form_decode("a&b=c"), "a&b=c");
        assert_eq!(form_decode(""), "");
    }
}
