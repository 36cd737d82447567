//! `GET /healthz` (the process answers) and `GET /readyz` (the database answers and a signing
//! key is loaded).

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;
use crate::service::maintenance;

/// Liveness.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness.
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
