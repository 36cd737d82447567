//! Malformed and hostile requests get clear 4xx JSON errors, never a 500.

use crate::both_backends;
use crate::helpers::{Backend, spawn_app};

both_backends!(
    token_endpoint_rejects_malformed_requests_with_oauth_errors,
    oversized_bodies_get_413,
    unknown_routes_and_methods_get_json_errors,
    head_answers_every_get_endpoint_with_its_headers_and_no_body,
);

async fn token_endpoint_rejects_malformed_requests_with_oauth_errors(backend: Backend) {
    let app = spawn_app(&backend).await;
    app.post_token(&[("username", "admin")])
        .await
        .assert_error(400, "invalid_request");
    app.post_token(&[("grant_type", "authorization_code"), ("code", "x")])
        .await
        .assert_error(400, "unsupported_grant_type");
    app.post_token(&[("grant_type", "password"), ("username", "admin")])
        .await
        .assert_error(400, "invalid_request");
    app.post_token(&[("grant_type", "password"), ("password", "x")])
        .await
        .assert_error(400, "invalid_request");
    app.post_token(&[
        ("grant_type", "password"),
        ("username", "admin"),
        ("password", "x"),
        ("scope", "a\"b"),
    ])
    .await
    .assert_error(400, "invalid_scope");
    app.post_token(&[
        ("grant_type", "password"),
        ("username", "admin"),
        ("password", "x"),
        ("audience", "a b"),
    ])
    .await
    .assert_error(400, "invalid_target");
    app.post_token(&[
        ("grant_type", "password"),
        ("username", "admin"),
        ("password", "x"),
        ("client_id", "a\u{7f}"),
    ])
    .await
    .assert_error(401, "invalid_client");
    app.post_token(&[
        ("grant_type", "password"),
        ("username", "admin"),
        ("password", "x"),
        ("client_secret", "s"),
    ])
    .await
    .assert_error(401, "invalid_client");
    // Repeated parameters (RFC 6749 §3.2).
    app.post_raw(
        "/oauth/token",
        "application/x-www-form-urlencoded",
        "grant_type=password&grant_type=refresh_token",
    )
    .await
    .assert_error(400, "invalid_request");
    // JSON that is not an object of strings.
    for body in [
        "{",
        "[]",
        "\"x\"",
        r#"{"grant_type": 1}"#,
        r#"{"grant_type": ["password"]}"#,
    ] {
        app.post_raw("/oauth/token", "application/json", body)
            .await
            .assert_error(400, "invalid_request");
    }
    // Neither form nor JSON.
    app.post_raw("/oauth/token", "text/plain", "grant_type=password")
        .await
        .assert_error(415, "unsupported_media_type");
    let resp = crate::helpers::read(
        app.client
            .post(app.url("/oauth/token"))
            .send_body("grant_type=password")
            .await
            .unwrap(),
    )
    .await;
    resp.assert_error(400, "invalid_request");
    // Invalid UTF-8 and NUL bytes in a form.
    app.post_raw(
        "/oauth/token",
        "application/x-www-form-urlencoded",
        b"grant_type=password&username=%ff%fe&password=%00".to_vec(),
    )
    .await
    .assert_error(400, "invalid_grant");
    // Nothing was lost: the admin can still log in.
    app.login_admin().await;
}

async fn oversized_bodies_get_413(backend: Backend) {
    let app = spawn_app(&backend).await;
    let big = format!(
        "grant_type=password&username=admin&password={}",
        "x".repeat(17 * 1024)
    );
    app.post_raw(
        "/oauth/token",
        "application/x-www-form-urlencoded",
        big.clone(),
    )
    .await
    .assert_error(413, "payload_too_large");
    // Without a Content-Length (chunked), the limit still holds.
    let stream = futures_util::stream::iter(
        big.into_bytes()
            .chunks(1024)
            .map(|c| Ok::<_, std::io::Error>(actix_web::web::Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    );
    let resp = app
        .client
        .post(app.url("/oauth/token"))
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .send_stream(stream)
        .await
        .unwrap();
    crate::helpers::read(resp)
        .await
        .assert_error(413, "payload_too_large");
    // Just under the limit is fine (and simply a wrong password).
    let fits = format!(
        "grant_type=password&username=admin&password={}",
        "x".repeat(1000)
    );
    app.post_raw("/oauth/token", "application/x-www-form-urlencoded", fits)
        .await
        .assert_error(400, "invalid_grant");
}

async fn unknown_routes_and_methods_get_json_errors(backend: Backend) {
    let app = spawn_app(&backend).await;
    app.get("/nope").await.assert_error(404, "not_found");
    app.get("/oauth/token")
        .await
        .assert_error(405, "method_not_allowed");
    app.post_raw("/.well-known/jwks.json", "application/json", "{}")
        .await
        .assert_error(405, "method_not_allowed");
    app.get("/keys/unknown.pem")
        .await
        .assert_error(404, "not_found");
    app.get("/keys/unknown")
        .await
        .assert_error(404, "not_found");
    // A control character in a path is refused before any route (hardening.rs).
    app.get("/keys/%00%ff.pem")
        .await
        .assert_error(400, "invalid_request");
    app.get("/keys/%ff.pem")
        .await
        .assert_error(404, "not_found");
}

async fn head_answers_every_get_endpoint_with_its_headers_and_no_body(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = app.admin_token().await;
    let bearer = format!("Bearer {admin}");
    for path in [
        "/healthz",
        "/readyz",
        "/.well-known/jwks.json",
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/keys/public.pem",
        "/oauth/revocations",
        "/metrics",
        "/admin/keys",
        "/admin/users",
    ] {
        let url = app.url(path);
        let mut get = app
            .client
            .get(&url)
            .insert_header(("Authorization", bearer.as_str()))
            .send()
            .await
            .unwrap();
        let get_body = get.body().await.unwrap();
        let mut head = app
            .client
            .head(&url)
            .insert_header(("Authorization", bearer.as_str()))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), get.status(), "{path}");
        assert_eq!(head.status(), 200, "{path}");
        for name in ["content-type", "cache-control", "etag"] {
            assert_eq!(
                head.headers().get(name),
                get.headers().get(name),
                "{path}: {name}"
            );
        }
        let length = head
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        // The metrics count the GET just made (a new series for HEAD, CPU time): their length
        // differs.
        if path == "/metrics" {
            assert!(length.is_some_and(|n| n > 0), "{path}");
        } else {
            assert_eq!(length, Some(get_body.len()), "{path}");
        }
        assert!(head.body().await.unwrap().is_empty(), "{path}");
    }
    // Routes without GET still refuse HEAD.
    let head = app
        .client
        .head(app.url("/oauth/token"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 405);
}
