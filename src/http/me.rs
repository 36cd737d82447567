//! `/me` and `/me/*`: what a signed-in user may see and do about their own account, with an
//! access token for the default audience.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::auth::Me;
use super::error::ApiError;
use super::{params, peer};
use crate::domain::Password;
use crate::service::sessions::{self};

/// `GET /me`: the caller's verified claims.
#[utoipa::path(
    get,
    path = "/me",
    tag = "me",
    responses(
        (status = 200, description = "The caller's verified claims", body = crate::http::openapi::Claims),
        (status = 401, description = "No valid access token (WWW-Authenticate says why)", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The token is not for this audience, or lacks the role", body = crate::http::openapi::ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn me(caller: Me) -> HttpResponse {
    HttpResponse::Ok().json(&caller.claims)
}

/// `GET /me/sessions`: the caller's live sessions, the one their token came from marked
/// `current`.
#[utoipa::path(
    get,
    path = "/me/sessions",
    tag = "me",
    responses(
        (status = 200, description = "The caller's live sessions", body = crate::http::openapi::SessionList),
        (status = 401, description = "No valid access token (WWW-Authenticate says why)", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The token is not for this audience, or lacks the role", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable, or too many requests wait: retry later", body = crate::http::openapi::ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn sessions(caller: Me, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let now = state.issuer.settings.clock.now();
    let (user_id, jti) = (caller.claims.sub.clone(), caller.claims.jti.clone());
    let list = state
        .issuer
        .run(move |conn| sessions::list(conn, &user_id, Some(&jti), now))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "sessions": list })))
}

/// `DELETE /me/sessions/{id}` → 204; another user's session id is a 404, like an unknown one.
#[utoipa::path(
    delete,
    path = "/me/sessions/{id}",
    tag = "me",
    params(("id" = String, Path, description = "The session id")),
    responses(
        (status = 400, description = "A control character in the path", body = crate::http::openapi::ErrorBody),
        (status = 204, description = "Ended"),
        (status = 401, description = "No valid access token (WWW-Authenticate says why)", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The token is not for this audience, or lacks the role", body = crate::http::openapi::ErrorBody),
        (status = 404, description = "No such session of the caller", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable, or too many requests wait: retry later", body = crate::http::openapi::ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn end_session(
    caller: Me,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let now = state.issuer.settings.clock.now();
    let id = path.into_inner();
    let (user_id, username) = (caller.claims.sub.clone(), caller.actor());
    state
        .issuer
        .run(move |conn| sessions::end(conn, &user_id, &username, &id, &username, now))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /me/sessions` → 204: log out everywhere, this session included.
#[utoipa::path(
    delete,
    path = "/me/sessions",
    tag = "me",
    responses(
        (status = 204, description = "Every session of the caller ended"),
        (status = 401, description = "No valid access token (WWW-Authenticate says why)", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The token is not for this audience, or lacks the role", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable, or too many requests wait: retry later", body = crate::http::openapi::ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn end_all_sessions(
    caller: Me,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let now = state.issuer.settings.clock.now();
    let (user_id, username) = (caller.claims.sub.clone(), caller.actor());
    state
        .issuer
        .run(move |conn| sessions::end_all(conn, &user_id, &username, &username, now))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordChangeBody {
    current_password: String,
    new_password: String,
}

/// `POST /me/password` `{"current_password", "new_password"}` → 204. A wrong current password
/// is 400 and counts as a failed login; the new one must pass the password policy. Every
/// session of the user ends, this one included: log in again with the new password.
#[utoipa::path(
    post,
    path = "/me/password",
    tag = "me",
    request_body(content = PasswordChangeBody, content_type = "application/json"),
    responses(
        (status = 204, description = "Changed; every session of the user ended"),
        (status = 400, description = "Bad input: malformed body, wrong types, a value refused", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "No valid access token (WWW-Authenticate says why)", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The token is not for this audience, or lacks the role", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "A body over 16 KiB", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "A body that is not JSON", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable, or too many requests wait: retry later", body = crate::http::openapi::ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn change_password(
    req: HttpRequest,
    caller: Me,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body: PasswordChangeBody = params::json(&req, payload).await?;
    if caller.claims.username.is_none() {
        return Err(ApiError::Forbidden(
            "a client's own token has no password to change".into(),
        ));
    }
    let current = Password::for_login(&body.current_password).map_err(ApiError::InvalidRequest)?;
    state
        .issuer
        .change_password(
            &caller.claims.sub,
            current,
            &body.new_password,
            peer::client_address(&req),
        )
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
