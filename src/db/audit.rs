//! The `audit_log` table: an append-only record of security events. The database refuses
//! updates and deletes (triggers), so not even a bug here can rewrite it. Nothing secret is
//! ever written: usernames, kids, addresses and outcomes only.

use diesel::prelude::*;

use super::DbConn;
use super::schema::audit_log;

/// A stored audit event.
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = audit_log)]
pub struct AuditRow {
    pub id: i64,
    pub at: i64,
    pub event: String,
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub source: Option<String>,
    pub detail: Option<String>,
}

/// An event to record.
#[derive(Insertable, Debug, Default)]
#[diesel(table_name = audit_log)]
pub struct NewEvent<'a> {
    pub at: i64,
    pub event: &'a str,
    /// Who did it (a username), when known.
    pub actor: Option<&'a str>,
    /// What it was done to (a username, a kid).
    pub subject: Option<&'a str>,
    /// The client's address.
    pub source: Option<&'a str>,
    /// A short JSON or text detail.
    pub detail: Option<&'a str>,
}

/// Appends one event.
pub fn record(conn: &mut DbConn, event: &NewEvent<'_>) -> QueryResult<()> {
    diesel::insert_into(audit_log::table)
        .values(event)
        .execute(conn)
        .map(|_| ())
}

/// Appends one event about `subject` with a JSON `detail`, now.
pub fn note(
    conn: &mut DbConn,
    event: &str,
    actor: Option<&str>,
    subject: &str,
    detail: serde_json::Value,
) -> QueryResult<()> {
    let detail = detail.to_string();
    record(
        conn,
        &NewEvent {
            at: super::now(),
            event,
            actor,
            subject: Some(subject),
            detail: Some(&detail),
            ..Default::default()
        },
    )
}

/// The newest `limit` events, newest first.
pub fn newest(conn: &mut DbConn, limit: i64) -> QueryResult<Vec<AuditRow>> {
    audit_log::table
        .order(audit_log::id.desc())
        .limit(limit)
        .select(AuditRow::as_select())
        .load(conn)
}
