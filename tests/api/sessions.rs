//! Sessions (docs/CONTRACT.md §6): each refresh-token family, listed and ended by its user, by an admin
//! and by the CLI; ending one revokes its refresh tokens and the access tokens issued from it,
//! which then introspect inactive and appear in the revocation feed.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, Resp, TestApp, claims_of, read, spawn_app};

both_backends!(
    sessions_record_client_address_agent_and_use,
    ending_one_session_revokes_its_refresh_and_access_tokens,
    logging_out_everywhere_ends_every_session_and_lands_in_the_feed,
    admins_and_the_cli_list_and_end_a_users_sessions,
    disabling_reuse_and_rfc7009_logout_reach_the_feed,
);

const PW: &str = "dora's long password";

async fn login_as(app: &TestApp, agent: &str) -> Value {
    let resp = read(
        app.client
            .post(app.url("/oauth/token"))
            .insert_header(("user-agent", agent))
            .send_form(&[
                ("grant_type", "password"),
                ("username", "dora"),
                ("password", PW),
            ])
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()
}

async fn setup(app: &TestApp) -> String {
    let admin = app.admin_token().await;
    app.add_user(&admin, "dora", PW, &["reader"]).await;
    admin
}

fn access(login: &Value) -> String {
    login["access_token"].as_str().unwrap().to_owned()
}

fn refresh_token(login: &Value) -> String {
    login["refresh_token"].as_str().unwrap().to_owned()
}

async fn my_sessions(app: &TestApp, token: &str) -> Vec<Value> {
    let resp = app.call("GET", "/me/sessions", Some(token), None).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()["sessions"].as_array().unwrap().clone()
}

async fn feed_jtis(app: &TestApp) -> HashSet<String> {
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

async fn introspect(app: &TestApp, admin: &str, token: &str) -> Value {
    app.post_form_auth("/oauth/introspect", Some(admin), &[("token", token)])
        .await
        .json()
}

async fn sessions_record_client_address_agent_and_use(backend: Backend) {
    let app = spawn_app(&backend).await;
    setup(&app).await;
    let laptop = login_as(&app, "Firefox/140 on the laptop").await;
    let phone = login_as(&app, "Safari on the\tphone").await;
    let sessions = my_sessions(&app, &access(&laptop)).await;
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    let mine: Vec<&Value> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(mine.len(), 1, "exactly one is current");
    assert_eq!(mine[0]["user_agent"], "Firefox/140 on the laptop");
    let other = sessions.iter().find(|s| s["current"] == false).unwrap();
    assert_eq!(
        other["user_agent"], "Safari on thephone",
        "control characters dropped"
    );
    for s in &sessions {
        assert_eq!(s["client_id"], "default");
        assert_eq!(s["ip"], "127.0.0.1");
        assert!(s["created_at"].as_str().unwrap().ends_with('Z'));
        assert!(s["id"].is_string() && s["last_used_at"].is_string());
    }
    // Seen from the other device, the other one is current.
    let from_phone = my_sessions(&app, &access(&phone)).await;
    let current = from_phone.iter().find(|s| s["current"] == true).unwrap();
    assert_eq!(current["id"], other["id"]);
    // A refresh moves last_used_at and keeps the session (and its current mark).
    let day_ago = chrono::Utc::now().timestamp() - 86_400;
    app.sql(&format!(
        "UPDATE refresh_families SET last_used_at = {day_ago}, created_at = {day_ago}"
    ));
    let day_ago_text = chrono::DateTime::from_timestamp(day_ago, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let refreshed = app.refresh(&refresh_token(&phone)).await.json();
    let after = my_sessions(&app, &access(&refreshed)).await;
    let current = after.iter().find(|s| s["current"] == true).unwrap();
    assert_eq!(current["id"], other["id"]);
    assert_eq!(current["created_at"], day_ago_text.as_str());
    assert_ne!(current["last_used_at"], day_ago_text.as_str());
    // No secrets in the listing.
    let text = app
        .call("GET", "/me/sessions", Some(&access(&laptop)), None)
        .await
        .text();
    assert!(!text.contains(&refresh_token(&laptop)));
    assert_eq!(
        app.call("GET", "/me/sessions", None, None).await.status,
        401
    );
}

async fn ending_one_session_revokes_its_refresh_and_access_tokens(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = setup(&app).await;
    let laptop = login_as(&app, "laptop").await;
    let phone = login_as(&app, "phone").await;
    let phone_id = my_sessions(&app, &access(&phone))
        .await
        .into_iter()
        .find(|s| s["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Someone else's session id looks exactly like an unknown one.
    app.add_user(&admin, "eve", "eve's long password", &[])
        .await;
    let eve = app.login("eve", "eve's long password").await.json();
    let foreign = app
        .call(
            "DELETE",
            &format!("/me/sessions/{phone_id}"),
            Some(&access(&eve)),
            None,
        )
        .await;
    foreign.assert_error(404, "not_found");
    let unknown = app
        .call(
            "DELETE",
            "/me/sessions/00000000-0000-0000-0000-000000000000",
            Some(&access(&eve)),
            None,
        )
        .await;
    unknown.assert_error(404, "not_found");
    assert_eq!(
        foreign.json()["error_description"]
            .as_str()
            .unwrap()
            .replace(&phone_id, "X"),
        unknown.json()["error_description"]
            .as_str()
            .unwrap()
            .replace("00000000-0000-0000-0000-000000000000", "X")
    );
    // The laptop ends the phone's session.
    let ended = app
        .call(
            "DELETE",
            &format!("/me/sessions/{phone_id}"),
            Some(&access(&laptop)),
            None,
        )
        .await;
    assert_eq!(ended.status, 204, "{}", ended.text());
    app.refresh(&refresh_token(&phone))
        .await
        .assert_error(400, "invalid_grant");
    assert_eq!(
        introspect(&app, &admin, &access(&phone)).await,
        json!({"active": false})
    );
    app.call("GET", "/me", Some(&access(&phone)), None)
        .await
        .assert_error(401, "invalid_token");
    assert!(feed_jtis(&app).await.contains(&jti(&access(&phone))));
    // The laptop's session is untouched; ending the same session again is a 404.
    assert_eq!(app.refresh(&refresh_token(&laptop)).await.status, 200);
    assert!(!feed_jtis(&app).await.contains(&jti(&access(&laptop))));
    app.call(
        "DELETE",
        &format!("/me/sessions/{phone_id}"),
        Some(&access(&laptop)),
        None,
    )
    .await
    .assert_error(404, "not_found");
}

async fn logging_out_everywhere_ends_every_session_and_lands_in_the_feed(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = setup(&app).await;
    let logins: Vec<Value> = vec![
        login_as(&app, "a").await,
        login_as(&app, "b").await,
        login_as(&app, "c").await,
    ];
    // One more access token from a refresh: it is revoked too.
    let refreshed = app.refresh(&refresh_token(&logins[0])).await.json();
    let resp = app
        .call("DELETE", "/me/sessions", Some(&access(&logins[1])), None)
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    let feed = feed_jtis(&app).await;
    for token in logins.iter().map(access).chain([access(&refreshed)]) {
        assert!(
            feed.contains(&jti(&token)),
            "every access token is in the feed"
        );
        assert_eq!(
            introspect(&app, &admin, &token).await,
            json!({"active": false})
        );
    }
    for rt in [
        refresh_token(&logins[1]),
        refresh_token(&logins[2]),
        refresh_token(&refreshed),
    ] {
        app.refresh(&rt).await.assert_error(400, "invalid_grant");
    }
    // Logging in again starts afresh.
    let again = login_as(&app, "d").await;
    assert_eq!(my_sessions(&app, &access(&again)).await.len(), 1);
    let audit = app
        .call("GET", "/admin/audit?limit=20", Some(&admin), None)
        .await
        .json();
    assert!(
        audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "sessions_ended"
                && e["subject"] == "dora"
                && e["actor"] == "dora")
    );
}

async fn admins_and_the_cli_list_and_end_a_users_sessions(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = setup(&app).await;
    let first = login_as(&app, "first device").await;
    login_as(&app, "second device").await;
    let listed = app
        .call("GET", "/admin/users/dora/sessions", Some(&admin), None)
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text());
    let sessions = listed.json()["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 2);
    assert!(sessions.iter().all(|s| s["current"] == false));
    for (method, path, status) in [
        ("GET", "/admin/users/nobody/sessions", 404),
        ("DELETE", "/admin/users/nobody/sessions", 404),
    ] {
        app.call(method, path, Some(&admin), None)
            .await
            .assert_error(status, "not_found");
    }
    // Not with dora's own token: the admin API's audience only.
    app.call(
        "GET",
        "/admin/users/dora/sessions",
        Some(&access(&first)),
        None,
    )
    .await
    .assert_error(401, "invalid_token");

    let cli = |args: &[&str]| app.cli(args, "");
    let (code, out, err) = cli(&["user", "sessions", "dora"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("first device") && out.contains("second device"),
        "{out}"
    );
    assert!(out.contains("127.0.0.1"));
    let (code, _, err) = cli(&["user", "sessions", "nobody"]);
    assert_ne!(code, 0);
    assert!(err.contains("no user named nobody"), "{err}");
    let (code, out, err) = cli(&["user", "logout", "dora"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ended 2 session"), "{out}");
    assert!(feed_jtis(&app).await.contains(&jti(&access(&first))));
    let (_, out, _) = cli(&["user", "sessions", "dora"]);
    assert_eq!(out.lines().count(), 1, "only the header is left: {out}");

    // The admin endpoint does the same.
    let third = login_as(&app, "third device").await;
    let ended = app
        .call("DELETE", "/admin/users/dora/sessions", Some(&admin), None)
        .await;
    assert_eq!(ended.status, 204);
    app.refresh(&refresh_token(&third))
        .await
        .assert_error(400, "invalid_grant");
    assert!(feed_jtis(&app).await.contains(&jti(&access(&third))));
}

async fn disabling_reuse_and_rfc7009_logout_reach_the_feed(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = setup(&app).await;
    // RFC 7009 logout with the refresh token: the session's access tokens go too.
    let a = login_as(&app, "a").await;
    let resp: Resp = app
        .post_form_auth("/oauth/revoke", None, &[("token", &refresh_token(&a))])
        .await;
    assert_eq!(resp.status, 200);
    assert!(feed_jtis(&app).await.contains(&jti(&access(&a))));
    // A reused refresh token burns the family and its access tokens (theft is assumed).
    let b = login_as(&app, "b").await;
    let b2 = app.refresh(&refresh_token(&b)).await.json();
    app.refresh(&refresh_token(&b))
        .await
        .assert_error(400, "invalid_grant");
    let feed = feed_jtis(&app).await;
    assert!(feed.contains(&jti(&access(&b))) && feed.contains(&jti(&access(&b2))));
    // Disabling the user: every access token, from every session, lands in the feed.
    let c = login_as(&app, "c").await;
    let d = login_as(&app, "d").await;
    app.call("DELETE", "/admin/users/dora", Some(&admin), None)
        .await;
    let feed = feed_jtis(&app).await;
    for token in [access(&c), access(&d)] {
        assert!(feed.contains(&jti(&token)));
    }
    // Tokens of other users are not touched.
    let admin_jti = jti(&admin);
    assert!(!feed.contains(&admin_jti));
}
