//! Keeping storage bounded: a background task deletes expired refresh tokens (and the families
//! left empty), expired entries of the `jti` deny list, stale throttle rows and used machine
//! assertion ids past their expiry, records of expired access tokens, and audit events older
//! than `--audit-retention`. The signing key history is kept.

use std::sync::Arc;
use std::time::Duration;

use crate::config::Settings;
use crate::db::{Db, DbConn, audit, client_keys, refresh, revocations, throttle};

/// What one purge deleted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub refresh_tokens: usize,
    pub refresh_families: usize,
    pub revoked_access_tokens: usize,
    pub throttle_rows: usize,
    pub assertion_replays: usize,
    pub issued_access_tokens: usize,
    pub audit_events: usize,
}

/// Rows of one table deleted by one round of [`purge`]. A round is one piece of database work:
/// on SQLite every request queues behind it (the single writer), so a purge that has piled up
/// (an hour of rotations at thousands per second) goes in rounds, with requests between them.
pub const PURGE_CHUNK: i64 = 2_000;

impl Purged {
    /// Whether a table had more to delete than one round takes.
    fn more_left(&self) -> bool {
        [
            self.refresh_tokens,
            self.refresh_families,
            self.revoked_access_tokens,
            self.issued_access_tokens,
            self.audit_events,
        ]
        .iter()
        .any(|&n| n as i64 >= PURGE_CHUNK)
    }

    fn add(&mut self, other: &Self) {
        self.refresh_tokens += other.refresh_tokens;
        self.refresh_families += other.refresh_families;
        self.revoked_access_tokens += other.revoked_access_tokens;
        self.throttle_rows += other.throttle_rows;
        self.assertion_replays += other.assertion_replays;
        self.issued_access_tokens += other.issued_access_tokens;
        self.audit_events += other.audit_events;
    }
}

/// One round: deletes expired rows, at most [`PURGE_CHUNK`] of each large table.
/// `refresh_ttl` is the longest refresh token lifetime: a family is deleted only once no token
/// of it can be left.
pub fn purge(conn: &mut DbConn, settings: &Settings) -> anyhow::Result<Purged> {
    let refresh_ttl = settings.refresh_ttl;
    let t = settings.clock.now();
    let (refresh_tokens, refresh_families) =
        refresh::purge_expired(conn, t, refresh_ttl, PURGE_CHUNK)?;
    Ok(Purged {
        refresh_tokens,
        refresh_families,
        revoked_access_tokens: revocations::purge_expired(conn, t, PURGE_CHUNK)?,
        throttle_rows: throttle::purge_stale(conn, settings.throttle.window, t)?,
        assertion_replays: client_keys::purge_expired(conn, t)?,
        issued_access_tokens: refresh::purge_expired_issued(conn, t, PURGE_CHUNK)?,
        audit_events: audit::purge_older_than(conn, t - settings.audit_retention, PURGE_CHUNK)?,
    })
}

/// Rounds of [`purge`] until nothing expired is left; returns what they deleted.
pub async fn purge_all(db: &Db, settings: &Arc<Settings>) -> anyhow::Result<Purged> {
    let mut total = Purged::default();
    loop {
        let settings = settings.clone();
        let round = db.run(move |conn| purge(conn, &settings)).await?;
        total.add(&round);
        if !round.more_left() {
            return Ok(total);
        }
    }
}

/// Purges every `every` seconds, the first time at once.
pub async fn run(db: Db, every: u64, settings: Arc<Settings>) {
    let mut tick = tokio::time::interval(Duration::from_secs(every.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match purge_all(&db, &settings).await {
            Ok(p) if p != Purged::default() => tracing::info!(?p, "purged expired rows"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = format!("{e:#}"), "purge failed"),
        }
    }
}

/// Whether the database answers (readiness).
pub fn ping(conn: &mut DbConn) -> anyhow::Result<()> {
    crate::db::ping(conn).map_err(Into::into)
}
