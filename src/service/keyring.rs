//! The key ring: the signing keys this instance uses, loaded from the database, decrypted and
//! parsed once, and published (JWKS, PEM) from memory. The ring is swapped atomically when the
//! keys change; requests never parse a key.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use serde_json::json;

use crate::config::{LEEWAY_SECS, Settings};
use crate::crypto::jwt::{VerificationKey, Verifier};
use crate::crypto::kek::Kek;
use crate::crypto::public_key::PublicKeyInfo;
use crate::crypto::signing::{Alg, SigningKey};
use crate::db::DbConn;
use crate::db::keys::{self, KeyRow};
pub use crate::domain::KeyState;
use crate::domain::Kid;

/// A published public key.
#[derive(Debug, Clone)]
pub struct PublishedKey {
    pub kid: Kid,
    pub alg: Alg,
    pub state: KeyState,
    pub pem: String,
}

/// Everything derived from the current keys, built once per change.
pub struct KeyRing {
    /// The key that signs.
    pub active: Arc<SigningKey>,
    /// When it became active (Unix seconds), if recorded.
    pub active_since: Option<i64>,
    /// Every published key (next, active, retired within its grace period).
    pub published: Vec<PublishedKey>,
    /// Verifies tokens against the published keys.
    pub verifier: Verifier,
    /// The JWK Set document, serialized once.
    pub jwks: Vec<u8>,
    /// Its strong ETag.
    pub etag: String,
}

impl KeyRing {
    /// Builds the ring from the stored rows: decrypts the active key (unless `reuse` already
    /// holds it parsed), publishes the others.
    pub fn build(
        rows: &[KeyRow],
        kek: &Kek,
        settings: &Settings,
        now: i64,
        reuse: Option<Arc<SigningKey>>,
    ) -> anyhow::Result<Self> {
        let grace = retired_grace(settings);
        let mut active = None;
        let mut active_since = None;
        let mut published = Vec::new();
        let mut jwks = Vec::new();
        let mut verification = HashMap::new();
        for row in rows {
            let state = match row.state {
                KeyState::Active | KeyState::Next => row.state,
                KeyState::Retired if row.retired_at.is_some_and(|t| t + grace > now) => {
                    KeyState::Retired
                }
                _ => continue,
            };
            let alg = row.alg;
            let public = PublicKeyInfo::from_spki_der(&row.public_der)
                .with_context(|| format!("public key of {}", row.kid))?;
            if state == KeyState::Active {
                active_since = row.activated_at;
                if let Some(key) = reuse.as_ref().filter(|k| k.kid() == row.kid.as_str()) {
                    active = Some(key.clone());
                } else {
                    active = Some(Arc::new(Self::open_key(row, kek, alg)?));
                }
            }
            jwks.push(public.jwk(&row.kid, alg.as_str()));
            verification.insert(
                row.kid.to_string(),
                VerificationKey {
                    alg,
                    key: public.decoding_key()?,
                },
            );
            published.push(PublishedKey {
                kid: row.kid.clone(),
                alg,
                state,
                pem: public.pem(),
            });
        }
        let active = active.context("no active signing key")?;
        let jwks = serde_json::to_vec(&json!({ "keys": jwks }))?;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &jwks);
        let etag = format!("\"{}\"", crate::crypto::b64url(&digest.as_ref()[..16]));
        Ok(Self {
            active,
            active_since,
            published,
            verifier: Verifier::new(verification, &settings.issuer, LEEWAY_SECS.unsigned_abs()),
            jwks,
            etag,
        })
    }

    fn open_key(row: &KeyRow, kek: &Kek, alg: Alg) -> anyhow::Result<SigningKey> {
        let pkcs8 = kek.open(&row.kek_id, &row.private_enc, &row.kid)?;
        let key = SigningKey::from_pkcs8(&pkcs8)
            .with_context(|| format!("private key of {}", row.kid))?;
        if key.kid() != row.kid.as_str() || key.alg() != alg {
            anyhow::bail!("stored key {} does not match its own record", row.kid);
        }
        Ok(key)
    }

    /// The (kid, state) pairs published, to tell whether the stored keys changed.
    fn fingerprint(&self) -> Vec<(&str, KeyState)> {
        self.published
            .iter()
            .map(|k| (k.kid.as_str(), k.state))
            .collect()
    }

    /// The published key `kid`, if any.
    pub fn published(&self, kid: &str) -> Option<&PublishedKey> {
        self.published.iter().find(|k| k.kid == kid)
    }
}

/// How long a retired key stays published: until every token it signed has expired, plus
/// the verification leeway.
pub fn retired_grace(settings: &Settings) -> i64 {
    settings.access_ttl + LEEWAY_SECS
}

/// The current key ring, swapped atomically.
pub struct KeyStore {
    ring: ArcSwap<KeyRing>,
    kek: Kek,
    settings: Settings,
}

impl KeyStore {
    /// Loads the keys from the database.
    pub fn load(conn: &mut DbConn, kek: Kek, settings: Settings) -> anyhow::Result<Self> {
        let t = settings.clock.now();
        let rows = keys::published(conn, t - retired_grace(&settings))?;
        let ring = KeyRing::build(&rows, &kek, &settings, t, None)?;
        Ok(Self {
            ring: ArcSwap::from_pointee(ring),
            kek,
            settings,
        })
    }

    /// The current ring (a cheap pointer copy).
    pub fn current(&self) -> Arc<KeyRing> {
        self.ring.load_full()
    }

    /// The key-encryption key, for operations that store new keys.
    pub fn kek(&self) -> &Kek {
        &self.kek
    }

    /// The settings the ring was loaded with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Re-reads the published keys and swaps in a new ring if they changed (a rotation or
    /// revocation by any instance, or a retired key reaching the end of its grace period).
    /// Returns whether it changed. The active key is re-parsed only when it is a new one.
    pub fn refresh(&self, conn: &mut DbConn) -> anyhow::Result<bool> {
        let t = self.settings.clock.now();
        let rows = keys::published(conn, t - retired_grace(&self.settings))?;
        let current = self.current();
        // Compare the stored (kid, state) pairs first: most seconds nothing changed, and then
        // nothing is parsed or serialised.
        let stored: Vec<(&str, KeyState)> =
            rows.iter().map(|r| (r.kid.as_str(), r.state)).collect();
        if stored == current.fingerprint() {
            return Ok(false);
        }
        let ring = KeyRing::build(
            &rows,
            &self.kek,
            &self.settings,
            t,
            Some(current.active.clone()),
        )?;
        if ring.fingerprint() == current.fingerprint() {
            return Ok(false);
        }
        tracing::info!(
            active = ring.active.kid(),
            published = ring.published.len(),
            "signing keys reloaded"
        );
        self.ring.store(Arc::new(ring));
        Ok(true)
    }
}
