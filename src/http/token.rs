//! `POST /oauth/token` (RFC 6749 §3.2): reads the parameters, identifies the (public) client,
//! and dispatches on `grant_type`.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use serde::Serialize;

use super::AppState;
use super::error::ApiError;
use super::params::Params;
use crate::domain::{Audience, ClientId, Password, Scope, Username};
use crate::service::grants::{Issued, PasswordLogin};
use crate::service::machine::Form;

/// The grant types this issuer supports, as advertised in the metadata.
pub const GRANT_TYPES: &[&str] = &[
    "password",
    "refresh_token",
    JWT_BEARER,
    "client_credentials",
];

/// RFC 7523's grant type.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

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
    let client_id = client_id(req, params)?;
    let issued = match params.required("grant_type")? {
        "password" => {
            let username = params.required("username")?;
            let password = Password::for_login(params.required("password")?)
                .map_err(ApiError::InvalidRequest)?;
            let scope = Scope::parse(params.optional("scope").unwrap_or(""))
                .map_err(ApiError::InvalidScope)?;
            let audience = params
                .optional("audience")
                .map(Audience::parse)
                .transpose()
                .map_err(ApiError::InvalidRequest)?;
            state
                .grants
                .password(PasswordLogin {
                    // A name that cannot exist is just a wrong username.
                    username: Username::parse(username).ok(),
                    password,
                    scope,
                    audience,
                    client_id: client_id.unwrap_or_else(ClientId::default_client),
                    source: req.peer_addr().map(|a| a.ip()),
                })
                .await?
        }
        "refresh_token" => {
            let presented = params.required("refresh_token")?;
            let scope = params
                .optional("scope")
                .map(Scope::parse)
                .transpose()
                .map_err(ApiError::InvalidScope)?;
            state.grants.refresh(presented, scope, client_id).await?
        }
        JWT_BEARER => {
            let assertion = params.required("assertion")?.to_owned();
            let scope = Scope::parse(params.optional("scope").unwrap_or(""))
                .map_err(ApiError::InvalidScope)?;
            let source = req.peer_addr().map(|a| a.ip());
            state
                .grants
                .machine(Form::JwtBearer, assertion, scope, source)
                .await?
        }
        "client_credentials" => {
            let assertion = jwt_authorization(req).ok_or_else(|| {
                ApiError::InvalidClient(
                    "client_credentials needs the assertion in an Authorization: JWT header".into(),
                )
            })?;
            let scope = Scope::parse(params.optional("scope").unwrap_or(""))
                .map_err(ApiError::InvalidScope)?;
            let source = req.peer_addr().map(|a| a.ip());
            state
                .grants
                .machine(Form::AsymmetricJwtAuth, assertion, scope, source)
                .await?
        }
        other => {
            return Err(ApiError::UnsupportedGrantType(format!(
                "grant_type {other:?} is not supported; use one of: {}",
                GRANT_TYPES.join(", ")
            )));
        }
    };
    Ok(token_response(&issued))
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

/// The client's id, from the body or HTTP Basic (RFC 6749 §2.3.1). Clients are public: a
/// non-empty secret cannot be checked, so it is refused rather than ignored.
pub fn client_id(req: &HttpRequest, params: &Params) -> Result<Option<ClientId>, ApiError> {
    if params.optional("client_secret").is_some() {
        return Err(ApiError::InvalidClient(
            "this issuer has only public clients: send client_id without client_secret".into(),
        ));
    }
    let from_body = params
        .optional("client_id")
        .map(ClientId::parse)
        .transpose()
        .map_err(ApiError::InvalidRequest)?;
    let from_header = basic_client_id(req)?;
    match (from_body, from_header) {
        (Some(a), Some(b)) if a != b => Err(ApiError::InvalidRequest(
            "client_id differs between the body and the Authorization header".into(),
        )),
        (a, b) => Ok(a.or(b)),
    }
}

fn basic_client_id(req: &HttpRequest) -> Result<Option<ClientId>, ApiError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || ApiError::InvalidClient("malformed Basic credentials".into());
    let value = value.to_str().map_err(|_| bad())?;
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
    if !secret.is_empty() {
        return Err(ApiError::InvalidClient(
            "this issuer has only public clients: send the client_id with an empty secret".into(),
        ));
    }
    let id: String = url::form_urlencoded::parse(format!("x={id}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    ClientId::parse(&id)
        .map(Some)
        .map_err(ApiError::InvalidClient)
}
