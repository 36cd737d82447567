//! A restart on the same database keeps users, refresh tokens and the active key.

use crate::both_backends;
use crate::helpers::{Backend, spawn_app, verify_with_jwks};

both_backends!(restart_keeps_users_refresh_tokens_and_the_active_key);

async fn restart_keeps_users_refresh_tokens_and_the_active_key(backend: Backend) {
    let app = spawn_app(&backend).await;
    let login = app.login_admin().await;
    let token = login["access_token"].as_str().unwrap().to_owned();
    let rt = login["refresh_token"].as_str().unwrap().to_owned();
    let jwks_before = app.get("/.well-known/jwks.json").await.json();
    let password = app.admin_password();

    let app = app.restart().await;
    // The same keys are published; the old token still verifies.
    assert_eq!(app.get("/.well-known/jwks.json").await.json(), jwks_before);
    verify_with_jwks(&app, &token).await.unwrap();
    // The refresh token still works, and the user can still log in with the same password.
    let refreshed = app.refresh(&rt).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text());
    let kid_before = jsonwebtoken::decode_header(&token).unwrap().kid;
    let kid_after = jsonwebtoken::decode_header(refreshed.json()["access_token"].as_str().unwrap())
        .unwrap()
        .kid;
    assert_eq!(kid_before, kid_after, "the active key survives the restart");
    assert_eq!(app.login("admin", &password).await.status, 200);
    // No second bootstrap: the password file still holds the original password.
    assert_eq!(app.admin_password(), password);
}
