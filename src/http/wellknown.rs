//! Public key and discovery documents: the JWKS (RFC 7517), the authorization server metadata
//! (RFC 8414), and public keys as PEM. All served from memory.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::AppState;
use super::error::ApiError;
use crate::domain::GrantType;

/// How long verifiers may cache the JWKS, seconds. Short, so that a verifier honouring it
/// already holds the `next` key before it signs — provided rotations are at least this far
/// apart. Revalidation is cheap (ETag, 304).
pub const JWKS_MAX_AGE: u32 = 60;

/// `GET /.well-known/jwks.json`, with `ETag`/`If-None-Match`.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "keys",
    responses(
        (status = 200, description = "The published keys (Cache-Control max-age, ETag)", body = crate::http::openapi::JwkSet, content_type = "application/jwk-set+json"),
        (status = 304, description = "Not modified (If-None-Match)")
    )
)]
pub async fn jwks(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let ring = state.issuer.keys.current();
    let cache = format!("public, max-age={JWKS_MAX_AGE}");
    let not_modified = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',').any(|tag| {
                let tag = tag.trim();
                tag == "*" || tag.trim_start_matches("W/") == ring.etag
            })
        });
    let mut resp = if not_modified {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    resp.insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::ETAG, ring.etag.clone()));
    if not_modified {
        return resp.finish();
    }
    resp.content_type("application/jwk-set+json")
        .body(ring.jwks.clone())
}

/// `GET /.well-known/oauth-authorization-server` and `/.well-known/openid-configuration`.
#[utoipa::path(
    get,
    path = "/.well-known/oauth-authorization-server",
    tag = "keys",
    responses(
        (status = 200, description = "Authorization server metadata (RFC 8414)", body = crate::http::openapi::Metadata)
    )
)]
pub async fn metadata(state: web::Data<AppState>) -> HttpResponse {
    let s = &state.issuer.settings;
    let registry = state.issuer.registry.current();
    let scopes: Vec<&str> = registry.scopes().map(|d| d.name.as_str()).collect();
    let client_auth = ["client_secret_basic", "client_secret_post", "none"];
    // The algorithms machine assertions may be signed with.
    let algs: Vec<&str> = vec!["RS256", "RS384", "RS512", "ES256", "EdDSA"];
    HttpResponse::Ok()
        .insert_header((
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=3600"),
        ))
        .json(json!({
            "issuer": s.issuer,
            "token_endpoint": s.token_endpoint(),
            "jwks_uri": format!("{}/.well-known/jwks.json", s.issuer),
            "revocation_endpoint": format!("{}/oauth/revoke", s.issuer),
            "revocation_endpoint_auth_methods_supported": client_auth,
            // Not registered in RFC 8414: where resource servers follow revocations.
            "revocation_feed_endpoint": format!("{}/oauth/revocations", s.issuer),
            "introspection_endpoint": format!("{}/oauth/introspect", s.issuer),
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "bearer"],
            "grant_types_supported": GrantType::ALL.map(GrantType::as_str),
            "token_endpoint_auth_methods_supported": client_auth,
            "token_endpoint_auth_signing_alg_values_supported": algs,
            "response_types_supported": [],
            "scopes_supported": scopes,
        }))
}

fn pem_response(pem: &str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CACHE_CONTROL,
            format!("public, max-age={JWKS_MAX_AGE}"),
        ))
        .content_type("application/x-pem-file")
        .body(pem.to_owned())
}

/// `GET /keys/public.pem`: the active key.
#[utoipa::path(
    get,
    path = "/keys/public.pem",
    tag = "keys",
    responses(
        (status = 200, description = "The active key, PEM (SubjectPublicKeyInfo)", body = String, content_type = "application/x-pem-file")
    )
)]
pub async fn active_pem(state: web::Data<AppState>) -> HttpResponse {
    let ring = state.issuer.keys.current();
    let kid = ring.active.kid().to_owned();
    match ring.published(&kid) {
        Some(k) => pem_response(&k.pem),
        None => pem_response(&ring.active.public().pem()),
    }
}

/// `GET /keys/{kid}.pem`: any published key.
#[utoipa::path(
    get,
    path = "/keys/{file}",
    tag = "keys",
    params(("file" = String, Path, description = "`{kid}.pem`")),
    responses(
        (status = 200, description = "A published key, PEM", body = String, content_type = "application/x-pem-file"),
        (status = 400, description = "A control character in the path", body = crate::http::openapi::ErrorBody),
        (status = 404, description = "No published key with that kid", body = crate::http::openapi::ErrorBody)
    )
)]
pub async fn kid_pem(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let file = path.into_inner();
    let kid = file
        .strip_suffix(".pem")
        .ok_or_else(|| ApiError::NotFound("no such key".into()))?;
    let ring = state.issuer.keys.current();
    ring.published(kid)
        .map(|k| pem_response(&k.pem))
        .ok_or_else(|| ApiError::NotFound(format!("no published key with kid {kid:?}")))
}
