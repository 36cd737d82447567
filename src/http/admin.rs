//! `/me` and the `/admin/*` endpoints: key rotation, history and emergency revocation; users;
//! the audit log. Every admin handler first requires the `admin` role.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use super::auth::Admin;
use super::error::ApiError;
use super::params;
use crate::cli::time;
use crate::crypto::client_key::parse_client_key;
use crate::crypto::signing::Alg;
use crate::db::{audit, keys as key_rows, users as user_rows};
use crate::domain::{Password, Roles, Username};
use crate::service::keys::{self, KeyError, Lookahead};
use crate::service::machine::{self, RegistryError};
use crate::service::sessions;
use crate::service::users::{self, UserError};

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::NotFound(_) => Self::NotFound(e.to_string()),
            KeyError::Duplicate { .. } => Self::Conflict(e.to_string()),
            KeyError::Internal(e) => Self::Internal(e),
        }
    }
}

impl From<UserError> for ApiError {
    fn from(e: UserError) -> Self {
        match e {
            UserError::Duplicate(_) => Self::Conflict(e.to_string()),
            UserError::NotFound(_) => Self::NotFound(e.to_string()),
            UserError::BadPassword(m) => Self::InvalidRequest(m),
            UserError::WrongPassword => Self::InvalidRequest(e.to_string()),
            UserError::Throttled(secs) => Self::TooManyRequests {
                retry_after: secs,
                description: e.to_string(),
            },
            UserError::Busy => Self::Unavailable(e.to_string()),
            UserError::Internal(e) => Self::Internal(e),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    alg: Option<String>,
}

/// `POST /admin/keys/rotate`, optional body `{"alg": "ES256"}`.
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
    let fallback = state.settings.alg;
    let lookahead = Lookahead::for_schedule(state.settings.rotate_every);
    let store = state.keys.clone();
    let actor = caller.actor();
    let rotated = state
        .db
        .run_typed(move |conn| -> Result<_, KeyError> {
            let rotated = keys::rotate(
                conn,
                store.kek(),
                requested,
                fallback,
                lookahead,
                None,
                Some(&actor),
            )?;
            // This instance signs with the new key at once; the others within a second.
            store.refresh(conn)?;
            Ok(rotated)
        })
        .await?
        .ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!("an unscheduled rotation did not happen"))
        })?;
    Ok(HttpResponse::Ok().json(rotated))
}

#[derive(Serialize)]
struct KeyView {
    kid: String,
    alg: String,
    state: String,
    published: bool,
    created_at: String,
    activated_at: Option<String>,
    retired_at: Option<String>,
    revoked_at: Option<String>,
}

fn opt_time(t: Option<i64>) -> Option<String> {
    t.map(|t| time(Some(t)))
}

/// `GET /admin/keys`: the rotation history, oldest first; never private material.
pub async fn list_keys(
    _caller: Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let rows = state.db.run(|conn| Ok(key_rows::list(conn)?)).await?;
    let ring = state.keys.current();
    let keys: Vec<KeyView> = rows
        .into_iter()
        .map(|k| KeyView {
            published: ring.published(&k.kid).is_some(),
            created_at: time(Some(k.created_at)),
            activated_at: opt_time(k.activated_at),
            retired_at: opt_time(k.retired_at),
            revoked_at: opt_time(k.revoked_at),
            kid: k.kid,
            alg: k.alg,
            state: k.state,
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "keys": keys })))
}

/// `POST /admin/keys/{kid}/revoke`: unpublish now; if it was active, `next` takes over.
pub async fn revoke_key(
    caller: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let kid = path.into_inner();
    let store = state.keys.clone();
    let alg = state.settings.alg;
    let lookahead = Lookahead::for_schedule(state.settings.rotate_every);
    let actor = caller.actor();
    let revoked = state
        .db
        .run_typed(move |conn| -> Result<_, KeyError> {
            let revoked = keys::revoke(conn, store.kek(), alg, lookahead, &kid, Some(&actor))?;
            store.refresh(conn)?;
            Ok(revoked)
        })
        .await?;
    Ok(HttpResponse::Ok().json(revoked))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUserBody {
    username: String,
    password: String,
    #[serde(default)]
    roles: Vec<String>,
}

#[derive(Serialize)]
struct UserView {
    id: String,
    username: String,
    roles: Vec<String>,
    disabled: bool,
    created_at: String,
    updated_at: String,
}

impl From<user_rows::UserRow> for UserView {
    fn from(u: user_rows::UserRow) -> Self {
        Self {
            roles: Roles::from_stored(&u.roles)
                .names()
                .map(str::to_owned)
                .collect(),
            created_at: time(Some(u.created_at)),
            updated_at: time(Some(u.updated_at)),
            id: u.id,
            username: u.username,
            disabled: u.disabled,
        }
    }
}

/// `POST /admin/users` `{"username", "password", "roles": []}` → 201.
pub async fn create_user(
    req: HttpRequest,
    caller: Admin,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body: NewUserBody = params::json(&req, payload).await?;
    let username = Username::parse(&body.username).map_err(ApiError::InvalidRequest)?;
    let password =
        Password::for_new_user(&body.password, &body.username).map_err(ApiError::InvalidRequest)?;
    let roles = Roles::parse_all(&body.roles).map_err(ApiError::InvalidRequest)?;
    let hash = state
        .grants
        .hasher
        .hash(password)
        .await
        .map_err(UserError::from)?;
    let actor = caller.actor();
    let user = state
        .db
        .run_typed(move |conn| users::create(conn, &username, &hash, &roles, Some(&actor)))
        .await?;
    Ok(HttpResponse::Created().json(UserView::from(user)))
}

/// `GET /admin/users`.
pub async fn list_users(
    _caller: Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let rows = state.db.run(users::list).await?;
    let users: Vec<UserView> = rows.into_iter().map(UserView::from).collect();
    Ok(HttpResponse::Ok().json(json!({ "users": users })))
}

/// `DELETE /admin/users/{username}`: disables the user and revokes their refresh tokens.
pub async fn delete_user(
    caller: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let username = path.into_inner();
    let actor = caller.actor();
    let name = username.clone();
    let revoked = state
        .db
        .run_typed(move |conn| users::disable(conn, &name, Some(&actor)))
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "username": username,
        "disabled": true,
        "revoked_refresh_families": revoked,
    })))
}

/// `GET /admin/audit?limit=N` (1–1000, default 100): newest events first.
pub async fn audit_log(
    req: HttpRequest,
    _caller: Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mut limit = 100i64;
    for (k, v) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        match k.as_ref() {
            "limit" => {
                limit = v
                    .parse::<i64>()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| {
                        ApiError::InvalidRequest("limit must be an integer from 1 to 1000".into())
                    })?;
            }
            other => {
                return Err(ApiError::InvalidRequest(format!(
                    "unknown parameter {other}"
                )));
            }
        }
    }
    let rows = state
        .db
        .run(move |conn| Ok(audit::newest(conn, limit)?))
        .await?;
    let events: Vec<Value> = rows
        .into_iter()
        .map(|e| {
            json!({
                "id": e.id,
                "at": time(Some(e.at)),
                "event": e.event,
                "actor": e.actor,
                "subject": e.subject,
                "source": e.source,
                "detail": e.detail.map(|d| serde_json::from_str::<Value>(&d).unwrap_or(Value::String(d))),
                "count": e.repeat_count,
                "last_at": e.last_at.map(|t| time(Some(t))),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "events": events })))
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::UnknownUser(_) | RegistryError::UnknownKey(_) => {
                Self::NotFound(e.to_string())
            }
            RegistryError::Duplicate(_) => Self::Conflict(e.to_string()),
            RegistryError::Internal(e) => Self::Internal(e),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKeyBody {
    public_key: Value,
    #[serde(default)]
    comment: String,
}

/// `POST /admin/users/{username}/keys` `{"public_key", "comment"}` → 201.
pub async fn add_client_key(
    req: HttpRequest,
    caller: Admin,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
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
        .db
        .run_typed(move |conn| machine::add_key(conn, &username, &key, &body.comment, Some(&actor)))
        .await?;
    Ok(HttpResponse::Created().json(view))
}

/// `GET /admin/users/{username}/keys`.
pub async fn list_client_keys(
    _caller: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let username = path.into_inner();
    let keys = state
        .db
        .run_typed(move |conn| machine::list_keys(conn, &username))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "keys": keys })))
}

/// `DELETE /admin/users/{username}/keys/{id}`.
pub async fn delete_client_key(
    caller: Admin,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (username, id) = path.into_inner();
    let actor = caller.actor();
    let (name, key_id) = (username.clone(), id.clone());
    state
        .db
        .run_typed(move |conn| machine::delete_key(conn, &name, &key_id, Some(&actor)))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "username": username, "deleted": id })))
}

/// `GET /admin/users/{username}/sessions`.
pub async fn list_sessions(
    _caller: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let username = path.into_inner();
    let list = state
        .db
        .run_typed(move |conn| {
            let user = sessions::user_named(conn, &username)?;
            sessions::list(conn, &user.id, None)
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "sessions": list })))
}

/// `DELETE /admin/users/{username}/sessions` → 204: logs the user out everywhere.
pub async fn end_sessions(
    caller: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let username = path.into_inner();
    let actor = caller.actor();
    state
        .db
        .run_typed(move |conn| {
            let user = sessions::user_named(conn, &username)?;
            sessions::end_all(conn, &user.id, &username, &actor)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserPatchBody {
    roles: Option<Vec<String>>,
    disabled: Option<bool>,
}

/// `PATCH /admin/users/{username}` `{"roles": [...], "disabled": bool}` → 200 with the user.
/// Disabling ends every session; enabling lets the user log in again; new roles show in the
/// user's next refresh.
pub async fn update_user(
    req: HttpRequest,
    caller: Admin,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
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
        .db
        .run_typed(move |conn| users::update(conn, &username, &change, Some(&actor)))
        .await?;
    Ok(HttpResponse::Ok().json(UserView::from(user)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    password: String,
}

/// `PUT /admin/users/{username}/password` `{"password"}` → 204: an admin's reset, under the
/// password policy; ends every session of the user.
pub async fn reset_password(
    req: HttpRequest,
    caller: Admin,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body: PasswordBody = params::json(&req, payload).await?;
    let username = path.into_inner();
    let name = username.clone();
    let user = state
        .db
        .run_typed(move |conn| users::named(conn, &name))
        .await?;
    let password =
        Password::for_new_user(&body.password, &user.username).map_err(ApiError::InvalidRequest)?;
    let hash = state
        .grants
        .hasher
        .hash(password)
        .await
        .map_err(UserError::from)?;
    let actor = caller.actor();
    state
        .db
        .run_typed(move |conn| {
            users::set_password(conn, &user, &hash, "password_reset", Some(&actor)).map(|_| ())
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
