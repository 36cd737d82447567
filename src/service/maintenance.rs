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

/// Deletes every expired row. `refresh_ttl` is the longest refresh token lifetime: a family is
/// deleted only once no token of it can be left.
pub fn purge(conn: &mut DbConn, settings: &Settings) -> anyhow::Result<Purged> {
    let refresh_ttl = settings.refresh_ttl;
    let t = settings.clock.now();
    let (refresh_tokens, refresh_families) = refresh::purge_expired(conn, t, refresh_ttl)?;
    Ok(Purged {
        refresh_tokens,
        refresh_families,
        revoked_access_tokens: revocations::purge_expired(conn, t)?,
        throttle_rows: throttle::purge_stale(conn, settings.throttle.window, t)?,
        assertion_replays: client_keys::purge_expired(conn, t)?,
        issued_access_tokens: refresh::purge_expired_issued(conn, t)?,
        audit_events: audit::purge_older_than(conn, t - settings.audit_retention)?,
    })
}

/// Purges every `every` seconds, the first time at once.
pub async fn run(db: Db, every: u64, settings: Arc<Settings>) {
    let mut tick = tokio::time::interval(Duration::from_secs(every.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let settings = settings.clone();
        match db.run(move |conn| purge(conn, &settings)).await {
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
