//! The signing key lifecycle (contract §4): first-run generation, rotation (manual, scheduled
//! or with an algorithm switch), emergency revocation and import. Each change is one database
//! transaction under the key lock, so a crash leaves the old state or the new, and instances
//! sharing a database never end with two active keys (a unique index backs this up). Every
//! change is audited.

use anyhow::Context as _;
use serde::Serialize;
use serde_json::json;

use crate::crypto::kek::Kek;
use crate::crypto::signing::{Alg, Pkcs8, SigningKey};
use crate::db::audit::{self, NewEvent};
use crate::db::keys::{self, KeyRow};
use crate::db::{DbConn, now, write_tx};
use crate::service::keyring::KeyState;

/// Why a key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// No key with that kid.
    #[error("no signing key with kid {0:?}")]
    NotFound(String),
    /// The key is already stored.
    #[error("key {kid} is already stored (state {state})")]
    Duplicate { kid: String, state: String },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<diesel::result::Error> for KeyError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Internal(anyhow::Error::new(e).context("key storage"))
    }
}

/// The outcome of a rotation.
#[derive(Debug, Serialize, Clone)]
pub struct Rotated {
    /// The key that signs from now on.
    pub active: String,
    /// The key that will sign after the next rotation.
    pub next: String,
    /// The key that signed until now.
    pub retired: Option<String>,
}

/// A new key's row: public half in the clear, private half sealed with the KEK.
pub fn new_row(
    key: &SigningKey,
    pkcs8: &Pkcs8,
    kek: &Kek,
    state: KeyState,
    t: i64,
) -> anyhow::Result<KeyRow> {
    Ok(KeyRow {
        kid: key.kid().to_owned(),
        alg: key.alg().as_str().to_owned(),
        state: state.as_str().to_owned(),
        public_der: key.public().spki_der().to_vec(),
        private_enc: kek.seal(&pkcs8.0, key.kid())?,
        kek_id: kek.id().to_owned(),
        created_at: t,
        activated_at: (state == KeyState::Active).then_some(t),
        retired_at: None,
        revoked_at: None,
    })
}

/// Keys generated before a transaction (RSA generation takes a while), used as needed.
struct Fresh(Vec<(SigningKey, Pkcs8)>);

impl Fresh {
    fn generate(alg: Alg, n: usize) -> anyhow::Result<Self> {
        (0..n)
            .map(|_| SigningKey::generate(alg))
            .collect::<anyhow::Result<_>>()
            .map(Self)
    }

    /// Stores the next fresh key in `state`; returns its kid.
    fn store(
        &mut self,
        conn: &mut DbConn,
        kek: &Kek,
        state: KeyState,
        t: i64,
    ) -> anyhow::Result<String> {
        let (key, pkcs8) = self.0.pop().context("no generated key left")?;
        keys::insert(conn, &new_row(&key, &pkcs8, kek, state, t)?)?;
        Ok(key.kid().to_owned())
    }
}

struct Current {
    active: Option<KeyRow>,
    next: Option<KeyRow>,
}

fn current(conn: &mut DbConn) -> anyhow::Result<Current> {
    let rows = keys::in_states(conn, &["active", "next"])?;
    Ok(Current {
        active: rows.iter().find(|k| k.state == "active").cloned(),
        // With several (possible only through old imports), the newest is next in line.
        next: rows.iter().rev().find(|k| k.state == "next").cloned(),
    })
}

fn record(
    conn: &mut DbConn,
    event: &str,
    actor: Option<&str>,
    subject: &str,
    detail: serde_json::Value,
) -> anyhow::Result<()> {
    let detail = detail.to_string();
    audit::record(
        conn,
        &NewEvent {
            at: now(),
            event,
            actor,
            subject: Some(subject),
            detail: Some(&detail),
            ..Default::default()
        },
    )?;
    Ok(())
}

/// Makes sure there is an active and a next key, generating what is missing with `alg`.
pub fn ensure_signing_keys(conn: &mut DbConn, kek: &Kek, alg: Alg) -> anyhow::Result<()> {
    let c = current(conn)?;
    if c.active.is_some() && c.next.is_some() {
        return Ok(());
    }
    let mut fresh = Fresh::generate(alg, 2)?;
    write_tx(conn, |conn| -> anyhow::Result<()> {
        keys::lock_key_table(conn)?;
        let t = now();
        let c = current(conn)?;
        let mut next = c.next;
        if c.active.is_none() {
            let active = match next.take() {
                Some(promote) => {
                    keys::activate(conn, &promote.kid, t)?;
                    promote.kid
                }
                None => fresh.store(conn, kek, KeyState::Active, t)?,
            };
            record(
                conn,
                "key_generated",
                None,
                &active,
                json!({"state": "active", "alg": alg.as_str()}),
            )?;
        }
        if next.is_none() {
            let kid = fresh.store(conn, kek, KeyState::Next, t)?;
            record(
                conn,
                "key_generated",
                None,
                &kid,
                json!({"state": "next", "alg": alg.as_str()}),
            )?;
        }
        Ok(())
    })
}

/// Rotates: the `next` key becomes active, the active one is retired, a new `next` is made with
/// `alg`. With `switch_alg`, the new active key has `alg` at once: if `next` has another
/// algorithm, a new key of `alg` becomes active and that `next` is retired unused.
/// With `due_after`, rotates only if the active key has signed for at least that many seconds
/// (the schedule), and returns `None` otherwise.
pub fn rotate(
    conn: &mut DbConn,
    kek: &Kek,
    alg: Alg,
    switch_alg: bool,
    due_after: Option<i64>,
    actor: Option<&str>,
) -> Result<Option<Rotated>, KeyError> {
    let mut fresh = Fresh::generate(alg, 2)?;
    write_tx(conn, |conn| -> Result<Option<Rotated>, KeyError> {
        keys::lock_key_table(conn)?;
        let t = now();
        let c = current(conn)?;
        if let (Some(every), Some(active)) = (due_after, &c.active) {
            if active.activated_at.unwrap_or(active.created_at) > t - every {
                return Ok(None);
            }
        }
        let retired = c.active.as_ref().map(|a| a.kid.clone());
        if let Some(old) = &retired {
            keys::retire(conn, old, t)?;
        }
        let active = match c.next {
            Some(next) if !switch_alg || next.alg == alg.as_str() => {
                keys::activate(conn, &next.kid, t)?;
                next.kid
            }
            unusable => {
                if let Some(next) = unusable {
                    keys::retire(conn, &next.kid, t)?;
                }
                fresh.store(conn, kek, KeyState::Active, t)?
            }
        };
        let next = fresh.store(conn, kek, KeyState::Next, t)?;
        let rotated = Rotated {
            active,
            next,
            retired,
        };
        let how = if due_after.is_some() {
            "scheduled"
        } else {
            "manual"
        };
        record(
            conn,
            "key_rotated",
            actor,
            &rotated.active,
            json!({"how": how, "retired": rotated.retired, "next": rotated.next, "alg": alg.as_str()}),
        )?;
        Ok(Some(rotated))
    })
}

/// The outcome of an emergency revocation.
#[derive(Debug, Serialize, Clone)]
pub struct Revoked {
    pub revoked: String,
    pub active: String,
    pub next: String,
}

/// Revokes `kid` at once. If it was active, `next` becomes active in the same transaction (a
/// new key of `alg` if there is none); if it was active or next, a new `next` is made.
pub fn revoke(
    conn: &mut DbConn,
    kek: &Kek,
    alg: Alg,
    kid: &str,
    actor: Option<&str>,
) -> Result<Revoked, KeyError> {
    let mut fresh = Fresh::generate(alg, 2)?;
    write_tx(conn, |conn| -> Result<Revoked, KeyError> {
        keys::lock_key_table(conn)?;
        let t = now();
        let row = keys::find(conn, kid)?.ok_or_else(|| KeyError::NotFound(kid.to_owned()))?;
        if row.state != "revoked" {
            keys::revoke(conn, kid, t)?;
            let c = current(conn)?;
            let mut next = c.next;
            if c.active.is_none() {
                match next.take() {
                    Some(promote) => keys::activate(conn, &promote.kid, t)?,
                    None => {
                        fresh.store(conn, kek, KeyState::Active, t)?;
                    }
                }
            }
            if next.is_none() {
                fresh.store(conn, kek, KeyState::Next, t)?;
            }
            record(conn, "key_revoked", actor, kid, json!({"was": row.state}))?;
        }
        let c = current(conn)?;
        Ok(Revoked {
            revoked: kid.to_owned(),
            active: c
                .active
                .map(|k| k.kid)
                .context("no active key after revocation")?,
            next: c
                .next
                .map(|k| k.kid)
                .context("no next key after revocation")?,
        })
    })
}

/// Stores an imported key as `next` (the current `next`, never used, is retired), or as
/// `active` with `activate` (the current active key is retired).
pub fn import(
    conn: &mut DbConn,
    kek: &Kek,
    key: &SigningKey,
    pkcs8: &Pkcs8,
    activate: bool,
    actor: Option<&str>,
) -> Result<KeyRow, KeyError> {
    write_tx(conn, |conn| -> Result<KeyRow, KeyError> {
        keys::lock_key_table(conn)?;
        if let Some(existing) = keys::find(conn, key.kid())? {
            return Err(KeyError::Duplicate {
                kid: existing.kid,
                state: existing.state,
            });
        }
        let t = now();
        let c = current(conn)?;
        let (state, displaced) = if activate {
            (KeyState::Active, c.active)
        } else {
            (KeyState::Next, c.next)
        };
        if let Some(old) = &displaced {
            keys::retire(conn, &old.kid, t)?;
        }
        let row = new_row(key, pkcs8, kek, state, t)?;
        keys::insert(conn, &row)?;
        record(
            conn,
            "key_imported",
            actor,
            key.kid(),
            json!({"state": state.as_str(), "alg": key.alg().as_str(), "retired": displaced.map(|k| k.kid)}),
        )?;
        Ok(row)
    })
}
