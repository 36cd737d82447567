//! The integrations: the actix-web extractor and actix-web-httpauth validator, the tower
//! layers. Each against a scripted JWKS server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::{App, HttpResponse, test, web};
use jwt_issuer_verify::tower::{RequireScopeLayer, VerifyLayer};
use jwt_issuer_verify::{Claims, Verifier};
use serde_json::Value;
use tower_layer::Layer;
use tower_service::Service;

mod common;
use common::*;

async fn setup() -> (Server, TestKey, Verifier, i64) {
    let key = TestKey::new("k1");
    let server = Server::start(Answer::jwks(&set(&[&key]), 300, "\"v1\"")).await;
    let clock = clock();
    let verifier = Verifier::builder(ISSUER)
        .jwks_uri(&server.url)
        .realm("orders")
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    (server, key, verifier, now(&clock))
}

async fn orders(claims: Claims) -> actix_web::Result<HttpResponse> {
    claims.require_scopes(&["orders:read"])?;
    Ok(HttpResponse::Ok().body(claims.sub))
}

async fn admin(claims: Claims) -> actix_web::Result<HttpResponse> {
    claims.require_scopes(&["orders:admin"])?;
    Ok(HttpResponse::Ok().finish())
}

#[actix_web::test]
async fn the_actix_extractor_answers_per_rfc_6750() {
    let (_server, key, verifier, t) = setup().await;
    let app = test::init_service(
        App::new()
            .app_data(verifier.clone())
            .route("/orders", web::get().to(orders))
            .route("/admin", web::get().to(admin)),
    )
    .await;
    let call = |auth: Option<String>, path: &'static str| {
        let mut req = test::TestRequest::get().uri(path);
        if let Some(auth) = auth {
            req = req.insert_header(("Authorization", auth));
        }
        req.to_request()
    };
    let good = key.token(t);
    let resp = test::call_service(&app, call(Some(format!("Bearer {good}")), "/orders")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(test::read_body(resp).await, "u1");

    let cases = [
        (None, "/orders", 401, r#"Bearer realm="orders""#),
        (
            Some("Basic YTpi".to_owned()),
            "/orders",
            401,
            r#"Bearer realm="orders""#,
        ),
        (
            Some("Bearer a b".to_owned()),
            "/orders",
            400,
            r#"Bearer realm="orders", error="invalid_request""#,
        ),
        (
            Some("Bearer xyz".to_owned()),
            "/orders",
            401,
            r#"Bearer realm="orders", error="invalid_token", error_description="the token is malformed""#,
        ),
        (
            Some(format!("Bearer {good}")),
            "/admin",
            403,
            r#"error="insufficient_scope""#,
        ),
    ];
    for (auth, path, status, challenge) in cases {
        let resp = test::call_service(&app, call(auth.clone(), path)).await;
        assert_eq!(resp.status(), status, "{auth:?}");
        let header = resp
            .headers()
            .get("WWW-Authenticate")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(header.contains(challenge), "{header}");
        let body: Value = serde_json::from_slice(&test::read_body(resp).await).unwrap();
        assert!(body["error"].is_string(), "{body}");
    }
}

#[actix_web::test]
async fn the_actix_extractor_without_a_verifier_is_a_server_error() {
    let app = test::init_service(App::new().route("/orders", web::get().to(orders))).await;
    let req = test::TestRequest::get()
        .uri("/orders")
        .insert_header(("Authorization", "Bearer abc"))
        .to_request();
    assert_eq!(test::call_service(&app, req).await.status(), 500);
}

#[actix_web::test]
async fn the_httpauth_validator_puts_the_claims_in_the_request() {
    use actix_web_httpauth::middleware::HttpAuthentication;
    let (_server, key, verifier, t) = setup().await;
    let app = test::init_service(
        App::new()
            .app_data(verifier.clone())
            .wrap(HttpAuthentication::bearer(
                jwt_issuer_verify::actix::validator,
            ))
            .route("/orders", web::get().to(orders)),
    )
    .await;
    let req = |token: &str| {
        test::TestRequest::get()
            .uri("/orders")
            .insert_header(("Authorization", format!("Bearer {token}")))
            .to_request()
    };
    let resp = test::call_service(&app, req(&key.token(t))).await;
    assert_eq!(resp.status(), 200);
    let resp = test::try_call_service(&app, req(&TestKey::new("k1").token(t))).await;
    let status = match resp {
        Ok(r) => r.status(),
        Err(e) => e.as_response_error().status_code(),
    };
    assert_eq!(status, 401);
}

/// A service answering with the verified subject.
#[derive(Clone)]
struct Subject;

impl Service<http::Request<()>> for Subject {
    type Response = http::Response<String>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<()>) -> Self::Future {
        let sub = req.extensions().get::<Claims>().map(|c| c.sub.clone());
        Box::pin(async move { Ok(http::Response::new(sub.unwrap_or_default())) })
    }
}

async fn send<S>(service: &mut S, auth: Option<&str>) -> http::Response<String>
where
    S: Service<http::Request<()>, Response = http::Response<String>, Error = Infallible>,
{
    std::future::poll_fn(|cx| service.poll_ready(cx))
        .await
        .unwrap();
    let mut req = http::Request::builder().uri("/orders");
    if let Some(auth) = auth {
        req = req.header("Authorization", auth);
    }
    service.call(req.body(()).unwrap()).await.unwrap()
}

#[tokio::test]
async fn the_tower_layers_verify_and_require_scopes() {
    let (_server, key, verifier, t) = setup().await;
    let good = format!("Bearer {}", key.token(t));
    let mut service = VerifyLayer::new(verifier.clone())
        .layer(RequireScopeLayer::new(["orders:read"]).layer(Subject));
    let resp = send(&mut service, Some(&good)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body(), "u1");
    let resp = send(&mut service, None).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["WWW-Authenticate"],
        r#"Bearer realm="orders""#
    );
    let resp = send(&mut service, Some("Bearer not.a.token")).await;
    assert_eq!(resp.status(), 401);
    assert!(
        resp.headers()["WWW-Authenticate"]
            .to_str()
            .unwrap()
            .contains(r#"error="invalid_token""#)
    );
    let mut strict = VerifyLayer::new(verifier)
        .layer(RequireScopeLayer::new(["orders:read", "orders:admin"]).layer(Subject));
    let resp = send(&mut strict, Some(&good)).await;
    assert_eq!(resp.status(), 403);
    assert!(
        resp.headers()["WWW-Authenticate"]
            .to_str()
            .unwrap()
            .contains(r#"scope="orders:read orders:admin""#)
    );
    // Without VerifyLayer in front, RequireScope finds no claims.
    let mut alone = RequireScopeLayer::new(["orders:read"]).layer(Subject);
    assert_eq!(send(&mut alone, Some(&good)).await.status(), 401);
}
