//! The subcommands other than `serve`: each opens (and migrates) the database, does one thing,
//! and prints a plain-text result.

use std::io::BufRead as _;

use anyhow::{Context as _, bail};

use crate::config::{KeyCommand, Options, UserCommand, UserKeyCommand};
use crate::crypto::client_key::parse_client_key;
use crate::crypto::import::parse_private_key;
use crate::crypto::kek::Kek;
use crate::crypto::signing::Alg;
use crate::db::Db;
use crate::domain::{Password, Roles, Username};
use crate::service::keys::{self, Lookahead, ensure_signing_keys};
use crate::service::machine;
use crate::service::passwords::hash_blocking;
use crate::service::users;

/// `migrate`.
pub fn migrate(options: &Options) -> anyhow::Result<()> {
    let db = Db::open(&options.database)?;
    println!(
        "database {:?} is up to date ({})",
        options.database,
        db.backend()
    );
    Ok(())
}

/// `user …`.
pub fn user(options: &Options, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add { name, roles, .. } => {
            let password = read_password()?;
            add_user(options, &name, &password, &Roles::new(roles))
        }
        UserCommand::List => {
            let db = Db::open(&options.database)?;
            let mut conn = db.conn()?;
            println!("{:<36}  {:<24}  {:<8}  roles", "id", "username", "status");
            for u in users::list(&mut conn)? {
                let status = if u.disabled { "disabled" } else { "active" };
                println!(
                    "{:<36}  {:<24}  {:<8}  {}",
                    u.id, u.username, status, u.roles
                );
            }
            Ok(())
        }
        UserCommand::Key(UserKeyCommand::Add {
            name,
            file,
            comment,
        }) => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let value = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .filter(serde_json::Value::is_object)
                .unwrap_or(serde_json::Value::String(text));
            let key =
                parse_client_key(&value).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let db = Db::open(&options.database)?;
            let mut conn = db.conn()?;
            let view = machine::add_key(
                &mut conn,
                &name,
                &key,
                comment.as_deref().unwrap_or(""),
                Some("cli"),
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "added {} key {} for {name} (fingerprint {})",
                view.kty, view.id, view.fingerprint
            );
            Ok(())
        }
        UserCommand::Key(UserKeyCommand::List { name }) => {
            let db = Db::open(&options.database)?;
            let mut conn = db.conn()?;
            let keys = machine::list_keys(&mut conn, &name).map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "{:<36}  {:<3}  {:<64}  {:<20}  comment",
                "id", "kty", "fingerprint", "created"
            );
            for k in keys {
                println!(
                    "{:<36}  {:<3}  {:<64}  {:<20}  {}",
                    k.id, k.kty, k.fingerprint, k.created_at, k.comment
                );
            }
            Ok(())
        }
    }
}

fn read_password() -> anyhow::Result<Password> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    let line = line.strip_suffix('\n').unwrap_or(&line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.is_empty() {
        bail!(
            "no password on stdin (pipe it in, e.g. `printf '%s' \"$PW\" | jwt-issuer user add NAME --password-stdin`)"
        );
    }
    Password::for_new_user(line).map_err(anyhow::Error::msg)
}

fn add_user(
    options: &Options,
    name: &Username,
    password: &Password,
    roles: &Roles,
) -> anyhow::Result<()> {
    let db = Db::open(&options.database)?;
    let hash = hash_blocking(password)?;
    let mut conn = db.conn()?;
    let user = users::create(&mut conn, name, &hash, roles, Some("cli"))?;
    println!("created user {name} ({}) with roles [{roles}]", user.id);
    Ok(())
}

/// `key …`.
pub fn key(options: &Options, command: KeyCommand) -> anyhow::Result<()> {
    match command {
        KeyCommand::List => {
            let db = Db::open(&options.database)?;
            let mut conn = db.conn()?;
            println!(
                "{:<43}  {:<5}  {:<7}  {:<20}  {:<20}  {:<20}  revoked",
                "kid", "alg", "state", "created", "activated", "retired"
            );
            for k in crate::db::keys::list(&mut conn)? {
                println!(
                    "{:<43}  {:<5}  {:<7}  {:<20}  {:<20}  {:<20}  {}",
                    k.kid,
                    k.alg,
                    k.state,
                    time(Some(k.created_at)),
                    time(k.activated_at),
                    time(k.retired_at),
                    time(k.revoked_at)
                );
            }
            Ok(())
        }
        KeyCommand::Rotate => {
            let (db, kek) = open_with_kek(options)?;
            let mut conn = db.conn()?;
            let alg = options.alg.unwrap_or(Alg::RS256);
            let r = keys::rotate(
                &mut conn,
                &kek,
                options.alg,
                alg,
                lookahead(options),
                None,
                Some("cli"),
            )?
            .context("the rotation did not happen")?;
            println!(
                "rotated: active {} (was {}), next {}",
                r.active,
                r.retired.as_deref().unwrap_or("-"),
                r.next
            );
            Ok(())
        }
        KeyCommand::Import { file, activate } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let (key, pkcs8) = parse_private_key(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let (db, kek) = open_with_kek(options)?;
            let mut conn = db.conn()?;
            let row = keys::import(&mut conn, &kek, &key, &pkcs8, activate, Some("cli"))?;
            println!("imported {} key {} as {}", row.alg, row.kid, row.state);
            Ok(())
        }
    }
}

/// Opens the database and the key-encryption key, and makes sure signing keys exist.
fn open_with_kek(options: &Options) -> anyhow::Result<(Db, Kek)> {
    let db = Db::open(&options.database)?;
    let kek = Kek::load_or_create(&options.keys_dir)?;
    let mut conn = db.conn()?;
    ensure_signing_keys(
        &mut conn,
        &kek,
        options.alg.unwrap_or(Alg::RS256),
        lookahead(options),
    )?;
    Ok((db, kek))
}

fn lookahead(options: &Options) -> Lookahead {
    Lookahead::for_schedule(options.rotate_every.and_then(|s| i64::try_from(s).ok()))
}

/// A unix time as RFC 3339 (UTC), or `-`.
pub fn time(t: Option<i64>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map_or_else(
            || "-".to_owned(),
            |d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        )
}
