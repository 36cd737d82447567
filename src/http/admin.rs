//! `/me` and the `/admin/*` endpoints: key rotation, history and emergency revocation; users;
//! the audit log. Every admin handler first requires the `admin` role.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Admin;
use super::error::ApiError;
use super::params;
use crate::crypto::client_key::parse_client_key;
use crate::crypto::signing::Alg;
use crate::domain::{Password, Roles, Username};
use crate::service::audit;
use crate::service::keys::{self, KeyError};
use crate::service::machine::{self};
use crate::service::sessions;
use crate::service::users::{self, UserError, UserView};

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    alg: Option<String>,
}

/// `POST /admin/keys/rotate`, optional body `{"alg": "ES256"}`.
#[utoipa::path(
    post,
    path = "/admin/keys/rotate",
    tag = "admin",
    request_body(content = Option<RotateBody>, content_type = "application/json", description = "Optional: {\"alg\": \"ES256\"}"),
    responses(
        (status = 200, description = "Rotated", body = crate::service::keys::Rotated),
        (status = 400, description = "Bad input: malformed body, wrong types, a value refused", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "No valid access token (WWW-Authenticate says why)", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The token is not for this audience, or lacks the role", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "A body over 16 KiB", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "A body that is not JSON", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable, or too many requests wait: retry later", body = crate::http::openapi::ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn rotate_keys(
    req: HttpRequest,
    caller: Admin,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body: RotateBody = params::optional_json(&req, payload)
        .await?
        .unwrap_or_default();
    let requested = body
        .alg
        .map(|a| a.parse::<Alg>())
        .transpose()
        .map_err(ApiError::InvalidRequest)?;
    let rotated = state.issuer.rotate_keys(requested, caller.actor()).await?;
    Ok(HttpResponse::Ok().json(rotated))
}

/// `GET /admin/keys`: the rotation history, oldest first; never private material.
#[utoipa::path(
    get,
    path = "/admin/keys",
    tag = "admin",
    responses(
        (status = 200, description = "The rotation history, oldest first", body = crate::http::openapi::SigningKeyList),
        (status = 400, description = "Bad input: malformed body, wrong types, a value refused", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "No valid access token (WWW-Authenticate says why)", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The token is not for this audience, or lacks the role", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "A body over 16 KiB", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "A body that is not JSON", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable, or too many requests wait: retry later", body = crate::http::openapi::ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn list_keys(
    _caller: Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let store = state.issuer.keys.clone();
    let keys = state
        .issuer
        .run(move |conn| keys::history(conn, &store).map_err(KeyError::Internal))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "keys": keys })))
}

/// `POST /admin/keys/{kid}/revoke`: unpublish now; if it was active, `next` takes over.
#[utoipa::path(
    post,
    path = "/admin/keys/{kid}/revoke",
    tag = "admin",
    params(("kid" = String, Path, description = "The key id")),
    responses(
        (status = 200, description = "Revoked", body = crate::service::keys::Revoked),
        (status = 400, description = "Bad input: malformed body, wrong types, a value refused", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "No valid access token (WWW-Authenticate says why)", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The token is not for this audience, or lacks the role", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "A body over 16 KiB", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "A body that is not JSON", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable, or too many requests wait: retry later", body = crate::http::openapi::ErrorBody),
        (status = 404, description = "No such key", body = crate::http::openapi::ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn revoke_key(
    caller: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let kid = path.into_inner();
    let store = state.issuer.keys.clone();
    let actor = caller.actor();
    let revoked = state
        .issuer
        .run(move |conn| keys::revoke_now(conn, &store, &kid, &actor))
        .await?;
    Ok(HttpResponse::Ok().json(revoked))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewUserBody {
    username: String,
    password: String,
    #[serde(default)]
    roles: Vec<String>,
}

/// `POST /admin/users` `{"username", "password", "roles": []}` → 201.
#[utoipa::path(
    post,
    path = "/admin/users",
    tag = "admin",
    request_body(content = NewUserBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = crate::service::users::UserView),
        (status = 409, description = "The username is taken", body = crate::http::openapi::ErrorBody),
        (status = 400, description = "Bad input: malformed body, wrong types, a value refused", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "No valid access token (WWW-Authenticate says why)", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The token is not for this audience, or lacks the role", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "A body over 16 KiB", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "A body that is not JSON", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable, or too many requests wait: retry later", body = crate::http::openapi::ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn create_user(
    req: HttpRequest,
    caller: Admin,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let now = state.issuer.settings.clock.now();
    let body: NewUserBody = params::json(&req, payload).await?;
    let username = Username::parse(&body.username).map_err(ApiError::InvalidRequest)?;
    let password =
        Password::for_new_user(&body.password, &body.username).map_err(ApiError::InvalidRequest)?;
    let roles = Roles::parse_all(&body.roles).map_err(ApiError::InvalidRequest)?;
    let hash = state
        .issuer
        .hasher
        .hash(password)
        .await
        .map_err(UserError::from)?;
    let actor = caller.actor();
    let user = state
        .issuer
        .run(move |conn| users::create(conn, &username, &hash, &roles, Some(&actor), now))
        .await?;
    Ok(HttpResponse::Created().json(UserView::of(&user)))
}

/// `GET /admin/users`.
#[utoipa::path(
    get,
    path = "/admin/users",
    tag = "admin",
    responses(
        (status = 200, description = "Every user", body = crate::http::openapi::UserList),
        (status = 400, description = "Bad input: malformed body, wrong types, a value refused", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "No valid access token (WWW-Authenticate says why)", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The token is not for this audience, or lacks the role", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "A body over 16 KiB", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "A body that is not JSON", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable, or too many requests wait: retry later", body = crate::http::openapi::ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn list_users(
    _caller: Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let rows = state.issuer.run(users::list).await?;
    let users: Vec<UserView> = rows.iter().map(UserView::of).collect();
    Ok(HttpResponse::Ok().json(json!({ "users": users })))
}

/// `DELETE /admin/users/{username}`: disables the user and revokes their refresh tokens.
#[utoipa::path(
    delete,
    path = "/admin/users/{username}",
    tag = "admin",
    params(("username" = String, Path, description = "The user")),
    responses(
        (status = 200, description = "Disabled, sessions ended", body = crate::http::openapi::UserDisabled),
        (status = 404, description = "No such user", body = crate::http::openapi::ErrorBody),
        (status = 400, description = "Bad input: malformed body, wrong types, a value refused", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "No valid access token (WWW-Authenticate says why)", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The token is not for this audience, or lacks the role", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "A body over 16 KiB", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "A body that is not JSON", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable, or too many requests wait: retry later", body = crate::http::openapi::ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn delete_user(
    caller: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let now = state.issuer.settings.clock.now();
    let username = path.into_inner();
    let actor = caller.actor();
    let name = username.clone();
    let revoked = state
        .issuer
        .run(move |conn| users::disable(conn, &name, Some(&actor), now))
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "username": username,
        "disabled": true,
        "revoked_refresh_families": revoked,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    limit: Option<i64>,
}

/// `GET /admin/audit?limit=N` (1–1000, default 100): newest events first.
#[utoipa::path(
    get,
    path = "/admin/audit",
    tag = "admin",
    params(("limit" = Option<i64>, Query, description = "1 to 1000 (default 100)")),
    responses(
        (status = 200, description = "The newest events, newest first", body = crate::http::openapi::AuditList),
        (status = 400, description = "Bad input: malformed body, wrong types, a value refused", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "No valid access token (WWW-Authenticate says why)", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The token is not for this audience, or lacks the role", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "A body over 16 KiB", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "A body that is not JSON", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable, or too many requests wait: retry later", body = crate::http::openapi::ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn audit_log(
    query: web::Query<AuditQuery>,
    _caller: Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::InvalidRequest(
            "limit must be an integer from 1 to 1000".into(),
        ));
    }
    let events = state
        .issuer
        .run(move |conn| audit::newest(conn, limit))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "events": events })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewKeyBody {
    /// PEM (SubjectPublicKeyInfo or PKCS#1), an OpenSSH public key line, or a JWK object.
    #[schema(value_type = Object)]
    public_key: Value,
    #[serde(default)]
    comment: String,
}

/// `POST /admin/users/{username}/keys` `{"public_key", "comment"}` → 201.
#[utoipa::path(
    post,
    path = "/admin/users/{username}/keys",
    tag = "admin",
    params(("username" = String, Path, description = "The user")),
    request_body(content = NewKeyBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Registered", body = crate::service::machine::KeyView),
        (status = 404, description = "No such user", body = crate::http::openapi::ErrorBody),
        (status = 409, description = "Already registered", body = crate::http::openapi::ErrorBody),
        (status = 400, description = "Bad input: malformed body, wrong types, a value refused", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "No valid access token (WWW-Authenticate says why)", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The token is not for this audience, or lacks the role", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "A body over 16 KiB", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "A body that is not JSON", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable, or too many requests wait: retry later", body = crate::http::openapi::ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn add_client_key(
    req: HttpRequest,
    caller: Admin,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let now = state.issuer.settings.clock.now();
    let body: NewKeyBody = params::json(&req, payload).await?;
    if body.comment.chars().count() > 200 || body.comment.chars().any(char::is_control) {
        return Err(ApiError::InvalidRequest(
            "comment must be at most 200 characters, without control characters".into(),
        ));
    }
    let key = parse_client_key(&body.public_key).map_err(ApiError::InvalidRequest)?;
    let username = path.into_inner();
    let actor = caller.actor();
    let view = state
        .issuer
        .run(move |conn| machine::add_key(conn, &username, &key, &body.comment, Some(&actor), now))
        .await?;
    Ok(HttpResponse::Created().json(view))
}

/// `GET /admin/users/{username}/keys`.
#[utoipa::path(
    get,
    path = "/admin/users/{username}/keys",
    tag = "admin",
    params(("username" = String, Path, description = "The user")),
    responses(
        (status = 200, description = "The user's machine keys", body = crate::http::openapi::MachineKeyList),
        (status = 404, description = "No such user", body = crate::http::openapi::ErrorBody),
        (status = 400, description = "Bad input: malformed body, wrong types, a value refused", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "No valid access token (WWW-Authenticate says why)", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The token is not for this audience, or lacks the role", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "A body over 16 KiB", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "A body that is not JSON", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable, or too many requests wait: retry later", body = crate::http::openapi::ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn list_client_keys(
    _caller: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let username = path.into_inner();
    let keys = state
        .issuer
        .run(move |conn| machine::list_keys(conn, &username))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "keys": keys })))
}

/// `DELETE /admin/users/{username}/keys/{id}`.
#[utoipa::path(
    delete,
    path = "/admin/users/{username}/keys/{id}",
    tag = "admin",
    params(("username" = String, Path, description = "The user"), ("id" = String, Path, description = "The key id")),
    responses(
        (status = 200, description = "Removed", body = crate::http::openapi::MachineKeyDeleted),
        (status = 404, description = "No such user or key", body = crate::http::openapi::ErrorBody),
        (status = 400, description = "Bad input: malformed body, wrong types, a value refused", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "No valid access token (WWW-Authenticate says why)", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The token is not for this audience, or lacks the role", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "A body over 16 KiB", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "A body that is not JSON", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable, or too many requests wait: retry later", body = crate::http::openapi::ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn delete_client_key(
    caller: Admin,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (username, id) = path.into_inner();
    let actor = caller.actor();
    let (name, key_id) = (username.clone(), id.clone());
    state
        .issuer
        .run(move |conn| machine::delete_key(conn, &name, &key_id, Some(&actor)))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "username": username, "deleted": id })))
}

/// `GET /admin/users/{username}/sessions`.
#[utoipa::path(
    get,
    path = "/admin/users/{username}/sessions",
    tag = "admin",
    params(("username" = String, Path, description = "The user")),
    responses(
        (status = 200, description = "The user's live sessions", body = crate::http::openapi::SessionList),
        (status = 404, description = "No such user", body = crate::http::openapi::ErrorBody),
        (status = 400, description = "Bad input: malformed body, wrong types, a value refused", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "No valid access token (WWW-Authenticate says why)", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The token is not for this audience, or lacks the role", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "A body over 16 KiB", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "A body that is not JSON", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable, or too many requests wait: retry later", body = crate::http::openapi::ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn list_sessions(
    _caller: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let now = state.issuer.settings.clock.now();
    let username = path.into_inner();
    let list = state
        .issuer
        .run(move |conn| {
            let user = sessions::user_named(conn, &username)?;
            sessions::list(conn, &user.id, None, now)
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "sessions": list })))
}

/// `DELETE /admin/users/{username}/sessions` → 204: logs the user out everywhere.
#[utoipa::path(
    delete,
    path = "/admin/users/{username}/sessions",
    tag = "admin",
    params(("username" = String, Path, description = "The user")),
    responses(
        (status = 204, description = "Every session ended, access tokens revoked"),
        (status = 404, description = "No such user", body = crate::http::openapi::ErrorBody),
        (status = 400, description = "Bad input: malformed body, wrong types, a value refused", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "No valid access token (WWW-Authenticate says why)", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The token is not for this audience, or lacks the role", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "A body over 16 KiB", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "A body that is not JSON", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable, or too many requests wait: retry later", body = crate::http::openapi::ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn end_sessions(
    caller: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let now = state.issuer.settings.clock.now();
    let username = path.into_inner();
    let actor = caller.actor();
    state
        .issuer
        .run(move |conn| {
            let user = sessions::user_named(conn, &username)?;
            sessions::end_all(conn, &user.id, &username, &actor, now)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct UserPatchBody {
    roles: Option<Vec<String>>,
    disabled: Option<bool>,
}

/// `PATCH /admin/users/{username}` `{"roles": [...], "disabled": bool}` → 200 with the user.
/// Disabling ends every session; enabling lets the user log in again; new roles show in the
/// user's next refresh.
#[utoipa::path(
    patch,
    path = "/admin/users/{username}",
    tag = "admin",
    params(("username" = String, Path, description = "The user")),
    request_body(content = UserPatchBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Changed", body = crate::service::users::UserView),
        (status = 404, description = "No such user", body = crate::http::openapi::ErrorBody),
        (status = 400, description = "Bad input: malformed body, wrong types, a value refused", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "No valid access token (WWW-Authenticate says why)", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The token is not for this audience, or lacks the role", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "A body over 16 KiB", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "A body that is not JSON", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable, or too many requests wait: retry later", body = crate::http::openapi::ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn update_user(
    req: HttpRequest,
    caller: Admin,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let now = state.issuer.settings.clock.now();
    let body: UserPatchBody = params::json(&req, payload).await?;
    let change = users::UserChange {
        roles: body
            .roles
            .as_deref()
            .map(Roles::parse_all)
            .transpose()
            .map_err(ApiError::InvalidRequest)?,
        disabled: body.disabled,
    };
    let username = path.into_inner();
    let actor = caller.actor();
    let (user, _) = state
        .issuer
        .run(move |conn| users::update(conn, &username, &change, Some(&actor), now))
        .await?;
    Ok(HttpResponse::Ok().json(UserView::of(&user)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    password: String,
}

/// `PUT /admin/users/{username}/password` `{"password"}` → 204: an admin's reset, under the
/// password policy; ends every session of the user.
#[utoipa::path(
    put,
    path = "/admin/users/{username}/password",
    tag = "admin",
    params(("username" = String, Path, description = "The user")),
    request_body(content = PasswordBody, content_type = "application/json"),
    responses(
        (status = 204, description = "Set; the user's sessions ended"),
        (status = 404, description = "No such user", body = crate::http::openapi::ErrorBody),
        (status = 400, description = "Bad input: malformed body, wrong types, a value refused", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "No valid access token (WWW-Authenticate says why)", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The token is not for this audience, or lacks the role", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "A body over 16 KiB", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "A body that is not JSON", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable, or too many requests wait: retry later", body = crate::http::openapi::ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn reset_password(
    req: HttpRequest,
    caller: Admin,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let now = state.issuer.settings.clock.now();
    let body: PasswordBody = params::json(&req, payload).await?;
    let username = path.into_inner();
    let name = username.clone();
    let user = state
        .issuer
        .run(move |conn| users::named(conn, &name))
        .await?;
    let password =
        Password::for_new_user(&body.password, &user.username).map_err(ApiError::InvalidRequest)?;
    let hash = state
        .issuer
        .hasher
        .hash(password)
        .await
        .map_err(UserError::from)?;
    let actor = caller.actor();
    state
        .issuer
        .run(move |conn| users::reset_password(conn, &user, &hash, Some(&actor), now).map(|_| ()))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
