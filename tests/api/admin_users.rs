//! Users over HTTP and the audit log.

use serde_json::json;

use crate::both_backends;
use crate::helpers::{Backend, spawn_app};

both_backends!(
    admin_creates_lists_and_disables_users,
    user_endpoints_reject_bad_input_with_json_errors,
    audit_log_records_security_events_without_secrets,
);

async fn admin_creates_lists_and_disables_users(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = app.admin_token().await;
    let created = app
        .call("POST", "/admin/users", Some(&admin), Some(json!({"username": "carol", "password": "carol's password", "roles": ["reader", "introspect"]})))
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let body = created.json();
    assert_eq!(body["username"], "carol");
    assert_eq!(body["roles"], json!(["reader", "introspect"]));
    assert_eq!(body["disabled"], false);
    assert!(body.get("password").is_none() && body.get("password_hash").is_none());
    assert!(!created.text().contains("argon2"));

    let list = app
        .call("GET", "/admin/users", Some(&admin), None)
        .await
        .json();
    let names: Vec<&str> = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "carol"]);

    // Carol logs in twice (two families), then is disabled.
    let login = app.login("carol", "carol's password").await.json();
    let rt1 = login["refresh_token"].as_str().unwrap().to_owned();
    let rt2 = app.login("carol", "carol's password").await.json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let deleted = app
        .call("DELETE", "/admin/users/carol", Some(&admin), None)
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    assert_eq!(deleted.json()["revoked_refresh_families"], 2);
    app.refresh(&rt1).await.assert_error(400, "invalid_grant");
    app.refresh(&rt2).await.assert_error(400, "invalid_grant");
    app.login("carol", "carol's password")
        .await
        .assert_error(400, "invalid_grant");
    let list = app
        .call("GET", "/admin/users", Some(&admin), None)
        .await
        .json();
    let carol = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "carol")
        .unwrap()
        .clone();
    assert_eq!(carol["disabled"], true);
    // Names with spaces and unicode travel through the path.
    let created = app
        .call(
            "POST",
            "/admin/users",
            Some(&admin),
            Some(json!({"username": "Zoë Smith", "password": "a long password"})),
        )
        .await;
    assert_eq!(created.status, 201);
    assert_eq!(
        app.call(
            "DELETE",
            "/admin/users/Zo%C3%AB%20Smith",
            Some(&admin),
            None
        )
        .await
        .status,
        200
    );
}

async fn user_endpoints_reject_bad_input_with_json_errors(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = app.admin_token().await;
    let post = |body: serde_json::Value| app.call("POST", "/admin/users", Some(&admin), Some(body));
    post(json!({"username": "admin", "password": "whatever123"}))
        .await
        .assert_error(409, "conflict");
    post(json!({"username": "", "password": "whatever123"}))
        .await
        .assert_error(400, "invalid_request");
    post(json!({"username": "a\nb", "password": "whatever123"}))
        .await
        .assert_error(400, "invalid_request");
    post(json!({"username": "x".repeat(151), "password": "whatever123"}))
        .await
        .assert_error(400, "invalid_request");
    post(json!({"username": "dave", "password": "short"}))
        .await
        .assert_error(400, "invalid_request");
    post(json!({"username": "dave", "password": "whatever123", "roles": ["bad role"]}))
        .await
        .assert_error(400, "invalid_request");
    post(json!({"username": "dave", "password": "whatever123", "roles": "admin"}))
        .await
        .assert_error(400, "invalid_request");
    post(json!({"username": "dave", "password": 12345678}))
        .await
        .assert_error(400, "invalid_request");
    post(json!({"username": "dave"}))
        .await
        .assert_error(400, "invalid_request");
    post(json!({"username": "dave", "password": "whatever123", "is_admin": true}))
        .await
        .assert_error(400, "invalid_request");
    post(json!("dave"))
        .await
        .assert_error(400, "invalid_request");
    app.call("POST", "/admin/users", Some(&admin), None)
        .await
        .assert_error(400, "invalid_request");
    app.call("DELETE", "/admin/users/nobody", Some(&admin), None)
        .await
        .assert_error(404, "not_found");
    app.call("GET", "/admin/users/admin", Some(&admin), None)
        .await
        .assert_error(405, "method_not_allowed");
    // Nothing was created along the way, and the admin still works.
    let list = app
        .call("GET", "/admin/users", Some(&admin), None)
        .await
        .json();
    assert_eq!(list["users"].as_array().unwrap().len(), 1);
}

async fn audit_log_records_security_events_without_secrets(backend: Backend) {
    let app = spawn_app(&backend).await;
    let password = app.admin_password();
    app.login("admin", "wrong password").await;
    let login = app.login_admin().await;
    let admin = app.admin_token().await;
    let rt = login["refresh_token"].as_str().unwrap().to_owned();
    app.refresh(&rt).await;
    app.refresh(&rt).await; // reuse
    app.call(
        "POST",
        "/admin/users",
        Some(&admin),
        Some(json!({"username": "erin", "password": "erin's password"})),
    )
    .await;
    app.call("DELETE", "/admin/users/erin", Some(&admin), None)
        .await;
    app.call("POST", "/admin/keys/rotate", Some(&admin), None)
        .await;

    let resp = app
        .call("GET", "/admin/audit?limit=50", Some(&admin), None)
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let text = resp.text();
    for secret in [
        password.as_str(),
        rt.as_str(),
        "erin's password",
        "wrong password",
    ] {
        assert!(!text.contains(secret), "a secret reached the audit log");
    }
    let events = resp.json()["events"].as_array().unwrap().clone();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    for expected in [
        "login_failed",
        "login_ok",
        "refresh_reuse",
        "user_created",
        "user_disabled",
        "key_rotated",
    ] {
        assert!(
            kinds.contains(&expected),
            "{expected} missing from {kinds:?}"
        );
    }
    let failed = events
        .iter()
        .find(|e| e["event"] == "login_failed")
        .unwrap();
    assert_eq!(failed["subject"], "admin");
    assert_eq!(failed["source"], "127.0.0.1");
    let rotated = events.iter().find(|e| e["event"] == "key_rotated").unwrap();
    assert_eq!(rotated["actor"], "admin");
    // Newest first, and the limit holds.
    assert_eq!(kinds[0], "key_rotated");
    let two = app
        .call("GET", "/admin/audit?limit=2", Some(&admin), None)
        .await
        .json();
    assert_eq!(two["events"].as_array().unwrap().len(), 2);
    for bad in ["limit=0", "limit=1001", "limit=abc", "limit=-1", "foo=1"] {
        app.call("GET", &format!("/admin/audit?{bad}"), Some(&admin), None)
            .await
            .assert_error(400, "invalid_request");
    }
    // Append-only, enforced by the database.
    assert!(
        app.try_sql("UPDATE audit_log SET event = 'nothing'")
            .is_err()
    );
    assert!(app.try_sql("DELETE FROM audit_log").is_err());
}
