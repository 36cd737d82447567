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
    event: &'static str,
    actor: Option<&str>,
    subject: &str,
    detail: serde_json::Value,
) -> QueryResult<()> {
    Event::new(event, Some(subject), None)
        .by(actor)
        .with(detail)
        .record(conn)
}

/// An event owned whole, to move into blocking database work.
#[derive(Debug, Default, Clone)]
pub struct Event {
    pub event: &'static str,
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub source: Option<String>,
    pub detail: Option<serde_json::Value>,
}

impl Event {
    /// An event of kind `event` about `subject`, from `source`.
    pub fn new(event: &'static str, subject: Option<&str>, source: Option<&str>) -> Self {
        Self {
            event,
            subject: subject.map(str::to_owned),
            source: source.map(str::to_owned),
            ..Default::default()
        }
    }

    /// The same, done by `actor` (when known).
    pub fn by<'a>(mut self, actor: impl Into<Option<&'a str>>) -> Self {
        self.actor = actor.into().map(str::to_owned);
        self
    }

    /// The same, with a detail.
    pub fn with(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }

    /// Appends it, now.
    pub fn record(&self, conn: &mut DbConn) -> QueryResult<()> {
        let detail = self.detail.as_ref().map(serde_json::Value::to_string);
        record(
            conn,
            &NewEvent {
                at: super::now(),
                event: self.event,
                actor: self.actor.as_deref(),
                subject: self.subject.as_deref(),
                source: self.source.as_deref(),
                detail: detail.as_deref(),
            },
        )
    }
}

/// The newest `limit` events, newest first.
pub fn newest(conn: &mut DbConn, limit: i64) -> QueryResult<Vec<AuditRow>> {
    audit_log::table
        .order(audit_log::id.desc())
        .limit(limit)
        .select(AuditRow::as_select())
        .load(conn)
}
