//! Logout and revocation (RFC 7009), introspection (RFC 7662), and the checks every
//! bearer-protected request makes beyond the signature: the `jti` is not revoked and the user
//! is still enabled. Refresh tokens and access tokens cannot be confused (one is 43 base64url
//! characters, the other a JWS with dots), so a wrong `token_type_hint` costs nothing.

use serde_json::json;

use crate::crypto::jwt::AccessClaims;
use crate::db::audit::{Event, EventKind};
use crate::db::{DbConn, refresh, revocations, users};
use crate::domain::RefreshToken;
use crate::service::Issuer;
use crate::service::registry::Registry;
use crate::service::sessions;

/// What introspection found.
#[derive(Debug)]
pub enum Introspection {
    /// Expired, revoked, unknown, badly signed, of a disabled user…: nothing more is said.
    Inactive,
    /// A live access token.
    Access(Box<AccessClaims>),
    /// A live refresh token.
    Refresh {
        sub: String,
        username: String,
        exp: i64,
        iat: i64,
        client_id: String,
        scope: String,
        /// The audiences its family's access tokens get.
        aud: Vec<String>,
    },
}

impl Introspection {
    /// What a confidential client that authenticated at the introspection endpoint may learn
    /// (RFC 7662 §2.1): an access token meant for one of its audiences, or a refresh token
    /// issued to it; anything else is inactive, so a resource server cannot scan other
    /// services' tokens.
    pub fn visible_to(self, client: &crate::service::registry::Client) -> Self {
        let visible = match &self {
            Self::Inactive => false,
            Self::Access(claims) => client.owns_any_audience(claims.aud.iter()),
            Self::Refresh { client_id, .. } => client_id == client.id.as_str(),
        };
        if visible { self } else { Self::Inactive }
    }
}

/// Whether an access token with verified `claims` is still good: its `jti` is not revoked, and
/// its user exists and is enabled (for a client's own token: the client is still registered).
/// At most two indexed lookups.
pub fn access_still_valid(
    conn: &mut DbConn,
    registry: &Registry,
    claims: &AccessClaims,
) -> anyhow::Result<bool> {
    if claims.username.is_none() {
        let registered = registry
            .client(&claims.client_id)
            .is_some_and(|c| c.confidential && claims.sub == claims.client_id);
        if !registered {
            return Ok(false);
        }
        return Ok(!revocations::is_denied(conn, &claims.jti)?);
    }
    if revocations::is_denied(conn, &claims.jti)? {
        return Ok(false);
    }
    Ok(users::find_by_id(conn, &claims.sub)?.is_some_and(|u| !u.disabled))
}

impl Issuer {
    /// The claims of `token` if it is an unexpired access token signed by one of our published
    /// keys, for any audience (revocation, introspection): the signature only, not the deny
    /// list.
    fn verify_access(&self, token: &str) -> Result<AccessClaims, crate::crypto::jwt::VerifyError> {
        let now = self.settings.clock.now();
        self.keys.current().verifier.verify_any_audience(token, now)
    }

    /// [`access_still_valid`], off the async workers.
    pub async fn still_valid(&self, claims: AccessClaims) -> anyhow::Result<bool> {
        let registry = self.registry.current();
        self.db
            .run(move |conn| access_still_valid(conn, &registry, &claims))
            .await
    }

    /// Revokes `token`: a refresh token revokes its whole family (logout); an access token of
    /// this issuer has its `jti` denied until it expires. Anything else is quietly ignored, as
    /// RFC 7009 asks. Returns whether something was revoked.
    pub async fn revoke(&self, token: &str, source: Option<String>) -> anyhow::Result<bool> {
        let clock = self.settings.clock.clone();
        if let Some(rt) = RefreshToken::parse(token) {
            let hash = rt.hash();
            return self
                .db
                .run(move |conn| {
                    let t = clock.now();
                    let revoked = match refresh::find(conn, &hash)? {
                        Some((_, family, _)) => {
                            sessions::end_family(conn, &family.id, "logout", t)?
                        }
                        None => false,
                    };
                    if revoked {
                        Event::new(EventKind::RefreshTokenRevoked, None, source.as_deref())
                            .record(conn)?;
                    }
                    Ok(revoked)
                })
                .await;
        }
        // Only a token we signed and that has not expired needs denying.
        let Ok(claims) = self.verify_access(token) else {
            return Ok(false);
        };
        self.db
            .run(move |conn| {
                let t = clock.now();
                revocations::deny(conn, &claims.jti, claims.exp, t)?;
                let subject = claims.username.as_deref().unwrap_or(&claims.client_id);
                Event::new(
                    EventKind::AccessTokenRevoked,
                    Some(subject),
                    source.as_deref(),
                )
                .with(json!({"jti": claims.jti, "client_id": claims.client_id}))
                .record(conn)?;
                Ok(true)
            })
            .await
    }

    /// Introspects `token`.
    pub async fn introspect(&self, token: &str) -> anyhow::Result<Introspection> {
        let clock = self.settings.clock.clone();
        if let Some(rt) = RefreshToken::parse(token) {
            let hash = rt.hash();
            return self
                .db
                .run(move |conn| {
                    Ok(match refresh::find_live(conn, &hash, clock.now())? {
                        Some((tok, family, user)) => Introspection::Refresh {
                            sub: user.id.to_string(),
                            username: user.username,
                            exp: tok.expires_at,
                            iat: tok.created_at,
                            client_id: family.client_id,
                            scope: family.scope,
                            aud: family
                                .audience
                                .split_whitespace()
                                .map(str::to_owned)
                                .collect(),
                        },
                        None => Introspection::Inactive,
                    })
                })
                .await;
        }
        let Ok(claims) = self.verify_access(token) else {
            return Ok(Introspection::Inactive);
        };
        let registry = self.registry.current();
        self.db
            .run(move |conn| {
                Ok(if access_still_valid(conn, &registry, &claims)? {
                    Introspection::Access(Box::new(claims))
                } else {
                    Introspection::Inactive
                })
            })
            .await
    }
}

/// Which kind of token was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// One of our opaque refresh tokens (or something shaped like one).
    Refresh,
    /// Anything else: an access token of this issuer, or not a token at all.
    Access,
}

/// A token's state as a client can be told it (djangorestframework-simplejwt's endpoints tell
/// exactly this much).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    /// It would be accepted now.
    Live,
    /// Not a token of ours: unknown, malformed, badly signed.
    Invalid,
    /// Past its lifetime (a refresh token: idle or absolute).
    Expired,
    /// Ours and unexpired, but spent or revoked: a used or logged-out refresh token, a revoked
    /// access token.
    Revoked,
    /// A token of a user who is disabled (or gone).
    UserDisabled,
}

impl Issuer {
    /// What `token` is, and its state now.
    pub async fn token_state(&self, token: &str) -> anyhow::Result<(TokenKind, TokenState)> {
        let now = self.settings.clock.now();
        if let Some(rt) = RefreshToken::parse(token) {
            let hash = rt.hash();
            let max_age = self.settings.session_max_age;
            let state = self
                .db
                .run(move |conn| {
                    Ok(match refresh::find(conn, &hash)? {
                        None => TokenState::Invalid,
                        Some((_, _, user)) if user.disabled => TokenState::UserDisabled,
                        Some((token, family, _)) => {
                            if token.used_at.is_some() || family.revoked_at.is_some() {
                                TokenState::Revoked
                            } else if token.expires_at <= now
                                || family.created_at.saturating_add(max_age) <= now
                            {
                                TokenState::Expired
                            } else {
                                TokenState::Live
                            }
                        }
                    })
                })
                .await?;
            return Ok((TokenKind::Refresh, state));
        }
        let claims = match self.verify_access(token) {
            Ok(claims) => claims,
            Err(crate::crypto::jwt::VerifyError::Expired) => {
                return Ok((TokenKind::Access, TokenState::Expired));
            }
            Err(_) => return Ok((TokenKind::Access, TokenState::Invalid)),
        };
        let registry = self.registry.current();
        let state = self
            .db
            .run(move |conn| {
                Ok(if access_still_valid(conn, &registry, &claims)? {
                    TokenState::Live
                } else if claims.username.is_some()
                    && users::find_by_id(conn, &claims.sub)?.is_none_or(|u| u.disabled)
                {
                    TokenState::UserDisabled
                } else {
                    TokenState::Revoked
                })
            })
            .await?;
        Ok((TokenKind::Access, state))
    }
}

/// One page of the revocation feed: `(jti, exp)` oldest first, and where the next page starts.
#[derive(Debug)]
pub struct FeedPage {
    pub revoked: Vec<(String, i64)>,
    pub next: i64,
}

/// The revoked access tokens not yet expired after position `after`, at most `limit`. A full
/// page resumes after its last entry; a short one has seen everything stored so far, so the
/// next page starts after the highest position (entries are numbered in commit order).
pub fn feed_page(conn: &mut DbConn, after: i64, limit: i64, now: i64) -> anyhow::Result<FeedPage> {
    let (rows, top) = revocations::feed(conn, after, limit, now)?;
    let next = match rows.last() {
        Some(last) if i64::try_from(rows.len()).unwrap_or(i64::MAX) >= limit => last.seq,
        Some(last) => last.seq.max(top),
        None => after.max(top),
    };
    Ok(FeedPage {
        revoked: rows.into_iter().map(|r| (r.jti, r.exp)).collect(),
        next,
    })
}
