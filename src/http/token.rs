//! `POST /oauth/token` (RFC 6749 §3.2): reads the parameters, authenticates the client, checks
//! it may use the grant, and dispatches on `grant_type`. What the token then says is the
//! registry's decision (docs/CONTRACT.md §5).

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::AppState;
use super::client_auth;
use super::error::ApiError;
use super::params::Params;
use super::peer;
use crate::domain::{Audience, GrantType, Password, Scope, Username};
use crate::service::grants::{Issued, PasswordLogin, TokenRequest};
use crate::service::machine::Form;

#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    scope: String,
}

/// `POST /oauth/token`.
#[utoipa::path(
    post,
    path = "/oauth/token",
    tag = "oauth",
    request_body(content = crate::http::openapi::TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Tokens", body = crate::http::openapi::TokenAnswer),
        (status = 400, description = "invalid_request, invalid_grant, invalid_scope, invalid_target, unsupported_grant_type, unauthorized_client", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "invalid_client", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "A body over 16 KiB", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "A body that is not JSON", body = crate::http::openapi::ErrorBody),
        (status = 429, description = "Too many failed logins (Retry-After)", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable, or too many requests wait: retry later", body = crate::http::openapi::ErrorBody)
    ),
    security((), ("basic" = []))
)]
pub async fn token(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::from_body(&req, payload).await?;
    let result = grant(&req, &params, &state).await;
    let outcome = result.as_ref().map_or_else(ApiError::code, |_| "ok");
    state
        .metrics
        .token_request(params.optional("grant_type"), outcome);
    result
}

async fn grant(
    req: &HttpRequest,
    params: &Params,
    state: &web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (grant, request) = token_request(req, params, state)?;
    let issuer = &state.issuer;
    let issued = match grant {
        GrantType::Password => issuer.password(password_login(params)?, request).await?,
        GrantType::RefreshToken => {
            let presented = params.required("refresh_token")?;
            // Only a scope the request names narrows the grant.
            let requested = params.optional("scope").map(|_| request.scope.clone());
            issuer.refresh(presented, requested, request).await?
        }
        GrantType::JwtBearer => {
            let assertion = params.required("assertion")?.to_owned();
            issuer.machine(Form::JwtBearer, assertion, request).await?
        }
        GrantType::ClientCredentials => match jwt_authorization(req) {
            Some(assertion) => {
                issuer
                    .machine(Form::AsymmetricJwtAuth, assertion, request)
                    .await?
            }
            None if request.client.confidential => issuer.client_credentials(request).await?,
            None => {
                return Err(ApiError::InvalidClient(
                    "client_credentials needs a confidential client authenticated with its secret, or the assertion in an Authorization: JWT header".into(),
                ));
            }
        },
    };
    Ok(token_response(&issued))
}

/// What every grant starts from: the authenticated client, allowed the grant it names, and
/// what it asks for.
fn token_request(
    req: &HttpRequest,
    params: &Params,
    state: &AppState,
) -> Result<(GrantType, TokenRequest), ApiError> {
    let creds = client_auth::credentials(req, params)?;
    let client = state.issuer.registry.current().authenticate(&creds)?;
    let grant_type = params.required("grant_type")?;
    let grant = GrantType::from_wire(grant_type).ok_or_else(|| {
        ApiError::UnsupportedGrantType(format!(
            "grant_type {:?} is not supported; use one of: {}",
            grant_type.chars().take(64).collect::<String>(),
            GrantType::ALL.map(GrantType::as_str).join(", ")
        ))
    })?;
    if !client.allows(grant) {
        return Err(ApiError::UnauthorizedClient(format!(
            "client {} may not use the grant type {grant}",
            client.id
        )));
    }
    let request = TokenRequest {
        client,
        audiences: requested_audiences(params)?,
        scope: Scope::parse(params.optional("scope").unwrap_or(""))
            .map_err(ApiError::InvalidScope)?,
        source: peer::client_address(req),
        user_agent: peer::user_agent(req),
    };
    Ok((grant, request))
}

/// The credentials of a password grant.
fn password_login(params: &Params) -> Result<PasswordLogin, ApiError> {
    let username = params.required("username")?;
    let password =
        Password::for_login(params.required("password")?).map_err(ApiError::InvalidRequest)?;
    Ok(PasswordLogin {
        // A name that cannot exist is just a wrong username.
        username: Username::parse(username).ok(),
        password,
    })
}

/// The `audience` and RFC 8707 `resource` values, parsed; a malformed one is `invalid_target`.
fn requested_audiences(params: &Params) -> Result<Vec<Audience>, ApiError> {
    params
        .all("audience")
        .chain(params.all("resource"))
        .map(|a| Audience::parse(a).map_err(ApiError::InvalidTarget))
        .collect()
}

/// The token of an `Authorization: JWT <token>` header (the asymmetric-jwt-auth form).
fn jwt_authorization(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("jwt") && !token.trim().is_empty())
        .then(|| token.trim().to_owned())
}

fn token_response(issued: &Issued) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")))
        .json(TokenResponse {
            access_token: &issued.access_token,
            token_type: "Bearer",
            expires_in: issued.expires_in,
            refresh_token: issued.refresh_token.as_ref().map(|t| t.expose()),
            scope: issued.scope.to_string(),
        })
}
