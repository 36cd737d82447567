//! First run: the bootstrap admin user. With no users at all, `serve` creates `admin` (role
//! `admin`) with a random password written to `<keys-dir>/initial-admin-password` (0600). The
//! password itself is never printed or logged.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use base64::Engine as _;

use crate::db::{DbConn, keys, users, write_tx};
use crate::domain::{Password, Role, Roles, Username};
use crate::files::write_private_file;
use crate::service::passwords::PasswordHasher;
use crate::service::users::{UserError, create};

/// The bootstrap password file's name inside the keys dir.
pub const INITIAL_PASSWORD_FILE: &str = "initial-admin-password";

/// Creates the bootstrap admin if there are no users. Returns the password file's path when
/// it did.
pub fn ensure_admin(
    conn: &mut DbConn,
    keys_dir: &Path,
    hasher: &PasswordHasher,
    now: i64,
) -> anyhow::Result<Option<PathBuf>> {
    if users::count(conn)? > 0 {
        return Ok(None);
    }
    let mut raw = [0u8; 24];
    getrandom::getrandom(&mut raw).context("reading the OS random generator")?;
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let password = Password::for_new_user(&text, "admin").map_err(anyhow::Error::msg)?;
    let hash = hasher.hash_now(&password)?;
    let username = Username::parse("admin").map_err(anyhow::Error::msg)?;
    let roles = Roles::new([Role::parse(Role::ADMIN).map_err(anyhow::Error::msg)?]);
    let path = keys_dir.join(INITIAL_PASSWORD_FILE);

    // The user and the file stand or fall together: the file is written inside the transaction.
    let created = write_tx(conn, |conn| -> anyhow::Result<bool> {
        // Serialises first starts of several instances on one PostgreSQL database.
        keys::lock_key_table(conn)?;
        if users::count(conn)? > 0 {
            return Ok(false);
        }
        match create(conn, &username, &hash, &roles, None, now) {
            Ok(_) => {}
            // Another instance bootstrapped first.
            Err(UserError::Duplicate(_)) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        if path.exists() {
            std::fs::remove_file(&path)
                .with_context(|| format!("replacing the stale {}", path.display()))?;
        }
        write_private_file(&path, format!("{text}\n").as_bytes())?;
        Ok(true)
    })?;
    Ok(created.then_some(path))
}
