//! `/admin/clients…` and `/admin/scopes…`: the registry the server decides tokens from. Each
//! change is validated and audited by the service layer, then this instance reloads its registry
//! at once (other instances within seconds).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::auth::Admin;
use super::error::ApiError;
use super::params;
use crate::domain::{Audience, ClientId, ClientSecret, GrantType, Roles, ScopeName};
use crate::service::clients::{
    self, ClientChange, ClientError, ClientView, ScopeView, SecretChoice,
};
use crate::service::registry::{OwnAudiences, Registry};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewClientBody {
    client_id: String,
    confidential: Option<bool>,
    client_secret: Option<String>,
    #[serde(default)]
    audiences: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    grant_types: Option<Vec<String>>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ClientPatchBody {
    confidential: Option<bool>,
    client_secret: Option<String>,
    audiences: Option<Vec<String>>,
    scopes: Option<Vec<String>>,
    grant_types: Option<Vec<String>>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewScopeBody {
    name: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    description: String,
}

/// The secret choice a body makes: a secret makes a client confidential; `confidential: true`
/// without one has a secret generated; `confidential: false` makes it public.
fn secret_choice(
    confidential: Option<bool>,
    secret: Option<String>,
) -> Result<Option<SecretChoice>, ApiError> {
    match (confidential, secret) {
        (Some(false), Some(_)) => Err(ApiError::InvalidRequest(
            "a public client has no secret: drop client_secret or set confidential: true".into(),
        )),
        (_, Some(s)) => ClientSecret::parse_new(&s)
            .map(|s| Some(SecretChoice::Supplied(s)))
            .map_err(ApiError::InvalidRequest),
        (Some(true), None) => Ok(Some(SecretChoice::Generate)),
        (Some(false), None) => Ok(Some(SecretChoice::Public)),
        (None, None) => Ok(None),
    }
}

fn parse_audiences(list: &[String]) -> Result<Vec<Audience>, ApiError> {
    list.iter()
        .map(|a| Audience::parse(a).map_err(ApiError::InvalidRequest))
        .collect()
}

fn parse_grants(list: &[String]) -> Result<Vec<GrantType>, ApiError> {
    list.iter()
        .map(|g| g.parse().map_err(ApiError::InvalidRequest))
        .collect()
}

fn own(state: &AppState) -> OwnAudiences {
    OwnAudiences::of(&state.issuer.settings)
}

/// The registry as stored now: listings must not lag behind a change made elsewhere.
async fn stored(state: &AppState) -> Result<Registry, ApiError> {
    let own = own(state);
    Ok(state
        .issuer
        .run(move |conn| clients::read_registry(conn, &own))
        .await?)
}

/// Runs a registry change; this instance applies it at once.
async fn change<T, F>(state: &AppState, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut clients::Conn) -> Result<T, ClientError> + Send + 'static,
{
    Ok(state.issuer.change_registry(f).await?)
}

/// `GET /admin/clients`.
#[utoipa::path(
    get,
    path = "/admin/clients",
    tag = "admin",
    responses(
        (status = 200, description = "Every client", body = crate::http::openapi::ClientList),
        (status = 400, description = "Bad input: malformed body, wrong types, a value refused", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "No valid access token (WWW-Authenticate says why)", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The token is not for this audience, or lacks the role", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "A body over 16 KiB", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "A body that is not JSON", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable, or too many requests wait: retry later", body = crate::http::openapi::ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn list_clients(
    _caller: Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let registry = stored(&state).await?;
    let views: Vec<ClientView> = registry
        .clients()
        .iter()
        .map(|c| ClientView::of(c))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "clients": views })))
}

/// `GET /admin/clients/{id}`.
#[utoipa::path(
    get,
    path = "/admin/clients/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "The client id")),
    responses(
        (status = 200, description = "The client", body = crate::service::clients::ClientView),
        (status = 404, description = "No such client", body = crate::http::openapi::ErrorBody),
        (status = 400, description = "Bad input: malformed body, wrong types, a value refused", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "No valid access token (WWW-Authenticate says why)", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The token is not for this audience, or lacks the role", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "A body over 16 KiB", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "A body that is not JSON", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable, or too many requests wait: retry later", body = crate::http::openapi::ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn show_client(
    _caller: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let registry = stored(&state).await?;
    let client = registry
        .client(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no client {id}")))?;
    Ok(HttpResponse::Ok().json(ClientView::of(&client)))
}

/// `POST /admin/clients` → 201 with the client, and its secret when one was generated.
#[utoipa::path(
    post,
    path = "/admin/clients",
    tag = "admin",
    request_body(content = NewClientBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Registered (client_secret shown once)", body = crate::service::clients::ClientView),
        (status = 409, description = "The client id is taken", body = crate::http::openapi::ErrorBody),
        (status = 400, description = "Bad input: malformed body, wrong types, a value refused", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "No valid access token (WWW-Authenticate says why)", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The token is not for this audience, or lacks the role", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "A body over 16 KiB", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "A body that is not JSON", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable, or too many requests wait: retry later", body = crate::http::openapi::ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn create_client(
    req: HttpRequest,
    caller: Admin,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let now = state.issuer.settings.clock.now();
    let body: NewClientBody = params::json(&req, payload).await?;
    let id = ClientId::parse(&body.client_id).map_err(ApiError::InvalidRequest)?;
    let secret =
        secret_choice(body.confidential, body.client_secret)?.unwrap_or(SecretChoice::Public);
    let edit = ClientChange {
        secret: None,
        audiences: Some(parse_audiences(&body.audiences)?),
        scopes: Some(body.scopes),
        grants: body.grant_types.as_deref().map(parse_grants).transpose()?,
    };
    let own = own(&state);
    let actor = caller.actor();
    let view = change(&state, move |conn| {
        clients::add(conn, &id, secret, edit, &own, Some(&actor), now)
    })
    .await?;
    Ok(HttpResponse::Created().json(view))
}

/// `PATCH /admin/clients/{id}`: changes the fields given.
#[utoipa::path(
    patch,
    path = "/admin/clients/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "The client id")),
    request_body(content = ClientPatchBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Changed", body = crate::service::clients::ClientView),
        (status = 404, description = "No such client", body = crate::http::openapi::ErrorBody),
        (status = 409, description = "A change the client cannot take (the default client stays public)", body = crate::http::openapi::ErrorBody),
        (status = 400, description = "Bad input: malformed body, wrong types, a value refused", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "No valid access token (WWW-Authenticate says why)", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The token is not for this audience, or lacks the role", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "A body over 16 KiB", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "A body that is not JSON", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable, or too many requests wait: retry later", body = crate::http::openapi::ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn update_client(
    req: HttpRequest,
    caller: Admin,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let now = state.issuer.settings.clock.now();
    let id = path.into_inner();
    let body: ClientPatchBody = params::json(&req, payload).await?;
    let edit = ClientChange {
        secret: secret_choice(body.confidential, body.client_secret)?,
        audiences: body.audiences.as_deref().map(parse_audiences).transpose()?,
        scopes: body.scopes,
        grants: body.grant_types.as_deref().map(parse_grants).transpose()?,
    };
    let own = own(&state);
    let actor = caller.actor();
    let view = change(&state, move |conn| {
        clients::update(conn, &id, edit, &own, Some(&actor), now)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// `DELETE /admin/clients/{id}` → 204.
#[utoipa::path(
    delete,
    path = "/admin/clients/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "The client id")),
    responses(
        (status = 200, description = "Removed", body = crate::http::openapi::Deleted),
        (status = 404, description = "No such client", body = crate::http::openapi::ErrorBody),
        (status = 409, description = "The default client cannot be removed", body = crate::http::openapi::ErrorBody),
        (status = 400, description = "Bad input: malformed body, wrong types, a value refused", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "No valid access token (WWW-Authenticate says why)", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The token is not for this audience, or lacks the role", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "A body over 16 KiB", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "A body that is not JSON", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable, or too many requests wait: retry later", body = crate::http::openapi::ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn delete_client(
    caller: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let actor = caller.actor();
    change(&state, move |conn| clients::remove(conn, &id, Some(&actor))).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /admin/scopes`.
#[utoipa::path(
    get,
    path = "/admin/scopes",
    tag = "admin",
    responses(
        (status = 200, description = "Every scope", body = crate::http::openapi::ScopeList),
        (status = 400, description = "Bad input: malformed body, wrong types, a value refused", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "No valid access token (WWW-Authenticate says why)", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The token is not for this audience, or lacks the role", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "A body over 16 KiB", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "A body that is not JSON", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable, or too many requests wait: retry later", body = crate::http::openapi::ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn list_scopes(
    _caller: Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let registry = stored(&state).await?;
    let views: Vec<ScopeView> = registry.scopes().map(ScopeView::of).collect();
    Ok(HttpResponse::Ok().json(json!({ "scopes": views })))
}

/// `POST /admin/scopes` `{"name", "roles": [], "description"}` → 201.
#[utoipa::path(
    post,
    path = "/admin/scopes",
    tag = "admin",
    request_body(content = NewScopeBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Registered", body = crate::service::clients::ScopeView),
        (status = 409, description = "The scope exists", body = crate::http::openapi::ErrorBody),
        (status = 400, description = "Bad input: malformed body, wrong types, a value refused", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "No valid access token (WWW-Authenticate says why)", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The token is not for this audience, or lacks the role", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "A body over 16 KiB", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "A body that is not JSON", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable, or too many requests wait: retry later", body = crate::http::openapi::ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn create_scope(
    req: HttpRequest,
    caller: Admin,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let now = state.issuer.settings.clock.now();
    let body: NewScopeBody = params::json(&req, payload).await?;
    let name = ScopeName::parse(&body.name).map_err(ApiError::InvalidRequest)?;
    let roles = Roles::parse_all(&body.roles).map_err(ApiError::InvalidRequest)?;
    let actor = caller.actor();
    let view = change(&state, move |conn| {
        clients::add_scope(conn, &name, &roles, &body.description, Some(&actor), now)
    })
    .await?;
    Ok(HttpResponse::Created().json(view))
}

/// `DELETE /admin/scopes/{name}` → 204; the scope is also taken off every client that listed
/// it.
#[utoipa::path(
    delete,
    path = "/admin/scopes/{name}",
    tag = "admin",
    params(("name" = String, Path, description = "The scope name")),
    responses(
        (status = 200, description = "Removed, also from every client", body = crate::http::openapi::Deleted),
        (status = 404, description = "No such scope", body = crate::http::openapi::ErrorBody),
        (status = 400, description = "Bad input: malformed body, wrong types, a value refused", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "No valid access token (WWW-Authenticate says why)", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The token is not for this audience, or lacks the role", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "A body over 16 KiB", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "A body that is not JSON", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable, or too many requests wait: retry later", body = crate::http::openapi::ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn delete_scope(
    caller: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let now = state.issuer.settings.clock.now();
    let name = path.into_inner();
    let actor = caller.actor();
    change(&state, move |conn| {
        clients::remove_scope(conn, &name, Some(&actor), now).map(|_| ())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
