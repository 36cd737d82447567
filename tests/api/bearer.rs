//! Bearer authentication on `/me` and `/admin/*`: 401 (with `WWW-Authenticate: Bearer`) for
//! missing or unacceptable tokens, 403 for a missing role.

use base64::Engine as _;
use serde_json::json;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, claims_of, spawn_app};

both_backends!(
    me_returns_the_callers_claims,
    missing_and_invalid_tokens_get_401_with_a_bearer_challenge,
    hostile_tokens_are_rejected,
    admin_api_accepts_only_tokens_for_its_own_audience,
);

fn b64(v: &serde_json::Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

async fn me_returns_the_callers_claims(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.admin_default_token().await;
    let me = app.call("GET", "/me", Some(&token), None).await;
    assert_eq!(me.status, 200, "{}", me.text());
    assert_eq!(me.json(), claims_of(&token));
}

async fn missing_and_invalid_tokens_get_401_with_a_bearer_challenge(backend: Backend) {
    let app = spawn_app(&backend).await;
    for path in ["/me", "/admin/keys", "/admin/users", "/admin/audit"] {
        let none = app.call("GET", path, None, None).await;
        none.assert_error(401, "unauthorized");
        let challenge = none.header("www-authenticate").unwrap();
        assert!(
            challenge.starts_with("Bearer") && !challenge.contains("error="),
            "{challenge}"
        );

        let bad = app.call("GET", path, Some("not-a-token"), None).await;
        bad.assert_error(401, "invalid_token");
        assert!(
            bad.header("www-authenticate")
                .unwrap()
                .contains("error=\"invalid_token\"")
        );
    }
    // Another scheme is not a bearer token.
    let basic = crate::helpers::read(
        app.client
            .get(app.url("/me"))
            .insert_header(("authorization", "Basic YTpi"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    basic.assert_error(401, "unauthorized");
    // POST endpoints too, before reading any body.
    app.call("POST", "/admin/keys/rotate", None, None)
        .await
        .assert_error(401, "unauthorized");
    app.call(
        "POST",
        "/admin/users",
        None,
        Some(json!({"username": "x", "password": "yyyyyyyy"})),
    )
    .await
    .assert_error(401, "unauthorized");
    app.call("DELETE", "/admin/users/admin", None, None)
        .await
        .assert_error(401, "unauthorized");
}

async fn hostile_tokens_are_rejected(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.admin_default_token().await;
    let kid = TestApp::kid_of(&token);
    let claims = claims_of(&token);
    let payload = b64(&claims);

    // alg "none", with and without a signature part.
    let none = format!(
        "{}.{payload}.",
        b64(&json!({"alg": "none", "typ": "at+jwt", "kid": kid}))
    );
    // HS256 with the public key's PEM as the HMAC secret (algorithm confusion).
    let pem = app.get(&format!("/keys/{kid}.pem")).await.text();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(kid.clone());
    header.typ = Some("at+jwt".into());
    let hmac = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(pem.as_bytes()),
    )
    .unwrap();
    // Claims changed under the original signature.
    let parts: Vec<&str> = token.split('.').collect();
    let mut escalated = claims.clone();
    escalated["roles"] = json!(["admin", "superuser"]);
    escalated["username"] = json!("mallory");
    let tampered = format!("{}.{}.{}", parts[0], b64(&escalated), parts[2]);
    // A kid that is not published; a header that is not JSON; a wrong typ.
    let unknown_kid = format!(
        "{}.{}.{}",
        b64(&json!({"alg": "RS256", "typ": "at+jwt", "kid": "nope"})),
        parts[1],
        parts[2]
    );
    let garbage_header = format!("{}.{}.{}", b64(&json!("x")), parts[1], parts[2]);
    let wrong_typ = format!(
        "{}.{}.{}",
        b64(&json!({"alg": "RS256", "typ": "JWT", "kid": kid})),
        parts[1],
        parts[2]
    );
    let long = "a.".repeat(3000);
    for hostile in [
        none.as_str(),
        &none[..none.len() - 1],
        &hmac,
        &tampered,
        &unknown_kid,
        &garbage_header,
        &wrong_typ,
        "..",
        &long,
    ] {
        let resp = app.call("GET", "/me", Some(hostile), None).await;
        resp.assert_error(401, "invalid_token");
    }
}

async fn admin_api_accepts_only_tokens_for_its_own_audience(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = app.admin_token().await;
    assert_eq!(claims_of(&admin)["aud"], format!("{}/admin", app.address));
    let created = app
        .call(
            "POST",
            "/admin/users",
            Some(&admin),
            Some(json!({"username": "bob", "password": "bob's password", "roles": ["reader"]})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let bob = app.login("bob", "bob's password").await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.call("GET", "/me", Some(&bob), None).await.status, 200);
    // An admin's ordinary token (the default audience, as any resource server receives it)
    // does not open the admin API; neither does a reader's.
    let ordinary = app.admin_default_token().await;
    assert_eq!(claims_of(&ordinary)["roles"], json!(["admin"]));
    for token in [&ordinary, &bob] {
        for (method, path) in [
            ("GET", "/admin/keys"),
            ("POST", "/admin/keys/rotate"),
            ("GET", "/admin/users"),
            ("DELETE", "/admin/users/admin"),
            ("GET", "/admin/audit"),
            ("POST", "/admin/keys/whatever/revoke"),
            ("GET", "/admin/clients"),
        ] {
            app.call(method, path, Some(token), None)
                .await
                .assert_error(401, "invalid_token");
        }
    }
    assert_eq!(
        app.call("GET", "/admin/keys", Some(&admin), None)
            .await
            .status,
        200
    );
    // The admin API's token is no use at /me: each API is its own audience.
    app.call("GET", "/me", Some(&admin), None)
        .await
        .assert_error(401, "invalid_token");
    // Only a user with role admin gets a token for the admin audience.
    let admin_audience = format!("{}/admin", app.address);
    app.post_token(&[
        ("grant_type", "password"),
        ("username", "bob"),
        ("password", "bob's password"),
        ("audience", &admin_audience),
    ])
    .await
    .assert_error(400, "invalid_target");
    // Nor does anyone get a token for an audience no client lists.
    app.post_token(&[
        ("grant_type", "password"),
        ("username", "admin"),
        ("password", &app.admin_password()),
        ("audience", "https://elsewhere"),
    ])
    .await
    .assert_error(400, "invalid_target");
}
