//! The password grant: tokens, claims, offline verification, throttling.

use crate::both_backends;
use crate::helpers::{Backend, claims_of, spawn_app, spawn_app_with, verify_with_jwks};

both_backends!(
    password_login_returns_a_verifiable_access_token_and_a_refresh_token,
    es256_issuer_signs_es256_tokens,
    login_carries_scope_audience_and_client_id,
    wrong_password_and_unknown_user_get_the_same_answer,
    repeated_failures_are_throttled_with_retry_after,
    json_bodies_are_accepted_like_forms,
    basic_auth_client_id_without_secret_is_accepted,
);

async fn password_login_returns_a_verifiable_access_token_and_a_refresh_token(backend: Backend) {
    let app = spawn_app(&backend).await;
    let resp = app.login("admin", &app.admin_password()).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(resp.header("pragma").as_deref(), Some("no-cache"));
    let body = resp.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["scope"], "");
    let refresh = body["refresh_token"].as_str().unwrap();
    // 256 bits, base64url without padding: exactly 43 characters of that alphabet, each
    // decoding to 32 random bytes (two logins never share one).
    assert_eq!(refresh.len(), 43, "{refresh}");
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(refresh)
        .expect("base64url");
    assert_eq!(bytes.len(), 32);

    let token = body["access_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let claims = verify_with_jwks(&app, token)
        .await
        .expect("verifies with the JWKS alone");
    assert_eq!(claims["iss"], app.address.as_str());
    assert_eq!(claims["aud"], app.address.as_str());
    assert_eq!(claims["username"], "admin");
    assert_eq!(claims["roles"], serde_json::json!(["admin"]));
    assert_eq!(claims["client_id"], "default");
    assert_eq!(claims["token_type"], "access");
    assert_eq!(claims["scope"], "");
    assert!(uuid::Uuid::parse_str(claims["sub"].as_str().unwrap()).is_ok());
    let (iat, exp, nbf) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
        claims["nbf"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 300);
    assert_eq!(nbf, iat);
    let other = app.login_admin().await;
    // Time-ordered (UUID version 7): each token's row lands at the end of the issued tokens'
    // index instead of on a random page of it (issue 12).
    let jti = |c: &serde_json::Value| uuid::Uuid::parse_str(c["jti"].as_str().unwrap()).unwrap();
    let (first, second) = (
        jti(&claims),
        jti(&claims_of(other["access_token"].as_str().unwrap())),
    );
    assert_eq!(first.get_version_num(), 7, "{first}");
    assert!(second > first, "{second} after {first}");
    assert_ne!(other["refresh_token"].as_str().unwrap(), refresh);
}

async fn es256_issuer_signs_es256_tokens(backend: Backend) {
    let app = spawn_app_with(&backend, &["--alg", "ES256", "--access-ttl", "60"]).await;
    let body = app.login_admin().await;
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(token).unwrap().alg,
        jsonwebtoken::Algorithm::ES256
    );
    assert_eq!(body["expires_in"], 60);
    verify_with_jwks(&app, token).await.unwrap();
    let jwks = app.get("/.well-known/jwks.json").await.json();
    let kid = crate::helpers::TestApp::kid_of(token);
    let active = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap();
    assert_eq!(active["kty"], "EC");
    assert_eq!(active["crv"], "P-256");
    assert_eq!(active["alg"], "ES256");
    let es256 = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["alg"] == "ES256")
        .count();
    assert_eq!(es256, 4, "the active key and three queued ES256 keys");
}

async fn login_carries_scope_audience_and_client_id(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = app.admin_token().await;
    app.add_scope(&admin, "read", &[]).await;
    app.add_scope(&admin, "write", &[]).await;
    app.add_client(
        &admin,
        serde_json::json!({"client_id": "spa-frontend", "audiences": ["https://api.example.com"], "scopes": ["read", "write"]}),
    )
    .await;
    let pw = app.admin_password();
    let resp = app
        .post_token(&[
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", &pw),
            ("scope", "read write read"),
            ("audience", "https://api.example.com"),
            ("client_id", "spa-frontend"),
        ])
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let body = resp.json();
    assert_eq!(body["scope"], "read write");
    let claims = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(claims["scope"], "read write");
    assert_eq!(claims["aud"], "https://api.example.com");
    assert_eq!(claims["client_id"], "spa-frontend");
    // The refreshed token keeps all three.
    let again = app
        .post_token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", body["refresh_token"].as_str().unwrap()),
            ("client_id", "spa-frontend"),
        ])
        .await
        .json();
    let claims = claims_of(again["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], "https://api.example.com");
    assert_eq!(claims["client_id"], "spa-frontend");
    assert_eq!(claims["scope"], "read write");
}

async fn wrong_password_and_unknown_user_get_the_same_answer(backend: Backend) {
    let app = spawn_app(&backend).await;
    let wrong = app.login("admin", "not the password").await;
    let unknown = app.login("nobody", "not the password").await;
    let impossible = app.login(&"x".repeat(500), "not the password").await;
    for resp in [&wrong, &unknown, &impossible] {
        resp.assert_error(400, "invalid_grant");
    }
    assert_eq!(wrong.json(), unknown.json());
    assert_eq!(wrong.json(), impossible.json());
}

async fn repeated_failures_are_throttled_with_retry_after(backend: Backend) {
    let app = spawn_app(&backend).await;
    for _ in 0..5 {
        app.login("admin", "wrong password")
            .await
            .assert_error(400, "invalid_grant");
    }
    // Locked now: even the right password is refused until Retry-After.
    let locked = app.login("admin", &app.admin_password()).await;
    locked.assert_error(429, "too_many_requests");
    let retry: u64 = locked.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    // Unknown names are throttled the same way, so the lock reveals nothing.
    for _ in 0..5 {
        app.login("ghost", "wrong password")
            .await
            .assert_error(400, "invalid_grant");
    }
    app.login("ghost", "wrong password")
        .await
        .assert_error(429, "too_many_requests");
    // Other users are unaffected.
    app.login("someone-else", "x")
        .await
        .assert_error(400, "invalid_grant");
    // The lock is in the database: it survives a restart.
    let app = app.restart().await;
    app.login("admin", &app.admin_password())
        .await
        .assert_error(429, "too_many_requests");
}

async fn json_bodies_are_accepted_like_forms(backend: Backend) {
    let app = spawn_app(&backend).await;
    let body = serde_json::json!({"grant_type": "password", "username": "admin", "password": app.admin_password()});
    let resp = app
        .post_raw("/oauth/token", "application/json", body.to_string())
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let refresh = resp.json()["refresh_token"].as_str().unwrap().to_owned();
    let body = serde_json::json!({"grant_type": "refresh_token", "refresh_token": refresh});
    let resp = app
        .post_raw(
            "/oauth/token",
            "application/json; charset=utf-8",
            body.to_string(),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
}

async fn basic_auth_client_id_without_secret_is_accepted(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = app.admin_token().await;
    app.add_client(&admin, serde_json::json!({"client_id": "my-cli"}))
        .await;
    let pw = app.admin_password();
    let form = [
        ("grant_type", "password"),
        ("username", "admin"),
        ("password", pw.as_str()),
    ];
    let resp = app
        .post_form_basic("/oauth/token", "my-cli", "", &form)
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        claims_of(resp.json()["access_token"].as_str().unwrap())["client_id"],
        "my-cli"
    );

    // A public client has no secret: one sent is a client authentication failure.
    let resp = app
        .post_form_basic("/oauth/token", "my-cli", "s3cret", &form)
        .await;
    resp.assert_error(401, "invalid_client");
    assert!(
        resp.header("www-authenticate")
            .unwrap()
            .starts_with("Basic")
    );
    // An unregistered client, even without a secret.
    app.post_form_basic("/oauth/token", "unknown-cli", "", &form)
        .await
        .assert_error(401, "invalid_client");
    let resp = app
        .client
        .post(app.url("/oauth/token"))
        .insert_header(("authorization", "Basic %%%"))
        .send_form(&form)
        .await
        .unwrap();
    crate::helpers::read(resp)
        .await
        .assert_error(401, "invalid_client");
}
