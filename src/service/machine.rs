//! Machine logins with client-held keys: the registry of machine public keys per user, the RFC
//! 7523 JWT bearer grant and the `Authorization: JWT` form of the asymmetric-jwt-auth package.
//!
//! The algorithm a signature is checked with comes from the registered key's type (RSA: RS256,
//! RS384, RS512; P-256: ES256; Ed25519: EdDSA), never from the assertion alone: an RSA key never
//! verifies an HMAC or ECDSA assertion. Every assertion id (the `jti`, or username + time +
//! nonce) is recorded until it expires, so a replay fails on every instance sharing a database.

use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::crypto::public_key::PublicKeyInfo;
use crate::db::audit::{Event, EventKind};
use crate::db::client_keys::{self, ClientKeyRow};
use crate::db::users::{self, UserRow};
use crate::db::{DbConn, is_unique_violation};
use crate::domain::Username;
use crate::service::time::rfc3339;

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("no user named {0}")]
    UnknownUser(String),
    #[error("no key {0} for this user")]
    UnknownKey(String),
    #[error("this key is already registered for {0}")]
    Duplicate(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<diesel::result::Error> for RegistryError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Internal(e.into())
    }
}

/// A registered key as shown to operators.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = MachineKey)]
pub struct KeyView {
    pub id: String,
    pub fingerprint: String,
    pub kty: String,
    pub alg: String,
    pub algorithms: Vec<String>,
    pub comment: String,
    pub created_at: String,
    pub public_key: String,
}

impl KeyView {
    fn of(row: &ClientKeyRow) -> anyhow::Result<Self> {
        let info = PublicKeyInfo::from_spki_der(&row.public_der)?;
        let algorithms: Vec<String> = info.algorithms().iter().map(|a| format!("{a:?}")).collect();
        Ok(Self {
            id: row.id.clone(),
            fingerprint: row.fingerprint.clone(),
            kty: row.kty.clone(),
            alg: algorithms.first().cloned().unwrap_or_default(),
            algorithms,
            comment: row.comment.clone(),
            created_at: rfc3339(row.created_at),
            public_key: info.pem(),
        })
    }
}

fn user(conn: &mut DbConn, username: &str) -> Result<UserRow, RegistryError> {
    users::find_by_username(conn, username)
        .map_err(anyhow::Error::from)?
        .ok_or_else(|| RegistryError::UnknownUser(username.to_owned()))
}

/// Registers `key` for `username`.
pub fn add_key(
    conn: &mut DbConn,
    username: &str,
    key: &PublicKeyInfo,
    comment: &str,
    actor: Option<&str>,
    now: i64,
) -> Result<KeyView, RegistryError> {
    let user = user(conn, username)?;
    let row = ClientKeyRow {
        id: Uuid::new_v4().to_string(),
        user_id: user.id,
        kty: key.kty().to_owned(),
        fingerprint: key.pem_sha256(),
        public_der: key.spki_der().to_vec(),
        comment: comment.to_owned(),
        created_at: now,
    };
    match client_keys::insert(conn, &row) {
        Ok(()) => {}
        Err(e) if is_unique_violation(&e) => {
            return Err(RegistryError::Duplicate(username.to_owned()));
        }
        Err(e) => return Err(RegistryError::Internal(e.into())),
    }
    Event::about(
        EventKind::ClientKeyAdded,
        actor,
        username,
        json!({"id": row.id, "fingerprint": row.fingerprint}),
    )
    .record(conn)?;
    Ok(KeyView::of(&row)?)
}

/// The keys of `username`.
pub fn list_keys(conn: &mut DbConn, username: &str) -> Result<Vec<KeyView>, RegistryError> {
    let user = user(conn, username)?;
    let rows = client_keys::for_user(conn, &user.id).map_err(anyhow::Error::from)?;
    rows.iter()
        .map(|r| KeyView::of(r).map_err(RegistryError::Internal))
        .collect()
}

/// Removes a key of `username`; assertions signed by it fail from then on.
pub fn delete_key(
    conn: &mut DbConn,
    username: &str,
    id: &str,
    actor: Option<&str>,
) -> Result<(), RegistryError> {
    let user = user(conn, username)?;
    if !client_keys::delete(conn, &user.id, id).map_err(anyhow::Error::from)? {
        return Err(RegistryError::UnknownKey(id.to_owned()));
    }
    Event::about(
        EventKind::ClientKeyRemoved,
        actor,
        username,
        json!({"id": id}),
    )
    .record(conn)?;
    Ok(())
}

/// How far a `time` claim of the asymmetric-jwt-auth form may be from the server clock.
pub const TIME_TOLERANCE_SECS: i64 = 20;
/// The longest an RFC 7523 assertion may live (its `exp` at most this far ahead).
pub const MAX_ASSERTION_SECS: i64 = 300;
/// Clock skew allowed on `iat` and `nbf`.
const SKEW_SECS: i64 = 30;

/// Which form of machine login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// RFC 7523 `urn:ietf:params:oauth:grant-type:jwt-bearer`.
    JwtBearer,
    /// `client_credentials` with `Authorization: JWT` (asymmetric-jwt-auth).
    AsymmetricJwtAuth,
}

/// What a caller learns when the assertion could not be tied to a user's key: the same words
/// whether the user does not exist, is disabled, has no keys, or the signature is wrong, so a
/// machine login never reveals which users exist.
pub const UNVERIFIED: &str =
    "the assertion is not signed by a key registered for an enabled user of that name";

/// Why a machine login failed.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    /// The message is safe to show.
    #[error("{0}")]
    Invalid(String),
    /// The assertion could not be tied to a user's key; the reason is for the audit log only,
    /// the caller sees [`UNVERIFIED`].
    #[error("{UNVERIFIED}")]
    Unverified(&'static str),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

fn invalid(msg: &str) -> MachineError {
    MachineError::Invalid(msg.to_owned())
}

/// The username an assertion claims, unverified: where to look for keys.
pub fn claimed_username(assertion: &str, form: Form) -> Result<Username, MachineError> {
    let claims: Value = jsonwebtoken::dangerous::insecure_decode::<Value>(assertion)
        .map_err(|_| invalid("the assertion is not a well-formed JWT"))?
        .claims;
    let name = match form {
        Form::JwtBearer => claims.get("iss"),
        Form::AsymmetricJwtAuth => claims.get("username"),
    }
    .and_then(Value::as_str)
    .ok_or_else(|| {
        invalid(match form {
            Form::JwtBearer => "the assertion has no iss",
            Form::AsymmetricJwtAuth => "the assertion has no username",
        })
    })?;
    Username::parse(name).map_err(|_| MachineError::Unverified("the name is not a valid username"))
}

/// Verifies an assertion against `user`'s registered keys and records its id; returns the
/// fingerprint of the key that signed it. `issuer` and `token_endpoint` are the audiences an
/// RFC 7523 assertion may name.
pub fn verify_assertion(
    conn: &mut DbConn,
    assertion: &str,
    form: Form,
    user: &UserRow,
    issuer: &str,
    token_endpoint: &str,
    now: i64,
) -> Result<String, MachineError> {
    let keys = client_keys::for_user(conn, &user.id).map_err(anyhow::Error::from)?;
    let (fingerprint, claims) = signed_by(assertion, &keys)?;
    let (replay_id, replay_until) =
        check_claims(form, &claims, &user.username, issuer, token_endpoint, now)?;
    if !client_keys::record_use(conn, &user.id, &replay_id, replay_until)
        .map_err(anyhow::Error::from)?
    {
        return Err(invalid("the assertion was already used"));
    }
    Ok(fingerprint)
}

/// The fingerprint of the key of `keys` whose signature `assertion` carries (the one its `kid`
/// names, else each in turn), with the assertion's claims, unchecked.
pub fn signed_by(assertion: &str, keys: &[ClientKeyRow]) -> Result<(String, Value), MachineError> {
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| invalid("the assertion is not a well-formed JWT"))?;
    // The key the kid names, if any; otherwise each of the user's keys.
    let named: Vec<&ClientKeyRow> = keys
        .iter()
        .filter(|k| Some(&k.fingerprint) == header.kid.as_ref())
        .collect();
    let candidates = if named.is_empty() {
        keys.iter().collect()
    } else {
        named
    };
    for row in candidates {
        let Ok(info) = PublicKeyInfo::from_spki_der(&row.public_der) else {
            continue;
        };
        if !info.algorithms().contains(&header.alg) {
            continue;
        }
        let Ok(key) = info.decoding_key() else {
            continue;
        };
        let mut validation = jsonwebtoken::Validation::new(header.alg);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_aud = false;
        if let Ok(data) = jsonwebtoken::decode::<Value>(assertion, &key, &validation) {
            return Ok((row.fingerprint.clone(), data.claims));
        }
    }
    Err(MachineError::Unverified(if keys.is_empty() {
        "the user has no registered keys"
    } else {
        "no registered key verified the signature"
    }))
}

/// Checks a verified assertion's claims for `form` (who, for whom, when); returns the id to
/// record against replays and until when.
pub fn check_claims(
    form: Form,
    claims: &Value,
    username: &str,
    issuer: &str,
    token_endpoint: &str,
    now: i64,
) -> Result<(String, i64), MachineError> {
    match form {
        Form::JwtBearer => check_rfc7523(claims, username, issuer, token_endpoint, now),
        Form::AsymmetricJwtAuth => check_asymmetric(claims, username, issuer, token_endpoint, now),
    }
}

fn int(claims: &Value, name: &str) -> Result<Option<i64>, MachineError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| {
                MachineError::Invalid(format!("the assertion's {name} is not a number"))
            }),
    }
}

fn check_rfc7523(
    claims: &Value,
    username: &str,
    issuer: &str,
    token_endpoint: &str,
    t: i64,
) -> Result<(String, i64), MachineError> {
    let s = |name: &str| claims.get(name).and_then(Value::as_str);
    if s("iss") != Some(username) || s("sub") != Some(username) {
        return Err(invalid("iss and sub must both be the username"));
    }
    if !names_us(claims, issuer, token_endpoint) {
        return Err(invalid("aud must name this issuer or its token endpoint"));
    }
    let exp = int(claims, "exp")?.ok_or_else(|| invalid("the assertion has no exp"))?;
    if exp <= t {
        return Err(invalid("the assertion has expired"));
    }
    if exp > t + MAX_ASSERTION_SECS + SKEW_SECS {
        return Err(invalid("the assertion's exp is more than 5 minutes ahead"));
    }
    if int(claims, "iat")?.is_some_and(|iat| iat > t + SKEW_SECS) {
        return Err(invalid("the assertion's iat is in the future"));
    }
    if int(claims, "nbf")?.is_some_and(|nbf| nbf > t + SKEW_SECS) {
        return Err(invalid("the assertion is not valid yet"));
    }
    let jti = s("jti")
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or_else(|| invalid("the assertion needs a jti"))?;
    Ok((format!("jwt-bearer:{jti}"), exp))
}

/// Whether the assertion's `aud` (a string or an array) names this issuer or its token
/// endpoint.
fn names_us(claims: &Value, issuer: &str, token_endpoint: &str) -> bool {
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    audiences
        .iter()
        .any(|a| *a == issuer || *a == token_endpoint)
}

fn check_asymmetric(
    claims: &Value,
    username: &str,
    issuer: &str,
    token_endpoint: &str,
    t: i64,
) -> Result<(String, i64), MachineError> {
    if claims.get("username").and_then(Value::as_str) != Some(username) {
        return Err(invalid("the assertion needs a username"));
    }
    // The format has no `aud`; one that carries it must mean us (an assertion minted for
    // another service is not ours to accept).
    if claims.get("aud").is_some() && !names_us(claims, issuer, token_endpoint) {
        return Err(invalid("aud must name this issuer or its token endpoint"));
    }
    let time = int(claims, "time")?
        .filter(|v| *v != 0)
        .ok_or_else(|| invalid("the assertion needs a time"))?;
    if (time - t).abs() > TIME_TOLERANCE_SECS {
        return Err(invalid(
            "the assertion's time is more than 20 seconds from the server clock",
        ));
    }
    let nonce = match claims.get("nonce") {
        Some(Value::String(n)) if !n.is_empty() && n.len() <= 256 => n.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(invalid("the assertion needs a nonce")),
    };
    Ok((
        format!("asymmetric-jwt-auth:{time}:{nonce}"),
        time + TIME_TOLERANCE_SECS + 1,
    ))
}
