//! The refresh grant: rotation, reuse detection, concurrency, scope narrowing, expiry.

use crate::both_backends;
use crate::helpers::{Backend, claims_of, spawn_app, spawn_app_with};

both_backends!(
    refresh_rotates_the_token_and_issues_a_new_access_token,
    reused_refresh_token_revokes_family,
    concurrent_refreshes_with_one_token_exactly_one_succeeds,
    refresh_may_narrow_scope_but_not_widen_it,
    refresh_token_bound_to_its_client,
    hostile_refresh_tokens_are_invalid_grant,
    expired_refresh_token_is_rejected,
);

async fn refresh_rotates_the_token_and_issues_a_new_access_token(backend: Backend) {
    let app = spawn_app(&backend).await;
    let first = app.login_admin().await;
    let rt1 = first["refresh_token"].as_str().unwrap();
    let resp = app.refresh(rt1).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("cache-control").as_deref(), Some("no-store"));
    let second = resp.json();
    let rt2 = second["refresh_token"].as_str().unwrap();
    assert_ne!(rt1, rt2);
    assert_eq!(second["token_type"], "Bearer");
    let claims = claims_of(second["access_token"].as_str().unwrap());
    assert_eq!(claims["username"], "admin");
    assert_eq!(
        claims["sub"],
        claims_of(first["access_token"].as_str().unwrap())["sub"]
    );
    // The new one works in turn.
    assert_eq!(app.refresh(rt2).await.status, 200);
}

async fn reused_refresh_token_revokes_family(backend: Backend) {
    let app = spawn_app(&backend).await;
    let login = app.login_admin().await;
    let rt1 = login["refresh_token"].as_str().unwrap().to_owned();
    let rt2 = app.refresh(&rt1).await.json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // An attacker replays the old token: refused...
    app.refresh(&rt1).await.assert_error(400, "invalid_grant");
    // ...and the whole family is burned, so the token the victim holds stops working too.
    app.refresh(&rt2).await.assert_error(400, "invalid_grant");
    // Another login (another family) is unaffected.
    let other = app.login_admin().await;
    assert_eq!(
        app.refresh(other["refresh_token"].as_str().unwrap())
            .await
            .status,
        200
    );
}

async fn concurrent_refreshes_with_one_token_exactly_one_succeeds(backend: Backend) {
    let app = spawn_app(&backend).await;
    let rt = app.login_admin().await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let attempts = (0..24).map(|_| app.refresh(&rt));
    let results = futures_util::future::join_all(attempts).await;
    let ok = results.iter().filter(|r| r.status == 200).count();
    for r in results.iter().filter(|r| r.status != 200) {
        r.assert_error(400, "invalid_grant");
    }
    assert_eq!(ok, 1, "exactly one of 24 concurrent refreshes may win");
}

async fn refresh_may_narrow_scope_but_not_widen_it(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = app.admin_token().await;
    for scope in ["read", "write", "extra"] {
        app.add_scope(&admin, scope, &[]).await;
    }
    let pw = app.admin_password();
    let login = app
        .post_token(&[
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", &pw),
            ("scope", "read write"),
        ])
        .await
        .json();
    let rt = login["refresh_token"].as_str().unwrap();
    let narrowed = app
        .post_token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("scope", "read"),
        ])
        .await;
    assert_eq!(narrowed.status, 200, "{}", narrowed.text());
    assert_eq!(narrowed.json()["scope"], "read");
    let rt2 = narrowed.json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // The family keeps the original grant: the next refresh without scope gets it all back.
    let full = app.refresh(&rt2).await.json();
    assert_eq!(full["scope"], "read write");
    let rt3 = full["refresh_token"].as_str().unwrap();
    let wider = app
        .post_token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt3),
            ("scope", "read extra"),
        ])
        .await;
    wider.assert_error(400, "invalid_scope");
    assert!(
        wider.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("extra")
    );
    // Refused without being spent: the token still rotates.
    assert_eq!(app.refresh(rt3).await.status, 200);
}

async fn refresh_token_bound_to_its_client(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = app.admin_token().await;
    for id in ["app-a", "app-b"] {
        app.add_client(&admin, serde_json::json!({"client_id": id}))
            .await;
    }
    let pw = app.admin_password();
    let login = app
        .post_token(&[
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", &pw),
            ("client_id", "app-a"),
        ])
        .await
        .json();
    let rt = login["refresh_token"].as_str().unwrap();
    app.post_token(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", rt),
        ("client_id", "app-b"),
    ])
    .await
    .assert_error(400, "invalid_grant");
    // Naming no client is the `default` client: another client too.
    app.refresh(rt).await.assert_error(400, "invalid_grant");
    // Neither attempt spent it: its own client still rotates it.
    let own = app
        .post_token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", "app-a"),
        ])
        .await;
    assert_eq!(own.status, 200, "{}", own.text());
    assert_eq!(
        claims_of(own.json()["access_token"].as_str().unwrap())["client_id"],
        "app-a"
    );
}

async fn hostile_refresh_tokens_are_invalid_grant(backend: Backend) {
    let app = spawn_app(&backend).await;
    let long = "A".repeat(10_000);
    for bad in [
        "x",
        "' OR 1=1 --",
        &"A".repeat(43),
        long.as_str(),
        "eyJhbGciOiJub25lIn0.e30.",
        "\u{0}\u{1}",
    ] {
        app.refresh(bad).await.assert_error(400, "invalid_grant");
    }
    app.post_token(&[("grant_type", "refresh_token")])
        .await
        .assert_error(400, "invalid_request");
}

async fn expired_refresh_token_is_rejected(backend: Backend) {
    let app = spawn_app_with(&backend, &["--refresh-ttl", "60"]).await;
    let rt = app.login_admin().await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Age the token in the database rather than sleeping a minute.
    app.sql("UPDATE refresh_tokens SET expires_at = expires_at - 120");
    app.refresh(&rt).await.assert_error(400, "invalid_grant");
}

both_backends!(concurrent_refreshes_across_two_instances_exactly_one_succeeds);

async fn concurrent_refreshes_across_two_instances_exactly_one_succeeds(backend: Backend) {
    let a = spawn_app(&backend).await;
    // A second instance on the same database and keys dir, as behind a load balancer.
    let b = crate::helpers::spawn_app_on(a.db.clone(), &["--issuer", &a.address]).await;
    for _ in 0..3 {
        let rt = a.login_admin().await["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let attempts = (0..16).map(|i| {
            let app = if i % 2 == 0 { &a } else { &b };
            app.refresh(&rt)
        });
        let results = futures_util::future::join_all(attempts).await;
        let ok = results.iter().filter(|r| r.status == 200).count();
        assert_eq!(ok, 1, "exactly one refresh wins across both instances");
    }
}
