//! `/me` and `/me/*`: what a signed-in user may see and do about their own account, with an
//! access token for the default audience.

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;
use super::auth::Me;
use super::error::ApiError;
use crate::service::sessions::{self, SessionError};

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::NotFound(_) | SessionError::UnknownUser(_) => {
                Self::NotFound(e.to_string())
            }
            SessionError::Internal(e) => Self::Internal(e),
        }
    }
}

/// `GET /me`: the caller's verified claims.
pub async fn me(caller: Me) -> HttpResponse {
    HttpResponse::Ok().json(&caller.claims)
}

/// `GET /me/sessions`: the caller's live sessions, the one their token came from marked
/// `current`.
pub async fn sessions(caller: Me, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let (user_id, jti) = (caller.claims.sub.clone(), caller.claims.jti.clone());
    let list = state
        .db
        .run_typed(move |conn| sessions::list(conn, &user_id, Some(&jti)))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "sessions": list })))
}

/// `DELETE /me/sessions/{id}` → 204; another user's session id is a 404, like an unknown one.
pub async fn end_session(
    caller: Me,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let (user_id, username) = (caller.claims.sub.clone(), caller.actor());
    state
        .db
        .run_typed(move |conn| sessions::end(conn, &user_id, &username, &id, &username))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /me/sessions` → 204: log out everywhere, this session included.
pub async fn end_all_sessions(
    caller: Me,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user_id, username) = (caller.claims.sub.clone(), caller.actor());
    state
        .db
        .run_typed(move |conn| sessions::end_all(conn, &user_id, &username, &username))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
