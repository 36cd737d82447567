//! The HTTP edge (actix-web): every route in one place ([`routes`]), the shared state, and the
//! middleware that applies to all of them. Handlers parse requests into domain values, call the
//! service layer and shape responses; they know HTTP, not SQL: nothing here uses `db` or
//! diesel (`tests/layers.rs` checks).

pub mod admin;
pub mod auth;
pub mod client_auth;
pub mod clients;
pub mod error;
pub mod health;
pub mod me;
pub mod metrics;
pub mod params;
pub mod peer;
pub mod revocation;
pub mod simplejwt;
pub mod token;
pub mod wellknown;

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, ResponseError as _, web};
use tracing::Instrument as _;

use crate::service::Issuer;
use error::ApiError;
use params::MAX_BODY;

/// The state every handler shares: the issuer (each shared thing once) and this instance's
/// metrics.
pub struct AppState {
    /// The service the handlers call.
    pub issuer: Issuer,
    /// This instance's metrics (`/metrics`).
    pub metrics: metrics::Metrics,
}

/// Registers every route; `/metrics` only with `with_metrics` (without, it has its own
/// listener: [`metrics_routes`]).
pub fn routes(cfg: &mut web::ServiceConfig, with_metrics: bool) {
    if with_metrics {
        metrics_routes(cfg);
    }
    cfg.service(resource("/.well-known/jwks.json").route(web::get().to(wellknown::jwks)))
        .service(
            resource("/.well-known/oauth-authorization-server")
                .route(web::get().to(wellknown::metadata)),
        )
        .service(
            resource("/.well-known/openid-configuration").route(web::get().to(wellknown::metadata)),
        )
        .service(resource("/keys/public.pem").route(web::get().to(wellknown::active_pem)))
        .service(resource("/keys/{file}").route(web::get().to(wellknown::kid_pem)))
        .service(resource("/oauth/token").route(web::post().to(token::token)))
        .service(resource("/oauth/revoke").route(web::post().to(revocation::revoke)))
        .service(resource("/oauth/introspect").route(web::post().to(revocation::introspect)))
        .service(resource("/oauth/revocations").route(web::get().to(revocation::feed)))
        .service(resource("/me").route(web::get().to(me::me)))
        .service(
            resource("/me/sessions")
                .route(web::get().to(me::sessions))
                .route(web::delete().to(me::end_all_sessions)),
        )
        .service(resource("/me/sessions/{id}").route(web::delete().to(me::end_session)))
        .service(resource("/me/password").route(web::post().to(me::change_password)))
        .service(resource("/admin/keys").route(web::get().to(admin::list_keys)))
        .service(resource("/admin/keys/rotate").route(web::post().to(admin::rotate_keys)))
        .service(resource("/admin/keys/{kid}/revoke").route(web::post().to(admin::revoke_key)))
        .service(
            resource("/admin/users")
                .route(web::get().to(admin::list_users))
                .route(web::post().to(admin::create_user)),
        )
        .service(
            resource("/admin/users/{username}")
                .route(web::patch().to(admin::update_user))
                .route(web::delete().to(admin::delete_user)),
        )
        .service(
            resource("/admin/users/{username}/password")
                .route(web::put().to(admin::reset_password)),
        )
        .service(
            resource("/admin/users/{username}/sessions")
                .route(web::get().to(admin::list_sessions))
                .route(web::delete().to(admin::end_sessions)),
        )
        .service(
            resource("/admin/users/{username}/keys")
                .route(web::get().to(admin::list_client_keys))
                .route(web::post().to(admin::add_client_key)),
        )
        .service(
            resource("/admin/users/{username}/keys/{id}")
                .route(web::delete().to(admin::delete_client_key)),
        )
        .service(resource("/admin/audit").route(web::get().to(admin::audit_log)))
        .service(
            resource("/admin/clients")
                .route(web::get().to(clients::list_clients))
                .route(web::post().to(clients::create_client)),
        )
        .service(
            resource("/admin/clients/{id}")
                .route(web::get().to(clients::show_client))
                .route(web::patch().to(clients::update_client))
                .route(web::delete().to(clients::delete_client)),
        )
        .service(
            resource("/admin/scopes")
                .route(web::get().to(clients::list_scopes))
                .route(web::post().to(clients::create_scope)),
        )
        .service(resource("/admin/scopes/{name}").route(web::delete().to(clients::delete_scope)))
        .service(simplejwt_resource("/api/token/", simplejwt::obtain))
        .service(simplejwt_resource(
            "/api/token/refresh/",
            simplejwt::refresh,
        ))
        .service(simplejwt_resource("/api/token/verify/", simplejwt::verify))
        .service(simplejwt_resource(
            "/api/token/blacklist/",
            simplejwt::blacklist,
        ))
        .service(resource("/healthz").route(web::get().to(health::healthz)))
        .service(resource("/readyz").route(web::get().to(health::readyz)))
        .default_service(web::to(not_found));
}

/// `/metrics`, for the main listener or its own (`--metrics-bind`).
pub fn metrics_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/metrics").route(web::get().to(metrics::metrics)));
}

/// A resource whose other methods get a JSON 405.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(|| async {
        Err::<&str, _>(ApiError::MethodNotAllowed)
    }))
}

/// A djangorestframework-simplejwt endpoint: `POST` to `handler`, other methods DRF's answers.
fn simplejwt_resource<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::post().to(handler))
        .default_service(web::to(simplejwt::not_allowed))
}

pub async fn not_found(req: HttpRequest) -> Result<&'static str, ApiError> {
    Err(ApiError::NotFound(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}

/// Refuses bodies announced larger than [`MAX_BODY`] before any handler runs (bodies sent
/// without a length are cut off by [`params::read_body`]).
pub async fn limit_body(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let too_big = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|len| len > MAX_BODY as u64);
    if too_big {
        let resp = ApiError::PayloadTooLarge(MAX_BODY).error_response();
        return Ok(req.into_response(resp).map_into_right_body());
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// `HEAD` is answered as `GET` is, without the body (RFC 9110 §9.3.2): routed as `GET`, while
/// the HTTP layer, which saw `HEAD`, sends the same headers (`Content-Length` included) and no
/// body. Routes without `GET` answer it 405, as before.
pub async fn head_as_get(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if req.method() == actix_web::http::Method::HEAD {
        req.head_mut().method = actix_web::http::Method::GET;
    }
    next.call(req).await
}

/// The longest `X-Request-Id` kept from a request.
const MAX_REQUEST_ID: usize = 128;

/// The request's id: its `X-Request-Id` when well-formed (1 to [`MAX_REQUEST_ID`] characters
/// of letters, digits and `-_.:/+=@`; a proxy or a client chose it), else a new one.
fn request_id(req: &ServiceRequest) -> String {
    let allowed = |c: u8| c.is_ascii_alphanumeric() || b"-_.:/+=@".contains(&c);
    let mut given = req.headers().get_all(REQUEST_ID);
    match (given.next(), given.next()) {
        (Some(v), None)
            if (1..=MAX_REQUEST_ID).contains(&v.len())
                && v.as_bytes().iter().all(|&c| allowed(c)) =>
        {
            String::from_utf8_lossy(v.as_bytes()).into_owned()
        }
        _ => uuid::Uuid::new_v4().simple().to_string(),
    }
}

const REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");

/// One span per request, with its id (echoed as `X-Request-Id`), method and route pattern:
/// every line logged while the request is answered carries them. When it has been answered,
/// one line adds the status and the latency. The path itself is not logged (the pattern is):
/// paths and query strings may carry usernames and tokens.
pub async fn request_log(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = request_id(&req);
    let route = req.match_pattern();
    let route = route.as_deref().unwrap_or("unmatched");
    let method = req.method().clone();
    let span = tracing::info_span!("request", request_id = %id, %method, route);
    let start = Instant::now();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let mut resp = next.call(req).instrument(span.clone()).await?;
    let elapsed = start.elapsed();
    let status = resp.status().as_u16();
    if let Some(state) = state {
        state
            .metrics
            .response(method.as_str(), route, status, elapsed);
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    span.in_scope(|| tracing::info!(status, latency_ms, "answered"));
    Ok(resp)
}
