//! The grants of the token endpoint: `password` (with the per-username throttle) and
//! `refresh_token` (rotation, reuse detection), and minting the access token both return.

use std::net::IpAddr;
use std::sync::Arc;

use anyhow::Context as _;
use uuid::Uuid;

use crate::config::Settings;
use crate::crypto::jwt::{self, AccessClaims};
use crate::db::audit::Event;
use crate::db::refresh::{self, FamilyRow, Rotation, TokenRow};
use crate::db::users::UserRow;
use crate::db::{Db, now, throttle, users};
use crate::domain::{Audience, ClientId, Password, RefreshToken, Roles, Scope, Username};
use crate::service::keyring::KeyStore;
use crate::service::machine::{self, Form, MachineError};
use crate::service::passwords::{HashError, PasswordHasher};

/// What a successful grant hands out.
#[derive(Debug)]
pub struct Issued {
    pub access_token: String,
    pub expires_in: i64,
    pub refresh_token: Option<RefreshToken>,
    pub scope: Scope,
}

/// Why a grant failed.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// The credentials or token are not good (RFC 6749 `invalid_grant`).
    #[error("{0}")]
    InvalidGrant(&'static str),
    /// A machine assertion was refused (`invalid_grant`), with the reason.
    #[error("{0}")]
    Rejected(String),
    /// The requested scope exceeds what was granted (`invalid_scope`).
    #[error("{0}")]
    InvalidScope(&'static str),
    /// Too many failed logins for this username.
    #[error("too many failed logins; retry after {0} seconds")]
    Throttled(i64),
    /// Too many logins waiting for the hasher.
    #[error("the server is busy; retry shortly")]
    Busy,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<HashError> for GrantError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => Self::Busy,
            HashError::Internal(e) => Self::Internal(e),
        }
    }
}

/// A password login request, parsed.
#[derive(Debug)]
pub struct PasswordLogin {
    /// `None` when the presented name could not be a username at all.
    pub username: Option<Username>,
    pub password: Password,
    pub scope: Scope,
    pub audience: Option<Audience>,
    pub client_id: ClientId,
    pub source: Option<IpAddr>,
}

/// Issues tokens: holds what every grant needs.
#[derive(Clone)]
pub struct Grants {
    pub db: Db,
    pub keys: Arc<KeyStore>,
    pub hasher: PasswordHasher,
    pub settings: Arc<Settings>,
}

const BAD_CREDENTIALS: &str = "invalid username or password";

impl Grants {
    /// `grant_type=password`.
    #[tracing::instrument(skip_all, fields(username = ?req.username, client_id = %req.client_id))]
    pub async fn password(&self, req: PasswordLogin) -> Result<Issued, GrantError> {
        let Some(username) = req.username else {
            return Err(GrantError::InvalidGrant(BAD_CREDENTIALS));
        };
        let t = now();
        let name = username.as_str().to_owned();
        let (locked, user) = self
            .db
            .run(move |conn| {
                let locked = throttle::locked_for(conn, &name, t)?;
                let user = match locked {
                    Some(_) => None,
                    None => users::find_by_username(conn, &name)?,
                };
                Ok((locked, user))
            })
            .await?;
        let source = req.source.map(|ip| ip.to_string());
        if let Some(secs) = locked {
            tracing::warn!(source = ?req.source, "login refused: username is throttled");
            self.audit(Event::new(
                "login_throttled",
                Some(username.as_str()),
                source.as_deref(),
            ))
            .await?;
            return Err(GrantError::Throttled(secs));
        }

        let matched = self
            .hasher
            .verify(req.password, user.as_ref().map(|u| u.password_hash.clone()))
            .await?;
        let user = match user {
            Some(u) if matched && !u.disabled => u,
            _ => {
                let name = username.as_str().to_owned();
                self.db
                    .run(move |conn| {
                        let t = now();
                        throttle::record_failure(conn, &name, t)?;
                        Event::new("login_failed", Some(&name), source.as_deref()).record(conn)?;
                        Ok(())
                    })
                    .await?;
                tracing::warn!(source = ?req.source, "login failed");
                return Err(GrantError::InvalidGrant(BAD_CREDENTIALS));
            }
        };

        let audience = req
            .audience
            .map_or_else(|| self.settings.audience.clone(), |a| a.as_str().to_owned());
        let refresh_token = RefreshToken::generate().context("reading the OS random generator")?;
        let family = FamilyRow {
            id: Uuid::new_v4().to_string(),
            user_id: user.id.clone(),
            client_id: req.client_id.to_string(),
            scope: req.scope.to_string(),
            audience: audience.clone(),
            created_at: t,
            revoked_at: None,
            revoked_reason: None,
        };
        let first = TokenRow {
            token_hash: refresh_token.hash(),
            family_id: family.id.clone(),
            created_at: t,
            expires_at: t + self.settings.refresh_ttl,
            used_at: None,
        };
        let name = user.username.clone();
        let client = req.client_id.to_string();
        self.db
            .run(move |conn| {
                throttle::clear(conn, &name)?;
                refresh::start_family(conn, &family, &first)?;
                Event::new("login_ok", Some(&name), source.as_deref())
                    .by(name.as_str())
                    .with(serde_json::json!({"client_id": client}))
                    .record(conn)?;
                Ok(())
            })
            .await?;
        tracing::info!(source = ?req.source, user_id = %user.id, "login succeeded");
        let (access_token, expires_in) =
            self.mint(&user, req.client_id.as_str(), &req.scope, &audience)?;
        Ok(Issued {
            access_token,
            expires_in,
            refresh_token: Some(refresh_token),
            scope: req.scope,
        })
    }

    /// `grant_type=refresh_token`: rotates the token. `scope`, when given, may only narrow the
    /// original grant; `client_id`, when given, must be the one the family was issued to.
    #[tracing::instrument(skip_all)]
    pub async fn refresh(
        &self,
        presented: &str,
        scope: Option<Scope>,
        client_id: Option<ClientId>,
    ) -> Result<Issued, GrantError> {
        const INVALID: &str = "the refresh token is invalid, expired or revoked";
        let Some(old) = RefreshToken::parse(presented) else {
            return Err(GrantError::InvalidGrant(INVALID));
        };
        let new = RefreshToken::generate().context("reading the OS random generator")?;
        let (old_hash, new_hash) = (old.hash(), new.hash());
        let t = now();
        let expires = t + self.settings.refresh_ttl;
        let outcome = self
            .db
            .run(move |conn| Ok(refresh::rotate(conn, &old_hash, &new_hash, expires, t)?))
            .await?;
        let (family, user) = match outcome {
            Rotation::Rotated { family, user } => (family, user),
            Rotation::Reused { family_id, user_id } => {
                tracing::warn!(%family_id, %user_id, "refresh token reuse: family revoked");
                let detail = serde_json::json!({"family_id": family_id, "user_id": user_id});
                self.db
                    .run(move |conn| {
                        let username = users::find_by_id(conn, &user_id)?.map(|u| u.username);
                        Event::new("refresh_reuse", username.as_deref(), None)
                            .with(detail)
                            .record(conn)?;
                        Ok(())
                    })
                    .await?;
                return Err(GrantError::InvalidGrant(INVALID));
            }
            Rotation::Expired | Rotation::Revoked | Rotation::Unknown => {
                return Err(GrantError::InvalidGrant(INVALID));
            }
        };
        // Checked after the rotation: a token presented by the wrong client is spent anyway,
        // which is the safe side.
        if client_id.is_some_and(|c| c.as_str() != family.client_id) {
            return Err(GrantError::InvalidGrant(
                "the refresh token was issued to another client",
            ));
        }
        let granted = Scope::parse(&family.scope).unwrap_or_default();
        let scope = match scope {
            Some(s) if !s.is_subset_of(&granted) => {
                return Err(GrantError::InvalidScope(
                    "the requested scope exceeds the original grant",
                ));
            }
            Some(s) => s,
            None => granted,
        };
        let (access_token, expires_in) =
            self.mint(&user, &family.client_id, &scope, &family.audience)?;
        Ok(Issued {
            access_token,
            expires_in,
            refresh_token: Some(new),
            scope,
        })
    }

    async fn audit(&self, event: Event) -> anyhow::Result<()> {
        self.db.run(move |conn| Ok(event.record(conn)?)).await
    }

    /// A machine login: an RFC 7523 assertion, or the asymmetric-jwt-auth form. Returns an
    /// access token for the user the assertion names, with `client_id` = the username, and no
    /// refresh token.
    #[tracing::instrument(skip_all, fields(form = ?form))]
    pub async fn machine(
        &self,
        form: Form,
        assertion: String,
        scope: Scope,
        source: Option<IpAddr>,
    ) -> Result<Issued, GrantError> {
        let source = source.map(|ip| ip.to_string());
        let username = match machine::claimed_username(&assertion, form) {
            Ok(u) => u,
            Err(e) => return Err(self.machine_failed(None, e, source).await),
        };
        let (issuer, endpoint) = (self.settings.issuer.clone(), self.settings.token_endpoint());
        let name = username.as_str().to_owned();
        let result = self
            .db
            .run(move |conn| {
                let outcome = match users::find_by_username(conn, &name)? {
                    Some(u) if !u.disabled => {
                        machine::verify_assertion(conn, &assertion, form, &u, &issuer, &endpoint)
                            .map(|fp| (u, fp))
                    }
                    _ => Err(MachineError::Invalid(
                        "no enabled user with registered keys by that name".into(),
                    )),
                };
                Ok(outcome)
            })
            .await?;
        let (user, fingerprint) = match result {
            Ok(ok) => ok,
            Err(e) => return Err(self.machine_failed(Some(&username), e, source).await),
        };
        self.audit(
            Event::new("machine_login_ok", Some(&user.username), source.as_deref())
                .by(user.username.as_str())
                .with(serde_json::json!({"form": format!("{form:?}"), "key": fingerprint})),
        )
        .await?;
        let (access_token, expires_in) =
            self.mint(&user, &user.username, &scope, &self.settings.audience)?;
        Ok(Issued {
            access_token,
            expires_in,
            refresh_token: None,
            scope,
        })
    }

    async fn machine_failed(
        &self,
        username: Option<&Username>,
        e: MachineError,
        source: Option<String>,
    ) -> GrantError {
        let reason = match e {
            MachineError::Invalid(reason) => reason,
            MachineError::Internal(e) => return GrantError::Internal(e),
        };
        tracing::warn!(?username, %reason, "machine login failed");
        let event = Event::new(
            "machine_login_failed",
            username.map(Username::as_str),
            source.as_deref(),
        )
        .with(serde_json::json!({"reason": reason}));
        let logged = self.audit(event).await;
        match logged {
            Ok(()) => GrantError::Rejected(reason),
            Err(e) => GrantError::Internal(e),
        }
    }

    /// Mints an access token for `user` with the active key.
    pub fn mint(
        &self,
        user: &UserRow,
        client_id: &str,
        scope: &Scope,
        audience: &str,
    ) -> anyhow::Result<(String, i64)> {
        let ring = self.keys.current();
        let t = now();
        let ttl = self.settings.access_ttl;
        let claims = AccessClaims {
            iss: self.settings.issuer.clone(),
            sub: user.id.clone(),
            aud: audience.to_owned(),
            exp: t + ttl,
            iat: t,
            nbf: t,
            jti: Uuid::new_v4().to_string(),
            client_id: client_id.to_owned(),
            scope: scope.to_string(),
            username: user.username.clone(),
            roles: Roles::from_stored(&user.roles)
                .names()
                .map(str::to_owned)
                .collect(),
        };
        Ok((jwt::encode(&ring.active, &claims)?, ttl))
    }
}
