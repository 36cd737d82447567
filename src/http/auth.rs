//! Bearer authentication (RFC 6750) with this issuer's own access tokens, for `/me`, `/admin/*`
//! and introspection. The token must verify against a published key with that key's algorithm
//! (never `none`, never HMAC), carry `typ: at+jwt`, no unknown `crit`, this issuer's `iss`, and
//! be within `exp`/`nbf`/`iat` (with a small leeway); its `jti` must not be revoked and its user
//! must still be enabled.
//!
//! Our own API is its own audience (RFC 8725 §3.9, RFC 9068 §4): each endpoint group names the
//! audiences it accepts and the roles it needs through a [`Policy`], checked by the extractor
//! itself, so a handler cannot forget either. A missing or bad token is 401 with
//! `WWW-Authenticate: Bearer`; a good token for another audience is 401 `invalid_token` too; a
//! good token without the needed role is 403.

use std::marker::PhantomData;

use futures_util::future::LocalBoxFuture;

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};

use super::AppState;
use super::error::ApiError;
use crate::config::Settings;
use crate::crypto::jwt::AccessClaims;
use crate::domain::{Role, Roles};

/// Which tokens an endpoint group accepts.
pub trait Policy {
    /// The audiences accepted (one is enough).
    fn audiences(settings: &Settings) -> Vec<String>;
    /// The roles one of which the caller needs; empty: any.
    const ROLES: &'static [&'static str];
}

/// `/me` and `/me/*`: the default audience, any role.
pub struct MeApi;

impl Policy for MeApi {
    fn audiences(settings: &Settings) -> Vec<String> {
        vec![settings.audience.clone()]
    }
    const ROLES: &'static [&'static str] = &[];
}

/// `/admin/*`: only `ISSUER_URL/admin`, role `admin`.
pub struct AdminApi;

impl Policy for AdminApi {
    fn audiences(settings: &Settings) -> Vec<String> {
        vec![settings.admin_audience()]
    }
    const ROLES: &'static [&'static str] = &[Role::ADMIN];
}

/// `/oauth/introspect` by bearer token: `ISSUER_URL/admin` or `ISSUER_URL/introspect`, role
/// `admin` or `introspect`.
pub struct IntrospectApi;

impl Policy for IntrospectApi {
    fn audiences(settings: &Settings) -> Vec<String> {
        vec![settings.admin_audience(), settings.introspect_audience()]
    }
    const ROLES: &'static [&'static str] = &[Role::ADMIN, Role::INTROSPECT];
}

/// The authenticated caller of an endpoint guarded by `P`.
#[derive(Debug, Clone)]
pub struct Caller<P> {
    /// The verified claims of the presented token.
    pub claims: AccessClaims,
    /// The roles from the `roles` claim.
    pub roles: Roles,
    policy: PhantomData<P>,
}

/// The caller of `/me`.
pub type Me = Caller<MeApi>;
/// The caller of `/admin/*`.
pub type Admin = Caller<AdminApi>;

impl<P> Caller<P> {
    /// The caller's name, for the audit log: the username, or the client of a client token.
    pub fn actor(&self) -> String {
        self.claims
            .username
            .clone()
            .unwrap_or_else(|| self.claims.client_id.clone())
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

/// Authenticates the request's bearer token under policy `P`.
pub async fn authenticate<P: Policy>(req: &HttpRequest) -> Result<Caller<P>, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("application state missing")))?;
    let token = bearer_token(req)?.ok_or(ApiError::Unauthorized {
        error: None,
        description: "a bearer access token is required".into(),
    })?;
    let audiences = P::audiences(&state.issuer.settings);
    let accepted: Vec<&str> = audiences.iter().map(String::as_str).collect();
    let claims = state
        .issuer
        .keys
        .current()
        .verifier
        .verify(token, &accepted, state.issuer.settings.clock.now())
        .map_err(|e| ApiError::invalid_token(&e.to_string()))?;
    // Beyond the signature: not revoked, and the user (or client) still there and enabled.
    if !state.issuer.still_valid(claims.clone()).await? {
        return Err(ApiError::invalid_token("the token has been revoked"));
    }
    let roles = Roles::from_stored(&claims.roles.join(" "));
    if !P::ROLES.is_empty() && !P::ROLES.iter().any(|r| roles.contains(r)) {
        return Err(ApiError::Forbidden(format!(
            "this requires the role {}",
            P::ROLES.join(" or ")
        )));
    }
    Ok(Caller {
        claims,
        roles,
        policy: PhantomData,
    })
}

impl<P: Policy + 'static> FromRequest for Caller<P> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate::<P>(&req).await })
    }
}
