//! The `refresh_families` and `refresh_tokens` tables: issuing, rotating and burning refresh
//! tokens. Rotation is decided by one conditional `UPDATE` (in [`rotate`]), so two requests
//! presenting the same token — on one instance or several sharing a database — cannot both win.

use std::collections::{HashMap, HashSet};

use diesel::backend::Backend;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment};
use diesel::serialize::ToSql;
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text};

use super::audit::{self, Event};
use super::batch::Batched;
use super::schema::{issued_access_tokens, refresh_families, refresh_tokens, users};
use super::throttle::{self, LoginRelease};
use super::users::UserRow;
use super::{DbConn, binds, kept_prepared, on_backend, postgres_only, write_tx};
use crate::domain::UserId;

/// A refresh family: everything that started at one login.
#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = refresh_families, treat_none_as_default_value = false)]
pub struct FamilyRow {
    pub id: String,
    #[diesel(deserialize_as = String, serialize_as = String)]
    pub user_id: UserId,
    pub client_id: String,
    pub scope: String,
    pub audience: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
    /// The client address of the login.
    pub source: Option<String>,
    /// The `User-Agent` of the login, truncated.
    pub user_agent: Option<String>,
    /// When a token of it was last rotated.
    pub last_used_at: Option<i64>,
}

/// A refresh token, by the SHA-256 (hex) of its value.
#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = refresh_tokens, treat_none_as_default_value = false)]
pub struct TokenRow {
    pub token_hash: String,
    pub family_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

/// What presenting a refresh token led to.
#[derive(Debug)]
pub enum Rotation {
    /// The token was live: it is now used and `new_hash` is its successor.
    Rotated {
        family: Box<FamilyRow>,
        user: Box<UserRow>,
    },
    /// The token had been used before: the family is now revoked.
    Reused { family_id: String, user_id: String },
    /// The token is past its lifetime.
    Expired,
    /// The family was revoked (logout, reuse, disabled user).
    Revoked,
    /// No such token.
    Unknown,
}

/// Starts a family at a login, with its first token, as part of the caller's write transaction.
pub fn start_family(conn: &mut DbConn, family: &FamilyRow, token: &TokenRow) -> QueryResult<()> {
    super::debug_assert_in_tx(conn);
    on_backend!(conn, |c| {
        diesel::insert_into(refresh_families::table)
            .values(family.clone())
            .execute(c)?;
        diesel::insert_into(refresh_tokens::table)
            .values(token)
            .execute(c)
    })
    .map(drop)
}

/// What a successful password login writes, in one transaction: the release of its
/// throttle reservation, its session's refresh family and first refresh token, the access token
/// issued with them, and its audit event.
#[derive(Debug, Clone)]
pub struct NewLogin {
    pub release: LoginRelease,
    pub family: FamilyRow,
    pub token: TokenRow,
    pub issued: IssuedRow,
    pub event: Event,
}

/// Writes a login's rows: on PostgreSQL in one call of `start_login_sessions` ([`Logins`]),
/// on SQLite in one write transaction.
pub fn start_login(conn: &mut DbConn, login: &NewLogin) -> QueryResult<()> {
    match conn {
        // A folding event (a failure) may update a row instead: never a login's.
        DbConn::Pg(_) if !login.event.event.folds() => {
            Logins::run(conn, std::slice::from_ref(login)).map(drop)
        }
        _ => write_tx(conn, |conn| {
            login.release.run(conn)?;
            start_family(conn, &login.family, &login.token)?;
            record_issued(conn, &login.issued)?;
            login.event.record(conn)
        }),
    }
}

/// Logins' rows ([`start_login`]), many in one call of `start_login_sessions` (PostgreSQL,
/// migration 000013, [`super::batch`]): one transaction, one durable commit.
pub struct Logins;

impl Batched for Logins {
    type Item = NewLogin;
    type Output = ();
    const NAME: &'static str = "pg-login-start";

    fn run(conn: &mut DbConn, items: &[NewLogin]) -> QueryResult<Vec<()>> {
        let DbConn::Pg(pg) = conn else {
            return Err(postgres_only());
        };
        if items.is_empty() || items.iter().any(|l| l.event.event.folds()) {
            return Err(diesel::result::Error::QueryBuilderError(
                "a login's event never folds".into(),
            ));
        }
        let text = |f: fn(&NewLogin) -> &str| items.iter().map(f).collect::<Vec<_>>();
        let maybe = |f: fn(&NewLogin) -> Option<&str>| items.iter().map(f).collect::<Vec<_>>();
        let number = |f: fn(&NewLogin) -> i64| items.iter().map(f).collect::<Vec<_>>();
        let maybe_number =
            |f: fn(&NewLogin) -> Option<i64>| items.iter().map(f).collect::<Vec<_>>();
        let at = audit::recorded_at();
        let details: Vec<Option<String>> = items.iter().map(|l| l.event.detail_text()).collect();
        StartLogins {
            keys: items
                .iter()
                .flat_map(|l| throttle::keys(&l.release.counters))
                .collect(),
            limits: items
                .iter()
                .flat_map(|l| throttle::limits(&l.release.counters))
                .collect(),
            forget: text(|l| &l.release.forget),
            now: number(|l| l.release.now),
            f_id: text(|l| &l.family.id),
            f_user_id: text(|l| l.family.user_id.as_str()),
            f_client_id: text(|l| &l.family.client_id),
            f_scope: text(|l| &l.family.scope),
            f_audience: text(|l| &l.family.audience),
            f_created_at: number(|l| l.family.created_at),
            f_revoked_at: maybe_number(|l| l.family.revoked_at),
            f_revoked_reason: maybe(|l| l.family.revoked_reason.as_deref()),
            f_source: maybe(|l| l.family.source.as_deref()),
            f_user_agent: maybe(|l| l.family.user_agent.as_deref()),
            f_last_used_at: maybe_number(|l| l.family.last_used_at),
            t_hash: text(|l| &l.token.token_hash),
            t_family_id: text(|l| &l.token.family_id),
            t_created_at: number(|l| l.token.created_at),
            t_expires_at: number(|l| l.token.expires_at),
            t_used_at: maybe_number(|l| l.token.used_at),
            i_jti: text(|l| &l.issued.jti),
            i_user_id: text(|l| l.issued.user_id.as_str()),
            i_family_id: maybe(|l| l.issued.family_id.as_deref()),
            i_exp: number(|l| l.issued.exp),
            e_at: vec![at; items.len()],
            e_event: text(|l| l.event.event.as_str()),
            e_actor: maybe(|l| l.event.actor.as_deref()),
            e_subject: maybe(|l| l.event.subject.as_deref()),
            e_source: maybe(|l| l.event.source.as_deref()),
            e_detail: details.iter().map(Option::as_deref).collect(),
        }
        .execute(pg)?;
        Ok(vec![(); items.len()])
    }
}

/// [`Logins`]' statement, kept prepared (see [`throttle`]'s statements): the items as one array
/// per column.
struct StartLogins<'a> {
    keys: Vec<&'a str>,
    limits: Vec<i32>,
    forget: Vec<&'a str>,
    now: Vec<i64>,
    f_id: Vec<&'a str>,
    f_user_id: Vec<&'a str>,
    f_client_id: Vec<&'a str>,
    f_scope: Vec<&'a str>,
    f_audience: Vec<&'a str>,
    f_created_at: Vec<i64>,
    f_revoked_at: Vec<Option<i64>>,
    f_revoked_reason: Vec<Option<&'a str>>,
    f_source: Vec<Option<&'a str>>,
    f_user_agent: Vec<Option<&'a str>>,
    f_last_used_at: Vec<Option<i64>>,
    t_hash: Vec<&'a str>,
    t_family_id: Vec<&'a str>,
    t_created_at: Vec<i64>,
    t_expires_at: Vec<i64>,
    t_used_at: Vec<Option<i64>>,
    i_jti: Vec<&'a str>,
    i_user_id: Vec<&'a str>,
    i_family_id: Vec<Option<&'a str>>,
    i_exp: Vec<i64>,
    e_at: Vec<i64>,
    e_event: Vec<&'a str>,
    e_actor: Vec<Option<&'a str>>,
    e_subject: Vec<Option<&'a str>>,
    e_source: Vec<Option<&'a str>>,
    e_detail: Vec<Option<&'a str>>,
}

kept_prepared!(StartLogins);

impl QueryFragment<Pg> for StartLogins<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("SELECT start_login_sessions(");
        binds!(out:
            Array<Text> = &self.keys,
            Array<Integer> = &self.limits,
            Array<Text> = &self.forget,
            Array<BigInt> = &self.now,
            Array<Text> = &self.f_id,
            Array<Text> = &self.f_user_id,
            Array<Text> = &self.f_client_id,
            Array<Text> = &self.f_scope,
            Array<Text> = &self.f_audience,
            Array<BigInt> = &self.f_created_at,
            Array<Nullable<BigInt>> = &self.f_revoked_at,
            Array<Nullable<Text>> = &self.f_revoked_reason,
            Array<Nullable<Text>> = &self.f_source,
            Array<Nullable<Text>> = &self.f_user_agent,
            Array<Nullable<BigInt>> = &self.f_last_used_at,
            Array<Text> = &self.t_hash,
            Array<Text> = &self.t_family_id,
            Array<BigInt> = &self.t_created_at,
            Array<BigInt> = &self.t_expires_at,
            Array<Nullable<BigInt>> = &self.t_used_at,
            Array<Text> = &self.i_jti,
            Array<Text> = &self.i_user_id,
            Array<Nullable<Text>> = &self.i_family_id,
            Array<BigInt> = &self.i_exp,
            Array<BigInt> = &self.e_at,
            Array<Text> = &self.e_event,
            Array<Nullable<Text>> = &self.e_actor,
            Array<Nullable<Text>> = &self.e_subject,
            Array<Nullable<Text>> = &self.e_source,
            Array<Nullable<Text>> = &self.e_detail,
        );
        out.push_sql(")");
        Ok(())
    }
}

impl RunQueryDsl<PgConnection> for StartLogins<'_> {}

/// The token whose hash is `token_hash`, with its family and user, whatever their state.
pub fn find(
    conn: &mut DbConn,
    token_hash: &str,
) -> QueryResult<Option<(TokenRow, FamilyRow, UserRow)>> {
    on_backend!(conn, |c| {
        refresh_tokens::table
            .inner_join(refresh_families::table.inner_join(users::table))
            .filter(refresh_tokens::token_hash.eq(token_hash))
            .select((
                TokenRow::as_select(),
                FamilyRow::as_select(),
                UserRow::as_select(),
            ))
            .get_result(c)
            .optional()
    })
}

/// Marks a live token used. Only one transaction can flip `used_at` from NULL, on one instance
/// or several sharing a database: the one that gets `true` rotates, any other lost the race.
fn claim(conn: &mut DbConn, token_hash: &str, now: i64) -> QueryResult<bool> {
    on_backend!(conn, |c| Claim { token_hash, now }.execute(c)).map(|n| n == 1)
}

/// [`claim`]'s statement. Diesel parses every `UPDATE` it builds anew at each execution (a
/// changeset may differ from one call to the next); this one, with a type of its own, is
/// prepared once per connection. On SQLite, parsing the two `UPDATE`s of a rotation was a
/// tenth of the single writer's time under a refresh flood (issue 12).
struct Claim<'a> {
    token_hash: &'a str,
    now: i64,
}

kept_prepared!(Claim);

impl<DB> QueryFragment<DB> for Claim<'_>
where
    DB: Backend,
    str: ToSql<Text, DB>,
    i64: ToSql<BigInt, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE refresh_tokens SET used_at = ");
        out.push_bind_param::<BigInt, _>(&self.now)?;
        out.push_sql(" WHERE token_hash = ");
        out.push_bind_param::<Text, _>(self.token_hash)?;
        out.push_sql(" AND used_at IS NULL AND expires_at > ");
        out.push_bind_param::<BigInt, _>(&self.now)?;
        Ok(())
    }
}

impl<Conn> RunQueryDsl<Conn> for Claim<'_> {}

/// Marks a family used at `at` ([`insert_token`]), prepared once per connection like
/// [`Claim`].
struct Touch<'a> {
    family_id: &'a str,
    at: i64,
}

kept_prepared!(Touch);

impl<DB> QueryFragment<DB> for Touch<'_>
where
    DB: Backend,
    str: ToSql<Text, DB>,
    i64: ToSql<BigInt, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE refresh_families SET last_used_at = ");
        out.push_bind_param::<BigInt, _>(&self.at)?;
        out.push_sql(" WHERE id = ");
        out.push_bind_param::<Text, _>(self.family_id)?;
        Ok(())
    }
}

impl<Conn> RunQueryDsl<Conn> for Touch<'_> {}

/// A rotation to do: mark `old_hash` used and store its successor `next`, issued with the
/// access token `issued`.
#[derive(Debug, Clone)]
pub struct Rotate {
    pub old_hash: String,
    pub next: TokenRow,
    pub issued: IssuedRow,
}

/// Rotates a refresh token: marks `old_hash` used, stores its successor `next` (in the same
/// family, which is marked used now) and records the access token issued with it, all or
/// nothing. Returns `false`, changing nothing, when the old token was no longer live (used by a
/// concurrent request, expired, or its family revoked meanwhile).
///
/// On PostgreSQL this is [`Rotations`] with one item: one statement, no explicit transaction.
/// On SQLite the same steps run one after another in a savepoint (inside the single writer's
/// batch, where nothing else runs between them).
pub fn rotate(conn: &mut DbConn, rotation: &Rotate) -> QueryResult<bool> {
    match conn {
        DbConn::Pg(_) => {
            Rotations::run(conn, std::slice::from_ref(rotation)).map(|r| r.first() == Some(&true))
        }
        DbConn::Sqlite(_) => write_tx(conn, |conn| {
            if !claim(conn, &rotation.old_hash, rotation.next.created_at)? {
                return Ok(false);
            }
            insert_token(conn, &rotation.next)?;
            record_issued(conn, &rotation.issued)?;
            Ok(true)
        }),
    }
}

/// Lookups of refresh tokens ([`find`]), many in one statement (PostgreSQL, [`super::batch`]).
pub struct Lookups;

impl Batched for Lookups {
    type Item = String;
    type Output = Option<(TokenRow, FamilyRow, UserRow)>;
    const NAME: &'static str = "pg-refresh-find";

    fn run(conn: &mut DbConn, hashes: &[String]) -> QueryResult<Vec<Self::Output>> {
        // On PostgreSQL itself, `eq_any` is one `= ANY($1)` whatever the number of hashes: one
        // prepared statement.
        let DbConn::Pg(conn) = conn else {
            return Err(postgres_only());
        };
        let found: Vec<(TokenRow, FamilyRow, UserRow)> = refresh_tokens::table
            .inner_join(refresh_families::table.inner_join(users::table))
            .filter(refresh_tokens::token_hash.eq_any(hashes))
            .select((
                TokenRow::as_select(),
                FamilyRow::as_select(),
                UserRow::as_select(),
            ))
            .load(conn)?;
        let by_hash: HashMap<&str, &(TokenRow, FamilyRow, UserRow)> = found
            .iter()
            .map(|row| (row.0.token_hash.as_str(), row))
            .collect();
        Ok(hashes
            .iter()
            .map(|h| by_hash.get(h.as_str()).map(|&row| row.clone()))
            .collect())
    }
}

/// Rotations ([`rotate`]), many in one call of the `rotate_refresh_tokens` function
/// (PostgreSQL, migration 000010, [`super::batch`]). Of several items presenting the same old
/// token, the first may rotate it and the others did not: one of them presented a used token.
pub struct Rotations;

impl Batched for Rotations {
    type Item = Rotate;
    type Output = bool;
    const NAME: &'static str = "pg-refresh-rotate";

    fn run(conn: &mut DbConn, items: &[Rotate]) -> QueryResult<Vec<bool>> {
        let DbConn::Pg(conn) = conn else {
            return Err(postgres_only());
        };
        let mut seen = HashSet::new();
        let unique: Vec<&Rotate> = items
            .iter()
            .filter(|r| seen.insert(r.old_hash.as_str()))
            .collect();
        let text = |f: fn(&Rotate) -> &str| unique.iter().map(|r| f(r)).collect::<Vec<_>>();
        let number = |f: fn(&Rotate) -> i64| unique.iter().map(|r| f(r)).collect::<Vec<_>>();
        let claimed: Vec<String> = RotateCall {
            old: text(|r| &r.old_hash),
            new: text(|r| &r.next.token_hash),
            now: number(|r| r.next.created_at),
            expires_at: number(|r| r.next.expires_at),
            jti: text(|r| &r.issued.jti),
            user_id: text(|r| r.issued.user_id.as_str()),
            exp: number(|r| r.issued.exp),
        }
        .load(conn)?;
        let mut claimed: HashSet<String> = claimed.into_iter().collect();
        // Only the first item of each old hash can be the one that claimed it.
        Ok(items.iter().map(|r| claimed.remove(&r.old_hash)).collect())
    }
}

/// [`Rotations`]' statement, kept prepared (see [`throttle`]'s statements): the items as one
/// array per column.
struct RotateCall<'a> {
    old: Vec<&'a str>,
    new: Vec<&'a str>,
    now: Vec<i64>,
    expires_at: Vec<i64>,
    jti: Vec<&'a str>,
    user_id: Vec<&'a str>,
    exp: Vec<i64>,
}

kept_prepared!(RotateCall);

impl Query for RotateCall<'_> {
    type SqlType = Text;
}

impl QueryFragment<Pg> for RotateCall<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("SELECT old_hash FROM rotate_refresh_tokens(");
        binds!(out:
            Array<Text> = &self.old,
            Array<Text> = &self.new,
            Array<BigInt> = &self.now,
            Array<BigInt> = &self.expires_at,
            Array<Text> = &self.jti,
            Array<Text> = &self.user_id,
            Array<BigInt> = &self.exp,
        );
        out.push_sql(")");
        Ok(())
    }
}

impl RunQueryDsl<PgConnection> for RotateCall<'_> {}

/// Stores a family's next token, and marks the family used now.
fn insert_token(conn: &mut DbConn, token: &TokenRow) -> QueryResult<()> {
    on_backend!(conn, |c| {
        diesel::insert_into(refresh_tokens::table)
            .values(token)
            .execute(c)?;
        Touch {
            family_id: &token.family_id,
            at: token.created_at,
        }
        .execute(c)
    })
    .map(drop)
}

/// An access token issued to a user, kept until it expires so that ending its session (or
/// disabling the user) can deny it.
#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = issued_access_tokens, treat_none_as_default_value = false)]
pub struct IssuedRow {
    pub jti: String,
    #[diesel(deserialize_as = String, serialize_as = String)]
    pub user_id: UserId,
    /// The session it came from; `None` for machine logins.
    pub family_id: Option<String>,
    pub exp: i64,
}

/// Records an issued access token.
pub fn record_issued(conn: &mut DbConn, row: &IssuedRow) -> QueryResult<()> {
    on_backend!(conn, |c| {
        diesel::insert_into(issued_access_tokens::table)
            .values(row.clone())
            .execute(c)
    })
    .map(drop)
}

/// The session an access token came from, if it came from one.
pub fn family_of_access_token(conn: &mut DbConn, jti: &str) -> QueryResult<Option<String>> {
    issued_access_tokens::table
        .find(jti)
        .select(issued_access_tokens::family_id)
        .get_result::<Option<String>>(conn)
        .optional()
        .map(Option::flatten)
}

/// The (jti, exp) of the not yet expired access tokens issued from `family_id`.
pub fn live_access_of_family(
    conn: &mut DbConn,
    family_id: &str,
    now: i64,
) -> QueryResult<Vec<(String, i64)>> {
    issued_access_tokens::table
        .filter(issued_access_tokens::family_id.eq(family_id))
        .filter(issued_access_tokens::exp.gt(now))
        .select((issued_access_tokens::jti, issued_access_tokens::exp))
        .load(conn)
}

/// The (jti, exp) of the not yet expired access tokens issued to `user_id`.
pub fn live_access_of_user(
    conn: &mut DbConn,
    user_id: &str,
    now: i64,
) -> QueryResult<Vec<(String, i64)>> {
    issued_access_tokens::table
        .filter(issued_access_tokens::user_id.eq(user_id))
        .filter(issued_access_tokens::exp.gt(now))
        .select((issued_access_tokens::jti, issued_access_tokens::exp))
        .load(conn)
}

/// A user's sessions still alive at `now`: not revoked, with a token that can still be used.
pub fn live_families_of_user(
    conn: &mut DbConn,
    user_id: &str,
    now: i64,
) -> QueryResult<Vec<FamilyRow>> {
    refresh_families::table
        .filter(refresh_families::user_id.eq(user_id))
        .filter(refresh_families::revoked_at.is_null())
        .filter(diesel::dsl::exists(
            refresh_tokens::table
                .filter(refresh_tokens::family_id.eq(refresh_families::id))
                .filter(refresh_tokens::used_at.is_null())
                .filter(refresh_tokens::expires_at.gt(now)),
        ))
        .order(refresh_families::created_at.asc())
        .select(FamilyRow::as_select())
        .load(conn)
}

/// Revokes one family (reuse, logout), unless it already was; returns whether it did.
pub fn revoke_family(
    conn: &mut DbConn,
    family_id: &str,
    reason: &str,
    now: i64,
) -> QueryResult<bool> {
    diesel::update(
        refresh_families::table
            .filter(refresh_families::id.eq(family_id))
            .filter(refresh_families::revoked_at.is_null()),
    )
    .set((
        refresh_families::revoked_at.eq(now),
        refresh_families::revoked_reason.eq(reason),
    ))
    .execute(conn)
    .map(|n| n > 0)
}

/// Revokes every live family of `user_id` (a disabled user, a logout everywhere); returns how
/// many were revoked.
pub fn revoke_user_families(
    conn: &mut DbConn,
    user_id: &str,
    reason: &str,
    now: i64,
) -> QueryResult<usize> {
    diesel::update(
        refresh_families::table
            .filter(refresh_families::user_id.eq(user_id))
            .filter(refresh_families::revoked_at.is_null()),
    )
    .set((
        refresh_families::revoked_at.eq(now),
        refresh_families::revoked_reason.eq(reason),
    ))
    .execute(conn)
}

/// A refresh token that would be accepted now, with its family and user (for introspection).
pub fn find_live(
    conn: &mut DbConn,
    token_hash: &str,
    now: i64,
) -> QueryResult<Option<(TokenRow, FamilyRow, UserRow)>> {
    Ok(find(conn, token_hash)?.filter(|(token, family, user)| {
        token.used_at.is_none()
            && token.expires_at > now
            && family.revoked_at.is_none()
            && !user.disabled
    }))
}

/// Deletes at most `limit` records of access tokens that have expired; returns how many.
pub fn purge_expired_issued(conn: &mut DbConn, now: i64, limit: i64) -> QueryResult<usize> {
    let chunk: Vec<String> = issued_access_tokens::table
        .filter(issued_access_tokens::exp.le(now))
        .select(issued_access_tokens::jti)
        .limit(limit)
        .load(conn)?;
    diesel::delete(issued_access_tokens::table.filter(issued_access_tokens::jti.eq_any(chunk)))
        .execute(conn)
}

/// Deletes at most `limit` refresh tokens past their lifetime, then at most `limit` families
/// with no token left that are older than the longest token lifetime; returns (tokens,
/// families) deleted.
pub fn purge_expired(
    conn: &mut DbConn,
    now: i64,
    max_ttl: i64,
    limit: i64,
) -> QueryResult<(usize, usize)> {
    let expired: Vec<String> = refresh_tokens::table
        .filter(refresh_tokens::expires_at.le(now))
        .select(refresh_tokens::token_hash)
        .limit(limit)
        .load(conn)?;
    let tokens =
        diesel::delete(refresh_tokens::table.filter(refresh_tokens::token_hash.eq_any(expired)))
            .execute(conn)?;
    let empty = refresh_families::table
        .filter(refresh_families::created_at.le(now - max_ttl))
        .filter(diesel::dsl::not(diesel::dsl::exists(
            refresh_tokens::table.filter(refresh_tokens::family_id.eq(refresh_families::id)),
        )))
        .select(refresh_families::id)
        .limit(limit)
        .load::<String>(conn)?;
    let families =
        diesel::delete(refresh_families::table.filter(refresh_families::id.eq_any(empty)))
            .execute(conn)?;
    Ok((tokens, families))
}

/// Families not ended and created after `created_after` (younger than the maximum session
/// age): the live sessions, give or take those whose last token expired idle.
pub fn count_live_families(conn: &mut DbConn, created_after: i64) -> QueryResult<i64> {
    refresh_families::table
        .filter(refresh_families::created_at.gt(created_after))
        .filter(refresh_families::revoked_at.is_null())
        .count()
        .get_result(conn)
}

#[cfg(test)]
mod tests {
    use diesel::query_builder::QueryId;

    use super::*;

    /// The rotation is kept prepared: one statement whatever the number of items (diesel's
    /// `sql_query`, which it replaced, never is).
    #[test]
    fn the_rotation_statement_is_kept_prepared() {
        let call = |n: usize| RotateCall {
            old: vec!["a"; n],
            new: vec!["b"; n],
            now: vec![1; n],
            expires_at: vec![2; n],
            jti: vec!["j"; n],
            user_id: vec!["u"; n],
            exp: vec![3; n],
        };
        const { assert!(RotateCall::HAS_STATIC_QUERY_ID) };
        for n in [1, 64] {
            assert!(call(n).is_safe_to_cache_prepared(&Pg).unwrap());
        }
    }

    /// A rotation's two `UPDATE`s are kept prepared on both backends (diesel's own `UPDATE`s
    /// never are).
    #[test]
    fn the_rotation_updates_are_kept_prepared() {
        use diesel::sqlite::Sqlite;
        let claim = Claim {
            token_hash: "a",
            now: 1,
        };
        let touch = Touch {
            family_id: "f",
            at: 1,
        };
        const { assert!(Claim::HAS_STATIC_QUERY_ID && Touch::HAS_STATIC_QUERY_ID) };
        assert!(QueryFragment::<Pg>::is_safe_to_cache_prepared(&claim, &Pg).unwrap());
        assert!(QueryFragment::<Sqlite>::is_safe_to_cache_prepared(&claim, &Sqlite).unwrap());
        assert!(QueryFragment::<Pg>::is_safe_to_cache_prepared(&touch, &Pg).unwrap());
        assert!(QueryFragment::<Sqlite>::is_safe_to_cache_prepared(&touch, &Sqlite).unwrap());
        // What diesel builds for the same claim is parsed anew each time: why `Claim` exists.
        let built =
            diesel::update(refresh_tokens::table.find("a")).set(refresh_tokens::used_at.eq(1_i64));
        assert!(!QueryFragment::<Sqlite>::is_safe_to_cache_prepared(&built, &Sqlite).unwrap());
    }
}
