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
pub mod openapi;
pub mod params;
pub mod peer;
pub mod revocation;
pub mod simplejwt;
pub mod token;
pub mod wellknown;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, ResponseError as _, web};

use crate::logs::lines;
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

/// A registered route: its method and path pattern.
pub type Route = (Method, &'static str);

/// Registers every route; `/metrics` only with `with_metrics` (without, it has its own
/// listener: [`metrics_routes`]). Returns what it registered: the OpenAPI document must list
/// exactly these (a test checks).
pub fn routes(cfg: &mut web::ServiceConfig, with_metrics: bool) -> Vec<Route> {
    use Method as M;
    let mut t = Table {
        cfg,
        routes: Vec::new(),
    };
    if with_metrics {
        t.add(at("/metrics").on(M::GET, metrics::metrics));
    }
    t.add(at("/.well-known/jwks.json").on(M::GET, wellknown::jwks));
    t.add(at("/.well-known/oauth-authorization-server").on(M::GET, wellknown::metadata));
    t.add(at("/.well-known/openid-configuration").on(M::GET, wellknown::metadata));
    t.add(at("/openapi.json").on(M::GET, openapi::document));
    t.add(at("/keys/public.pem").on(M::GET, wellknown::active_pem));
    t.add(at("/keys/{file}").on(M::GET, wellknown::kid_pem));
    t.add(at("/oauth/token").on(M::POST, token::token));
    t.add(at("/oauth/revoke").on(M::POST, revocation::revoke));
    t.add(at("/oauth/introspect").on(M::POST, revocation::introspect));
    t.add(at("/oauth/revocations").on(M::GET, revocation::feed));
    t.add(at("/me").on(M::GET, me::me));
    t.add(
        at("/me/sessions")
            .on(M::GET, me::sessions)
            .on(M::DELETE, me::end_all_sessions),
    );
    t.add(at("/me/sessions/{id}").on(M::DELETE, me::end_session));
    t.add(at("/me/password").on(M::POST, me::change_password));
    t.add(at("/admin/keys").on(M::GET, admin::list_keys));
    t.add(at("/admin/keys/rotate").on(M::POST, admin::rotate_keys));
    t.add(at("/admin/keys/{kid}/revoke").on(M::POST, admin::revoke_key));
    t.add(
        at("/admin/users")
            .on(M::GET, admin::list_users)
            .on(M::POST, admin::create_user),
    );
    t.add(
        at("/admin/users/{username}")
            .on(M::PATCH, admin::update_user)
            .on(M::DELETE, admin::delete_user),
    );
    t.add(at("/admin/users/{username}/password").on(M::PUT, admin::reset_password));
    t.add(
        at("/admin/users/{username}/sessions")
            .on(M::GET, admin::list_sessions)
            .on(M::DELETE, admin::end_sessions),
    );
    t.add(
        at("/admin/users/{username}/keys")
            .on(M::GET, admin::list_client_keys)
            .on(M::POST, admin::add_client_key),
    );
    t.add(at("/admin/users/{username}/keys/{id}").on(M::DELETE, admin::delete_client_key));
    t.add(at("/admin/audit").on(M::GET, admin::audit_log));
    t.add(
        at("/admin/clients")
            .on(M::GET, clients::list_clients)
            .on(M::POST, clients::create_client),
    );
    t.add(
        at("/admin/clients/{id}")
            .on(M::GET, clients::show_client)
            .on(M::PATCH, clients::update_client)
            .on(M::DELETE, clients::delete_client),
    );
    t.add(
        at("/admin/scopes")
            .on(M::GET, clients::list_scopes)
            .on(M::POST, clients::create_scope),
    );
    t.add(at("/admin/scopes/{name}").on(M::DELETE, clients::delete_scope));
    t.add(drf("/api/token/").on(M::POST, simplejwt::obtain));
    t.add(drf("/api/token/refresh/").on(M::POST, simplejwt::refresh));
    t.add(drf("/api/token/verify/").on(M::POST, simplejwt::verify));
    t.add(drf("/api/token/blacklist/").on(M::POST, simplejwt::blacklist));
    t.add(at("/healthz").on(M::GET, health::healthz));
    t.add(at("/readyz").on(M::GET, health::readyz));
    t.cfg.default_service(web::to(not_found));
    t.routes
}

/// `/metrics`, on its own listener (`--metrics-bind`).
pub fn metrics_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/metrics").route(web::get().to(metrics::metrics)));
}

/// Registers resources and keeps the list of their routes.
struct Table<'a> {
    cfg: &'a mut web::ServiceConfig,
    routes: Vec<Route>,
}

impl Table<'_> {
    fn add(&mut self, at: At) {
        self.routes
            .extend(at.methods.iter().map(|m| (m.clone(), at.path)));
        self.cfg.service(at.resource);
    }
}

/// One path and its methods.
pub struct At {
    path: &'static str,
    resource: actix_web::Resource,
    methods: Vec<Method>,
}

/// A path whose other methods get a JSON 405.
fn at(path: &'static str) -> At {
    At::on_resource(path, resource(path))
}

/// A djangorestframework-simplejwt endpoint: other methods get DRF's answers.
fn drf(path: &'static str) -> At {
    At::on_resource(
        path,
        web::resource(path).default_service(web::to(simplejwt::not_allowed)),
    )
}

impl At {
    fn on_resource(path: &'static str, resource: actix_web::Resource) -> Self {
        Self {
            path,
            resource,
            methods: Vec::new(),
        }
    }

    /// `method` answered by `handler`.
    pub fn on<F, Args>(mut self, method: Method, handler: F) -> Self
    where
        F: actix_web::Handler<Args>,
        Args: actix_web::FromRequest + 'static,
        F::Output: actix_web::Responder + 'static,
    {
        self.resource = self
            .resource
            .route(web::route().method(method.clone()).to(handler));
        self.methods.push(method);
        self
    }
}

/// A resource whose other methods get a JSON 405.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(|| async {
        Err::<&str, _>(ApiError::MethodNotAllowed)
    }))
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

/// `X-Content-Type-Options: nosniff` on every answer, and `Cache-Control: no-store` with
/// `Pragma: no-cache` on the answers that carry tokens or user or admin data: `/me`, `/admin/*`,
/// the token, revocation and introspection endpoints and simplejwt's (CONTRACT §8, RFC 6749
/// §5.1). Also refuses a path that holds a percent-encoded control character (`%00`…`%1F`,
/// `%7F`): no route takes one, and PostgreSQL refuses a NUL in text.
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let path = req.path();
    let private = path == "/me"
        || ["/me/", "/admin/", "/api/token/"]
            .iter()
            .any(|p| path.starts_with(p))
        || matches!(path, "/oauth/token" | "/oauth/revoke" | "/oauth/introspect");
    let mut resp = if has_encoded_control(req.uri().path()) {
        let resp =
            ApiError::InvalidRequest("the path holds a control character".into()).error_response();
        req.into_response(resp).map_into_right_body()
    } else {
        next.call(req).await?.map_into_left_body()
    };
    let headers = resp.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if private {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
    Ok(resp)
}

/// Whether a raw (percent-encoded) path encodes a control character.
fn has_encoded_control(path: &str) -> bool {
    path.as_bytes().windows(3).any(|w| {
        w[0] == b'%'
            && matches!(
                (w[1], w[2].to_ascii_lowercase()),
                (b'0' | b'1', b'0'..=b'9' | b'a'..=b'f') | (b'7', b'f')
            )
    })
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

thread_local! {
    /// [`route_of`]'s answers for the paths that spell out their own route pattern, per worker
    /// thread (an actix worker thread serves one app): one entry per static route at most,
    /// whatever paths clients send.
    static STATIC_ROUTES: RefCell<HashMap<Box<str>, Rc<str>>> = RefCell::default();
}

/// The pattern of the route that answers `req`, or `unmatched`. Asking the router walks the
/// resources anew at each request (1.3% of the workers' CPU in a JWKS flood, `perf`); a static
/// route's answer is kept ([`STATIC_ROUTES`]).
fn route_of(req: &ServiceRequest) -> Rc<str> {
    let path = req.path();
    if let Some(route) = STATIC_ROUTES.with_borrow(|known| known.get(path).cloned()) {
        return route;
    }
    match req.match_pattern() {
        Some(pattern) if pattern == path => {
            let route: Rc<str> = pattern.into();
            STATIC_ROUTES.with_borrow_mut(|known| known.insert(path.into(), route.clone()));
            route
        }
        Some(pattern) => pattern.into(),
        None => "unmatched".into(),
    }
}

const REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");

/// Every line logged while a request is answered names it ([`lines::Request`]: its id, echoed
/// as `X-Request-Id`, method and route pattern). When it has been answered, one line adds the
/// status and the latency. The path itself is not logged (the pattern is): paths and query
/// strings may carry usernames and tokens.
pub async fn request_log(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request = Rc::new(lines::Request {
        id: request_id(&req),
        method: req.method().clone(),
        route: route_of(&req),
    });
    let start = Instant::now();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let mut resp = request.clone().scope(next.call(req)).await?;
    let elapsed = start.elapsed();
    let status = resp.status().as_u16();
    if let Some(state) = state {
        state
            .metrics
            .response(request.method.as_str(), &request.route, status, elapsed);
    }
    if let Ok(v) = HeaderValue::from_str(&request.id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    // To the microsecond: `0.077`, not `0.07662500000000001`.
    let latency_ms = elapsed.as_micros() as f64 / 1000.0;
    request.sync_scope(|| tracing::info!(status, latency_ms, "answered"));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{App, HttpResponse, middleware::from_fn, test};

    /// Answers with the route `route_of` found, in `x-route`.
    async fn echo_route(
        req: ServiceRequest,
        next: Next<impl MessageBody + 'static>,
    ) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
        let route = route_of(&req);
        let mut resp = next.call(req).await?;
        let value = HeaderValue::from_str(&route).unwrap();
        resp.headers_mut()
            .insert(header::HeaderName::from_static("x-route"), value);
        Ok(resp)
    }

    #[actix_web::test]
    async fn route_patterns_are_remembered_for_static_routes_only() {
        let app = test::init_service(
            App::new()
                .wrap(from_fn(echo_route))
                .route("/jwks", web::get().to(HttpResponse::Ok))
                .route("/users/{name}", web::get().to(HttpResponse::Ok)),
        )
        .await;
        let route = async |uri: &str| {
            let req = test::TestRequest::get().uri(uri).to_request();
            let resp = test::call_service(&app, req).await;
            resp.headers()
                .get("x-route")
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned()
        };
        for i in 0..100 {
            assert_eq!(route(&format!("/users/u{i}")).await, "/users/{name}");
            assert_eq!(route(&format!("/none/{i}")).await, "unmatched");
            assert_eq!(route("/jwks").await, "/jwks");
        }
        STATIC_ROUTES.with_borrow(|known| {
            assert_eq!(known.keys().map(|k| &**k).collect::<Vec<_>>(), ["/jwks"]);
        });
    }
}
