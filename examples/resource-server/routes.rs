// The example resource server's routes: they accept only access tokens of one jwt-issuer,
// checked offline by `jwt-issuer-verify`, which also follows the issuer's revocation feed.
// (Also compiled into the API tests, which walk through the README's example with it.)
//
// - `GET /whoami`: the token's subject, username, client, scope and roles.
// - `GET /orders`: needs the `orders:read` scope (403 `insufficient_scope` without it).
// - `GET /healthz`: no token needed.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use jwt_issuer_verify::{Builder, Claims, Verifier};
use serde_json::json;

/// The verifier this service uses: tokens of `issuer` for `audience` (the issuer itself by
/// default, as jwt-issuer's default client grants), the revocation feed read every
/// `feed_interval`. `.build().await` it.
pub fn verifier(issuer: &str, audience: Option<&str>, feed_interval: Duration) -> Builder {
    let builder = Verifier::builder(issuer)
        .realm("resource-server")
        .revocation_interval(feed_interval);
    match audience {
        Some(audience) => builder.audience(audience),
        None => builder,
    }
}

/// The routes; the verifier goes in the app's data (`App::new().app_data(verifier)`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/whoami", web::get().to(whoami))
        .route("/orders", web::get().to(orders))
        .route(
            "/healthz",
            web::get().to(|| async { HttpResponse::Ok().body("ok") }),
        );
}

async fn whoami(claims: Claims) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "sub": claims.sub,
        "username": claims.extra.username,
        "client_id": claims.client_id,
        "scope": claims.scope,
        "roles": claims.extra.roles,
    }))
}

async fn orders(claims: Claims) -> actix_web::Result<HttpResponse> {
    claims.require_scopes(&["orders:read"])?;
    Ok(HttpResponse::Ok().json(json!({"orders": [], "for": claims.sub})))
}
