//! Bearer authentication (RFC 6750) with this issuer's own access tokens, for `/me`, `/admin/*`
//! and introspection. The token must verify against a published key with that key's algorithm
//! (never `none`, never HMAC), carry `typ: at+jwt`, this issuer's `iss`, its `--audience`, and
//! be within `exp`/`nbf` (with a small leeway); its `jti` must not be revoked and its user must
//! still be enabled. A missing or bad token is 401 with
//! `WWW-Authenticate: Bearer`; a good token without the needed role is 403.

use futures_util::future::LocalBoxFuture;

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};

use super::AppState;
use super::error::ApiError;
use crate::crypto::jwt::AccessClaims;
use crate::domain::Roles;
use crate::service::revocation::access_still_valid;

/// The authenticated caller of a bearer-protected endpoint.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The verified claims of the presented token.
    pub claims: AccessClaims,
    /// The roles from the `roles` claim.
    pub roles: Roles,
}

impl Caller {
    /// Fails with 403 unless the caller holds one of `roles`.
    pub fn require_any(&self, roles: &[&str]) -> Result<(), ApiError> {
        if roles.iter().any(|r| self.roles.contains(r)) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this requires the role {}",
                roles.join(" or ")
            )))
        }
    }
}

/// The bearer token of a request, if one was sent in the `Authorization` header.
pub fn bearer_token(req: &HttpRequest) -> Result<Option<&str>, ApiError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::invalid_token("malformed Authorization header"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Ok(None),
    }
}

fn authenticate(req: &HttpRequest) -> Result<(Caller, web::Data<AppState>), ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("application state missing")))?;
    let token = bearer_token(req)?.ok_or(ApiError::Unauthorized {
        error: None,
        description: "a bearer access token is required".into(),
    })?;
    let claims = state
        .keys
        .current()
        .verifier
        .verify(token, &[&state.settings.audience])
        .map_err(|e| ApiError::invalid_token(&e.to_string()))?;
    let roles = Roles::from_stored(&claims.roles.join(" "));
    Ok((Caller { claims, roles }, state))
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let verified = authenticate(req);
        Box::pin(async move {
            let (caller, state) = verified?;
            // Beyond the signature: not revoked, and the user still enabled.
            let claims = caller.claims.clone();
            let valid = state
                .db
                .run(move |conn| access_still_valid(conn, &claims))
                .await?;
            if valid {
                Ok(caller)
            } else {
                Err(ApiError::invalid_token("the token has been revoked"))
            }
        })
    }
}
