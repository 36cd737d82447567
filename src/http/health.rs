//! `GET /healthz` (the process answers) and `GET /readyz` (the database answers and a signing
//! key is loaded).

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;

/// Liveness.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let db_ok = state
        .db
        .run(|conn| {
            use diesel::RunQueryDsl as _;
            diesel::sql_query("SELECT 1").execute(conn)?;
            Ok(())
        })
        .await;
    let kid = state.keys.current().active.kid().to_owned();
    match db_ok {
        Ok(()) => HttpResponse::Ok().json(json!({
            "status": "ready",
            "database": state.db.backend(),
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
