//! The command line's grammar: subcommands and the options every subcommand shares (each also
//! read from an environment variable). Every value is parsed here, so a bad one is an error
//! naming the option (exit status 2) before anything is written.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgAction, Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

use super::config_file;
use crate::config::{Limits, Settings};
use crate::crypto::signing::Alg;
use crate::db::DatabaseUrl;
use crate::domain::{Audience, Cidr, ClientId, GrantType, Role, ScopeName, Username};

/// jwt-issuer: log users in, mint short-lived signed tokens, publish the keys to verify them.
#[derive(Parser, Debug)]
#[command(name = "jwt-issuer", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub options: Options,
    #[command(subcommand)]
    pub command: Command,
    /// The effective configuration, for `jwt-issuer config`: one TOML line per option.
    #[arg(skip)]
    pub effective: Vec<String>,
}

impl Cli {
    /// Parses the process's arguments; a bad value exits with status 2 naming the option.
    /// `--audience` is the one option that may repeat, and only on the command line of
    /// `client add`, where it lists the client's audiences.
    pub fn parse_args() -> Self {
        let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
        let (command, from_file) = match config_file::named(&argv) {
            Some(path) => config_file::apply(Self::command(), &path),
            None => (Self::command(), Default::default()),
        };
        let matches = command.get_matches_from(&argv);
        let mut cli = match Self::from_arg_matches(&matches) {
            Ok(cli) => cli,
            Err(e) => e.exit(),
        };
        let from_command_line = matches
            .subcommand()
            .and_then(|(_, sub)| {
                sub.subcommand()
                    .map_or(sub.value_source("audience"), |(_, leaf)| {
                        leaf.value_source("audience")
                    })
            })
            .or_else(|| matches.value_source("audience"))
            == Some(clap::parser::ValueSource::CommandLine);
        cli.options.audience_from_command_line = from_command_line;
        let is_client_add = matches!(cli.command, Command::Client(ClientCommand::Add { .. }));
        if cli.options.audience.len() > 1 && !is_client_add {
            Self::command()
                .error(
                    clap::error::ErrorKind::ArgumentConflict,
                    "--audience <AUD>: give one default audience (it repeats only for `client add`)",
                )
                .exit();
        }
        if matches!(cli.command, Command::Config) {
            cli.effective = effective(&matches, &from_file);
        }
        cli
    }
}

/// Each option's value as a TOML line (a valid `--config` file), with where it came from;
/// `--database` with its password masked.
fn effective(
    matches: &clap::ArgMatches,
    from_file: &std::collections::BTreeSet<String>,
) -> Vec<String> {
    let command = Cli::command();
    let mut lines = Vec::new();
    for arg in command.get_arguments().filter(|a| a.is_global_set()) {
        let (Some(long), id) = (arg.get_long(), arg.get_id().as_str()) else {
            continue;
        };
        if long == config_file::FLAG {
            continue;
        }
        let source = match matches.value_source(id) {
            Some(clap::parser::ValueSource::CommandLine) => "flag",
            Some(clap::parser::ValueSource::EnvVariable) => "environment",
            Some(_) if from_file.contains(long) => "file",
            Some(_) => "default",
            None => "unset",
        };
        let values: Vec<String> = matches
            .get_raw(id)
            .into_iter()
            .flatten()
            .map(|v| {
                let v = v.to_string_lossy();
                if long == "database" {
                    DatabaseUrl::parse(&v).map_or_else(|_| "…".to_owned(), |u| format!("{u:?}"))
                } else {
                    v.into_owned()
                }
            })
            .collect();
        let quoted = |v: &String| toml::Value::String(v.clone()).to_string();
        let value = match values.as_slice() {
            [] => {
                lines.push(format!("# {long} is not set"));
                continue;
            }
            [one] if arg.get_action().takes_values() && !takes_many(arg) => quoted(one),
            many => format!(
                "[{}]",
                many.iter().map(quoted).collect::<Vec<_>>().join(", ")
            ),
        };
        lines.push(format!("{long} = {value}  # {source}"));
    }
    lines
}

fn takes_many(arg: &clap::Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Append) || arg.get_value_delimiter().is_some()
}

/// The `--help` heading of the options every subcommand reads.
const COMMON: &str = "Common options";

/// The `--help` heading of the options only `serve` reads.
const SERVER: &str = "Server options (serve)";

/// Options shared by every subcommand; accepted before or after the subcommand's arguments.
#[derive(Args, Debug, Clone)]
pub struct Options {
    /// A TOML file of options, keyed by their long names (`access-ttl = 600`); flags and
    /// environment variables beat it.
    #[arg(help_heading = COMMON,
        long = "config",
        env = "ISSUER_CONFIG",
        global = true,
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    /// Database: sqlite://PATH (created on first run) or postgres://…
    // The URL may carry a password: --help never shows the variable's value, and a bad value
    // is reported without echoing it.
    #[arg(help_heading = COMMON, long = "database", env = "DATABASE_URL", global = true, value_name = "URL",
          default_value = "sqlite://data/issuer.db", value_parser = SecretDatabaseUrl,
          hide_env_values = true)]
    pub database: DatabaseUrl,

    /// Address to listen on.
    #[arg(help_heading = SERVER,
        long,
        env = "ISSUER_BIND",
        global = true,
        value_name = "ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub bind: SocketAddr,

    /// The `iss` claim and the base of every URL in the metadata [default: http:// + bind address]
    #[arg(help_heading = COMMON, long, env = "ISSUER_URL", global = true, value_name = "URL", value_parser = parse_issuer)]
    pub issuer: Option<String>,

    /// Folder of the key-encryption key and the bootstrap admin password.
    #[arg(help_heading = COMMON,
        long = "keys-dir",
        env = "ISSUER_KEYS_DIR",
        global = true,
        value_name = "DIR",
        default_value = "keys"
    )]
    pub keys_dir: PathBuf,

    /// Algorithm of newly generated signing keys: RS256 or ES256 [default: RS256]. Given to
    /// `key rotate`, the new active key has this algorithm at once.
    #[arg(help_heading = COMMON, long, env = "ISSUER_ALG", global = true, value_name = "ALG")]
    pub alg: Option<Alg>,

    /// Lifetime of access tokens, in seconds (1-86400).
    #[arg(help_heading = SERVER, long = "access-ttl", env = "ISSUER_ACCESS_TTL", global = true, value_name = "SECS",
          default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub access_ttl: u32,

    /// Idle lifetime of one refresh token, in seconds (60-31536000).
    #[arg(help_heading = SERVER, long = "refresh-ttl", env = "ISSUER_REFRESH_TTL", global = true, value_name = "SECS",
          default_value_t = 86_400, value_parser = clap::value_parser!(u32).range(60..=31_536_000))]
    pub refresh_ttl: u32,

    /// Default `aud` of access tokens [default: the issuer URL]. With `client add`, repeatable:
    /// the client's audiences, in order (the first is its default).
    #[arg(help_heading = COMMON, long, env = "ISSUER_AUDIENCE", global = true, value_name = "AUD", value_parser = Audience::parse,
          action = ArgAction::Append)]
    pub audience: Vec<Audience>,

    /// Whether `--audience` came from the command line (not the environment).
    #[arg(skip)]
    pub audience_from_command_line: bool,

    /// Browser origin allowed to call the API (repeatable; the variable is comma-separated).
    #[arg(help_heading = SERVER, long = "cors-origin", env = "ISSUER_CORS_ORIGINS", global = true, value_name = "ORIGIN",
          value_delimiter = ',', value_parser = parse_origin)]
    pub cors_origins: Vec<String>,

    /// Rotate the signing key on this schedule, e.g. 30d, 12h, 90m [default: off]
    #[arg(help_heading = SERVER, long = "rotate-every", env = "ISSUER_ROTATE_EVERY", global = true, value_name = "DURATION",
          value_parser = parse_duration)]
    pub rotate_every: Option<u64>,

    /// A session (refresh-token family) ends this long after its login, however often it is
    /// used (the idle limit is --refresh-ttl).
    #[arg(help_heading = SERVER, long = "session-max-age", env = "ISSUER_SESSION_MAX_AGE", global = true, value_name = "DURATION",
          default_value = "30d", value_parser = parse_duration)]
    pub session_max_age: u64,

    /// A reverse proxy whose X-Forwarded-For is believed (repeatable; the variable is
    /// comma-separated): the client address is then the right-most X-Forwarded-For entry that is
    /// not a trusted proxy. Requests from other peers use the TCP peer address.
    #[arg(help_heading = SERVER,
        long = "trusted-proxy",
        env = "ISSUER_TRUSTED_PROXIES",
        global = true,
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<Cidr>,

    /// The window in which failed logins are counted.
    #[arg(help_heading = SERVER, long = "throttle-window", env = "ISSUER_THROTTLE_WINDOW", global = true, value_name = "DURATION",
          default_value = "15m", value_parser = parse_duration)]
    pub throttle_window: u64,

    /// Failed logins of one username from one client address before that pair is locked.
    #[arg(help_heading = SERVER, long = "throttle-per-user-address", env = "ISSUER_THROTTLE_PER_USER_ADDRESS", global = true,
          value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub throttle_per_user_address: i32,

    /// Failed logins from one client address (any usernames) before the address is locked.
    #[arg(help_heading = SERVER, long = "throttle-per-address", env = "ISSUER_THROTTLE_PER_ADDRESS", global = true,
          value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(i32).range(1..=100_000))]
    pub throttle_per_address: i32,

    /// Failed logins of one username (any addresses) before it is locked everywhere.
    #[arg(help_heading = SERVER, long = "throttle-per-user", env = "ISSUER_THROTTLE_PER_USER", global = true,
          value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(i32).range(1..=1_000_000))]
    pub throttle_per_user: i32,

    /// How long audit events are kept (at least 1d).
    #[arg(help_heading = SERVER, long = "audit-retention", env = "ISSUER_AUDIT_RETENTION", global = true, value_name = "DURATION",
          default_value = "365d", value_parser = parse_retention)]
    pub audit_retention: u64,

    /// How long a request body may take to arrive, whole (1s to 10m): a slower one is answered
    /// 408 and its connection closed.
    #[arg(help_heading = SERVER, long = "body-timeout", env = "ISSUER_BODY_TIMEOUT", global = true,
          value_name = "DURATION", default_value = "10s", value_parser = parse_body_timeout)]
    pub body_timeout: u64,

    /// Serve `/metrics` on this address (its own listener) instead of the main one.
    #[arg(help_heading = SERVER,
        long = "metrics-bind",
        env = "ISSUER_METRICS_BIND",
        global = true,
        value_name = "ADDR"
    )]
    pub metrics_bind: Option<SocketAddr>,

    /// Log lines as text (no colours unless stderr is a terminal) or as JSON objects.
    #[arg(help_heading = COMMON, long = "log-format", env = "ISSUER_LOG_FORMAT", global = true, value_name = "FORMAT",
          value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// How often expired refresh tokens, revoked token ids and throttle rows are deleted.
    #[arg(help_heading = SERVER, long = "purge-every", env = "ISSUER_PURGE_EVERY", global = true, value_name = "DURATION",
          default_value = "1h", value_parser = parse_duration)]
    pub purge_every: u64,
}

/// `--log-format`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `time level target: message fields`.
    Text,
    /// One JSON object per line, with the request's span (id, method, route).
    Json,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP service (migrates the database first).
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Exit 0 if the service at --bind answers GET /healthz with 200, else 1 (a container's
    /// HEALTHCHECK; needs no database, no curl). An unspecified --bind address (0.0.0.0, ::)
    /// is asked on loopback.
    Healthcheck,
    /// Print the effective configuration as TOML (secrets masked), each option with where its
    /// value came from (flag, environment, file, default); needs no database.
    Config,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Inspect signing keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Rotate the key-encryption key that protects the stored private keys.
    #[command(subcommand)]
    Kek(KekCommand),
    /// Manage registered clients: what each may ask for.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage registered scopes and the roles they need.
    #[command(subcommand)]
    Scope(ScopeCommand),
    /// The newest audit events, newest first, one JSON object per line (as `GET /admin/audit`).
    Audit {
        /// How many events, 1 to 1000.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=1000))]
        limit: i64,
    },
}

/// `client` subcommands.
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Register a client. Give `--audience AUD` (repeatable, in order: the first is the
    /// default) for its audiences [default: the issuer's --audience].
    Add {
        /// The client id (1-128 characters of letters, digits, '.', '_', '~', ':', '@', '-').
        #[arg(value_parser = ClientId::parse)]
        id: ClientId,
        /// Confidential, with the secret read from stdin (32-256 visible characters).
        #[arg(long = "secret-stdin", conflicts_with = "generate_secret")]
        secret_stdin: bool,
        /// Confidential, with a secret generated now (256 bits) and printed once.
        #[arg(long = "generate-secret")]
        generate_secret: bool,
        /// A scope it may request (repeatable; `*` for every registered scope).
        #[arg(long = "scope", value_name = "SCOPE", value_parser = parse_allowed_scope)]
        scopes: Vec<String>,
        /// A grant type it may use (repeatable) [default: password and refresh_token for a
        /// public client, client_credentials for a confidential one].
        #[arg(long = "grant", value_name = "GRANT", value_parser = clap::value_parser!(GrantTypeArg))]
        grants: Vec<GrantTypeArg>,
    },
    /// List clients.
    List,
    /// Show one client.
    Show {
        /// The client id.
        id: String,
    },
    /// Remove a client (not `default`); its refresh tokens stop working.
    Remove {
        /// The client id.
        id: String,
    },
}

/// A `--grant` value.
#[derive(Debug, Clone, Copy)]
pub struct GrantTypeArg(pub GrantType);

impl std::str::FromStr for GrantTypeArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse().map(Self)
    }
}

fn parse_allowed_scope(s: &str) -> Result<String, String> {
    if s == ScopeName::ANY {
        return Ok(s.to_owned());
    }
    ScopeName::parse(s).map(|n| n.as_str().to_owned())
}

/// `scope` subcommands.
#[derive(Subcommand, Debug)]
pub enum ScopeCommand {
    /// Register a scope; with `--role`, only users holding one of the roles get it.
    Add {
        /// The scope name (1-64 characters of letters, digits, '_', '.', ':', '-').
        #[arg(value_parser = ScopeName::parse)]
        name: ScopeName,
        /// A role that grants it (repeatable).
        #[arg(long = "role", value_name = "ROLE", value_parser = Role::parse)]
        roles: Vec<Role>,
        /// What it is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// List scopes.
    List,
    /// Remove a scope, also from every client that lists it.
    Remove {
        /// The scope name.
        name: String,
    },
}

/// `user` subcommands.
#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user; the password is read from stdin, never from the command line.
    Add {
        /// The username (1-150 characters, no control characters).
        #[arg(value_parser = Username::parse)]
        name: Username,
        /// A role to grant (repeatable).
        #[arg(long = "role", value_name = "ROLE", value_parser = Role::parse)]
        roles: Vec<Role>,
        /// Read the password from stdin (required; first line, without its newline).
        #[arg(long = "password-stdin", required = true)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// List NAME's live sessions (refresh-token families).
    Sessions {
        /// The user.
        name: String,
    },
    /// End every session of NAME and revoke the access tokens issued from them.
    Logout {
        /// The user.
        name: String,
    },
    /// Set NAME's password (read from stdin) and end every session of NAME.
    Passwd {
        /// The user.
        name: String,
        /// Read the password from stdin (required; first line, without its newline).
        #[arg(long = "password-stdin", required = true)]
        password_stdin: bool,
    },
    /// Disable NAME: every session ends, every access token issued to NAME is revoked.
    Disable {
        /// The user.
        name: String,
    },
    /// Enable NAME again.
    Enable {
        /// The user.
        name: String,
    },
    /// Grant or take away a role (shows in NAME's next refresh).
    #[command(subcommand)]
    Role(UserRoleCommand),
    /// Manage a user's machine public keys.
    #[command(subcommand)]
    Key(UserKeyCommand),
}

/// `user role` subcommands.
#[derive(Subcommand, Debug)]
pub enum UserRoleCommand {
    /// Grant ROLE to NAME.
    Add {
        /// The user.
        name: String,
        /// The role.
        #[arg(value_parser = Role::parse)]
        role: Role,
    },
    /// Take ROLE away from NAME.
    Remove {
        /// The user.
        name: String,
        /// The role.
        #[arg(value_parser = Role::parse)]
        role: Role,
    },
}

/// `user key` subcommands.
#[derive(Subcommand, Debug)]
pub enum UserKeyCommand {
    /// Register a public key (PEM, OpenSSH line or JWK file) for machine login as NAME.
    Add {
        /// The user.
        name: String,
        /// The public key file.
        file: PathBuf,
        /// A note to tell keys apart.
        #[arg(long)]
        comment: Option<String>,
    },
    /// List NAME's machine keys.
    List {
        /// The user.
        name: String,
    },
    /// Remove one of NAME's machine keys (by the id `user key list` shows): assertions signed
    /// by it fail from then on.
    Remove {
        /// The user.
        name: String,
        /// The key's id.
        id: String,
    },
}

/// `kek` subcommands.
#[derive(Subcommand, Debug)]
pub enum KekCommand {
    /// Make a new key-encryption key in the keys dir (kek.key) and encrypt every stored private
    /// key under it in one transaction; the previous one is kept as kek-<id>.key and reported
    /// removable once no stored key needs it.
    Rotate,
    /// The keys dir's key-encryption keys, and how many stored keys each protects.
    List,
}

/// `key` subcommands.
#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// The rotation history: kid, alg, state, created/activated/retired/revoked.
    List,
    /// Rotate now: `next` becomes active, a new `next` is generated (with --alg, the new active
    /// key has that algorithm at once).
    Rotate,
    /// Emergency: revoke a key now (unpublished at once; if it was active, the oldest `next` of
    /// its algorithm becomes active in the same transaction).
    Revoke {
        /// The key's id. A kid is an RFC 7638 thumbprint in base64url, so one in 64 starts
        /// with `-`: taken as the id, not as an option.
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
    /// Import an existing private key (PEM PKCS#8, PKCS#1, SEC1 or OpenSSH) as `next`.
    Import {
        /// The private key file.
        file: PathBuf,
        /// Make it the active key at once (the current one is retired).
        #[arg(long)]
        activate: bool,
    },
}

fn parse_issuer(s: &str) -> Result<String, String> {
    let url = url::Url::parse(s).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("must be an http:// or https:// URL with a host".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".into());
    }
    Ok(s.trim_end_matches('/').to_owned())
}

/// Parses a duration like `30d`, `12h`, `90m` or `45s` into seconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let err = || format!("{s:?} is not a duration like 30d, 12h, 90m or 45s");
    let unit_at = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let (n, unit) = s.split_at(unit_at);
    let n: u64 = n.parse().map_err(|_| err())?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60).ok_or_else(err)?,
        "h" => n.checked_mul(3600).ok_or_else(err)?,
        "d" => n.checked_mul(86_400).ok_or_else(err)?,
        _ => return Err(err()),
    };
    if !(1..=3650 * 86_400).contains(&secs) {
        return Err("must be between 1s and 3650d".into());
    }
    Ok(secs)
}

/// Parses `--database` without ever repeating the value in an error (it may hold a password).
#[derive(Clone)]
struct SecretDatabaseUrl;

impl clap::builder::TypedValueParser for SecretDatabaseUrl {
    type Value = DatabaseUrl;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<DatabaseUrl, clap::Error> {
        let reason = match value.to_str() {
            Some(text) => match DatabaseUrl::parse(text) {
                Ok(url) => return Ok(url),
                Err(reason) => reason,
            },
            None => "the value is not valid UTF-8".to_owned(),
        };
        Err(cmd.clone().error(
            clap::error::ErrorKind::ValueValidation,
            format!("invalid value for '--database <URL>' (DATABASE_URL): {reason}"),
        ))
    }
}

fn parse_body_timeout(s: &str) -> Result<u64, String> {
    let secs = parse_duration(s)?;
    if !(1..=600).contains(&secs) {
        return Err("must be from 1s to 10m".into());
    }
    Ok(secs)
}

fn parse_retention(s: &str) -> Result<u64, String> {
    let secs = parse_duration(s)?;
    if secs < 86_400 {
        return Err("must be at least 1d".into());
    }
    Ok(secs)
}

fn parse_origin(s: &str) -> Result<String, String> {
    let url = url::Url::parse(s).map_err(|e| format!("not an origin: {e}"))?;
    let origin = url.origin().ascii_serialization();
    if origin == "null" || origin != s.trim_end_matches('/') {
        return Err(
            "must be an origin like https://app.example.com (scheme, host, optional port)".into(),
        );
    }
    Ok(origin)
}

impl Options {
    /// The settings these options resolve to, given the address actually bound (which
    /// differs from `--bind` when port 0 was asked for).
    pub fn settings(&self, bound: SocketAddr) -> Settings {
        let options = self;
        let issuer = options
            .issuer
            .clone()
            .unwrap_or_else(|| format!("http://{bound}"));
        let audience = options
            .audience
            .first()
            .map_or_else(|| issuer.clone(), |a| a.as_str().to_owned());
        Settings {
            issuer,
            audience,
            access_ttl: i64::from(options.access_ttl),
            refresh_ttl: i64::from(options.refresh_ttl),
            alg: options.alg.unwrap_or(Alg::RS256),
            rotate_every: options.rotate_every.and_then(|s| i64::try_from(s).ok()),
            purge_every: options.purge_every,
            keys_dir: options.keys_dir.clone(),
            cors_origins: options.cors_origins.clone(),
            session_max_age: i64::try_from(options.session_max_age).unwrap_or(i64::MAX),
            trusted_proxies: options.trusted_proxies.clone(),
            throttle: Limits {
                window: i64::try_from(options.throttle_window).unwrap_or(i64::MAX),
                per_user_address: options.throttle_per_user_address,
                per_address: options.throttle_per_address,
                per_user: options.throttle_per_user,
            },
            audit_retention: i64::try_from(options.audit_retention).unwrap_or(i64::MAX),
            body_timeout: std::time::Duration::from_secs(options.body_timeout),
            clock: crate::clock::Clock::system(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_go_before_or_after_the_subcommand() {
        let a = Cli::try_parse_from(["jwt-issuer", "--alg", "ES256", "key", "list"]).unwrap();
        let b = Cli::try_parse_from(["jwt-issuer", "key", "list", "--alg", "ES256"]).unwrap();
        assert_eq!(a.options.alg, Some(Alg::ES256));
        assert_eq!(b.options.alg, Some(Alg::ES256));
    }

    #[test]
    fn bad_values_name_the_option() {
        for (args, option) in [
            (vec!["--access-ttl", "0"], "--access-ttl"),
            (vec!["--alg", "HS256"], "--alg"),
            (vec!["--database", "mysql://x"], "--database"),
            (vec!["--issuer", "ftp://x"], "--issuer"),
            (
                vec!["--cors-origin", "https://a.example/path"],
                "--cors-origin",
            ),
            (vec!["--bind", "nowhere"], "--bind"),
        ] {
            let mut argv = vec!["jwt-issuer", "serve"];
            argv.extend(args);
            let err = Cli::try_parse_from(argv).unwrap_err();
            assert_eq!(err.exit_code(), 2);
            assert!(err.to_string().contains(option), "{err}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d"), Ok(30 * 86_400));
        assert_eq!(parse_duration("12h"), Ok(43_200));
        assert_eq!(parse_duration("90m"), Ok(5_400));
        assert_eq!(parse_duration("45s"), Ok(45));
        for bad in [
            "",
            "0s",
            "10",
            "h",
            "1w",
            "-1d",
            "99999999999999999999d",
            "3651d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn user_add_requires_password_stdin_and_valid_names() {
        assert!(Cli::try_parse_from(["jwt-issuer", "user", "add", "bob"]).is_err());
        assert!(
            Cli::try_parse_from(["jwt-issuer", "user", "add", "bob", "--password-stdin"]).is_ok()
        );
        assert!(
            Cli::try_parse_from([
                "jwt-issuer",
                "user",
                "add",
                "bob",
                "--role",
                "a b",
                "--password-stdin"
            ])
            .is_err()
        );
    }

    #[test]
    fn a_kid_that_starts_with_a_hyphen_is_a_kid() {
        let kid = |argv: &[&str]| match Cli::try_parse_from(argv).map(|c| c.command) {
            Ok(Command::Key(KeyCommand::Revoke { kid })) => Ok(kid),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.kind()),
        };
        let id = "-Bq3_x-Y";
        assert_eq!(kid(&["jwt-issuer", "key", "revoke", id]), Ok(id.into()));
        assert_eq!(
            kid(&["jwt-issuer", "key", "revoke", id, "--alg", "ES256"]),
            Ok(id.into())
        );
        assert_eq!(
            kid(&["jwt-issuer", "--alg", "ES256", "key", "revoke", id]),
            Ok(id.into())
        );
        assert_eq!(
            kid(&["jwt-issuer", "key", "revoke", "--", id]),
            Ok(id.into())
        );
        assert_eq!(
            kid(&["jwt-issuer", "key", "revoke", "--help"]),
            Err(clap::error::ErrorKind::DisplayHelp)
        );
    }

    #[test]
    fn issuer_defaults_to_the_bound_address() {
        let cli = Cli::try_parse_from(["jwt-issuer", "serve"]).unwrap();
        let s = cli.options.settings("127.0.0.1:9999".parse().unwrap());
        assert_eq!(s.issuer, "http://127.0.0.1:9999");
        assert_eq!(s.audience, s.issuer);
        assert_eq!(
            parse_issuer("https://auth.example.com/").unwrap(),
            "https://auth.example.com"
        );
    }
}
