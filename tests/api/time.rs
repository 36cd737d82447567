//! Time, moved instead of waited for: each test issuer runs on its own adjustable clock, and
//! lifetimes, locks and schedules follow it.

use serde_json::json;

use crate::both_backends;
use crate::helpers::{Backend, spawn_app, spawn_app_with};

both_backends!(
    access_tokens_expire_with_their_lifetime,
    refresh_tokens_expire_when_idle,
    a_throttle_lock_ends_after_its_time,
    failures_after_a_login_count_in_a_window_of_their_own,
);

async fn access_tokens_expire_with_their_lifetime(backend: Backend) {
    let app = spawn_app_with(&backend, &["--access-ttl", "60"]).await;
    let admin = app.admin_token().await;
    let token = app.admin_default_token().await;
    assert_eq!(app.call("GET", "/me", Some(&token), None).await.status, 200);
    // Within the 30 s leeway after exp: still good; beyond it: expired.
    app.clock.advance(60 + 20);
    assert_eq!(app.call("GET", "/me", Some(&token), None).await.status, 200);
    app.clock.advance(15);
    app.call("GET", "/me", Some(&token), None)
        .await
        .assert_error(401, "invalid_token");
    let fresh = app.admin_token().await;
    let got = app
        .post_form_auth("/oauth/introspect", Some(&fresh), &[("token", &token)])
        .await
        .json();
    assert_eq!(got, json!({"active": false}));
    // The admin's earlier token expired too.
    app.call("GET", "/admin/keys", Some(&admin), None)
        .await
        .assert_error(401, "invalid_token");
}

async fn refresh_tokens_expire_when_idle(backend: Backend) {
    let app = spawn_app_with(&backend, &["--refresh-ttl", "600"]).await;
    let rt = app.login_admin().await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.clock.advance(590);
    let used = app.refresh(&rt).await;
    assert_eq!(used.status, 200, "used in time: {}", used.text());
    let rt = used.json()["refresh_token"].as_str().unwrap().to_owned();
    app.clock.advance(601);
    app.refresh(&rt).await.assert_error(400, "invalid_grant");
}

/// A successful login starts its (username, address) count over: the next failure opens a new
/// window then, not one that began before the login and would close early.
async fn failures_after_a_login_count_in_a_window_of_their_own(backend: Backend) {
    let app = spawn_app(&backend).await;
    assert_eq!(app.login("admin", &app.admin_password()).await.status, 200);
    // Five failures inside 20 seconds, the first 890 s after the login (the window is 900 s).
    app.clock.advance(890);
    for _ in 0..4 {
        app.login("admin", "wrong")
            .await
            .assert_error(400, "invalid_grant");
    }
    app.clock.advance(20);
    app.login("admin", "wrong")
        .await
        .assert_error(400, "invalid_grant");
    app.login("admin", &app.admin_password())
        .await
        .assert_error(429, "too_many_requests");
}

async fn a_throttle_lock_ends_after_its_time(backend: Backend) {
    let app = spawn_app(&backend).await;
    for _ in 0..5 {
        app.login("admin", "wrong")
            .await
            .assert_error(400, "invalid_grant");
    }
    let locked = app.login("admin", &app.admin_password()).await;
    locked.assert_error(429, "too_many_requests");
    let wait: i64 = locked.header("retry-after").unwrap().parse().unwrap();
    app.clock.advance(wait + 1);
    assert_eq!(app.login("admin", &app.admin_password()).await.status, 200);
}
