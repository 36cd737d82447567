//! Registering, changing and removing clients and scopes: every change validated, written in
//! one transaction with its audit event. The CLI and the admin API both come through here. A
//! client secret is stored as its SHA-256 and shown once, when generated.

use serde::Serialize;
use serde_json::json;

use crate::db::audit::{Event, EventKind};
use crate::db::registry::{self, ClientRow, ScopeRow};
use crate::db::{DbConn, is_unique_violation, write_tx};
use crate::domain::{Audience, ClientId, ClientSecret, GrantType, Roles, ScopeName};
use crate::service::registry::{AllowedScopes, Client, OwnAudiences, Registry, ScopeDef};
use crate::service::time::rfc3339;

/// Why a registry change failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A bad value; the message says which.
    #[error("{0}")]
    Invalid(String),
    #[error("{0} is already registered")]
    Duplicate(String),
    #[error("{0}")]
    NotFound(String),
    /// The change would break something that must stay (the `default` client).
    #[error("{0}")]
    Protected(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<diesel::result::Error> for ClientError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Internal(anyhow::Error::new(e).context("client registry storage"))
    }
}

/// How a client authenticates.
#[derive(Debug)]
pub enum SecretChoice {
    /// Public: no secret.
    Public,
    /// Confidential, with this secret.
    Supplied(ClientSecret),
    /// Confidential, with a secret generated now and shown once.
    Generate,
}

/// A change to a client; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct ClientChange {
    pub secret: Option<SecretChoice>,
    /// An empty list means the issuer's defaults.
    pub audiences: Option<Vec<Audience>>,
    /// Scope names, or `*` for every registered scope.
    pub scopes: Option<Vec<String>>,
    pub grants: Option<Vec<GrantType>>,
}

/// At most this many audiences per client.
pub const MAX_AUDIENCES: usize = 32;
/// At most this many scopes per client.
pub const MAX_SCOPES: usize = 256;

/// A client as shown to operators; never its secret, except the one generated just now.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Client)]
pub struct ClientView {
    pub client_id: String,
    pub confidential: bool,
    pub audiences: Vec<String>,
    /// True when no audience is registered and the issuer's defaults apply.
    pub default_audiences: bool,
    pub scopes: Vec<String>,
    pub grant_types: Vec<&'static str>,
    pub created_at: String,
    pub updated_at: String,
    /// Only in the answer that generated it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

impl ClientView {
    /// The view of a registered client.
    pub fn of(client: &Client) -> Self {
        Self {
            client_id: client.id.to_string(),
            confidential: client.confidential,
            audiences: client.audiences.clone(),
            default_audiences: client.default_audiences,
            scopes: client.scopes.names(),
            grant_types: client.grants.iter().map(|g| g.as_str()).collect(),
            created_at: rfc3339(client.created_at),
            updated_at: rfc3339(client.updated_at),
            client_secret: None,
        }
    }

    fn of_row(row: &ClientRow, own: &OwnAudiences) -> anyhow::Result<Self> {
        let client = Client::from_row(row, own)
            .ok_or_else(|| anyhow::anyhow!("stored client {} does not parse", row.id))?;
        Ok(Self::of(&client))
    }
}

/// A scope as shown to operators.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Scope)]
pub struct ScopeView {
    pub name: String,
    pub roles: Vec<String>,
    pub description: String,
    pub created_at: String,
}

impl ScopeView {
    /// The view of a registered scope.
    pub fn of(def: &ScopeDef) -> Self {
        Self {
            name: def.name.clone(),
            roles: def.roles.names().map(str::to_owned).collect(),
            description: def.description.clone(),
            created_at: rfc3339(def.created_at),
        }
    }
}

/// The grants of a client registered without `--grant`.
fn default_grants(confidential: bool) -> Vec<GrantType> {
    if confidential {
        vec![GrantType::ClientCredentials]
    } else {
        vec![GrantType::Password, GrantType::RefreshToken]
    }
}

fn stored_list<T: AsRef<str>>(items: &[T]) -> String {
    let mut out: Vec<&str> = Vec::new();
    for item in items {
        if !out.contains(&item.as_ref()) {
            out.push(item.as_ref());
        }
    }
    out.join(" ")
}

/// Checks a list of scope names against the registered scopes; `*` stands for all of them.
fn checked_scopes(conn: &mut DbConn, names: &[String]) -> Result<String, ClientError> {
    if names.len() > MAX_SCOPES {
        return Err(ClientError::Invalid(format!(
            "a client may list at most {MAX_SCOPES} scopes"
        )));
    }
    let registered = registry::scopes(conn)?;
    for name in names.iter().filter(|n| n.as_str() != ScopeName::ANY) {
        let name = ScopeName::parse(name).map_err(ClientError::Invalid)?;
        if !registered.iter().any(|s| s.name == name.as_str()) {
            return Err(ClientError::Invalid(format!(
                "the scope {name} is not registered (jwt-issuer scope add {name})"
            )));
        }
    }
    Ok(AllowedScopes::from_stored(&stored_list(names)).to_stored())
}

fn checked_audiences(audiences: &[Audience]) -> Result<String, ClientError> {
    if audiences.len() > MAX_AUDIENCES {
        return Err(ClientError::Invalid(format!(
            "a client may list at most {MAX_AUDIENCES} audiences"
        )));
    }
    Ok(stored_list(
        &audiences.iter().map(Audience::as_str).collect::<Vec<_>>(),
    ))
}

fn checked_grants(grants: &[GrantType]) -> Result<String, ClientError> {
    if grants.is_empty() {
        return Err(ClientError::Invalid(
            "a client needs at least one grant type".into(),
        ));
    }
    Ok(stored_list(
        &grants.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
    ))
}

/// Applies the secret choice: (confidential, stored hash, the generated secret to show).
fn secret_fields(
    choice: SecretChoice,
) -> anyhow::Result<(bool, Option<String>, Option<ClientSecret>)> {
    Ok(match choice {
        SecretChoice::Public => (false, None, None),
        SecretChoice::Supplied(s) => (true, Some(s.hash()), None),
        SecretChoice::Generate => {
            let s = ClientSecret::generate()
                .map_err(|e| anyhow::anyhow!("reading the OS random generator: {e}"))?;
            (true, Some(s.hash()), Some(s))
        }
    })
}

/// Registers a client. Without grants it gets the defaults for its kind (public: `password` and
/// `refresh_token`; confidential: `client_credentials`).
pub fn add(
    conn: &mut DbConn,
    id: &ClientId,
    secret: SecretChoice,
    change: ClientChange,
    own: &OwnAudiences,
    actor: Option<&str>,
    now: i64,
) -> Result<ClientView, ClientError> {
    let (confidential, secret_hash, generated) = secret_fields(secret)?;
    let t = now;
    let result = write_tx(conn, |conn| -> Result<ClientView, ClientError> {
        let row = ClientRow {
            id: id.to_string(),
            confidential,
            secret_hash,
            audiences: checked_audiences(&change.audiences.unwrap_or_default())?,
            scopes: checked_scopes(conn, &change.scopes.unwrap_or_default())?,
            grant_types: checked_grants(
                &change
                    .grants
                    .unwrap_or_else(|| default_grants(confidential)),
            )?,
            created_at: t,
            updated_at: t,
        };
        match registry::insert_client(conn, &row) {
            Err(e) if is_unique_violation(&e) => {
                return Err(ClientError::Duplicate(format!("client {id}")));
            }
            other => other?,
        }
        let view = ClientView::of_row(&row, own)?;
        Event::new(EventKind::ClientCreated, Some(id.as_str()), None)
            .by(actor)
            .with(json!(view))
            .record(conn)?;
        Ok(view)
    });
    let mut view = result?;
    view.client_secret = generated.map(|s| s.expose().to_owned());
    Ok(view)
}

/// Changes a client. The `default` client stays public.
pub fn update(
    conn: &mut DbConn,
    id: &str,
    change: ClientChange,
    own: &OwnAudiences,
    actor: Option<&str>,
    now: i64,
) -> Result<ClientView, ClientError> {
    if id == ClientId::DEFAULT
        && matches!(
            change.secret,
            Some(SecretChoice::Supplied(_) | SecretChoice::Generate)
        )
    {
        return Err(ClientError::Protected(
            "the default client serves requests that name no client: it stays public".into(),
        ));
    }
    let secret_changed = change.secret.is_some();
    let secret = change.secret.map(secret_fields).transpose()?;
    let generated = secret.as_ref().and_then(|(_, _, g)| g.clone());
    let result = write_tx(conn, |conn| -> Result<ClientView, ClientError> {
        let mut row = registry::client(conn, id)?
            .ok_or_else(|| ClientError::NotFound(format!("no client {id}")))?;
        if let Some((confidential, hash, _)) = secret {
            row.confidential = confidential;
            row.secret_hash = hash;
        }
        if let Some(auds) = &change.audiences {
            row.audiences = checked_audiences(auds)?;
        }
        if let Some(scopes) = &change.scopes {
            row.scopes = checked_scopes(conn, scopes)?;
        }
        if let Some(grants) = &change.grants {
            row.grant_types = checked_grants(grants)?;
        }
        row.updated_at = now;
        registry::update_client(conn, &row)?;
        let view = ClientView::of_row(&row, own)?;
        Event::new(EventKind::ClientUpdated, Some(id), None)
            .by(actor)
            .with(json!({"client": view, "secret_changed": secret_changed}))
            .record(conn)?;
        Ok(view)
    });
    let mut view = result?;
    view.client_secret = generated.map(|s| s.expose().to_owned());
    Ok(view)
}

/// Removes a client; its refresh tokens stop working (no client can present them).
pub fn remove(conn: &mut DbConn, id: &str, actor: Option<&str>) -> Result<(), ClientError> {
    if id == ClientId::DEFAULT {
        return Err(ClientError::Protected(
            "the default client can be edited, not removed".into(),
        ));
    }
    write_tx(conn, |conn| -> Result<(), ClientError> {
        if !registry::delete_client(conn, id)? {
            return Err(ClientError::NotFound(format!("no client {id}")));
        }
        Event::new(EventKind::ClientRemoved, Some(id), None)
            .by(actor)
            .record(conn)?;
        Ok(())
    })
}

/// The most characters a scope description may have.
pub const MAX_DESCRIPTION: usize = 200;

/// Registers a scope, gated by `roles` (none: anyone the client serves may have it).
pub fn add_scope(
    conn: &mut DbConn,
    name: &ScopeName,
    roles: &Roles,
    description: &str,
    actor: Option<&str>,
    now: i64,
) -> Result<ScopeView, ClientError> {
    if description.chars().count() > MAX_DESCRIPTION || description.chars().any(char::is_control) {
        return Err(ClientError::Invalid(format!(
            "description must be at most {MAX_DESCRIPTION} characters, without control characters"
        )));
    }
    let row = ScopeRow {
        name: name.to_string(),
        roles: roles.to_stored(),
        description: description.to_owned(),
        created_at: now,
    };
    write_tx(conn, |conn| -> Result<(), ClientError> {
        match registry::insert_scope(conn, &row) {
            Err(e) if is_unique_violation(&e) => {
                return Err(ClientError::Duplicate(format!("scope {name}")));
            }
            other => other?,
        }
        Event::new(EventKind::ScopeCreated, Some(name.as_str()), None)
            .by(actor)
            .with(json!({"roles": roles.names().collect::<Vec<_>>(), "description": description}))
            .record(conn)?;
        Ok(())
    })?;
    Ok(ScopeView {
        name: row.name,
        roles: roles.names().map(str::to_owned).collect(),
        description: row.description,
        created_at: rfc3339(row.created_at),
    })
}

/// Removes a scope, and from every client that listed it, in one transaction. Returns the ids
/// of the clients that lost it.
pub fn remove_scope(
    conn: &mut DbConn,
    name: &str,
    actor: Option<&str>,
    now: i64,
) -> Result<Vec<String>, ClientError> {
    write_tx(conn, |conn| -> Result<Vec<String>, ClientError> {
        if !registry::delete_scope(conn, name)? {
            return Err(ClientError::NotFound(format!("no scope {name}")));
        }
        let t = now;
        let mut changed = Vec::new();
        for mut row in registry::clients(conn)? {
            let AllowedScopes::Only(names) = AllowedScopes::from_stored(&row.scopes) else {
                continue;
            };
            if !names.iter().any(|n| n == name) {
                continue;
            }
            let kept: Vec<String> = names.into_iter().filter(|n| n != name).collect();
            row.scopes = AllowedScopes::Only(kept).to_stored();
            row.updated_at = t;
            registry::update_client(conn, &row)?;
            changed.push(row.id);
        }
        Event::new(EventKind::ScopeRemoved, Some(name), None)
            .by(actor)
            .with(json!({"removed_from_clients": changed}))
            .record(conn)?;
        Ok(changed)
    })
}

/// The registry as stored now (for listings that must not lag behind a change).
pub fn read_registry(conn: &mut DbConn, own: &OwnAudiences) -> anyhow::Result<Registry> {
    Ok(Registry::build(
        registry::clients(conn)?,
        registry::scopes(conn)?,
        own.clone(),
    ))
}

/// The connection registry changes run on.
pub type Conn = DbConn;

impl crate::service::Issuer {
    /// Runs a registry change, then reloads this instance's registry so it applies at once
    /// (other instances within [`crate::service::registry::REGISTRY_REFRESH`]).
    pub async fn change_registry<T, F>(&self, f: F) -> Result<T, ClientError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T, ClientError> + Send + 'static,
    {
        let registry = self.registry.clone();
        self.run(move |conn| {
            let value = f(conn)?;
            registry.refresh(conn)?;
            Ok(value)
        })
        .await
    }
}
