//! The subcommands other than `serve`: each opens (and migrates) the database, does one thing,
//! and prints a plain-text result.

use std::io::BufRead as _;

use anyhow::{Context as _, bail};

use crate::config::{KeyCommand, Options, UserCommand};
use crate::db::{Db, keys};
use crate::domain::{Password, Roles, Username};
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
    let id = users::create(&mut conn, name, &hash, roles)?;
    println!("created user {name} ({id}) with roles [{roles}]");
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
            for k in keys::list(&mut conn)? {
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
    }
}

/// A unix time as RFC 3339 (UTC), or `-`.
pub fn time(t: Option<i64>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map_or_else(
            || "-".to_owned(),
            |d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        )
}
