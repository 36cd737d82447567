//! Key-encryption key rotation (`jwt-issuer kek rotate`): a new KEK in the keys dir, every
//! stored private key encrypted anew under it in one transaction, the previous KEK kept beside
//! it (`kek-<id>.key`) and reported as removable once no stored key names it.
//!
//! The order keeps every key decryptable whatever happens between the steps: the new KEK is
//! written first (as `kek-<new id>.key`), then the keys are re-encrypted and committed, then
//! the previous KEK is saved under its id and the new one becomes `kek.key`. A crash after the
//! commit leaves the keys under a KEK that is already on disk; running the rotation again
//! completes it. Instances sharing the database decrypt each key with the KEK its row names,
//! looking in their keys dir again for one they have not loaded: they keep signing with the
//! keys they hold, and need the new KEK file only to open a key made or promoted from then on.

use std::path::Path;

use anyhow::Context as _;
use serde_json::json;
use zeroize::Zeroizing;

use crate::crypto::kek::{KEK_FILE, Kek, new_kek_file, previous_kek_file};
use crate::db::audit::{Event, EventKind};
use crate::db::{DbConn, keys, write_tx};

/// What a KEK rotation did.
#[derive(Debug)]
pub struct KekRotation {
    /// The new KEK's id.
    pub new_id: String,
    /// The KEK it replaced.
    pub previous_id: String,
    /// Stored keys encrypted anew.
    pub reencrypted: usize,
    /// Every KEK file of the keys dir after it.
    pub files: Vec<KekFile>,
}

/// A KEK file in the keys dir, and how many stored keys it encrypted.
#[derive(Debug)]
pub struct KekFile {
    pub file: String,
    pub id: String,
    pub keys: i64,
    /// `kek.key`: the one new keys are encrypted with.
    pub current: bool,
}

impl KekFile {
    /// An earlier KEK no stored key needs any more.
    pub fn removable(&self) -> bool {
        !self.current && self.keys == 0
    }
}

/// Rotates the KEK of `dir` (see the module).
pub fn rotate(conn: &mut DbConn, dir: &Path, actor: &str) -> anyhow::Result<KekRotation> {
    let kek = Kek::load_or_create(dir)?;
    let previous_id = kek.id()?;
    let (new_id, content) = new_kek_file()?;
    let staged = dir.join(previous_kek_file(&new_id));
    crate::files::write_private_file(&staged, &content)?;
    let new = Kek::load_file(&staged)?;
    let reencrypted = write_tx(conn, |conn| -> anyhow::Result<usize> {
        keys::lock_key_table(conn)?;
        let rows = keys::list(conn)?;
        for row in &rows {
            let plain = Zeroizing::new(kek.open(&row.kek_id, &row.private_enc, &row.kid)?);
            let (sealed_by, sealed) = new.seal(&plain, &row.kid)?;
            keys::set_private(conn, &row.kid, &sealed, &sealed_by)?;
        }
        Event::new(EventKind::KekRotated, None, None)
            .by(actor)
            .with(json!({"kek_id": new_id, "previous_kek_id": previous_id, "keys": rows.len()}))
            .record(conn)?;
        Ok(rows.len())
    });
    let reencrypted = match reencrypted {
        Ok(n) => n,
        Err(e) => {
            // Nothing was stored under it.
            let _ = std::fs::remove_file(&staged);
            return Err(e);
        }
    };
    let current = dir.join(KEK_FILE);
    let kept = dir.join(previous_kek_file(&previous_id));
    if !kept.exists() {
        let text =
            std::fs::read(&current).with_context(|| format!("reading {}", current.display()))?;
        crate::files::write_private_file(&kept, &text)?;
    }
    std::fs::rename(&staged, &current)
        .with_context(|| format!("moving {} to {}", staged.display(), current.display()))?;
    Ok(KekRotation {
        new_id,
        previous_id,
        reencrypted,
        files: files(conn, dir)?,
    })
}

/// Every KEK file of `dir`, with how many stored keys each encrypted.
pub fn files(conn: &mut DbConn, dir: &Path) -> anyhow::Result<Vec<KekFile>> {
    let used: std::collections::HashMap<String, i64> =
        keys::count_by_kek(conn)?.into_iter().collect();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !(name == KEK_FILE || (name.starts_with("kek-") && name.ends_with(".key"))) {
            continue;
        }
        let id = Kek::load_file(&path)?.id()?;
        files.push(KekFile {
            file: name.to_owned(),
            keys: used.get(&id).copied().unwrap_or(0),
            current: name == KEK_FILE,
            id,
        });
    }
    files.sort_by(|a, b| b.current.cmp(&a.current).then(a.file.cmp(&b.file)));
    Ok(files)
}
