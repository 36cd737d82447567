//! `POST /oauth/revoke` (RFC 7009), `POST /oauth/introspect` (RFC 7662) and the revocation feed
//! `GET /oauth/revocations`.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::params::Params;
use super::token::client_id;
use crate::domain::Role;
use crate::service::revocation::Introspection;

/// `POST /oauth/revoke`: `token`, optional `token_type_hint`. Always 200 for a well-formed
/// request, whether or not the token was known (RFC 7009 §2.2). Possession of a token is the
/// authority to revoke it; clients are public.
pub async fn revoke(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::from_body(&req, payload).await?;
    client_id(&req, &params)?;
    let token = params.required("token")?;
    let source = req.peer_addr().map(|a| a.ip().to_string());
    state.revocations.revoke(token, source).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .finish())
}

/// `POST /oauth/introspect`: for callers with the role `admin` or `introspect`.
pub async fn introspect(
    req: HttpRequest,
    caller: Caller,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require_any(&[Role::ADMIN, "introspect"])?;
    let params = Params::from_body(&req, payload).await?;
    let token = params.required("token")?;
    let body = match state.revocations.introspect(token).await? {
        Introspection::Inactive => json!({"active": false}),
        Introspection::Access(c) => json!({
            "active": true,
            "token_type": "access_token",
            "sub": c.sub,
            "username": c.username,
            "scope": c.scope,
            "client_id": c.client_id,
            "exp": c.exp,
            "iat": c.iat,
            "nbf": c.nbf,
            "aud": c.aud,
            "iss": c.iss,
            "jti": c.jti,
            "roles": c.roles,
        }),
        Introspection::Refresh {
            sub,
            username,
            exp,
            iat,
            client_id,
            scope,
        } => json!({
            "active": true,
            "token_type": "refresh_token",
            "sub": sub,
            "username": username,
            "exp": exp,
            "iat": iat,
            "client_id": client_id,
            "scope": scope,
            "iss": state.settings.issuer,
        }),
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .json(body))
}

/// The largest page of the feed, and the default.
const FEED_MAX: i64 = 1000;

fn encode_cursor(seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1:{seq}"))
}

fn decode_cursor(s: &str) -> Option<i64> {
    let raw = URL_SAFE_NO_PAD.decode(s).ok()?;
    let text = std::str::from_utf8(&raw).ok()?;
    text.strip_prefix("v1:")?
        .parse()
        .ok()
        .filter(|n: &i64| *n >= 0)
}

/// `GET /oauth/revocations?after=CURSOR&limit=N`: revoked access tokens not yet expired, oldest
/// first; resume from the returned `cursor`.
pub async fn feed(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let mut after = 0i64;
    let mut limit = FEED_MAX;
    for (k, v) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        match k.as_ref() {
            "after" if v.is_empty() => {}
            "after" => {
                after = decode_cursor(&v).ok_or_else(|| {
                    ApiError::InvalidRequest("after is not a cursor this feed returned".into())
                })?;
            }
            "limit" => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=FEED_MAX).contains(n))
                    .ok_or_else(|| {
                        ApiError::InvalidRequest(format!(
                            "limit must be an integer from 1 to {FEED_MAX}"
                        ))
                    })?;
            }
            other => {
                return Err(ApiError::InvalidRequest(format!(
                    "unknown parameter {other}"
                )));
            }
        }
    }
    let (rows, top) = state
        .db
        .run(move |conn| {
            Ok(crate::db::revocations::feed(
                conn,
                after,
                limit,
                crate::db::now(),
            )?)
        })
        .await?;
    // A full page resumes after its last entry; a short one has seen everything up to `top`.
    let next = match rows.last() {
        Some(last) if i64::try_from(rows.len()).unwrap_or(i64::MAX) >= limit => last.seq,
        Some(last) => last.seq.max(top),
        None => after.max(top),
    };
    let revoked: Vec<Value> = rows
        .iter()
        .map(|r| json!({"jti": r.jti, "exp": r.exp}))
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .json(json!({"revoked": revoked, "cursor": encode_cursor(next)})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Some(42));
        for bad in ["", "42", "djE6LTE", "!!!", &URL_SAFE_NO_PAD.encode("v2:1")] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }
}
