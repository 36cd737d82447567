//! The subcommands other than `serve`: each opens (and migrates) the database, calls the same
//! service functions the HTTP handlers do, and prints a plain-text result.

use std::io::BufRead as _;

use anyhow::{Context as _, bail};

use super::args::{
    ClientCommand, KekCommand, KeyCommand, Options, ScopeCommand, UserCommand, UserKeyCommand,
    UserRoleCommand,
};
use crate::crypto::client_key::parse_client_key;
use crate::crypto::import::parse_private_key;
use crate::crypto::kek::Kek;
use crate::db::Db;
use crate::domain::{ClientSecret, Password, Role, Roles, Username};
use crate::service::clients::{self, ClientChange, ClientView, SecretChoice};
use crate::service::keys::{self, Custody, ensure_signing_keys};
use crate::service::machine;
use crate::service::passwords::hash_blocking;
use crate::service::registry::OwnAudiences;
use crate::service::sessions;
use crate::service::users::{self, UserChange};

/// `migrate`.
/// `audit [--limit N]`: the newest events, one JSON object per line.
pub fn audit(options: &Options, limit: i64) -> anyhow::Result<()> {
    let db = Db::open(&options.database)?;
    let mut conn = db.conn()?;
    for event in crate::service::audit::newest(&mut conn, limit)? {
        crate::say!("{}", serde_json::to_string(&event)?);
    }
    Ok(())
}

pub fn migrate(options: &Options) -> anyhow::Result<()> {
    let db = Db::open(&options.database)?;
    crate::say!(
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
            let password = read_password(name.as_str())?;
            add_user(options, &name, &password, &Roles::new(roles))
        }
        UserCommand::List => list_users(options),
        UserCommand::Sessions { name } => list_sessions(options, &name),
        UserCommand::Logout { name } => logout(options, &name),
        UserCommand::Passwd { name, .. } => passwd(options, &name),
        UserCommand::Disable { name } => {
            change_user(options, &name, |c, _| c.disabled = Some(true))
        }
        UserCommand::Enable { name } => {
            change_user(options, &name, |c, _| c.disabled = Some(false))
        }
        UserCommand::Role(UserRoleCommand::Add { name, role }) => {
            change_user(options, &name, |c, user| {
                c.roles = Some(with_role(user, role, true))
            })
        }
        UserCommand::Role(UserRoleCommand::Remove { name, role }) => {
            change_user(options, &name, |c, user| {
                c.roles = Some(with_role(user, role, false))
            })
        }
        UserCommand::Key(UserKeyCommand::Add {
            name,
            file,
            comment,
        }) => add_machine_key(options, &name, &file, comment.as_deref().unwrap_or("")),
        UserCommand::Key(UserKeyCommand::List { name }) => list_machine_keys(options, &name),
        UserCommand::Key(UserKeyCommand::Remove { name, id }) => {
            let mut conn = connect(options)?;
            machine::delete_key(&mut conn, &name, &id, Some("cli")).map_err(says)?;
            crate::say!("removed key {id} of {name}");
            Ok(())
        }
    }
}

/// A pooled connection to the (migrated) database the options name.
fn connect(
    options: &Options,
) -> anyhow::Result<diesel::r2d2::PooledConnection<crate::db::Manager>> {
    Db::open(&options.database)?.conn()
}

/// Any service error, as the one line the CLI prints.
fn says(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

fn list_users(options: &Options) -> anyhow::Result<()> {
    let mut conn = connect(options)?;
    crate::say!("{:<36}  {:<24}  {:<8}  roles", "id", "username", "status");
    for u in users::list(&mut conn)? {
        let status = if u.disabled { "disabled" } else { "active" };
        crate::say!(
            "{:<36}  {:<24}  {:<8}  {}",
            u.id,
            u.username,
            status,
            u.roles
        );
    }
    Ok(())
}

fn list_sessions(options: &Options, name: &str) -> anyhow::Result<()> {
    let now = crate::clock::Clock::system().now();
    let mut conn = connect(options)?;
    let user = sessions::user_named(&mut conn, name).map_err(says)?;
    let list = sessions::list(&mut conn, &user.id, None, now).map_err(says)?;
    crate::say!(
        "{:<36}  {:<16}  {:<20}  {:<20}  {:<39}  user agent",
        "session",
        "client",
        "created",
        "last used",
        "address"
    );
    for s in list {
        crate::say!(
            "{:<36}  {:<16}  {:<20}  {:<20}  {:<39}  {}",
            s.id,
            s.client_id,
            s.created_at,
            s.last_used_at,
            s.ip.as_deref().unwrap_or("-"),
            s.user_agent.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

fn logout(options: &Options, name: &str) -> anyhow::Result<()> {
    let now = crate::clock::Clock::system().now();
    let mut conn = connect(options)?;
    let user = sessions::user_named(&mut conn, name).map_err(says)?;
    let ended = sessions::end_all(&mut conn, &user.id, name, "cli", now).map_err(says)?;
    crate::say!("ended {ended} session(s) of {name}; their access tokens are revoked");
    Ok(())
}

fn passwd(options: &Options, name: &str) -> anyhow::Result<()> {
    let now = crate::clock::Clock::system().now();
    let mut conn = connect(options)?;
    let user = users::named(&mut conn, name).map_err(says)?;
    let password = read_password(&user.username)?;
    let hash = hash_blocking(&password)?;
    let ended = users::reset_password(&mut conn, &user, &hash, Some("cli"), now).map_err(says)?;
    crate::say!("password of {name} set; {ended} session(s) ended");
    Ok(())
}

/// The user's roles with `role` added (or taken away).
fn with_role(user: &crate::db::users::UserRow, role: Role, add: bool) -> Roles {
    let others = Roles::from_stored(&user.roles)
        .names()
        .filter(|r| *r != role.as_str())
        .filter_map(|r| Role::parse(r).ok())
        .collect::<Vec<_>>();
    Roles::new(others.into_iter().chain(add.then_some(role)))
}

fn add_machine_key(
    options: &Options,
    name: &str,
    file: &std::path::Path,
    comment: &str,
) -> anyhow::Result<()> {
    let now = crate::clock::Clock::system().now();
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let value = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .filter(serde_json::Value::is_object)
        .unwrap_or(serde_json::Value::String(text));
    let key = parse_client_key(&value).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let mut conn = connect(options)?;
    let view = machine::add_key(&mut conn, name, &key, comment, Some("cli"), now).map_err(says)?;
    crate::say!(
        "added {} key {} for {name} (fingerprint {})",
        view.kty,
        view.id,
        view.fingerprint
    );
    Ok(())
}

fn list_machine_keys(options: &Options, name: &str) -> anyhow::Result<()> {
    let mut conn = connect(options)?;
    let keys = machine::list_keys(&mut conn, name).map_err(says)?;
    crate::say!(
        "{:<36}  {:<3}  {:<64}  {:<20}  comment",
        "id",
        "kty",
        "fingerprint",
        "created"
    );
    for k in keys {
        crate::say!(
            "{:<36}  {:<3}  {:<64}  {:<20}  {}",
            k.id,
            k.kty,
            k.fingerprint,
            k.created_at,
            k.comment
        );
    }
    Ok(())
}

/// The first line of stdin, without its line ending.
fn read_stdin_line(what: &str) -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .with_context(|| format!("reading the {what} from stdin"))?;
    let line = line.strip_suffix('\n').unwrap_or(&line);
    Ok(line.strip_suffix('\r').unwrap_or(line).to_owned())
}

fn read_password(username: &str) -> anyhow::Result<Password> {
    let line = read_stdin_line("password")?;
    if line.is_empty() {
        bail!(
            "no password on stdin (pipe it in, e.g. `printf '%s' \"$PW\" | jwt-issuer user add NAME --password-stdin`)"
        );
    }
    Password::for_new_user(&line, username).map_err(anyhow::Error::msg)
}

fn add_user(
    options: &Options,
    name: &Username,
    password: &Password,
    roles: &Roles,
) -> anyhow::Result<()> {
    let now = crate::clock::Clock::system().now();
    let db = Db::open(&options.database)?;
    let hash = hash_blocking(password)?;
    let mut conn = db.conn()?;
    let user = users::create(&mut conn, name, &hash, roles, Some("cli"), now)?;
    crate::say!("created user {name} ({}) with roles [{roles}]", user.id);
    Ok(())
}

/// Applies a change to NAME built from the stored user, and prints the result.
fn change_user(
    options: &Options,
    name: &str,
    build: impl FnOnce(&mut UserChange, &crate::db::users::UserRow),
) -> anyhow::Result<()> {
    let now = crate::clock::Clock::system().now();
    let mut conn = connect(options)?;
    let user = users::named(&mut conn, name).map_err(says)?;
    let mut change = UserChange::default();
    build(&mut change, &user);
    let (user, ended) = users::update(&mut conn, name, &change, Some("cli"), now).map_err(says)?;
    let status = if user.disabled { "disabled" } else { "active" };
    crate::say!("{name}: {status}, roles [{}]", user.roles);
    if ended > 0 {
        crate::say!("ended {ended} session(s); their access tokens are revoked");
    }
    Ok(())
}

/// `key …`.
pub fn key(options: &Options, command: KeyCommand) -> anyhow::Result<()> {
    match command {
        KeyCommand::List => {
            let mut conn = connect(options)?;
            crate::say!(
                "{:<43}  {:<5}  {:<7}  {:<20}  {:<20}  {:<20}  revoked",
                "kid",
                "alg",
                "state",
                "created",
                "activated",
                "retired"
            );
            for k in crate::db::keys::list(&mut conn)? {
                crate::say!(
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
            let settings = options.settings(options.bind);
            let custody = Custody::new(&kek, &settings);
            let r = keys::rotate(&mut conn, &custody, options.alg, None, Some("cli"))?
                .context("the rotation did not happen")?;
            crate::say!(
                "rotated: active {} (was {}), next {}",
                r.active,
                r.retired.as_deref().unwrap_or("-"),
                r.next
            );
            Ok(())
        }
        KeyCommand::Revoke { kid } => {
            let (db, kek) = open_with_kek(options)?;
            let mut conn = db.conn()?;
            let settings = options.settings(options.bind);
            let custody = Custody::new(&kek, &settings);
            let r = keys::revoke(&mut conn, &custody, &kid, Some("cli"))?;
            crate::say!(
                "revoked {}: active {}, next {}",
                r.revoked,
                r.active,
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
            let settings = options.settings(options.bind);
            let custody = Custody::new(&kek, &settings);
            let row = keys::import(&mut conn, &custody, &key, &pkcs8, activate, Some("cli"))?;
            crate::say!("imported {} key {} as {}", row.alg, row.kid, row.state);
            Ok(())
        }
    }
}

/// The issuer's own audiences, as `serve` with the same options would resolve them.
fn own_audiences(options: &Options) -> OwnAudiences {
    OwnAudiences::of(&options.settings(options.bind))
}

fn print_client(view: &ClientView) {
    let kind = if view.confidential {
        "confidential"
    } else {
        "public"
    };
    let defaults = if view.default_audiences {
        "  (the issuer's defaults)"
    } else {
        ""
    };
    crate::say!("client {} ({kind})", view.client_id);
    crate::say!("  audiences:   {}{defaults}", view.audiences.join(" "));
    crate::say!("  scopes:      {}", view.scopes.join(" "));
    crate::say!("  grant types: {}", view.grant_types.join(" "));
    crate::say!("  created:     {}", view.created_at);
    crate::say!("  updated:     {}", view.updated_at);
}

/// `client …`.
pub fn client(options: &Options, command: ClientCommand) -> anyhow::Result<()> {
    let now = crate::clock::Clock::system().now();
    let own = own_audiences(options);
    match command {
        ClientCommand::Add {
            id,
            secret_stdin,
            generate_secret,
            scopes,
            grants,
        } => {
            let secret = if secret_stdin {
                let line = read_stdin_line("client secret")?;
                SecretChoice::Supplied(ClientSecret::parse_new(&line).map_err(anyhow::Error::msg)?)
            } else if generate_secret {
                SecretChoice::Generate
            } else {
                SecretChoice::Public
            };
            // `--audience` from the environment is the issuer's default, not this client's.
            let audiences = if options.audience_from_command_line {
                options.audience.clone()
            } else {
                Vec::new()
            };
            let change = ClientChange {
                secret: None,
                audiences: Some(audiences),
                scopes: Some(scopes),
                grants: (!grants.is_empty()).then(|| grants.iter().map(|g| g.0).collect()),
            };
            let mut conn = connect(options)?;
            let view = clients::add(&mut conn, &id, secret, change, &own, Some("cli"), now)
                .map_err(says)?;
            print_client(&view);
            if let Some(secret) = &view.client_secret {
                crate::say!("client_secret: {secret}");
                crate::say!("  (shown once: store it now; only its hash is kept)");
            }
            Ok(())
        }
        ClientCommand::List => {
            let mut conn = connect(options)?;
            let registry = clients::read_registry(&mut conn, &own)?;
            crate::say!(
                "{:<24}  {:<12}  {:<40}  {:<40}  scopes",
                "client_id",
                "kind",
                "grant types",
                "audiences"
            );
            for c in registry.clients() {
                let v = ClientView::of(&c);
                let kind = if v.confidential {
                    "confidential"
                } else {
                    "public"
                };
                crate::say!(
                    "{:<24}  {:<12}  {:<40}  {:<40}  {}",
                    v.client_id,
                    kind,
                    v.grant_types.join(" "),
                    v.audiences.join(" "),
                    v.scopes.join(" ")
                );
            }
            Ok(())
        }
        ClientCommand::Show { id } => {
            let mut conn = connect(options)?;
            let registry = clients::read_registry(&mut conn, &own)?;
            let client = registry
                .client(&id)
                .ok_or_else(|| anyhow::anyhow!("no client {id}"))?;
            print_client(&ClientView::of(&client));
            Ok(())
        }
        ClientCommand::Remove { id } => {
            let mut conn = connect(options)?;
            clients::remove(&mut conn, &id, Some("cli")).map_err(says)?;
            crate::say!("removed client {id}");
            Ok(())
        }
    }
}

/// `scope …`.
pub fn scope(options: &Options, command: ScopeCommand) -> anyhow::Result<()> {
    let now = crate::clock::Clock::system().now();
    let mut conn = connect(options)?;
    match command {
        ScopeCommand::Add {
            name,
            roles,
            description,
        } => {
            let roles = Roles::new(roles);
            let view = clients::add_scope(
                &mut conn,
                &name,
                &roles,
                description.as_deref().unwrap_or(""),
                Some("cli"),
                now,
            )
            .map_err(says)?;
            let gate = if view.roles.is_empty() {
                "anyone".to_owned()
            } else {
                format!("roles [{}]", view.roles.join(" "))
            };
            crate::say!("added scope {} for {gate}", view.name);
            Ok(())
        }
        ScopeCommand::List => {
            let registry = clients::read_registry(&mut conn, &own_audiences(options))?;
            crate::say!("{:<32}  {:<24}  description", "scope", "roles");
            for s in registry.scopes() {
                crate::say!(
                    "{:<32}  {:<24}  {}",
                    s.name,
                    s.roles.to_stored(),
                    s.description
                );
            }
            Ok(())
        }
        ScopeCommand::Remove { name } => {
            let changed =
                clients::remove_scope(&mut conn, &name, Some("cli"), now).map_err(says)?;
            if changed.is_empty() {
                crate::say!("removed scope {name}");
            } else {
                crate::say!(
                    "removed scope {name} (also from clients: {})",
                    changed.join(" ")
                );
            }
            Ok(())
        }
    }
}

/// Opens the database and the key-encryption key, and makes sure signing keys exist.
fn open_with_kek(options: &Options) -> anyhow::Result<(Db, Kek)> {
    let db = Db::open(&options.database)?;
    let kek = Kek::load_or_create(&options.keys_dir)?;
    let mut conn = db.conn()?;
    let settings = options.settings(options.bind);
    ensure_signing_keys(&mut conn, &Custody::new(&kek, &settings))?;
    Ok((db, kek))
}

/// A unix time as RFC 3339 (UTC), or `-`.
pub fn time(t: Option<i64>) -> String {
    crate::service::time::rfc3339_or_dash(t)
}

/// `healthcheck`: `GET /healthz` on the `--bind` address (loopback for an unspecified one),
/// over plain HTTP/1.1 with a 5 s budget; an error unless the answer is 200.
pub fn healthcheck(options: &Options) -> anyhow::Result<()> {
    use std::io::{Read as _, Write as _};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
    use std::time::Duration;
    const BUDGET: Duration = Duration::from_secs(5);
    let mut addr = options.bind;
    if addr.ip().is_unspecified() {
        let loopback = match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        };
        addr = SocketAddr::new(loopback, addr.port());
    }
    let mut stream = TcpStream::connect_timeout(&addr, BUDGET)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(BUDGET))?;
    stream.set_write_timeout(Some(BUDGET))?;
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 64];
    let mut read = 0;
    while read < 12 {
        match stream.read(&mut head[read..])? {
            0 => break,
            n => read += n,
        }
    }
    let status = std::str::from_utf8(&head[..read]).unwrap_or_default();
    match status.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        Some(code) => bail!("GET http://{addr}/healthz answered {code}"),
        None => bail!("GET http://{addr}/healthz: no HTTP answer"),
    }
}

/// `kek rotate`, `kek list`.
pub fn kek(options: &Options, command: KekCommand) -> anyhow::Result<()> {
    let mut conn = connect(options)?;
    let dir = &options.keys_dir;
    let files = match command {
        KekCommand::Rotate => {
            let done = crate::service::kek::rotate(&mut conn, dir, "cli")?;
            crate::say!(
                "re-encrypted {} stored private keys under the new key-encryption key {} ({}); the previous one, {}, is kept as {}",
                done.reencrypted,
                done.new_id,
                crate::crypto::kek::KEK_FILE,
                done.previous_id,
                crate::crypto::kek::previous_kek_file(&done.previous_id)
            );
            done.files
        }
        KekCommand::List => crate::service::kek::files(&mut conn, dir)?,
    };
    for f in files {
        let state = if f.current {
            "current: encrypts new keys"
        } else if f.removable() {
            "removable: no stored key needs it (keep it while a backup from before the rotation may be restored)"
        } else {
            "still needed: stored keys were encrypted with it (by an instance that had not got the new one)"
        };
        crate::say!("{:<24}  {}  {:>4} keys  {state}", f.file, f.id, f.keys);
    }
    Ok(())
}
