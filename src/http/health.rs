//! `GET /healthz` (the process answers) and `GET /readyz` (the database answers and a signing
//! key is loaded).

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;
use crate::service::maintenance;

/// Liveness.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses(
        (status = 200, description = "The process answers", body = crate::http::openapi::Health)
    )
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = crate::http::openapi::Health),
        (status = 503, description = "The database does not answer", body = crate::http::openapi::ErrorBody)
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let db_ok = state.issuer.run(maintenance::ping).await;
    let kid = state.issuer.keys.current().active.kid().to_owned();
    match db_ok {
        Ok(()) => HttpResponse::Ok().json(json!({
            "status": "ready",
            "database": state.issuer.db.backend(),
            "active_kid": kid,
        })),
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "readiness check failed");
            HttpResponse::ServiceUnavailable().json(json!({
                "status": "unavailable",
                "error": "temporarily_unavailable",
                "error_description": "the database is not reachable",
            }))
        }
    }
}
