//! Key rotation, retirement, emergency revocation and the history, across instances.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::both_backends;
use crate::helpers::{
    Backend, TestApp, eventually, spawn_app, spawn_app_on, spawn_app_with, verify_with_jwks,
};

both_backends!(
    rotation_promotes_the_published_next_key_and_old_tokens_still_verify,
    retired_key_is_unpublished_after_its_grace_period,
    rotation_can_switch_the_algorithm,
    emergency_revocation_unpublishes_at_once_and_promotes_next,
    rotation_on_one_instance_signs_on_the_other_within_5_seconds,
    concurrent_rotations_leave_exactly_one_active_key,
    scheduled_rotation_rotates_by_itself,
    key_history_is_kept_and_bad_input_gets_json_errors,
);

async fn rotate(app: &TestApp, token: &str, body: Option<serde_json::Value>) -> serde_json::Value {
    let resp = app
        .call("POST", "/admin/keys/rotate", Some(token), body)
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()
}

async fn rotation_promotes_the_published_next_key_and_old_tokens_still_verify(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = app.admin_token().await;
    let old_kid = TestApp::kid_of(&admin);
    let published_before = app.jwks_kids().await;
    let rotated = rotate(&app, &admin, None).await;
    let new_active = rotated["active"].as_str().unwrap();
    assert_eq!(rotated["retired"], old_kid.as_str());
    assert!(
        published_before.contains(&new_active.to_owned()),
        "the new active key was published before it signed"
    );
    // New tokens are signed by it; the old token still verifies via the JWKS.
    let fresh = app.admin_token().await;
    assert_eq!(TestApp::kid_of(&fresh), new_active);
    verify_with_jwks(&app, &admin)
        .await
        .expect("token from before the rotation");
    verify_with_jwks(&app, &fresh)
        .await
        .expect("token from after the rotation");
    assert_eq!(
        app.call("GET", "/admin/keys", Some(&admin), None)
            .await
            .status,
        200
    );
    let kids = app.jwks_kids().await;
    assert!(
        kids.contains(&old_kid),
        "the retired key stays published: {kids:?}"
    );
    assert!(kids.contains(&rotated["next"].as_str().unwrap().to_owned()));
    // A second rotation right away still promotes a key that was in the JWKS before the first:
    // verifiers that cached the set then (and will not refetch for a while) already hold it.
    let second = rotate(&app, &admin, None).await;
    assert!(published_before.contains(&second["active"].as_str().unwrap().to_owned()));
    verify_with_jwks(&app, &app.admin_token().await)
        .await
        .unwrap();
    // The refresh token from before the rotation works, and its new access token uses the new key.
    let rt = app.login_admin().await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    rotate(&app, &admin, None).await;
    let refreshed = app.refresh(&rt).await.json();
    verify_with_jwks(&app, refreshed["access_token"].as_str().unwrap())
        .await
        .unwrap();
}

async fn retired_key_is_unpublished_after_its_grace_period(backend: Backend) {
    let app = spawn_app_with(&backend, &["--access-ttl", "1"]).await;
    let admin = app.admin_token().await;
    let old_kid = TestApp::kid_of(&admin);
    let admin = app.admin_token().await;
    rotate(&app, &admin, None).await;
    assert!(
        app.jwks_kids().await.contains(&old_kid),
        "published while its tokens may live"
    );
    // Its grace (access TTL + leeway) is over once we move its retirement into the past.
    app.sql("UPDATE signing_keys SET retired_at = retired_at - 3600 WHERE state = 'retired'");
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.jwks_kids().await.contains(&old_kid) {
        assert!(
            Instant::now() < deadline,
            "the retired key was not unpublished"
        );
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    app.get(&format!("/keys/{old_kid}.pem"))
        .await
        .assert_error(404, "not_found");
    let fresh = app.admin_token().await;
    let history = app
        .call("GET", "/admin/keys", Some(&fresh), None)
        .await
        .json();
    let old = history["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == old_kid.as_str())
        .unwrap()
        .clone();
    assert_eq!(old["state"], "retired");
    assert_eq!(old["published"], false);
}

async fn rotation_can_switch_the_algorithm(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = app.admin_token().await;
    let before = app.jwks_kids().await;
    let rotated = rotate(&app, &admin, Some(json!({"alg": "ES256"}))).await;
    let token = app.admin_token().await;
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(
        header.alg,
        jsonwebtoken::Algorithm::ES256,
        "the new active key has the requested alg at once"
    );
    assert_eq!(header.kid.as_deref(), rotated["active"].as_str());
    verify_with_jwks(&app, &token).await.unwrap();
    verify_with_jwks(&app, &admin).await.unwrap();
    // The RS256 `next` that never signed is retired, not lost.
    let history = app
        .call("GET", "/admin/keys", Some(&token), None)
        .await
        .json();
    let states: Vec<(String, String)> = history["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["alg"].as_str().unwrap().to_owned(),
                k["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(states.iter().filter(|(_, s)| s == "active").count(), 1);
    assert!(
        states.contains(&("ES256".into(), "next".into())),
        "{states:?}"
    );
    assert!(
        before.contains(&rotated["active"].as_str().unwrap().to_owned()),
        "the ES256 key that signs now was published before the switch"
    );
    // A bad alg is a 400, with nothing changed.
    for body in [
        json!({"alg": "HS256"}),
        json!({"alg": 5}),
        json!({"algo": "ES256"}),
        json!([1]),
    ] {
        app.call("POST", "/admin/keys/rotate", Some(&token), Some(body))
            .await
            .assert_error(400, "invalid_request");
    }
    assert_eq!(
        TestApp::kid_of(&app.admin_token().await),
        rotated["active"].as_str().unwrap()
    );
}

async fn emergency_revocation_unpublishes_at_once_and_promotes_next(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = app.admin_token().await;
    let compromised = TestApp::kid_of(&admin);
    // The oldest queued key of the same algorithm takes over (the history lists oldest first).
    let history = app
        .call("GET", "/admin/keys", Some(&admin), None)
        .await
        .json();
    let next = history["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["state"] == "next" && k["alg"] == "RS256")
        .unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let resp = app
        .call(
            "POST",
            &format!("/admin/keys/{compromised}/revoke"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let body = resp.json();
    assert_eq!(body["revoked"], compromised.as_str());
    assert_eq!(body["active"], next.as_str());
    // Unpublished at once, and its tokens rejected everywhere.
    assert!(!app.jwks_kids().await.contains(&compromised));
    app.get(&format!("/keys/{compromised}.pem"))
        .await
        .assert_error(404, "not_found");
    app.call("GET", "/me", Some(&admin), None)
        .await
        .assert_error(401, "invalid_token");
    assert!(verify_with_jwks(&app, &admin).await.is_err());
    // New tokens come from the promoted key; a new next is published.
    let fresh = app.admin_token().await;
    assert_eq!(TestApp::kid_of(&fresh), next);
    let kids = app.jwks_kids().await;
    assert!(kids.contains(&next) && !kids.contains(&compromised));
    assert!(kids.contains(&body["next"].as_str().unwrap().to_owned()));
    // Revoking again is harmless; unknown kids are 404.
    let again = app
        .call(
            "POST",
            &format!("/admin/keys/{compromised}/revoke"),
            Some(&fresh),
            None,
        )
        .await;
    assert_eq!(again.status, 200);
    app.call("POST", "/admin/keys/no-such-kid/revoke", Some(&fresh), None)
        .await
        .assert_error(404, "not_found");
    // The history keeps it, as revoked.
    let history = app
        .call("GET", "/admin/keys", Some(&fresh), None)
        .await
        .json();
    let row = history["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == compromised.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["state"], "revoked");
    assert!(row["revoked_at"].is_string() && row["activated_at"].is_string());
}

async fn rotation_on_one_instance_signs_on_the_other_within_5_seconds(backend: Backend) {
    let a = spawn_app(&backend).await;
    let b = spawn_app_on(a.db.clone(), &["--issuer", &a.address]).await;
    let admin = a.admin_token().await;
    let rotated = rotate(&a, &admin, None).await;
    let new_active = rotated["active"].as_str().unwrap().to_owned();
    let started = Instant::now();
    eventually(
        Duration::from_secs(5),
        "instance B signing with the new key",
        || async {
            let token = b.admin_token().await;
            let next = rotated["next"].as_str().unwrap().to_owned();
            (TestApp::kid_of(&token) == new_active && b.jwks_kids().await.contains(&next))
                .then_some(())
        },
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    // A revocation through B is honoured by A as quickly.
    let token_a = a.admin_token().await;
    let admin_b = b.admin_token().await;
    b.call(
        "POST",
        &format!("/admin/keys/{new_active}/revoke"),
        Some(&admin_b),
        None,
    )
    .await;
    // token_a is signed by the revoked key: A stops accepting it.
    assert_eq!(TestApp::kid_of(&token_a), new_active);
    eventually(
        Duration::from_secs(5),
        "instance A refusing the revoked key",
        || async {
            let status = a
                .call("GET", "/admin/keys", Some(&token_a), None)
                .await
                .status;
            (status == 401).then_some(())
        },
    )
    .await;
}

async fn concurrent_rotations_leave_exactly_one_active_key(backend: Backend) {
    let a = spawn_app(&backend).await;
    let b = spawn_app_on(a.db.clone(), &["--issuer", &a.address]).await;
    let token = a.admin_token().await;
    let calls = (0..8).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        app.call("POST", "/admin/keys/rotate", Some(&token), None)
    });
    let results = futures_util::future::join_all(calls).await;
    for r in &results {
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let fresh = a.admin_token().await;
    let history = a
        .call("GET", "/admin/keys", Some(&fresh), None)
        .await
        .json();
    let keys = history["keys"].as_array().unwrap();
    let count = |state: &str| keys.iter().filter(|k| k["state"] == state).count();
    assert_eq!(count("active"), 1);
    assert_eq!(count("next"), 6, "three queued keys per algorithm");
    assert_eq!(
        count("retired"),
        8,
        "every rotation retired exactly one active key"
    );
    let actives: std::collections::HashSet<_> = results
        .iter()
        .map(|r| r.json()["active"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actives.len(), 8, "the rotations ran one after another");
}

async fn scheduled_rotation_rotates_by_itself(backend: Backend) {
    let app = spawn_app_with(&backend, &["--rotate-every", "1h"]).await;
    let first = TestApp::kid_of(&app.admin_token().await);
    // Not due yet: an hour of the issuer's clock later, it is.
    app.clock.advance(3601);
    let token = eventually(Duration::from_secs(5), "a scheduled rotation", || async {
        let token = app.admin_token().await;
        (TestApp::kid_of(&token) != first).then_some(token)
    })
    .await;
    verify_with_jwks(&app, &token).await.unwrap();
    let token = app.admin_token().await;
    let audit = app
        .call("GET", "/admin/audit?limit=100", Some(&token), None)
        .await
        .json();
    assert!(
        audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "key_rotated" && e["detail"]["how"] == "scheduled")
    );
}

async fn key_history_is_kept_and_bad_input_gets_json_errors(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.admin_token().await;
    rotate(&app, &token, None).await;
    rotate(&app, &token, None).await;
    let history = app.call("GET", "/admin/keys", Some(&token), None).await;
    assert_eq!(history.status, 200);
    let text = history.text();
    assert!(
        !text.contains("private") && !text.contains("\"d\""),
        "never private material"
    );
    let keys = history.json()["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 9, "7 at start, one more per rotation");
    for k in &keys {
        assert!(
            k["kid"].is_string()
                && (k["alg"] == "RS256" || k["alg"] == "ES256")
                && k["created_at"].is_string()
        );
    }
    // The history is never deleted: the database refuses.
    assert!(app.try_sql("DELETE FROM signing_keys").is_err());
    // Malformed bodies and wrong content types.
    let raw = |body: &'static str, ct: &'static str| {
        let app = &app;
        let token = token.clone();
        async move {
            crate::helpers::read(
                app.client
                    .post(app.url("/admin/keys/rotate"))
                    .insert_header(("authorization", format!("Bearer {token}")))
                    .insert_header(("content-type", ct))
                    .send_body(body)
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    raw("{", "application/json")
        .await
        .assert_error(400, "invalid_request");
    raw("alg=ES256", "application/x-www-form-urlencoded")
        .await
        .assert_error(415, "unsupported_media_type");
    let big = Box::leak(format!("{{\"alg\": \"{}\"}}", "x".repeat(20_000)).into_boxed_str());
    raw(big, "application/json")
        .await
        .assert_error(413, "payload_too_large");
    // Still exactly the two rotations.
    let keys = app
        .call("GET", "/admin/keys", Some(&token), None)
        .await
        .json()["keys"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(keys, 9);
}
