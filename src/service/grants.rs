//! The grants of the token endpoint: `password` (with the per-username throttle),
//! `refresh_token` (rotation, reuse detection), machine logins, `client_credentials`, and
//! minting the access token they all return. What a token says — its audiences and scope — is
//! decided by the client registry ([`crate::service::registry`]), never taken from the request.

use std::net::IpAddr;
use std::sync::Arc;

use anyhow::Context as _;
use serde_json::json;
use uuid::Uuid;

use crate::config::Settings;
use crate::crypto::jwt::{self, ACCESS_TOKEN_TYPE, AccessClaims, Audiences};
use crate::db::audit::{Event, EventKind};
use crate::db::refresh::{self, FamilyRow, IssuedRow, TokenRow};
use crate::db::users::UserRow;
use crate::db::{DbConn, users, write_tx};
use crate::domain::{Audience, ClientId, Password, RefreshToken, Roles, Scope, UserId, Username};
use crate::service::Issuer;
use crate::service::credentials::CheckError;
use crate::service::machine::{self, Form, MachineError};
use crate::service::registry::{Client, Denied, Granted};
use crate::service::sessions;
use crate::service::throttle::Attempt;

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
    /// A scope the client or the subject may not have (`invalid_scope`).
    #[error("{0}")]
    InvalidScope(String),
    /// An audience the client or the subject may not have (RFC 8707 `invalid_target`).
    #[error("{0}")]
    InvalidTarget(String),
    /// Too many failed logins for this username.
    #[error("too many failed logins; retry after {0} seconds")]
    Throttled(i64),
    /// Too many logins waiting for the hasher.
    #[error("the server is busy; retry shortly")]
    Busy,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<CheckError> for GrantError {
    fn from(e: CheckError) -> Self {
        match e {
            CheckError::Throttled(secs) => Self::Throttled(secs),
            CheckError::Wrong => Self::InvalidGrant(BAD_CREDENTIALS),
            CheckError::Busy => Self::Busy,
            CheckError::Internal(e) => Self::Internal(e),
        }
    }
}

impl From<Denied> for GrantError {
    fn from(d: Denied) -> Self {
        match d {
            Denied::Target(m) => Self::InvalidTarget(m),
            Denied::Scope(m) => Self::InvalidScope(m),
        }
    }
}

/// What every token request carries besides its grant: the authenticated client and what it
/// asked for.
#[derive(Debug)]
pub struct TokenRequest {
    pub client: Arc<Client>,
    /// `audience` and `resource` values, parsed.
    pub audiences: Vec<Audience>,
    pub scope: Scope,
    pub source: Option<IpAddr>,
    /// The `User-Agent`, cleaned and truncated, remembered with a new session.
    pub user_agent: Option<String>,
}

/// The credentials of a password login, parsed.
#[derive(Debug)]
pub struct PasswordLogin {
    /// `None` when the presented name could not be a username at all.
    pub username: Option<Username>,
    pub password: Password,
}

/// Whom an access token is about.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// A user (password, refresh and machine logins).
    User(&'a UserRow),
    /// A confidential client acting for itself (`client_credentials`).
    Client(&'a ClientId),
}

/// What a refresh attempt found, decided inside its transaction.
enum Refreshed {
    Rotated {
        claims: Box<AccessClaims>,
        scope: Scope,
    },
    Reused {
        family_id: String,
        user_id: UserId,
    },
    WrongClient,
    Denied(Denied),
    Invalid,
}

/// What the refresh grant checks a presented token against, and what it issues.
struct RefreshPlan {
    asking: Arc<Client>,
    /// The audiences the request narrows the grant to, if any.
    narrowed: Vec<String>,
    requested: Option<Scope>,
    registry: Arc<crate::service::registry::Registry>,
    settings: Arc<Settings>,
    new_hash: String,
    t: i64,
}

/// What to do with a presented refresh token, once looked up.
enum Step {
    /// It may be rotated: the rotation to store, and the answer once stored.
    Rotate(Box<refresh::Rotate>, Refreshed),
    /// It was used before: its family is to be ended.
    EndReused(FamilyRow),
    /// Nothing to store.
    Done(Refreshed),
}

impl RefreshPlan {
    /// The user is checked again (disabled: refused; scopes whose roles they lost: dropped;
    /// `roles`: current). A token presented by another client, or asking for more than its
    /// grant, is refused without being spent.
    fn decide(self, found: Option<(TokenRow, FamilyRow, UserRow)>) -> anyhow::Result<Step> {
        let Some((token, family, user)) = found else {
            return Ok(Step::Done(Refreshed::Invalid));
        };
        if token.used_at.is_some() {
            return Ok(Step::EndReused(family));
        }
        let t = self.t;
        // The session's end: idle (the token's own expiry) or absolute (its age).
        let session_ends = family
            .created_at
            .saturating_add(self.settings.session_max_age);
        if token.expires_at <= t
            || session_ends <= t
            || family.revoked_at.is_some()
            || user.disabled
        {
            return Ok(Step::Done(Refreshed::Invalid));
        }
        if family.client_id != self.asking.id.as_str() {
            return Ok(Step::Done(Refreshed::WrongClient));
        }
        let audiences: Vec<String> = family
            .audience
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let original = Scope::parse(&family.scope).unwrap_or_default();
        let roles = Roles::from_stored(&user.roles);
        if let Some(wider) = self.narrowed.iter().find(|a| !audiences.contains(a)) {
            return Ok(Step::Done(Refreshed::Denied(Denied::Target(format!(
                "the audience {wider} is not in the refresh token's grant"
            )))));
        }
        let audiences = if self.narrowed.is_empty() {
            audiences
        } else {
            self.narrowed
        };
        let granted =
            match self
                .registry
                .regrant(&self.asking, &audiences, &original, self.requested, &roles)
            {
                Ok(g) => g,
                Err(d) => return Ok(Step::Done(Refreshed::Denied(d))),
            };
        let claims = access_claims(
            &self.settings,
            Subject::User(&user),
            self.asking.id.as_str(),
            &granted,
            t,
        )?;
        let rotation = refresh::Rotate {
            old_hash: token.token_hash,
            next: TokenRow {
                token_hash: self.new_hash,
                family_id: family.id.clone(),
                created_at: t,
                expires_at: (t + self.settings.refresh_ttl).min(session_ends),
                used_at: None,
            },
            issued: IssuedRow {
                jti: claims.jti.clone(),
                user_id: user.id.clone(),
                family_id: Some(family.id),
                exp: claims.exp,
            },
        };
        Ok(Step::Rotate(
            Box::new(rotation),
            Refreshed::Rotated {
                claims: Box::new(claims),
                scope: granted.scope,
            },
        ))
    }
}

/// A token that was presented used: its family ends.
fn end_reused(conn: &mut DbConn, family: FamilyRow, t: i64) -> anyhow::Result<Refreshed> {
    sessions::end_family(conn, &family.id, "reuse", t)?;
    Ok(Refreshed::Reused {
        family_id: family.id,
        user_id: family.user_id,
    })
}

/// A token that could not be rotated, being no longer live: spent by a concurrent request
/// meanwhile (this one presented a used token), or ended meanwhile.
fn not_rotated(conn: &mut DbConn, old_hash: &str, t: i64) -> anyhow::Result<Refreshed> {
    match refresh::find(conn, old_hash)? {
        Some((token, family, _)) if token.used_at.is_some() => end_reused(conn, family, t),
        _ => Ok(Refreshed::Invalid),
    }
}

const BAD_CREDENTIALS: &str = "invalid username or password";

impl Issuer {
    /// `grant_type=password`. What the client may never ask for is refused before the password
    /// is hashed; what depends on the user's roles, after.
    #[tracing::instrument(skip_all, fields(username = ?login.username, client_id = %req.client.id))]
    pub async fn password(
        &self,
        login: PasswordLogin,
        req: TokenRequest,
    ) -> Result<Issued, GrantError> {
        let registry = self.registry.current();
        registry.grant(&req.client, &req.audiences, &req.scope, None)?;
        let Some(username) = login.username else {
            return Err(GrantError::InvalidGrant(BAD_CREDENTIALS));
        };
        let (user, attempt) = self
            .check_password(
                username.as_str(),
                login.password,
                req.source,
                EventKind::LoginFailed,
            )
            .await?;
        let roles = Roles::from_stored(&user.roles);
        let granted = registry.grant(&req.client, &req.audiences, &req.scope, Some(&roles))?;
        self.start_session(&user, &req, granted, attempt).await
    }

    /// A session for `user` after a successful login: its refresh-token family, the first
    /// refresh token and access token, recorded with the throttle's release and the audit
    /// event in one transaction.
    async fn start_session(
        &self,
        user: &UserRow,
        req: &TokenRequest,
        granted: Granted,
        attempt: Attempt,
    ) -> Result<Issued, GrantError> {
        let t = self.settings.clock.now();
        let source = req.source.map(|ip| ip.to_string());
        let refresh_token = RefreshToken::generate().context("reading the OS random generator")?;
        let family = FamilyRow {
            id: Uuid::new_v4().to_string(),
            user_id: user.id.clone(),
            client_id: req.client.id.to_string(),
            scope: granted.scope.to_string(),
            audience: granted.audiences.join(" "),
            created_at: t,
            revoked_at: None,
            revoked_reason: None,
            source: source.clone(),
            user_agent: req.user_agent.clone(),
            last_used_at: Some(t),
        };
        let first = TokenRow {
            token_hash: refresh_token.hash(),
            family_id: family.id.clone(),
            created_at: t,
            // Idle lifetime, never beyond the session's absolute one.
            expires_at: t + self.settings.refresh_ttl.min(self.settings.session_max_age),
            used_at: None,
        };
        let name = user.username.clone();
        let detail = grant_detail(&req.client.id, &granted);
        let claims = access_claims(
            &self.settings,
            Subject::User(user),
            req.client.id.as_str(),
            &granted,
            t,
        )?;
        let issued = IssuedRow {
            jti: claims.jti.clone(),
            user_id: user.id.clone(),
            family_id: Some(family.id.clone()),
            exp: claims.exp,
        };
        let event = Event::new(EventKind::LoginOk, Some(&name), source.as_deref())
            .by(name.as_str())
            .with(detail);
        let login = refresh::NewLogin {
            release: attempt.release_after_success(t),
            family,
            token: first,
            issued,
            event,
        };
        // On PostgreSQL with concurrent logins' sessions, in one statement and one commit
        // ([`crate::db::batch`]).
        self.db
            .batched(
                |b| &b.logins,
                login,
                self.hasher.linger(),
                refresh::start_login,
            )
            .await?;
        tracing::info!(source = ?req.source, user_id = %user.id, "login succeeded");
        Ok(Issued {
            access_token: self.sign(&claims)?,
            expires_in: self.settings.access_ttl,
            refresh_token: Some(refresh_token),
            scope: granted.scope,
        })
    }

    /// `grant_type=refresh_token`: rotates the token. The family keeps its client, audiences and
    /// scope; `requested` (the request's scope, when it sent one) and `req.audiences` may only
    /// narrow them; the user is checked again (disabled: refused; scopes whose roles they lost:
    /// dropped; `roles`: current). A token presented by another client, or asking for more than
    /// its grant, is refused without being spent.
    #[tracing::instrument(skip_all, fields(client_id = %req.client.id))]
    pub async fn refresh(
        &self,
        presented: &str,
        requested: Option<Scope>,
        req: TokenRequest,
    ) -> Result<Issued, GrantError> {
        let client = req.client;
        let narrowed: Vec<String> = req
            .audiences
            .iter()
            .map(|a| a.as_str().to_owned())
            .collect();
        const INVALID: &str = "the refresh token is invalid, expired or revoked";
        let Some(old) = RefreshToken::parse(presented) else {
            return Err(GrantError::InvalidGrant(INVALID));
        };
        let new = RefreshToken::generate().context("reading the OS random generator")?;
        let old_hash = old.hash();
        let t = self.settings.clock.now();
        let plan = RefreshPlan {
            asking: client,
            narrowed,
            requested,
            registry: self.registry.current(),
            settings: self.settings.clone(),
            new_hash: new.hash(),
            t,
        };
        // No transaction around the reads and the checks: the rotation itself is atomic and
        // decides again whether the token is still live. On PostgreSQL the lookup and the
        // rotation are batched with those of concurrent requests ([`crate::db::batch`]); on
        // SQLite both run in one piece of the single writer's batch.
        let outcome = match self.db.batches() {
            Some(batches) => {
                let found = batches.lookups.run(old_hash.clone()).await?;
                match plan.decide(found)? {
                    Step::Rotate(rotation, rotated) => {
                        if batches.rotations.run(*rotation).await? {
                            rotated
                        } else {
                            self.db
                                .run(move |conn| not_rotated(conn, &old_hash, t))
                                .await?
                        }
                    }
                    Step::EndReused(family) => {
                        self.db.run(move |conn| end_reused(conn, family, t)).await?
                    }
                    Step::Done(refreshed) => refreshed,
                }
            }
            None => {
                self.db
                    .run(
                        move |conn| match plan.decide(refresh::find(conn, &old_hash)?)? {
                            Step::Rotate(rotation, rotated) => {
                                if refresh::rotate(conn, &rotation)? {
                                    Ok(rotated)
                                } else {
                                    not_rotated(conn, &old_hash, t)
                                }
                            }
                            Step::EndReused(family) => end_reused(conn, family, t),
                            Step::Done(refreshed) => Ok(refreshed),
                        },
                    )
                    .await?
            }
        };
        let (claims, scope) = match outcome {
            Refreshed::Rotated { claims, scope } => (claims, scope),
            Refreshed::Reused { family_id, user_id } => {
                tracing::warn!(%family_id, %user_id, "refresh token reuse: family revoked");
                let detail = json!({"family_id": family_id, "user_id": user_id});
                self.db
                    .run(move |conn| {
                        let username = users::find_by_id(conn, &user_id)?.map(|u| u.username);
                        Event::new(EventKind::RefreshReuse, username.as_deref(), None)
                            .with(detail)
                            .record(conn)?;
                        Ok(())
                    })
                    .await?;
                return Err(GrantError::InvalidGrant(INVALID));
            }
            Refreshed::WrongClient => {
                return Err(GrantError::InvalidGrant(
                    "the refresh token was issued to another client",
                ));
            }
            Refreshed::Denied(Denied::Target(m)) => return Err(GrantError::InvalidTarget(m)),
            Refreshed::Denied(Denied::Scope(m)) => return Err(GrantError::InvalidScope(m)),
            Refreshed::Invalid => return Err(GrantError::InvalidGrant(INVALID)),
        };
        Ok(Issued {
            access_token: self.sign(&claims)?,
            expires_in: self.settings.access_ttl,
            refresh_token: Some(new),
            scope,
        })
    }

    /// `grant_type=client_credentials` by a confidential client authenticated with its secret:
    /// a token about the client itself (`sub` = `client_id` = its id, no roles), no refresh
    /// token.
    #[tracing::instrument(skip_all, fields(client_id = %req.client.id))]
    pub async fn client_credentials(&self, req: TokenRequest) -> Result<Issued, GrantError> {
        let registry = self.registry.current();
        let granted = registry.grant(
            &req.client,
            &req.audiences,
            &req.scope,
            Some(&Roles::default()),
        )?;
        let source = req.source.map(|ip| ip.to_string());
        self.record(
            Event::new(
                EventKind::ClientTokenIssued,
                Some(req.client.id.as_str()),
                source.as_deref(),
            )
            .by(req.client.id.as_str())
            .with(grant_detail(&req.client.id, &granted)),
        )
        .await?;
        let claims = access_claims(
            &self.settings,
            Subject::Client(&req.client.id),
            req.client.id.as_str(),
            &granted,
            self.settings.clock.now(),
        )?;
        Ok(Issued {
            access_token: self.sign(&claims)?,
            expires_in: self.settings.access_ttl,
            refresh_token: None,
            scope: granted.scope,
        })
    }

    /// A machine login: an RFC 7523 assertion, or the asymmetric-jwt-auth form. Returns an
    /// access token for the user the assertion names, with `client_id` = the username, and no
    /// refresh token. The requesting client's audiences and scopes apply, as for a password
    /// login.
    #[tracing::instrument(skip_all, fields(form = ?form, client_id = %req.client.id))]
    pub async fn machine(
        &self,
        form: Form,
        assertion: String,
        req: TokenRequest,
    ) -> Result<Issued, GrantError> {
        let now = self.settings.clock.now();
        let registry = self.registry.current();
        registry.grant(&req.client, &req.audiences, &req.scope, None)?;
        let source = req.source.map(|ip| ip.to_string());
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
                    Some(u) if !u.disabled => machine::verify_assertion(
                        conn, &assertion, form, &u, &issuer, &endpoint, now,
                    )
                    .map(|fp| (u, fp)),
                    Some(_) => Err(MachineError::Unverified("the user is disabled")),
                    None => Err(MachineError::Unverified("no such user")),
                };
                Ok(outcome)
            })
            .await?;
        let (user, fingerprint) = match result {
            Ok(ok) => ok,
            Err(e) => return Err(self.machine_failed(Some(&username), e, source).await),
        };
        let roles = Roles::from_stored(&user.roles);
        let granted = registry.grant(&req.client, &req.audiences, &req.scope, Some(&roles))?;
        let mut detail = grant_detail(&req.client.id, &granted);
        detail["form"] = json!(format!("{form:?}"));
        detail["key"] = json!(fingerprint);
        let claims = access_claims(
            &self.settings,
            Subject::User(&user),
            &user.username,
            &granted,
            self.settings.clock.now(),
        )?;
        let issued = IssuedRow {
            jti: claims.jti.clone(),
            user_id: user.id.clone(),
            family_id: None,
            exp: claims.exp,
        };
        let event = Event::new(
            EventKind::MachineLoginOk,
            Some(&user.username),
            source.as_deref(),
        )
        .by(user.username.as_str())
        .with(detail);
        self.db
            .run(move |conn| {
                write_tx(conn, |conn| -> anyhow::Result<()> {
                    refresh::record_issued(conn, &issued)?;
                    event.record(conn)?;
                    Ok(())
                })
            })
            .await?;
        Ok(Issued {
            access_token: self.sign(&claims)?,
            expires_in: self.settings.access_ttl,
            refresh_token: None,
            scope: granted.scope,
        })
    }

    async fn machine_failed(
        &self,
        username: Option<&Username>,
        e: MachineError,
        source: Option<String>,
    ) -> GrantError {
        // Whether the user exists, is enabled, has keys, or the signature failed: the caller
        // learns the same thing; the audit log tells them apart.
        let (public, reason) = match e {
            MachineError::Invalid(reason) => (reason.clone(), reason),
            MachineError::Unverified(reason) => (machine::UNVERIFIED.to_owned(), reason.to_owned()),
            MachineError::Internal(e) => return GrantError::Internal(e),
        };
        tracing::warn!(?username, %reason, "machine login failed");
        let event = Event::new(
            EventKind::MachineLoginFailed,
            username.map(Username::as_str),
            source.as_deref(),
        )
        .with(json!({"reason": reason}));
        let logged = self.record(event).await;
        match logged {
            Ok(()) => GrantError::Rejected(public),
            Err(e) => GrantError::Internal(e),
        }
    }

    /// Signs access token claims with the active key.
    pub fn sign(&self, claims: &AccessClaims) -> anyhow::Result<String> {
        jwt::encode(&self.keys.current().active, claims)
    }
}

/// The claims of an access token about `subject` for `client_id`, issued at `t`, saying what
/// was granted. Built before the database records the token, signed after.
pub fn access_claims(
    settings: &Settings,
    subject: Subject<'_>,
    client_id: &str,
    granted: &Granted,
    t: i64,
) -> anyhow::Result<AccessClaims> {
    let (sub, username, roles) = match subject {
        Subject::User(user) => (
            user.id.to_string(),
            Some(user.username.clone()),
            Roles::from_stored(&user.roles)
                .names()
                .map(str::to_owned)
                .collect(),
        ),
        Subject::Client(id) => (id.to_string(), None, Vec::new()),
    };
    Ok(AccessClaims {
        iss: settings.issuer.clone(),
        sub,
        aud: Audiences::new(granted.audiences.clone()).context("a token needs an audience")?,
        exp: t + settings.access_ttl,
        iat: t,
        nbf: t,
        jti: Uuid::now_v7().to_string(),
        client_id: client_id.to_owned(),
        scope: granted.scope.to_string(),
        username,
        roles,
        token_type: ACCESS_TOKEN_TYPE.to_owned(),
    })
}

/// The audit detail of an issued token: the client, audiences and scope as granted.
fn grant_detail(client: &ClientId, granted: &Granted) -> serde_json::Value {
    json!({
        "client_id": client.as_str(),
        "aud": granted.audiences,
        "scope": granted.scope.to_string(),
    })
}
