//! The key ring: the signing keys this instance uses, loaded from the database, decrypted and
//! parsed once, and published (JWKS, PEM) from memory. The ring is swapped atomically when the
//! keys change; requests never parse a key.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use arc_swap::ArcSwap;
use serde_json::json;

use crate::config::{LEEWAY_SECS, Settings};
use crate::crypto::jwt::{VerificationKey, Verifier};
use crate::crypto::kek::Kek;
use crate::crypto::public_key::PublicKeyInfo;
use crate::crypto::signing::{Alg, SigningKey};
use crate::db::keys::{self, KeyRow};
use crate::db::{DbConn, now, write_tx};

/// A key's place in its lifecycle (contract §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    /// Published, not yet signing.
    Next,
    /// Signing; exactly one.
    Active,
    /// No longer signing; published until every token it signed has expired.
    Retired,
    /// Withdrawn at once.
    Revoked,
}

impl KeyState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Active => "active",
            Self::Retired => "retired",
            Self::Revoked => "revoked",
        }
    }
}

/// A published public key.
#[derive(Debug, Clone)]
pub struct PublishedKey {
    pub kid: String,
    pub alg: Alg,
    pub state: KeyState,
    pub pem: String,
}

/// Everything derived from the current keys, built once per change.
pub struct KeyRing {
    /// The key that signs.
    pub active: Arc<SigningKey>,
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
    /// Builds the ring from the stored rows: decrypts the active key, publishes the others.
    pub fn build(
        rows: &[KeyRow],
        kek: &Kek,
        settings: &Settings,
        now: i64,
    ) -> anyhow::Result<Self> {
        let grace = settings.access_ttl + LEEWAY_SECS;
        let mut active = None;
        let mut published = Vec::new();
        let mut jwks = Vec::new();
        let mut verification = HashMap::new();
        for row in rows {
            let state = match row.state.as_str() {
                "active" => KeyState::Active,
                "next" => KeyState::Next,
                "retired" if row.retired_at.is_some_and(|t| t + grace > now) => KeyState::Retired,
                _ => continue,
            };
            let alg: Alg = row.alg.parse().map_err(|e: String| anyhow!(e))?;
            let public = PublicKeyInfo::from_spki_der(&row.public_der)
                .with_context(|| format!("public key of {}", row.kid))?;
            if state == KeyState::Active {
                let pkcs8 = kek.open(&row.private_enc, &row.kid)?;
                let key = SigningKey::from_pkcs8(&pkcs8)
                    .with_context(|| format!("private key of {}", row.kid))?;
                if key.kid() != row.kid || key.alg() != alg {
                    anyhow::bail!("stored key {} does not match its own record", row.kid);
                }
                active = Some(Arc::new(key));
            }
            jwks.push(public.jwk(&row.kid, alg.as_str()));
            verification.insert(
                row.kid.clone(),
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
            published,
            verifier: Verifier::new(verification, &settings.issuer, LEEWAY_SECS.unsigned_abs()),
            jwks,
            etag,
        })
    }

    /// The published key `kid`, if any.
    pub fn published(&self, kid: &str) -> Option<&PublishedKey> {
        self.published.iter().find(|k| k.kid == kid)
    }
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
        let rows = keys::in_states(conn, &["next", "active", "retired"])?;
        let ring = KeyRing::build(&rows, &kek, &settings, now())?;
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

    /// Rebuilds the ring from the database and swaps it in.
    pub fn reload(&self, conn: &mut DbConn) -> anyhow::Result<()> {
        let rows = keys::in_states(conn, &["next", "active", "retired"])?;
        let ring = KeyRing::build(&rows, &self.kek, &self.settings, now())?;
        self.ring.store(Arc::new(ring));
        Ok(())
    }
}

/// Makes sure there is an active and a next key, generating what is missing with `alg`.
/// Safe to run from several instances at once: key changes are serialised in the database.
pub fn ensure_signing_keys(conn: &mut DbConn, kek: &Kek, alg: Alg) -> anyhow::Result<()> {
    let present = keys::in_states(conn, &["active", "next"])?;
    let has = |s: &str| present.iter().any(|k| k.state == s);
    if has("active") && has("next") {
        return Ok(());
    }
    // Generate outside the transaction: RSA generation takes a while.
    let mut fresh = vec![SigningKey::generate(alg)?, SigningKey::generate(alg)?];
    write_tx(conn, |conn| -> anyhow::Result<()> {
        keys::lock_key_table(conn)?;
        let t = now();
        let present = keys::in_states(conn, &["active", "next"])?;
        let mut next: Vec<&KeyRow> = present.iter().filter(|k| k.state == "next").collect();
        if !present.iter().any(|k| k.state == "active") {
            if let Some(promote) = next.pop() {
                keys::activate(conn, &promote.kid, t)?;
            } else {
                let (key, pkcs8) = fresh.pop().context("no generated key left")?;
                keys::insert(conn, &new_row(&key, &pkcs8.0, kek, KeyState::Active, t)?)?;
            }
        }
        if next.is_empty() {
            let (key, pkcs8) = fresh.pop().context("no generated key left")?;
            keys::insert(conn, &new_row(&key, &pkcs8.0, kek, KeyState::Next, t)?)?;
        }
        Ok(())
    })
}

/// A new key's row: public half in the clear, private half sealed with the KEK.
pub fn new_row(
    key: &SigningKey,
    pkcs8: &[u8],
    kek: &Kek,
    state: KeyState,
    t: i64,
) -> anyhow::Result<KeyRow> {
    Ok(KeyRow {
        kid: key.kid().to_owned(),
        alg: key.alg().as_str().to_owned(),
        state: state.as_str().to_owned(),
        public_der: key.public().spki_der().to_vec(),
        private_enc: kek.seal(pkcs8, key.kid())?,
        kek_id: kek.id().to_owned(),
        created_at: t,
        activated_at: (state == KeyState::Active).then_some(t),
        retired_at: None,
        revoked_at: None,
    })
}
