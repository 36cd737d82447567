//! The signing key lifecycle (docs/CONTRACT.md §4): first-run generation, rotation (manual, scheduled
//! or with an algorithm switch), emergency revocation and import. Each change is one database
//! transaction under the key lock, so a crash leaves the old state or the new, and instances
//! sharing a database never end with two active keys (a unique index backs this up). Every
//! change is audited.
//!
//! Keys are published well before they sign. Besides the active key, the service keeps a queue
//! of unused `next` keys for each algorithm (see [`Lookahead`]); a rotation promotes the oldest
//! one, which verifiers have held since it was published — JWKS clients such as PyJWT's
//! `PyJWKClient` and jose's `createRemoteJWKSet` cache the set for minutes and will not refetch
//! for an unknown `kid` within 30 s of their last fetch. An algorithm switch promotes a queued
//! key of that algorithm, so it too was published before it signs.

use anyhow::Context as _;
use serde::Serialize;
use serde_json::json;

use crate::crypto::kek::Kek;
use crate::crypto::signing::{Alg, Pkcs8, SigningKey};
use crate::db::audit::{Event, EventKind};
use crate::db::keys::{self, KeyRow};
use crate::db::{DbConn, write_tx};
use crate::domain::Kid;
use crate::service::keyring::{KeyState, KeyStore};
use crate::service::time::rfc3339;

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

/// A new key's row: public half in the clear, private half sealed with the KEK.
pub fn new_row(
    key: &SigningKey,
    pkcs8: &Pkcs8,
    kek: &Kek,
    state: KeyState,
    t: i64,
) -> anyhow::Result<KeyRow> {
    let (kek_id, private_enc) = kek.seal(&pkcs8.0, key.kid())?;
    Ok(KeyRow {
        kid: Kid::from(key.kid().to_owned()),
        alg: key.alg(),
        state,
        public_der: key.public().spki_der().to_vec(),
        private_enc,
        kek_id,
        created_at: t,
        activated_at: (state == KeyState::Active).then_some(t),
        retired_at: None,
        revoked_at: None,
        seq: 0,
    })
}

/// How many unused `next` keys are kept published ahead of use, per algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lookahead(pub usize);

impl Lookahead {
    /// How long a key should have been published before it signs, seconds.
    pub const PREPUBLISH_SECS: i64 = 60;

    /// The lookahead of the configured schedule.
    pub fn of(settings: &crate::config::Settings) -> Self {
        Self::for_schedule(settings.rotate_every)
    }

    /// Enough keys per algorithm that a burst of three promotions (say a manual rotation, an
    /// algorithm switch and an emergency revocation within half a minute) only uses keys that
    /// were published before it began, and that at the scheduled rate a promoted key has been
    /// published for [`Self::PREPUBLISH_SECS`]. At least 3, at most 12.
    pub fn for_schedule(rotate_every: Option<i64>) -> Self {
        let scheduled = match rotate_every {
            Some(every) if every > 0 => {
                usize::try_from((Self::PREPUBLISH_SECS + every - 1) / every).unwrap_or(12)
            }
            _ => 0,
        };
        Self(scheduled.clamp(3, 12))
    }
}

/// What every change to the keys needs: the custodian of private keys (it seals and makes
/// them), the algorithm of keys made when none is asked for, and how many `next` keys to keep
/// queued.
pub struct Custody<'a> {
    pub kek: &'a Kek,
    pub alg: Alg,
    pub lookahead: Lookahead,
    /// The clock transitions are stamped with and schedules read.
    pub clock: crate::clock::Clock,
}

impl<'a> Custody<'a> {
    /// What key changes through the instance holding `store` need.
    pub fn of(store: &'a KeyStore) -> Self {
        Self::new(store.kek(), store.settings())
    }

    /// The custody the settings call for.
    pub fn new(kek: &'a Kek, settings: &crate::config::Settings) -> Self {
        Self {
            kek,
            alg: settings.alg,
            lookahead: Lookahead::of(settings),
            clock: settings.clock.clone(),
        }
    }
}

/// Every algorithm a signing key may have.
const ALGS: [Alg; 2] = [Alg::RS256, Alg::ES256];

/// Keys generated before a transaction (RSA generation takes a while), used as needed; a
/// shortfall (another instance changed the keys meanwhile) is generated inside. The service
/// generates them before its database work ([`Issuer::rotate_keys`]): on SQLite every request
/// waits for that work (the single writer), and must not wait for RSA key generation.
pub struct Fresh(Vec<(SigningKey, Pkcs8)>);

impl Fresh {
    /// Generates a key of each of `algs` (blocking: up to a few hundred milliseconds).
    pub fn generate(kek: &Kek, algs: &[Alg]) -> anyhow::Result<Self> {
        algs.iter()
            .map(|&alg| kek.generate(alg))
            .collect::<anyhow::Result<_>>()
            .map(Self)
    }

    /// Stores a fresh key of `alg` in `state`; returns its kid.
    fn store(
        &mut self,
        conn: &mut DbConn,
        kek: &Kek,
        alg: Alg,
        state: KeyState,
        t: i64,
    ) -> anyhow::Result<Kid> {
        let (key, pkcs8) = match self.0.iter().position(|(k, _)| k.alg() == alg) {
            Some(i) => self.0.swap_remove(i),
            None => kek.generate(alg)?,
        };
        keys::insert(conn, &new_row(&key, &pkcs8, kek, state, t)?)?;
        let detail = json!({"state": state.as_str(), "alg": alg.as_str()});
        Event::about(EventKind::KeyGenerated, None, key.kid(), detail).record(conn)?;
        Ok(Kid::from(key.kid().to_owned()))
    }
}

/// The active key and the queue of `next` keys, oldest first.
struct Current {
    active: Option<KeyRow>,
    nexts: Vec<KeyRow>,
}

impl Current {
    fn read(conn: &mut DbConn) -> anyhow::Result<Self> {
        let rows = keys::in_states(conn, &[KeyState::Active, KeyState::Next])?;
        let (active, nexts): (Vec<KeyRow>, Vec<KeyRow>) =
            rows.into_iter().partition(|k| k.state == KeyState::Active);
        Ok(Self {
            active: active.into_iter().next(),
            nexts,
        })
    }

    /// The active key's algorithm, or `fallback` when there is none.
    fn primary(&self, fallback: Alg) -> Alg {
        self.active.as_ref().map_or(fallback, |k| k.alg)
    }

    fn oldest_next(&self, alg: Alg) -> Option<&KeyRow> {
        self.nexts.iter().find(|k| k.alg == alg)
    }

    /// The keys to generate so that each algorithm's queue is full.
    fn shortfall(&self, la: Lookahead) -> Vec<Alg> {
        ALGS.iter()
            .flat_map(|&alg| {
                let have = self.nexts.iter().filter(|k| k.alg == alg).count();
                std::iter::repeat_n(alg, la.0.saturating_sub(have))
            })
            .collect()
    }
}

/// Tops every algorithm's queue of `next` keys up to the lookahead.
fn top_up(conn: &mut DbConn, custody: &Custody, fresh: &mut Fresh, t: i64) -> anyhow::Result<()> {
    let c = Current::read(conn)?;
    for alg in c.shortfall(custody.lookahead) {
        fresh.store(conn, custody.kek, alg, KeyState::Next, t)?;
    }
    Ok(())
}

/// Makes a key of `alg` active: the oldest queued `next` of that algorithm (with `any_alg`,
/// else the oldest queued key of any), or else a fresh one. Returns its kid.
fn activate_one(
    conn: &mut DbConn,
    custody: &Custody,
    fresh: &mut Fresh,
    c: &Current,
    (alg, any_alg): (Alg, bool),
    t: i64,
) -> anyhow::Result<Kid> {
    let queued = c
        .oldest_next(alg)
        .or_else(|| c.nexts.first().filter(|_| any_alg));
    match queued {
        Some(next) => {
            keys::activate(conn, &next.kid, t)?;
            Ok(next.kid.clone())
        }
        None => fresh.store(conn, custody.kek, alg, KeyState::Active, t),
    }
}

/// Makes sure there is an active key (of `alg` when one must be made) and full queues of
/// `next` keys.
pub fn ensure_signing_keys(conn: &mut DbConn, custody: &Custody) -> anyhow::Result<()> {
    let alg = custody.alg;
    let c = Current::read(conn)?;
    let mut needed = c.shortfall(custody.lookahead);
    if c.active.is_none() && c.oldest_next(alg).is_none() {
        needed.push(alg);
    }
    if needed.is_empty() {
        return Ok(());
    }
    let mut fresh = Fresh::generate(custody.kek, &needed)?;
    write_tx(conn, |conn| -> anyhow::Result<()> {
        keys::lock_key_table(conn)?;
        let t = custody.clock.now();
        let c = Current::read(conn)?;
        if c.active.is_none() {
            activate_one(conn, custody, &mut fresh, &c, (alg, true), t)?;
        }
        top_up(conn, custody, &mut fresh, t)
    })
}

/// The outcome of a rotation.
#[derive(Debug, Serialize, Clone, utoipa::ToSchema)]
pub struct Rotated {
    /// The key that signs from now on.
    #[schema(value_type = String)]
    pub active: Kid,
    /// The key that will sign after the next rotation.
    #[schema(value_type = String)]
    pub next: Kid,
    /// The key that signed until now.
    #[schema(value_type = Option<String>)]
    pub retired: Option<Kid>,
}

/// Rotates: the oldest `next` key becomes active (of the algorithm `switch_to`, when given; of
/// the active key's, else), the active one is retired, and the queues are topped up. With
/// `due_after`, rotates only if the active key has signed for that many seconds (the schedule)
/// and returns `None` otherwise — without generating anything.
pub fn rotate(
    conn: &mut DbConn,
    custody: &Custody,
    switch_to: Option<Alg>,
    due_after: Option<i64>,
    actor: Option<&str>,
) -> Result<Option<Rotated>, KeyError> {
    rotate_with(conn, custody, (switch_to, due_after, actor), None)
}

/// The keys a rotation to `switch_to` would need now (its target and the queues' shortfall),
/// or nothing when a scheduled one (`due_after`) is not due: read before generating them off
/// the database's thread.
pub fn needed_for_rotation(
    conn: &mut DbConn,
    custody: &Custody,
    switch_to: Option<Alg>,
    due_after: Option<i64>,
) -> anyhow::Result<Vec<Alg>> {
    let c = Current::read(conn)?;
    if !rotation_due(&c, due_after, custody.clock.now()) {
        return Ok(Vec::new());
    }
    let mut needed = c.shortfall(custody.lookahead);
    needed.push(switch_to.unwrap_or(c.primary(custody.alg)));
    Ok(needed)
}

/// Whether a rotation is due: always when unscheduled; when scheduled every `due_after`
/// seconds, once the active key has signed that long.
fn rotation_due(c: &Current, due_after: Option<i64>, t: i64) -> bool {
    match (due_after, &c.active) {
        (Some(every), Some(active)) => {
            active.activated_at.unwrap_or(active.created_at) <= t - every
        }
        _ => true,
    }
}

/// [`rotate`], with keys generated beforehand (`fresh`), if any.
pub fn rotate_with(
    conn: &mut DbConn,
    custody: &Custody,
    (switch_to, due_after, actor): (Option<Alg>, Option<i64>, Option<&str>),
    fresh: Option<Fresh>,
) -> Result<Option<Rotated>, KeyError> {
    let fallback = custody.alg;
    let mut fresh = match fresh {
        Some(fresh) => fresh,
        None => {
            let needed = needed_for_rotation(conn, custody, switch_to, due_after)?;
            if needed.is_empty() {
                return Ok(None);
            }
            Fresh::generate(custody.kek, &needed)?
        }
    };
    write_tx(conn, |conn| -> Result<Option<Rotated>, KeyError> {
        keys::lock_key_table(conn)?;
        let t = custody.clock.now();
        let c = Current::read(conn)?;
        if !rotation_due(&c, due_after, t) {
            return Ok(None);
        }
        let target = switch_to.unwrap_or(c.primary(fallback));
        let retired = c.active.as_ref().map(|a| a.kid.clone());
        if let Some(old) = &retired {
            keys::retire(conn, old, t)?;
        }
        // Without a switch, an imported key of another algorithm may be the only one queued.
        let any_alg = switch_to.is_none();
        let active = activate_one(conn, custody, &mut fresh, &c, (target, any_alg), t)?;
        top_up(conn, custody, &mut fresh, t)?;
        let after = Current::read(conn)?;
        let new_alg = after.primary(target);
        let next = after
            .oldest_next(new_alg)
            .map(|k| k.kid.clone())
            .context("no next key after the rotation")?;
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
        Event::about(EventKind::KeyRotated,
            actor,
            &rotated.active,
            json!({"how": how, "retired": rotated.retired, "next": rotated.next, "alg": new_alg.as_str()}),
        ).record(conn)?;
        Ok(Some(rotated))
    })
}

/// The outcome of an emergency revocation.
#[derive(Debug, Serialize, Clone, utoipa::ToSchema)]
#[schema(as = RevokedKey)]
pub struct Revoked {
    #[schema(value_type = String)]
    pub revoked: Kid,
    #[schema(value_type = String)]
    pub active: Kid,
    #[schema(value_type = String)]
    pub next: Kid,
}

/// Revokes `kid` at once. If it was active, the oldest `next` of its algorithm becomes active in
/// the same transaction; the queues are topped up.
pub fn revoke(
    conn: &mut DbConn,
    custody: &Custody,
    kid: &str,
    actor: Option<&str>,
) -> Result<Revoked, KeyError> {
    let fallback = custody.alg;
    let c = Current::read(conn)?;
    let mut fresh = Fresh::generate(custody.kek, &c.shortfall(custody.lookahead))?;
    write_tx(conn, |conn| -> Result<Revoked, KeyError> {
        keys::lock_key_table(conn)?;
        let t = custody.clock.now();
        let row = keys::find(conn, kid)?.ok_or_else(|| KeyError::NotFound(kid.to_owned()))?;
        let alg = row.alg;
        if row.state != KeyState::Revoked {
            keys::revoke(conn, kid, t)?;
            let c = Current::read(conn)?;
            if c.active.is_none() {
                activate_one(conn, custody, &mut fresh, &c, (alg, true), t)?;
            }
            top_up(conn, custody, &mut fresh, t)?;
            Event::about(
                EventKind::KeyRevoked,
                actor,
                kid,
                json!({"was": row.state.as_str()}),
            )
            .record(conn)?;
        }
        let c = Current::read(conn)?;
        let primary = c.primary(fallback);
        Ok(Revoked {
            revoked: Kid::from(kid.to_owned()),
            next: c
                .oldest_next(primary)
                .or(c.nexts.first())
                .map(|k| k.kid.clone())
                .context("no next key after revocation")?,
            active: c
                .active
                .map(|k| k.kid)
                .context("no active key after revocation")?,
        })
    })
}

/// Stores an imported key as `next`, first in line (the queued, never-used `next` keys are
/// retired), or as `active` with `activate` (the current active key is retired).
pub fn import(
    conn: &mut DbConn,
    custody: &Custody,
    key: &SigningKey,
    pkcs8: &Pkcs8,
    activate: bool,
    actor: Option<&str>,
) -> Result<KeyRow, KeyError> {
    write_tx(conn, |conn| -> Result<KeyRow, KeyError> {
        keys::lock_key_table(conn)?;
        if let Some(existing) = keys::find(conn, key.kid())? {
            return Err(KeyError::Duplicate {
                kid: existing.kid.to_string(),
                state: existing.state.to_string(),
            });
        }
        let t = custody.clock.now();
        let c = Current::read(conn)?;
        let (state, displaced) = if activate {
            (KeyState::Active, c.active.into_iter().collect::<Vec<_>>())
        } else {
            (KeyState::Next, c.nexts)
        };
        for old in &displaced {
            keys::retire(conn, &old.kid, t)?;
        }
        let row = new_row(key, pkcs8, custody.kek, state, t)?;
        keys::insert(conn, &row)?;
        let retired: Vec<&str> = displaced.iter().map(|k| k.kid.as_str()).collect();
        Event::about(
            EventKind::KeyImported,
            actor,
            key.kid(),
            json!({"state": state.as_str(), "alg": key.alg().as_str(), "retired": retired}),
        )
        .record(conn)?;
        Ok(row)
    })
}

/// A rotation asked for now (admin API): rotates, and this instance signs with the new key at
/// once (the others within a second). `switch_to` gives the new active key that algorithm.
pub fn rotate_now(
    conn: &mut DbConn,
    store: &KeyStore,
    switch_to: Option<Alg>,
    actor: &str,
    fresh: Option<Fresh>,
) -> Result<Rotated, KeyError> {
    let custody = Custody::of(store);
    let rotated = rotate_with(conn, &custody, (switch_to, None, Some(actor)), fresh)?
        .context("an unscheduled rotation did not happen")?;
    store.refresh(conn)?;
    Ok(rotated)
}

impl crate::service::Issuer {
    /// [`rotate_now`] with its keys generated first, off the database's thread: reads what the
    /// rotation needs, generates it on the blocking pool, then rotates.
    pub async fn rotate_keys(
        &self,
        switch_to: Option<Alg>,
        actor: String,
    ) -> Result<Rotated, KeyError> {
        let store = self.keys.clone();
        let needed = self
            .db
            .run(move |conn| needed_for_rotation(conn, &Custody::of(&store), switch_to, None))
            .await?;
        let fresh = generate_off_thread(&self.keys, needed).await?;
        let store = self.keys.clone();
        self.db
            .run_typed(move |conn| rotate_now(conn, &store, switch_to, &actor, fresh))
            .await
    }
}

/// An emergency revocation (admin API): unpublishes `kid` here at once.
pub fn revoke_now(
    conn: &mut DbConn,
    store: &KeyStore,
    kid: &str,
    actor: &str,
) -> Result<Revoked, KeyError> {
    let revoked = revoke(conn, &Custody::of(store), kid, Some(actor))?;
    store.refresh(conn)?;
    Ok(revoked)
}

/// A key as the rotation history shows it; never private material.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = SigningKey)]
pub struct KeyView {
    #[schema(value_type = String)]
    pub kid: Kid,
    pub alg: String,
    pub state: String,
    /// Whether the JWKS carries it now.
    pub published: bool,
    pub created_at: String,
    pub activated_at: Option<String>,
    pub retired_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// The rotation history, oldest first.
pub fn history(conn: &mut DbConn, store: &KeyStore) -> anyhow::Result<Vec<KeyView>> {
    let ring = store.current();
    Ok(keys::list(conn)?
        .into_iter()
        .map(|k| KeyView {
            published: ring.published(&k.kid).is_some(),
            created_at: rfc3339(k.created_at),
            activated_at: k.activated_at.map(rfc3339),
            retired_at: k.retired_at.map(rfc3339),
            revoked_at: k.revoked_at.map(rfc3339),
            kid: k.kid,
            alg: k.alg.to_string(),
            state: k.state.to_string(),
        })
        .collect())
}

/// Generates `needed` keys on the blocking pool (not on the database's thread); `None` when
/// nothing is needed.
pub async fn generate_off_thread(
    store: &std::sync::Arc<KeyStore>,
    needed: Vec<Alg>,
) -> anyhow::Result<Option<Fresh>> {
    if needed.is_empty() {
        return Ok(None);
    }
    let store = store.clone();
    tokio::task::spawn_blocking(move || Fresh::generate(store.kek(), &needed))
        .await
        .context("key generation panicked")?
        .map(Some)
}

/// Keeps this instance's key ring in step with the database: every second it picks up changes
/// made by any instance (rotations, revocations, imports), drops retired keys whose grace has
/// ended, and, with `--rotate-every`, rotates when the active key is due (one instance wins;
/// the others see the rotation already done).
pub async fn watch(db: crate::db::Db, keys: std::sync::Arc<KeyStore>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failures = crate::service::failures::Failures::default();
    loop {
        tick.tick().await;
        let result = async {
            let every = keys.settings().rotate_every;
            let fresh = match every {
                Some(every) => {
                    let store = keys.clone();
                    let needed = db
                        .run(move |conn| {
                            needed_for_rotation(conn, &Custody::of(&store), None, Some(every))
                        })
                        .await?;
                    generate_off_thread(&keys, needed).await?
                }
                None => None,
            };
            let store = keys.clone();
            db.run(move |conn| {
                if let (Some(every), Some(fresh)) = (every, fresh) {
                    let custody = Custody::of(&store);
                    let rotated = rotate_with(conn, &custody, (None, Some(every), None), Some(fresh))
                        .map_err(anyhow::Error::from)?;
                    if let Some(r) = rotated {
                        tracing::info!(active = %r.active, next = %r.next, "scheduled key rotation");
                    }
                }
                store.refresh(conn)
            })
            .await
        }
        .await;
        failures.log("key ring refresh", &result);
    }
}
