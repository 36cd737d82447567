//! Reading the audit log for operators (writing goes through `db::audit::Event`).

use serde::Serialize;
use serde_json::Value;

use crate::db::{DbConn, audit};
use crate::service::time::rfc3339;

/// One audit event as operators see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = AuditEvent)]
pub struct AuditView {
    pub id: i64,
    pub at: String,
    pub event: String,
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub source: Option<String>,
    /// The detail as JSON (or as text when it is not JSON).
    pub detail: Option<Value>,
    /// How many identical events this one stands for (repeated failures fold).
    pub count: i64,
    /// When the last of them happened.
    pub last_at: Option<String>,
}

/// The newest `limit` events, newest first.
pub fn newest(conn: &mut DbConn, limit: i64) -> anyhow::Result<Vec<AuditView>> {
    Ok(audit::newest(conn, limit)?
        .into_iter()
        .map(|e| AuditView {
            id: e.id,
            at: rfc3339(e.at),
            event: e.event,
            actor: e.actor,
            subject: e.subject,
            source: e.source,
            detail: e
                .detail
                .map(|d| serde_json::from_str::<Value>(&d).unwrap_or(Value::String(d))),
            count: e.repeat_count,
            last_at: e.last_at.map(rfc3339),
        })
        .collect())
}
