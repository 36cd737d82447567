//! The `audit_log` table: a record of security events that is never rewritten. The database
//! refuses any update but a repeat count (triggers), and deletes of rows younger than a day, so
//! not even a bug here can rewrite history. Repeated identical failures (same event, subject
//! and address within [`FOLD_WINDOW_SECS`]) fold into one row with a count, so the log cannot be
//! flooded without credentials; rows older than the retention are purged. Nothing secret is
//! ever written: usernames, kids, addresses and outcomes only.

use diesel::prelude::*;

use super::schema::audit_log;
use super::{DbConn, on_backend};

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
    /// How many identical events this row stands for.
    pub repeat_count: i64,
    /// When the last of them happened, if more than one.
    pub last_at: Option<i64>,
}

/// Identical failures this close together fold into one row.
pub const FOLD_WINDOW_SECS: i64 = 5 * 60;

/// What an audit event records. Stored (and shown) by [`EventKind::as_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    LoginOk,
    LoginFailed,
    LoginThrottled,
    MachineLoginOk,
    MachineLoginFailed,
    RefreshReuse,
    RefreshTokenRevoked,
    AccessTokenRevoked,
    KeyGenerated,
    KeyRotated,
    KeyRevoked,
    KeyImported,
    KekRotated,
    UserCreated,
    UserDisabled,
    UserEnabled,
    UserRolesChanged,
    PasswordChanged,
    PasswordChangeFailed,
    PasswordReset,
    SessionEnded,
    SessionsEnded,
    ClientKeyAdded,
    ClientKeyRemoved,
    ClientCreated,
    ClientUpdated,
    ClientRemoved,
    ScopeCreated,
    ScopeRemoved,
    ClientTokenIssued,
}

impl EventKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoginOk => "login_ok",
            Self::LoginFailed => "login_failed",
            Self::LoginThrottled => "login_throttled",
            Self::MachineLoginOk => "machine_login_ok",
            Self::MachineLoginFailed => "machine_login_failed",
            Self::RefreshReuse => "refresh_reuse",
            Self::RefreshTokenRevoked => "refresh_token_revoked",
            Self::AccessTokenRevoked => "access_token_revoked",
            Self::KeyGenerated => "key_generated",
            Self::KeyRotated => "key_rotated",
            Self::KeyRevoked => "key_revoked",
            Self::KeyImported => "key_imported",
            Self::KekRotated => "kek_rotated",
            Self::UserCreated => "user_created",
            Self::UserDisabled => "user_disabled",
            Self::UserEnabled => "user_enabled",
            Self::UserRolesChanged => "user_roles_changed",
            Self::PasswordChanged => "password_changed",
            Self::PasswordChangeFailed => "password_change_failed",
            Self::PasswordReset => "password_reset",
            Self::SessionEnded => "session_ended",
            Self::SessionsEnded => "sessions_ended",
            Self::ClientKeyAdded => "client_key_added",
            Self::ClientKeyRemoved => "client_key_removed",
            Self::ClientCreated => "client_created",
            Self::ClientUpdated => "client_updated",
            Self::ClientRemoved => "client_removed",
            Self::ScopeCreated => "scope_created",
            Self::ScopeRemoved => "scope_removed",
            Self::ClientTokenIssued => "client_token_issued",
        }
    }

    /// Failures anyone can cause without credentials: repeats fold into one row.
    pub(crate) fn folds(self) -> bool {
        matches!(
            self,
            Self::LoginFailed
                | Self::LoginThrottled
                | Self::MachineLoginFailed
                | Self::PasswordChangeFailed
        )
    }
}

/// An event to record.
#[derive(Insertable, Debug)]
#[diesel(table_name = audit_log, treat_none_as_default_value = false)]
struct NewEvent<'a> {
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
fn record(conn: &mut DbConn, event: &NewEvent<'_>) -> QueryResult<()> {
    on_backend!(conn, |c| {
        diesel::insert_into(audit_log::table)
            .values(event)
            .execute(c)
    })
    .map(drop)
}

/// An event owned whole, to move into blocking database work.
#[derive(Debug, Clone)]
pub struct Event {
    pub event: EventKind,
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub source: Option<String>,
    pub detail: Option<serde_json::Value>,
}

impl Event {
    /// An event of kind `event` about `subject`, from `source`.
    pub fn new(event: EventKind, subject: Option<&str>, source: Option<&str>) -> Self {
        Self {
            event,
            actor: None,
            subject: subject.map(str::to_owned),
            source: source.map(str::to_owned),
            detail: None,
        }
    }

    /// An event about `subject`, done by `actor` (when known), with a JSON detail.
    pub fn about(
        event: EventKind,
        actor: Option<&str>,
        subject: &str,
        detail: serde_json::Value,
    ) -> Self {
        Self::new(event, Some(subject), None).by(actor).with(detail)
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

    /// Appends it, now; a failure repeating one recorded within [`FOLD_WINDOW_SECS`] (same
    /// event, subject and address) only counts up that row.
    pub fn record(&self, conn: &mut DbConn) -> QueryResult<()> {
        let t = recorded_at();
        if self.event.folds() && self.fold(conn, t)? {
            return Ok(());
        }
        let detail = self.detail_text();
        record(
            conn,
            &NewEvent {
                at: t,
                event: self.event.as_str(),
                actor: self.actor.as_deref(),
                subject: self.subject.as_deref(),
                source: self.source.as_deref(),
                detail: detail.as_deref(),
            },
        )
    }
}

/// When an event is recorded: the wall clock, whatever clock the service runs on, so that the
/// log says when things really happened.
pub(super) fn recorded_at() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Event {
    /// The detail as stored.
    pub(super) fn detail_text(&self) -> Option<String> {
        self.detail.as_ref().map(serde_json::Value::to_string)
    }

    fn fold(&self, conn: &mut DbConn, t: i64) -> QueryResult<bool> {
        let mut query = audit_log::table
            .filter(audit_log::event.eq(self.event.as_str()))
            .filter(audit_log::at.ge(t - FOLD_WINDOW_SECS))
            .into_boxed();
        query = match &self.subject {
            Some(s) => query.filter(audit_log::subject.eq(s.clone())),
            None => query.filter(audit_log::subject.is_null()),
        };
        query = match &self.source {
            Some(s) => query.filter(audit_log::source.eq(s.clone())),
            None => query.filter(audit_log::source.is_null()),
        };
        let Some(id) = query
            .order(audit_log::id.desc())
            .select(audit_log::id)
            .first::<i64>(conn)
            .optional()?
        else {
            return Ok(false);
        };
        diesel::update(audit_log::table.find(id))
            .set((
                audit_log::repeat_count.eq(audit_log::repeat_count + 1),
                audit_log::last_at.eq(t),
            ))
            .execute(conn)?;
        Ok(true)
    }
}

/// Deletes events from before `cutoff` (the retention purge); returns how many.
pub fn purge_older_than(conn: &mut DbConn, cutoff: i64, limit: i64) -> QueryResult<usize> {
    let chunk: Vec<i64> = audit_log::table
        .filter(audit_log::at.lt(cutoff))
        .select(audit_log::id)
        .limit(limit)
        .load(conn)?;
    diesel::delete(audit_log::table.filter(audit_log::id.eq_any(chunk))).execute(conn)
}

/// The newest `limit` events, newest first.
pub fn newest(conn: &mut DbConn, limit: i64) -> QueryResult<Vec<AuditRow>> {
    audit_log::table
        .order(audit_log::id.desc())
        .limit(limit)
        .select(AuditRow::as_select())
        .load(conn)
}
