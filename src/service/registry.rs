//! The client and scope registry as this instance holds it: loaded from the database, swapped
//! atomically when it changes (here or on another instance), and consulted on every token
//! request without touching the database. It authenticates clients and decides what a token
//! says: its audiences and its scope, from the client's registration, the scopes' role gates and
//! the subject's roles — never from the request unchecked (docs/CONTRACT.md §5).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::config::Settings;
use crate::db::registry::{self, ClientRow, ScopeRow};
use crate::db::{Db, DbConn};
use crate::domain::{Audience, ClientId, ClientSecret, GrantType, Role, Roles, Scope, ScopeName};
use crate::service::failures::Failures;

/// The scopes a client may request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedScopes {
    /// Every registered scope (`*`).
    Any,
    /// These names.
    Only(Vec<String>),
}

impl AllowedScopes {
    /// Parses the stored form.
    pub fn from_stored(s: &str) -> Self {
        if s.split_whitespace().any(|t| t == ScopeName::ANY) {
            Self::Any
        } else {
            Self::Only(s.split_whitespace().map(str::to_owned).collect())
        }
    }

    /// The stored form.
    pub fn to_stored(&self) -> String {
        match self {
            Self::Any => ScopeName::ANY.to_owned(),
            Self::Only(names) => names.join(" "),
        }
    }

    /// The names as shown to operators (`["*"]` for every scope).
    pub fn names(&self) -> Vec<String> {
        match self {
            Self::Any => vec![ScopeName::ANY.to_owned()],
            Self::Only(names) => names.clone(),
        }
    }

    fn allows(&self, name: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Only(names) => names.iter().any(|n| n == name),
        }
    }
}

/// A registered client, as the token endpoint sees it.
#[derive(Clone)]
pub struct Client {
    pub id: ClientId,
    /// Confidential clients authenticate with their secret; public ones cannot.
    pub confidential: bool,
    secret_hash: Option<String>,
    /// The audiences it may request, in order; the first is the default. Never empty.
    pub audiences: Vec<String>,
    /// Whether `audiences` are the issuer's defaults (none registered).
    pub default_audiences: bool,
    pub scopes: AllowedScopes,
    pub grants: Vec<GrantType>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("confidential", &self.confidential)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Whether the client may use `grant`.
    pub fn allows(&self, grant: GrantType) -> bool {
        self.grants.contains(&grant)
    }

    /// Whether any of `audiences` is one of this client's.
    pub fn owns_any_audience<'a>(&self, mut audiences: impl Iterator<Item = &'a str>) -> bool {
        audiences.any(|a| self.audiences.iter().any(|mine| mine == a))
    }
}

/// A registered scope.
#[derive(Debug, Clone)]
pub struct ScopeDef {
    pub name: String,
    /// A user needs one of these for the scope; empty: anyone the client serves.
    pub roles: Roles,
    pub description: String,
    pub created_at: i64,
}

/// The audiences the issuer itself answers to, which need a role.
#[derive(Debug, Clone)]
pub struct OwnAudiences {
    /// `--audience`: the default of clients that register none.
    pub default: String,
    /// `ISSUER_URL/admin`: role `admin`.
    pub admin: String,
    /// `ISSUER_URL/introspect`: role `admin` or `introspect`.
    pub introspect: String,
}

impl OwnAudiences {
    /// From the resolved settings.
    pub fn of(settings: &Settings) -> Self {
        Self {
            default: settings.audience.clone(),
            admin: settings.admin_audience(),
            introspect: settings.introspect_audience(),
        }
    }

    /// The roles one of which a subject needs to get a token for `audience`; `None` when
    /// anyone may.
    fn gate(&self, audience: &str) -> Option<&'static [&'static str]> {
        if audience == self.admin {
            Some(&[Role::ADMIN])
        } else if audience == self.introspect {
            Some(&[Role::ADMIN, Role::INTROSPECT])
        } else {
            None
        }
    }
}

/// Presented client credentials, as the HTTP edge parsed them.
#[derive(Debug, Default)]
pub struct Credentials {
    /// The `client_id`, from HTTP Basic or the body; `None` means the `default` client.
    pub client_id: Option<String>,
    /// The secret, from HTTP Basic or `client_secret` in the body.
    pub secret: Option<ClientSecret>,
}

/// Why client authentication failed (RFC 6749 `invalid_client`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("no client is registered with that client_id")]
    UnknownClient,
    #[error("client authentication failed")]
    WrongSecret,
    #[error(
        "this client is confidential: authenticate with its secret (HTTP Basic or client_secret)"
    )]
    SecretRequired,
    #[error("this client is public: it has no secret to send")]
    PublicWithSecret,
}

/// Why the registry refused what a request asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// RFC 8707 `invalid_target`.
    #[error("{0}")]
    Target(String),
    /// RFC 6749 `invalid_scope`.
    #[error("{0}")]
    Scope(String),
}

/// What the registry granted: the token's audiences and scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    pub audiences: Vec<String>,
    pub scope: Scope,
}

/// At most this many audiences in one request.
pub const MAX_REQUESTED_AUDIENCES: usize = 16;

/// One consistent snapshot of the registry.
pub struct Registry {
    clients: HashMap<String, Arc<Client>>,
    scopes: BTreeMap<String, ScopeDef>,
    own: OwnAudiences,
    rows: (Vec<ClientRow>, Vec<ScopeRow>),
}

impl Registry {
    /// Builds a snapshot from the stored rows. Stored values that no longer parse are skipped
    /// rather than trusted.
    pub fn build(
        client_rows: Vec<ClientRow>,
        scope_rows: Vec<ScopeRow>,
        own: OwnAudiences,
    ) -> Self {
        let clients = client_rows
            .iter()
            .filter_map(|row| Some((row.id.clone(), Arc::new(Client::from_row(row, &own)?))))
            .collect();
        let scopes = scope_rows
            .iter()
            .map(|row| {
                let def = ScopeDef {
                    name: row.name.clone(),
                    roles: Roles::from_stored(&row.roles),
                    description: row.description.clone(),
                    created_at: row.created_at,
                };
                (row.name.clone(), def)
            })
            .collect();
        Self {
            clients,
            scopes,
            own,
            rows: (client_rows, scope_rows),
        }
    }
}

impl Client {
    /// A client from its stored row; `None` when the row no longer parses.
    pub fn from_row(row: &ClientRow, own: &OwnAudiences) -> Option<Client> {
        let id = ClientId::parse(&row.id).ok()?;
        let stored: Vec<String> = row
            .audiences
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let default_audiences = stored.is_empty();
        let audiences = if !default_audiences {
            stored
        } else if id.is_default() {
            vec![
                own.default.clone(),
                own.admin.clone(),
                own.introspect.clone(),
            ]
        } else {
            vec![own.default.clone()]
        };
        Some(Client {
            confidential: row.confidential && row.secret_hash.is_some(),
            secret_hash: row.secret_hash.clone().filter(|_| row.confidential),
            audiences,
            default_audiences,
            scopes: AllowedScopes::from_stored(&row.scopes),
            grants: row
                .grant_types
                .split_whitespace()
                .filter_map(|g| g.parse().ok())
                .collect(),
            created_at: row.created_at,
            updated_at: row.updated_at,
            id,
        })
    }
}

impl Registry {
    /// The client `id`, if registered.
    pub fn client(&self, id: &str) -> Option<Arc<Client>> {
        self.clients.get(id).cloned()
    }

    /// Every client, by id.
    pub fn clients(&self) -> Vec<Arc<Client>> {
        let mut all: Vec<_> = self.clients.values().cloned().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// Every registered scope, by name.
    pub fn scopes(&self) -> impl Iterator<Item = &ScopeDef> {
        self.scopes.values()
    }

    /// Whether `name` is a registered scope.
    pub fn has_scope(&self, name: &str) -> bool {
        self.scopes.contains_key(name)
    }

    /// The issuer's own audiences.
    pub fn own(&self) -> &OwnAudiences {
        &self.own
    }

    /// Authenticates the client a request names (RFC 6749 §2.3): none named is `default`; a
    /// confidential client must send its secret, a public one must not send any. Secrets are
    /// compared in constant time.
    pub fn authenticate(&self, creds: &Credentials) -> Result<Arc<Client>, AuthFailure> {
        let id = creds.client_id.as_deref().unwrap_or(ClientId::DEFAULT);
        let client = self.client(id).ok_or(AuthFailure::UnknownClient)?;
        match (&client.secret_hash, &creds.secret) {
            (Some(hash), Some(secret)) if secret.matches(hash) => Ok(client),
            (Some(_), Some(_)) => Err(AuthFailure::WrongSecret),
            (Some(_), None) => Err(AuthFailure::SecretRequired),
            (None, Some(_)) => Err(AuthFailure::PublicWithSecret),
            (None, None) => Ok(client),
        }
    }

    /// Decides a new token's audiences and scope for `client`. `roles` are the subject's;
    /// `None` checks only what does not depend on the subject (done before a password is
    /// hashed, so a request the client may never make costs nothing).
    pub fn grant(
        &self,
        client: &Client,
        requested: &[Audience],
        scope: &Scope,
        roles: Option<&Roles>,
    ) -> Result<Granted, Denied> {
        if requested.len() > MAX_REQUESTED_AUDIENCES {
            return Err(Denied::Target(format!(
                "at most {MAX_REQUESTED_AUDIENCES} audiences or resources may be requested"
            )));
        }
        let mut audiences: Vec<String> = Vec::new();
        for aud in requested {
            if !client.audiences.iter().any(|a| a == aud.as_str()) {
                return Err(Denied::Target(format!(
                    "the audience {aud} is not allowed for client {}",
                    client.id
                )));
            }
            if !audiences.iter().any(|a| a == aud.as_str()) {
                audiences.push(aud.as_str().to_owned());
            }
        }
        if audiences.is_empty() {
            audiences.push(client.audiences[0].clone());
        }
        if let Some(roles) = roles {
            for aud in &audiences {
                self.audience_denial(aud, roles).map_or(Ok(()), Err)?;
            }
        }
        for name in scope.tokens() {
            if let Some(reason) = self.scope_denial(client, name, roles) {
                return Err(Denied::Scope(reason));
            }
        }
        Ok(Granted {
            audiences,
            scope: scope.clone(),
        })
    }

    /// Decides a refreshed token: the family keeps its audiences, which must all still be
    /// allowed; `requested` may narrow the family's scope, never widen it; scopes the client or
    /// the subject may no longer have are dropped.
    pub fn regrant(
        &self,
        client: &Client,
        audiences: &[String],
        granted: &Scope,
        requested: Option<Scope>,
        roles: &Roles,
    ) -> Result<Granted, Denied> {
        for aud in audiences {
            if !client.audiences.iter().any(|a| a == aud) {
                return Err(Denied::Target(format!(
                    "the audience {aud} is no longer allowed for client {}",
                    client.id
                )));
            }
            self.audience_denial(aud, roles).map_or(Ok(()), Err)?;
        }
        let scope = match requested {
            Some(s) if !s.is_subset_of(granted) => {
                let extra: Vec<&str> = s
                    .tokens()
                    .filter(|t| !granted.tokens().any(|g| g == *t))
                    .collect();
                return Err(Denied::Scope(format!(
                    "the scope {} exceeds the original grant",
                    extra.join(" ")
                )));
            }
            Some(s) => s,
            None => granted.clone(),
        };
        Ok(Granted {
            audiences: audiences.to_vec(),
            scope: scope.filter(|name| self.scope_denial(client, name, Some(roles)).is_none()),
        })
    }

    fn audience_denial(&self, audience: &str, roles: &Roles) -> Option<Denied> {
        let needed = self.own.gate(audience)?;
        if needed.iter().any(|r| roles.contains(r)) {
            return None;
        }
        Some(Denied::Target(format!(
            "the audience {audience} is issued only to users with the role {}",
            needed.join(" or ")
        )))
    }

    fn scope_denial(&self, client: &Client, name: &str, roles: Option<&Roles>) -> Option<String> {
        let Some(def) = self.scopes.get(name) else {
            return Some(format!("the scope {name} is not registered"));
        };
        if !client.scopes.allows(name) {
            return Some(format!(
                "the scope {name} is not allowed for client {}",
                client.id
            ));
        }
        let roles = roles?;
        let needed: Vec<&str> = def.roles.names().collect();
        if needed.is_empty() || needed.iter().any(|r| roles.contains(r)) {
            return None;
        }
        Some(format!(
            "the scope {name} needs the role {}",
            needed.join(" or ")
        ))
    }
}

/// The current registry, swapped atomically.
pub struct RegistryStore {
    current: ArcSwap<Registry>,
    own: OwnAudiences,
}

impl RegistryStore {
    /// Loads the registry from the database.
    pub fn load(conn: &mut DbConn, own: OwnAudiences) -> anyhow::Result<Self> {
        let registry = Registry::build(
            registry::clients(conn)?,
            registry::scopes(conn)?,
            own.clone(),
        );
        Ok(Self {
            current: ArcSwap::from_pointee(registry),
            own,
        })
    }

    /// The current snapshot (a cheap pointer copy).
    pub fn current(&self) -> Arc<Registry> {
        self.current.load_full()
    }

    /// Re-reads the registry and swaps in a new snapshot if it changed; returns whether it did.
    pub fn refresh(&self, conn: &mut DbConn) -> anyhow::Result<bool> {
        let rows = (registry::clients(conn)?, registry::scopes(conn)?);
        if rows == self.current().rows {
            return Ok(false);
        }
        tracing::info!(
            clients = rows.0.len(),
            scopes = rows.1.len(),
            "client registry reloaded"
        );
        self.current
            .store(Arc::new(Registry::build(rows.0, rows.1, self.own.clone())));
        Ok(true)
    }
}

/// How often each instance re-reads the registry: changes made through the CLI or another
/// instance take effect within this (docs/CONTRACT.md §5: 5 seconds).
pub const REGISTRY_REFRESH: Duration = Duration::from_secs(2);

/// Keeps this instance's registry in step with the database.
pub async fn watch(db: Db, store: Arc<RegistryStore>) {
    let mut tick = tokio::time::interval(REGISTRY_REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failures = Failures::default();
    loop {
        tick.tick().await;
        let store = store.clone();
        let outcome = db.run(move |conn| store.refresh(conn)).await;
        failures.log("client registry refresh", &outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own() -> OwnAudiences {
        OwnAudiences {
            default: "https://issuer".into(),
            admin: "https://issuer/admin".into(),
            introspect: "https://issuer/introspect".into(),
        }
    }

    fn client_row(id: &str, secret: Option<&ClientSecret>, auds: &str, scopes: &str) -> ClientRow {
        ClientRow {
            id: id.into(),
            confidential: secret.is_some(),
            secret_hash: secret.map(ClientSecret::hash),
            audiences: auds.into(),
            scopes: scopes.into(),
            grant_types: "password refresh_token".into(),
            created_at: 0,
            updated_at: 0,
        }
    }

    fn scope_row(name: &str, roles: &str) -> ScopeRow {
        ScopeRow {
            name: name.into(),
            roles: roles.into(),
            description: String::new(),
            created_at: 0,
        }
    }

    fn registry(secret: &ClientSecret) -> Registry {
        Registry::build(
            vec![
                client_row("default", None, "", "*"),
                client_row(
                    "pay-web",
                    None,
                    "https://payments.internal https://ledger.internal",
                    "payments:read payments:write",
                ),
                client_row("svc", Some(secret), "", ""),
            ],
            vec![
                scope_row("payments:read", ""),
                scope_row("payments:write", "cashier"),
                scope_row("admin:all", "admin"),
            ],
            own(),
        )
    }

    fn roles(names: &[&str]) -> Roles {
        Roles::parse_all(names).unwrap()
    }

    fn scope(s: &str) -> Scope {
        Scope::parse(s).unwrap()
    }

    fn aud(s: &str) -> Audience {
        Audience::parse(s).unwrap()
    }

    #[test]
    fn authenticates_public_and_confidential_clients() {
        let secret = ClientSecret::generate().unwrap();
        let r = registry(&secret);
        let creds = |id: Option<&str>, s: Option<ClientSecret>| Credentials {
            client_id: id.map(str::to_owned),
            secret: s,
        };
        assert_eq!(
            r.authenticate(&creds(None, None)).unwrap().id.as_str(),
            "default"
        );
        assert_eq!(
            r.authenticate(&creds(Some("pay-web"), None))
                .unwrap()
                .id
                .as_str(),
            "pay-web"
        );
        assert_eq!(
            r.authenticate(&creds(Some("nope"), None)).unwrap_err(),
            AuthFailure::UnknownClient
        );
        assert!(
            r.authenticate(&creds(Some("svc"), Some(secret.clone())))
                .unwrap()
                .confidential
        );
        assert_eq!(
            r.authenticate(&creds(Some("svc"), Some(ClientSecret::presented("guess"))))
                .unwrap_err(),
            AuthFailure::WrongSecret
        );
        assert_eq!(
            r.authenticate(&creds(Some("svc"), None)).unwrap_err(),
            AuthFailure::SecretRequired
        );
        assert_eq!(
            r.authenticate(&creds(Some("pay-web"), Some(secret)))
                .unwrap_err(),
            AuthFailure::PublicWithSecret
        );
    }

    #[test]
    fn default_audiences_are_the_issuers() {
        let r = registry(&ClientSecret::generate().unwrap());
        let default = r.client("default").unwrap();
        assert_eq!(
            default.audiences,
            [
                "https://issuer",
                "https://issuer/admin",
                "https://issuer/introspect"
            ]
        );
        assert!(default.default_audiences);
        assert_eq!(r.client("svc").unwrap().audiences, ["https://issuer"]);
        assert!(!r.client("pay-web").unwrap().default_audiences);
    }

    #[test]
    fn audiences_must_be_the_clients_and_own_ones_need_roles() {
        let r = registry(&ClientSecret::generate().unwrap());
        let default = r.client("default").unwrap();
        let reader = roles(&["reader"]);
        let g = r
            .grant(&default, &[], &Scope::default(), Some(&reader))
            .unwrap();
        assert_eq!(g.audiences, ["https://issuer"]);
        assert!(matches!(
            r.grant(
                &default,
                &[aud("https://payments.internal")],
                &Scope::default(),
                None
            ),
            Err(Denied::Target(_))
        ));
        assert!(matches!(
            r.grant(
                &default,
                &[aud("https://issuer/admin")],
                &Scope::default(),
                Some(&reader)
            ),
            Err(Denied::Target(_))
        ));
        let admin = roles(&["admin"]);
        assert!(
            r.grant(
                &default,
                &[aud("https://issuer/admin")],
                &Scope::default(),
                Some(&admin)
            )
            .is_ok()
        );
        let introspector = roles(&["introspect"]);
        assert!(
            r.grant(
                &default,
                &[aud("https://issuer/introspect")],
                &Scope::default(),
                Some(&introspector)
            )
            .is_ok()
        );
        let pay = r.client("pay-web").unwrap();
        let both = [
            aud("https://ledger.internal"),
            aud("https://payments.internal"),
            aud("https://ledger.internal"),
        ];
        let g = r
            .grant(&pay, &both, &Scope::default(), Some(&reader))
            .unwrap();
        assert_eq!(
            g.audiences,
            ["https://ledger.internal", "https://payments.internal"]
        );
        let many: Vec<Audience> = (0..17).map(|i| aud(&format!("a{i}"))).collect();
        assert!(matches!(
            r.grant(&pay, &many, &Scope::default(), None),
            Err(Denied::Target(_))
        ));
    }

    #[test]
    fn scopes_must_be_registered_allowed_and_held() {
        let r = registry(&ClientSecret::generate().unwrap());
        let pay = r.client("pay-web").unwrap();
        let reader = roles(&["reader"]);
        let cashier = roles(&["cashier"]);
        let denied = |s: &str, who: Option<&Roles>| match r.grant(&pay, &[], &scope(s), who) {
            Err(Denied::Scope(reason)) => reason,
            other => panic!("{s}: {other:?}"),
        };
        assert!(denied("nonsense", None).contains("nonsense"));
        assert!(denied("admin:all", None).contains("not allowed for client pay-web"));
        assert!(denied("payments:write", Some(&reader)).contains("needs the role cashier"));
        // Before the user is known, only the client's side is checked.
        assert!(r.grant(&pay, &[], &scope("payments:write"), None).is_ok());
        let g = r
            .grant(
                &pay,
                &[],
                &scope("payments:read payments:write"),
                Some(&cashier),
            )
            .unwrap();
        assert_eq!(g.scope.to_string(), "payments:read payments:write");
        // `*` allows every registered scope, still behind its roles.
        let default = r.client("default").unwrap();
        assert!(
            r.grant(&default, &[], &scope("payments:read"), Some(&reader))
                .is_ok()
        );
        assert!(
            r.grant(&default, &[], &scope("admin:all"), Some(&reader))
                .is_err()
        );
    }

    #[test]
    fn refresh_keeps_audiences_narrows_and_drops_lost_scopes() {
        let r = registry(&ClientSecret::generate().unwrap());
        let pay = r.client("pay-web").unwrap();
        let auds = vec!["https://payments.internal".to_owned()];
        let granted = scope("payments:read payments:write");
        let cashier = roles(&["cashier"]);
        let same = r.regrant(&pay, &auds, &granted, None, &cashier).unwrap();
        assert_eq!(same.scope, granted);
        let narrow = r
            .regrant(
                &pay,
                &auds,
                &granted,
                Some(scope("payments:read")),
                &cashier,
            )
            .unwrap();
        assert_eq!(narrow.scope.to_string(), "payments:read");
        assert!(matches!(
            r.regrant(
                &pay,
                &auds,
                &scope("payments:read"),
                Some(granted.clone()),
                &cashier
            ),
            Err(Denied::Scope(_))
        ));
        let lost = r
            .regrant(&pay, &auds, &granted, None, &roles(&["reader"]))
            .unwrap();
        assert_eq!(lost.scope.to_string(), "payments:read");
        assert!(matches!(
            r.regrant(
                &pay,
                &["https://elsewhere".to_owned()],
                &granted,
                None,
                &cashier
            ),
            Err(Denied::Target(_))
        ));
        let default = r.client("default").unwrap();
        let admin_aud = vec!["https://issuer/admin".to_owned()];
        assert!(
            r.regrant(
                &default,
                &admin_aud,
                &Scope::default(),
                None,
                &roles(&["admin"])
            )
            .is_ok()
        );
        assert!(
            r.regrant(&default, &admin_aud, &Scope::default(), None, &cashier)
                .is_err()
        );
    }
}
