//! `POST /oauth/revoke` (RFC 7009), `POST /oauth/introspect` (RFC 7662) and the revocation feed
//! `GET /oauth/revocations`.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::{IntrospectApi, authenticate, bearer_token};
use super::client_auth;
use super::error::ApiError;
use super::params::Params;
use super::peer;
use crate::service::revocation::{self, Introspection};

/// `POST /oauth/revoke`: `token`, optional `token_type_hint`. Always 200 for a well-formed
/// request, whether or not the token was known (RFC 7009 §2.2). Possession of a token is the
/// authority to revoke it; client credentials, when sent, must be good (401 otherwise).
#[utoipa::path(
    post,
    path = "/oauth/revoke",
    tag = "oauth",
    request_body(content = crate::http::openapi::RevokeForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Revoked, or unknown (RFC 7009 §2.2)"),
        (status = 400, description = "Bad input: malformed body, wrong types, a value refused", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "Client credentials sent and wrong", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "A body over 16 KiB", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "A body that is not JSON", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable, or too many requests wait: retry later", body = crate::http::openapi::ErrorBody)
    ),
    security((), ("basic" = []))
)]
pub async fn revoke(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::from_body(&req, payload).await?;
    let creds = client_auth::credentials(&req, &params)?;
    if creds.client_id.is_some() || creds.secret.is_some() {
        state.issuer.registry.current().authenticate(&creds)?;
    }
    let token = params.required("token")?;
    let source = peer::client_address(&req).map(|a| a.to_string());
    state.issuer.revoke(token, source).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .finish())
}

/// `POST /oauth/introspect`, by one of two callers: a bearer token for `ISSUER_URL/admin` or
/// `ISSUER_URL/introspect` of a user with the role `admin` or `introspect`, who learns about any
/// token; or a confidential client authenticated with its secret (RFC 7662 §2.1), who learns
/// only about tokens meant for one of its audiences.
#[utoipa::path(
    post,
    path = "/oauth/introspect",
    tag = "oauth",
    request_body(content = crate::http::openapi::IntrospectForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The token's state", body = crate::http::openapi::IntrospectAnswer),
        (status = 400, description = "Bad input: malformed body, wrong types, a value refused", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "No caller: a bearer token with the role admin or introspect, or a confidential client", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The token is not for this audience, or lacks the role", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "A body over 16 KiB", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "A body that is not JSON", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable, or too many requests wait: retry later", body = crate::http::openapi::ErrorBody)
    ),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn introspect(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let bearer = bearer_token(&req)?.is_some();
    if bearer {
        authenticate::<IntrospectApi>(&req).await?;
    }
    let params = Params::from_body(&req, payload).await?;
    let client = if bearer {
        None
    } else {
        let creds = client_auth::credentials(&req, &params)?;
        if creds.client_id.is_none() {
            return Err(ApiError::Unauthorized {
                error: None,
                description:
                    "introspection needs a bearer access token or a confidential client's credentials"
                        .into(),
            });
        }
        let client = state.issuer.registry.current().authenticate(&creds)?;
        if !client.confidential {
            return Err(ApiError::InvalidClient(
                "introspection needs a confidential client authenticated with its secret".into(),
            ));
        }
        Some(client)
    };
    let token = params.required("token")?;
    let mut found = state.issuer.introspect(token).await?;
    if let Some(client) = client {
        found = found.visible_to(&client);
    }
    let body = match found {
        Introspection::Inactive => json!({"active": false}),
        Introspection::Access(c) => strip_nulls(json!({
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
        })),
        Introspection::Refresh {
            sub,
            username,
            exp,
            iat,
            client_id,
            scope,
            aud,
        } => json!({
            "active": true,
            "token_type": "refresh_token",
            "sub": sub,
            "username": username,
            "exp": exp,
            "iat": iat,
            "client_id": client_id,
            "scope": scope,
            "aud": aud,
            "iss": state.issuer.settings.issuer,
        }),
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .json(body))
}

/// Drops the members whose value is null (a client token has no `username`).
fn strip_nulls(mut v: Value) -> Value {
    if let Value::Object(map) = &mut v {
        map.retain(|_, v| !v.is_null());
    }
    v
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedQuery {
    after: Option<String>,
    limit: Option<i64>,
}

/// `GET /oauth/revocations?after=CURSOR&limit=N`: revoked access tokens not yet expired, oldest
/// first; resume from the returned `cursor`.
#[utoipa::path(
    get,
    path = "/oauth/revocations",
    tag = "oauth",
    params(("after" = Option<String>, Query, description = "The cursor of the previous page"), ("limit" = Option<i64>, Query, description = "1 to 1000 (default)")),
    responses(
        (status = 200, description = "Revoked access tokens not yet expired, oldest first", body = crate::http::openapi::FeedPage),
        (status = 400, description = "Bad input: malformed body, wrong types, a value refused", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable, or too many requests wait: retry later", body = crate::http::openapi::ErrorBody)
    )
)]
pub async fn feed(
    query: web::Query<FeedQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let after = match query.after.as_deref() {
        None | Some("") => 0,
        Some(cursor) => decode_cursor(cursor).ok_or_else(|| {
            ApiError::InvalidRequest("after is not a cursor this feed returned".into())
        })?,
    };
    let limit = query.limit.unwrap_or(FEED_MAX);
    if !(1..=FEED_MAX).contains(&limit) {
        return Err(ApiError::InvalidRequest(format!(
            "limit must be an integer from 1 to {FEED_MAX}"
        )));
    }
    let page = state
        .issuer
        .run({
            let now = state.issuer.settings.clock.now();
            move |conn| revocation::feed_page(conn, after, limit, now)
        })
        .await?;
    let revoked: Vec<Value> = page
        .revoked
        .iter()
        .map(|(jti, exp)| json!({"jti": jti, "exp": exp}))
        .collect();
    let next = page.next;
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
