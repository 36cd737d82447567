//! Accounts (docs/CONTRACT.md §6): password change and reset under the password policy, enable and
//! disable, roles — over HTTP and the CLI. Every password set ends the user's sessions.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, claims_of, spawn_app};

both_backends!(
    password_change_needs_the_current_password_and_ends_every_session,
    admins_reset_passwords_enable_disable_and_edit_roles,
    the_cli_sets_passwords_disables_enables_and_edits_roles,
    the_password_policy_applies_wherever_a_password_is_set,
);

const PW: &str = "fern's long password";

async fn setup(app: &TestApp) -> String {
    let admin = app.admin_token().await;
    app.add_user(&admin, "fern", PW, &["reader"]).await;
    admin
}

async fn login(app: &TestApp, pw: &str) -> Value {
    let resp = app.login("fern", pw).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()
}

fn at(v: &Value) -> String {
    v["access_token"].as_str().unwrap().to_owned()
}

fn rt(v: &Value) -> String {
    v["refresh_token"].as_str().unwrap().to_owned()
}

async fn feed(app: &TestApp) -> HashSet<String> {
    app.get("/oauth/revocations").await.json()["revoked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["jti"].as_str().unwrap().to_owned())
        .collect()
}

fn jti(token: &str) -> String {
    claims_of(token)["jti"].as_str().unwrap().to_owned()
}

async fn change(app: &TestApp, token: &str, current: &str, new: &str) -> crate::helpers::Resp {
    app.call(
        "POST",
        "/me/password",
        Some(token),
        Some(json!({"current_password": current, "new_password": new})),
    )
    .await
}

async fn password_change_needs_the_current_password_and_ends_every_session(backend: Backend) {
    let app = spawn_app(&backend).await;
    setup(&app).await;
    let laptop = login(&app, PW).await;
    let phone = login(&app, PW).await;
    let new = "a brand new passphrase";
    // A wrong current password: 400, nothing changes.
    let wrong = change(&app, &at(&laptop), "not my password", new).await;
    wrong.assert_error(400, "invalid_request");
    assert!(
        wrong.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("current password")
    );
    // A new password the policy refuses: 400 saying why, nothing changes.
    for (bad, why) in [
        ("fern", "at least 8"),
        ("FERN    ", "username"),
        ("password123", "common"),
        ("short", "at least 8"),
    ] {
        let resp = change(&app, &at(&laptop), PW, bad).await;
        resp.assert_error(400, "invalid_request");
        let text = resp.json()["error_description"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(text.contains(why), "{bad}: {text}");
    }
    let too_long = "x".repeat(1025);
    change(&app, &at(&laptop), PW, &too_long)
        .await
        .assert_error(400, "invalid_request");
    assert_eq!(
        app.refresh(&rt(&phone)).await.status,
        200,
        "still logged in"
    );
    let phone = login(&app, PW).await;
    // The change itself: 204, every session ends, every access token is revoked.
    let ok = change(&app, &at(&laptop), PW, new).await;
    assert_eq!(ok.status, 204, "{}", ok.text());
    for session in [&laptop, &phone] {
        app.refresh(&rt(session))
            .await
            .assert_error(400, "invalid_grant");
        app.call("GET", "/me", Some(&at(session)), None)
            .await
            .assert_error(401, "invalid_token");
        assert!(feed(&app).await.contains(&jti(&at(session))));
    }
    app.login("fern", PW)
        .await
        .assert_error(400, "invalid_grant");
    let fresh = login(&app, new).await;
    // Wrong current passwords count as failed logins: after five, the user is throttled.
    for _ in 0..5 {
        change(
            &app,
            &at(&fresh),
            "still not my password",
            "another new passphrase",
        )
        .await
        .assert_error(400, "invalid_request");
    }
    app.login("fern", new)
        .await
        .assert_error(429, "too_many_requests");
    change(&app, &at(&fresh), new, "another new passphrase")
        .await
        .assert_error(429, "too_many_requests");
    // Malformed bodies.
    for body in [
        json!({}),
        json!({"current_password": 1, "new_password": "x"}),
        json!([]),
    ] {
        app.call("POST", "/me/password", Some(&at(&fresh)), Some(body))
            .await
            .assert_error(400, "invalid_request");
    }
    app.call("POST", "/me/password", None, Some(json!({})))
        .await
        .assert_error(401, "unauthorized");
    let admin = app.admin_token().await;
    let events = app
        .call("GET", "/admin/audit?limit=100", Some(&admin), None)
        .await;
    assert!(!events.text().contains(new), "no password in the audit log");
    let kinds: Vec<String> = events.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    assert!(kinds.iter().any(|k| k == "password_changed"));
    assert!(kinds.iter().any(|k| k == "password_change_failed"));
}

async fn admins_reset_passwords_enable_disable_and_edit_roles(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = setup(&app).await;
    let session = login(&app, PW).await;
    // Reset: the policy applies, every session ends.
    let path = "/admin/users/fern/password";
    app.call(
        "PUT",
        path,
        Some(&admin),
        Some(json!({"password": "qwerty123"})),
    )
    .await
    .assert_error(400, "invalid_request");
    app.call("PUT", path, Some(&admin), Some(json!({"password": "fern"})))
        .await
        .assert_error(400, "invalid_request");
    app.call(
        "PUT",
        "/admin/users/nobody/password",
        Some(&admin),
        Some(json!({"password": "a fine new password"})),
    )
    .await
    .assert_error(404, "not_found");
    let reset = app
        .call(
            "PUT",
            path,
            Some(&admin),
            Some(json!({"password": "reset by the admin"})),
        )
        .await;
    assert_eq!(reset.status, 204, "{}", reset.text());
    app.refresh(&rt(&session))
        .await
        .assert_error(400, "invalid_grant");
    assert!(feed(&app).await.contains(&jti(&at(&session))));
    let session = login(&app, "reset by the admin").await;

    // Roles: the next refresh shows them.
    let patched = app
        .call(
            "PATCH",
            "/admin/users/fern",
            Some(&admin),
            Some(json!({"roles": ["reader", "cashier"]})),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text());
    assert_eq!(patched.json()["roles"], json!(["reader", "cashier"]));
    let refreshed = app.refresh(&rt(&session)).await.json();
    assert_eq!(
        claims_of(&at(&refreshed))["roles"],
        json!(["reader", "cashier"])
    );

    // Disable: sessions end, access tokens land in the feed, logins fail.
    let disabled = app
        .call(
            "PATCH",
            "/admin/users/fern",
            Some(&admin),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(disabled.json()["disabled"], true);
    app.refresh(&rt(&refreshed))
        .await
        .assert_error(400, "invalid_grant");
    assert!(feed(&app).await.contains(&jti(&at(&refreshed))));
    app.login("fern", "reset by the admin")
        .await
        .assert_error(400, "invalid_grant");
    // Enable: the same user (same id) logs in again; the name stays taken.
    let id = claims_of(&at(&refreshed))["sub"].clone();
    let enabled = app
        .call(
            "PATCH",
            "/admin/users/fern",
            Some(&admin),
            Some(json!({"disabled": false})),
        )
        .await;
    assert_eq!(enabled.status, 200);
    assert_eq!(enabled.json()["disabled"], false);
    let again = login(&app, "reset by the admin").await;
    assert_eq!(claims_of(&at(&again))["sub"], id);
    let dup = app
        .call(
            "POST",
            "/admin/users",
            Some(&admin),
            Some(json!({"username": "fern", "password": "some other password"})),
        )
        .await;
    dup.assert_error(409, "conflict");
    // DELETE still disables.
    let deleted = app
        .call("DELETE", "/admin/users/fern", Some(&admin), None)
        .await;
    assert_eq!(deleted.json()["disabled"], true);
    // Bad input.
    for body in [
        json!({"roles": ["bad role"]}),
        json!({"roles": "reader"}),
        json!({"disabled": "yes"}),
        json!({"password": "x"}),
    ] {
        app.call("PATCH", "/admin/users/fern", Some(&admin), Some(body))
            .await
            .assert_error(400, "invalid_request");
    }
    app.call(
        "PATCH",
        "/admin/users/nobody",
        Some(&admin),
        Some(json!({"disabled": true})),
    )
    .await
    .assert_error(404, "not_found");
    let audit = app
        .call("GET", "/admin/audit?limit=100", Some(&admin), None)
        .await
        .json();
    let kinds: HashSet<String> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    for kind in [
        "password_reset",
        "user_roles_changed",
        "user_disabled",
        "user_enabled",
    ] {
        assert!(kinds.contains(kind), "{kind} in {kinds:?}");
    }
}

async fn the_cli_sets_passwords_disables_enables_and_edits_roles(backend: Backend) {
    let app = spawn_app(&backend).await;
    setup(&app).await;
    let session = login(&app, PW).await;
    let cli = |args: &[&str], stdin: &str| app.cli(args, stdin);
    let (code, _, err) = cli(&["user", "passwd", "fern", "--password-stdin"], "letmein\n");
    assert_eq!(code, 1);
    assert!(
        err.contains("at least 8") || err.contains("common"),
        "{err}"
    );
    let (code, _, err) = cli(
        &["user", "passwd", "fern", "--password-stdin"],
        "iloveyou1\n",
    );
    assert_eq!(code, 1);
    assert!(err.contains("common"), "{err}");
    let (code, _, err) = cli(
        &["user", "passwd", "nobody", "--password-stdin"],
        "a fine password\n",
    );
    assert_ne!(code, 0);
    assert!(err.contains("no user named nobody"), "{err}");
    let (code, out, err) = cli(
        &["user", "passwd", "fern", "--password-stdin"],
        "set on the command line\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("set on the command line"));
    app.refresh(&rt(&session))
        .await
        .assert_error(400, "invalid_grant");
    let session = login(&app, "set on the command line").await;

    let (code, out, err) = cli(&["user", "role", "add", "fern", "auditor"], "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("reader auditor"), "{out}");
    let (_, out, _) = cli(&["user", "role", "remove", "fern", "reader"], "");
    assert!(out.contains("roles [auditor]"), "{out}");
    let refreshed = app.refresh(&rt(&session)).await.json();
    assert_eq!(claims_of(&at(&refreshed))["roles"], json!(["auditor"]));
    let (code, _, _) = cli(&["user", "role", "add", "fern", "bad role"], "");
    assert_eq!(code, 2, "a bad value is a usage error");

    let (code, out, err) = cli(&["user", "disable", "fern"], "");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("disabled") && out.contains("ended 1 session"),
        "{out}"
    );
    assert!(feed(&app).await.contains(&jti(&at(&refreshed))));
    app.login("fern", "set on the command line")
        .await
        .assert_error(400, "invalid_grant");
    let (code, out, _) = cli(&["user", "enable", "fern"], "");
    assert_eq!(code, 0);
    assert!(out.contains("fern: active"), "{out}");
    login(&app, "set on the command line").await;
    let (code, _, err) = cli(&["user", "enable", "nobody"], "");
    assert_ne!(code, 0);
    assert!(err.contains("no user named nobody"));
}

async fn the_password_policy_applies_wherever_a_password_is_set(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = app.admin_token().await;
    for (username, password, why) in [
        ("gus", "gus", "at least 8"),
        ("gustavo1", "Gustavo1", "username"),
        ("gus", "football", "common"),
        ("gus", "1q2w3e4r5t", "common"),
    ] {
        let resp = app
            .call(
                "POST",
                "/admin/users",
                Some(&admin),
                Some(json!({"username": username, "password": password})),
            )
            .await;
        resp.assert_error(400, "invalid_request");
        let text = resp.json()["error_description"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(text.contains(why), "{password}: {text}");
    }
    for (stdin, why) in [("sunshine\n", "common"), ("gus\n", "at least 8")] {
        let (code, _, err) = app.cli(&["user", "add", "gus", "--password-stdin"], stdin);
        assert_eq!(code, 1);
        assert!(err.contains(why), "{err}");
    }
    // Existing users whose passwords predate the policy still log in.
    let hash = jwt_issuer::service::passwords::hash_blocking(
        &jwt_issuer::domain::Password::for_login("password").unwrap(),
    )
    .unwrap();
    app.sql(&format!(
        "INSERT INTO users (id, username, password_hash, roles, disabled, created_at, updated_at) \
         VALUES ('00000000-0000-4000-8000-000000000001', 'legacy', '{hash}', '', FALSE, 0, 0)"
    ));
    assert_eq!(app.login("legacy", "password").await.status, 200);
    assert_eq!(app.count("users WHERE username = 'gus'"), 0);
}
