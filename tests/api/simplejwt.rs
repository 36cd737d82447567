//! djangorestframework-simplejwt's `/api/token/` and `/api/token/refresh/` (CONTRACT §7): the
//! answers simplejwt 5.x and DRF give, case by case, and the same service behind them as
//! behind `/oauth/token`.

use serde_json::json;

use crate::both_backends;
use crate::helpers::{Backend, Resp, TestApp, claims_of, spawn_app, verify_with_jwks};

const OBTAIN: &str = "/api/token/";
const REFRESH: &str = "/api/token/refresh/";
const VERIFY: &str = "/api/token/verify/";
const BLACKLIST: &str = "/api/token/blacklist/";

async fn post_json(app: &TestApp, path: &str, body: serde_json::Value) -> Resp {
    app.post_raw(path, "application/json", body.to_string())
        .await
}

/// `{"refresh", "access"}`, in that order, and nothing else.
fn assert_pair(resp: &Resp) -> (String, String) {
    assert_eq!(resp.status, 200, "{}", resp.text());
    let text = resp.text();
    assert!(text.starts_with(r#"{"refresh":""#), "{text}");
    let body = resp.json();
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    (
        body["refresh"].as_str().unwrap().to_owned(),
        body["access"].as_str().unwrap().to_owned(),
    )
}

/// The admin's pair from `/api/token/`.
async fn obtain_admin(app: &TestApp) -> (String, String) {
    let body = json!({"username": "admin", "password": app.admin_password()});
    assert_pair(&post_json(app, OBTAIN, body).await)
}

fn assert_unauthorized(resp: &Resp, body: serde_json::Value) {
    assert_eq!(resp.status, 401, "{}", resp.text());
    assert_eq!(resp.json(), body);
    assert_eq!(
        resp.header("www-authenticate").as_deref(),
        Some("Bearer realm=\"api\"")
    );
}

both_backends!(
    obtain_takes_json_form_and_multipart_and_answers_simplejwts_pair,
    obtain_answers_drf_field_errors_and_parse_errors,
    wrong_unknown_or_disabled_users_get_no_active_account,
    refresh_rotates_and_a_reused_token_is_not_valid,
    other_methods_and_media_types_get_drf_answers,
    failures_are_throttled_with_oauth_token_and_sessions_are_shared,
    verify_accepts_live_access_and_refresh_tokens_and_says_why_not,
    blacklist_ends_the_session_of_a_live_refresh_token,
);

async fn obtain_takes_json_form_and_multipart_and_answers_simplejwts_pair(backend: Backend) {
    let app = spawn_app(&backend).await;
    let password = app.admin_password();
    let json_login = post_json(
        &app,
        OBTAIN,
        json!({"username": "admin", "password": password}),
    )
    .await;
    let (refresh, access) = assert_pair(&json_login);
    let claims = verify_with_jwks(&app, &access).await.unwrap();
    assert_eq!(claims["token_type"], "access");
    assert_eq!(claims["username"], "admin");
    assert_eq!(claims["client_id"], "default");
    // One service: the refresh token works at /oauth/token too.
    assert_eq!(app.refresh(&refresh).await.status, 200);

    let form = format!(
        "username=admin&password={}",
        url::form_urlencoded::byte_serialize(password.as_bytes()).collect::<String>()
    );
    assert_pair(
        &app.post_raw(OBTAIN, "application/x-www-form-urlencoded", form)
            .await,
    );

    // What a browser's FormData sends.
    let boundary = "----jwtissuerboundary";
    let multipart = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nadmin\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\n{password}\r\n\
         --{boundary}--\r\n"
    );
    let content_type = format!("multipart/form-data; boundary={boundary}");
    assert_pair(&app.post_raw(OBTAIN, &content_type, multipart).await);
    let broken = app
        .post_raw(OBTAIN, &content_type, format!("--{boundary}\r\nnonsense"))
        .await;
    assert_eq!(broken.status, 400, "{}", broken.text());
    assert!(
        broken.json()["detail"]
            .as_str()
            .unwrap()
            .starts_with("Multipart form parse error")
    );
}

async fn obtain_answers_drf_field_errors_and_parse_errors(backend: Backend) {
    let app = spawn_app(&backend).await;
    let cases = [
        (
            json!({}),
            r#"{"username":["This field is required."],"password":["This field is required."]}"#,
        ),
        (
            json!({"username": "admin"}),
            r#"{"password":["This field is required."]}"#,
        ),
        (
            json!({"username": null, "password": "   "}),
            r#"{"username":["This field may not be null."],"password":["This field may not be blank."]}"#,
        ),
        (
            json!({"username": true, "password": ["x"]}),
            r#"{"username":["Not a valid string."],"password":["Not a valid string."]}"#,
        ),
    ];
    for (body, expected) in cases {
        let resp = post_json(&app, OBTAIN, body.clone()).await;
        assert_eq!(
            (resp.status.as_u16(), resp.text().as_str()),
            (400, expected),
            "{body}"
        );
    }
    // A number is a string to DRF (str(5)): here a wrong password.
    let numeric = post_json(
        &app,
        OBTAIN,
        json!({"username": "admin", "password": 12345678}),
    )
    .await;
    assert_eq!(numeric.status, 401);
    // Forms: an empty value is blank; no body at all, every field required.
    let blank = app
        .post_raw(
            OBTAIN,
            "application/x-www-form-urlencoded",
            "username=&password=x",
        )
        .await;
    assert_eq!(
        blank.text(),
        r#"{"username":["This field may not be blank."]}"#
    );
    let refresh_missing = app
        .post_raw(REFRESH, "application/x-www-form-urlencoded", "")
        .await;
    assert_eq!(refresh_missing.status, 400);
    assert_eq!(
        refresh_missing.text(),
        r#"{"refresh":["This field is required."]}"#
    );

    let malformed = app
        .post_raw(OBTAIN, "application/json", "{\"username\": ")
        .await;
    assert_eq!(malformed.status, 400);
    assert!(
        malformed.json()["detail"]
            .as_str()
            .unwrap()
            .starts_with("JSON parse error - "),
        "{}",
        malformed.text()
    );
    let list = app.post_raw(OBTAIN, "application/json", "[1, 2]").await;
    assert_eq!(list.status, 400);
    assert_eq!(
        list.json(),
        json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]})
    );
    let null = app.post_raw(OBTAIN, "application/json", "null").await;
    assert_eq!(
        null.json(),
        json!({"non_field_errors": ["No data provided"]})
    );
}

async fn wrong_unknown_or_disabled_users_get_no_active_account(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = app.admin_token().await;
    app.add_user(&admin, "carol", "carol's password", &[]).await;
    let no_account = json!({"detail": "No active account found with the given credentials"});
    let wrong = post_json(
        &app,
        OBTAIN,
        json!({"username": "carol", "password": "not hers at all"}),
    )
    .await;
    assert_unauthorized(&wrong, no_account.clone());
    let unknown = post_json(
        &app,
        OBTAIN,
        json!({"username": "nobody", "password": "whatever it is"}),
    )
    .await;
    assert_unauthorized(&unknown, no_account.clone());
    let carols = post_json(
        &app,
        OBTAIN,
        json!({"username": "carol", "password": "carol's password"}),
    )
    .await;
    let (carols_refresh, _) = assert_pair(&carols);
    let disabled = app
        .call(
            "PATCH",
            "/admin/users/carol",
            Some(&admin),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(disabled.status, 200, "{}", disabled.text());
    let inactive = post_json(
        &app,
        OBTAIN,
        json!({"username": "carol", "password": "carol's password"}),
    )
    .await;
    assert_unauthorized(&inactive, no_account);
    // Her refresh token: simplejwt's answer for a token whose user is no longer active.
    assert_unauthorized(
        &post_json(&app, REFRESH, json!({"refresh": carols_refresh})).await,
        json!({"detail": "No active account found for the given token.", "code": "no_active_account"}),
    );
}

async fn refresh_rotates_and_a_reused_token_is_not_valid(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (first, _) = obtain_admin(&app).await;
    let rotated = post_json(&app, REFRESH, json!({"refresh": first})).await;
    let (second, access) = assert_pair(&rotated);
    assert_ne!(first, second);
    assert_eq!(claims_of(&access)["token_type"], "access");
    let not_valid = |detail: &str| json!({"detail": detail, "code": "token_not_valid"});
    // The used token is refused, and (stronger than simplejwt) its whole family with it.
    assert_unauthorized(
        &post_json(&app, REFRESH, json!({"refresh": first})).await,
        not_valid("Token is blacklisted"),
    );
    assert_unauthorized(
        &post_json(&app, REFRESH, json!({"refresh": second})).await,
        not_valid("Token is blacklisted"),
    );
    assert_unauthorized(
        &post_json(
            &app,
            REFRESH,
            json!({"refresh": "eyJhbGciOiJIUzI1NiJ9.e30.x"}),
        )
        .await,
        not_valid("Token is invalid"),
    );
    assert_unauthorized(
        &post_json(&app, REFRESH, json!({"refresh": "A".repeat(43)})).await,
        not_valid("Token is invalid"),
    );
    assert_unauthorized(
        &post_json(&app, REFRESH, json!({"refresh": access})).await,
        not_valid("Token has wrong type"),
    );
    // An expired one says so.
    let (third, _) = obtain_admin(&app).await;
    app.clock.advance(2 * 86_400);
    assert_unauthorized(
        &post_json(&app, REFRESH, json!({"refresh": third})).await,
        not_valid("Token is expired"),
    );
    let blank = post_json(&app, REFRESH, json!({"refresh": ""})).await;
    assert_eq!(
        blank.text(),
        r#"{"refresh":["This field may not be blank."]}"#
    );
}

async fn other_methods_and_media_types_get_drf_answers(backend: Backend) {
    let app = spawn_app(&backend).await;
    for path in [OBTAIN, REFRESH, VERIFY, BLACKLIST] {
        let get = app.get(path).await;
        assert_eq!(get.status, 405);
        assert_eq!(get.json(), json!({"detail": "Method \"GET\" not allowed."}));
        assert_eq!(get.header("allow").as_deref(), Some("POST, OPTIONS"));
        let put = app.call("PUT", path, None, Some(json!({}))).await;
        assert_eq!(put.json(), json!({"detail": "Method \"PUT\" not allowed."}));
        let text = app
            .post_raw(path, "text/plain; charset=utf-8", "username=admin")
            .await;
        assert_eq!(text.status, 415);
        assert_eq!(
            text.json(),
            json!({"detail": "Unsupported media type \"text/plain; charset=utf-8\" in request."})
        );
    }
    let options = app.call("OPTIONS", OBTAIN, None, None).await;
    assert_eq!(options.status, 200);
    assert_eq!(options.json()["name"], "Token Obtain Pair");
}

async fn failures_are_throttled_with_oauth_token_and_sessions_are_shared(backend: Backend) {
    let app = spawn_app(&backend).await;
    // Failures here and at /oauth/token count together.
    for _ in 0..3 {
        let wrong = post_json(
            &app,
            OBTAIN,
            json!({"username": "admin", "password": "wrong password"}),
        )
        .await;
        assert_eq!(wrong.status, 401);
    }
    for _ in 0..2 {
        app.login("admin", "wrong password")
            .await
            .assert_error(400, "invalid_grant");
    }
    let locked = post_json(
        &app,
        OBTAIN,
        json!({"username": "admin", "password": app.admin_password()}),
    )
    .await;
    assert_eq!(locked.status, 429, "{}", locked.text());
    let detail = locked.json()["detail"].as_str().unwrap().to_owned();
    assert!(
        detail.starts_with("Request was throttled. Expected available in "),
        "{detail}"
    );
    assert!(locked.header("retry-after").is_some());

    // A login here is a session like any other.
    let app = spawn_app(&backend).await;
    let (_, access) = obtain_admin(&app).await;
    let sessions = app
        .get_with(
            "/me/sessions",
            &[("authorization", &format!("Bearer {access}"))],
        )
        .await;
    assert_eq!(sessions.status, 200, "{}", sessions.text());
    let list = sessions.json();
    let list = list["sessions"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["client_id"], "default");
    assert_eq!(list[0]["current"], true);
}

async fn verify_accepts_live_access_and_refresh_tokens_and_says_why_not(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (refresh, access) = obtain_admin(&app).await;
    for token in [&refresh, &access] {
        let ok = post_json(&app, VERIFY, json!({"token": token})).await;
        assert_eq!((ok.status.as_u16(), ok.text().as_str()), (200, "{}"));
    }
    let not_valid = |detail: &str| json!({"detail": detail, "code": "token_not_valid"});
    assert_unauthorized(
        &post_json(&app, VERIFY, json!({"token": "not.a.token"})).await,
        not_valid("Token is invalid"),
    );
    let missing = post_json(&app, VERIFY, json!({})).await;
    assert_eq!(missing.text(), r#"{"token":["This field is required."]}"#);
    // A used refresh token, and the access token of an ended session: blacklisted (400).
    let (_, _) = assert_pair(&post_json(&app, REFRESH, json!({"refresh": refresh})).await);
    let blacklisted = json!({"non_field_errors": ["Token is blacklisted"]});
    let used = post_json(&app, VERIFY, json!({"token": refresh})).await;
    assert_eq!(
        (used.status.as_u16(), used.json()),
        (400, blacklisted.clone())
    );
    let revoke = app
        .post_raw(
            "/oauth/revoke",
            "application/x-www-form-urlencoded",
            format!("token={access}"),
        )
        .await;
    assert_eq!(revoke.status, 200);
    let revoked = post_json(&app, VERIFY, json!({"token": access})).await;
    assert_eq!(
        (revoked.status.as_u16(), revoked.json()),
        (400, blacklisted)
    );
    // Expired.
    let (_, later) = obtain_admin(&app).await;
    app.clock.advance(3_600);
    assert_unauthorized(
        &post_json(&app, VERIFY, json!({"token": later})).await,
        not_valid("Token is expired"),
    );
}

async fn blacklist_ends_the_session_of_a_live_refresh_token(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (refresh, access) = obtain_admin(&app).await;
    let ok = post_json(&app, BLACKLIST, json!({"refresh": refresh})).await;
    assert_eq!((ok.status.as_u16(), ok.text().as_str()), (200, "{}"));
    // The session is over: its refresh token and the access token issued from it.
    let not_valid = |detail: &str| json!({"detail": detail, "code": "token_not_valid"});
    assert_unauthorized(
        &post_json(&app, REFRESH, json!({"refresh": refresh})).await,
        not_valid("Token is blacklisted"),
    );
    assert_eq!(
        app.get_with("/me", &[("authorization", &format!("Bearer {access}"))])
            .await
            .status,
        401
    );
    // A second time, or with something else than a live refresh token: simplejwt's 401s.
    assert_unauthorized(
        &post_json(&app, BLACKLIST, json!({"refresh": refresh})).await,
        not_valid("Token is blacklisted"),
    );
    let (_, other_access) = obtain_admin(&app).await;
    assert_unauthorized(
        &post_json(&app, BLACKLIST, json!({"refresh": other_access})).await,
        not_valid("Token has wrong type"),
    );
    assert_unauthorized(
        &post_json(&app, BLACKLIST, json!({"refresh": "x"})).await,
        not_valid("Token is invalid"),
    );
    let blank = app
        .post_raw(BLACKLIST, "application/x-www-form-urlencoded", "refresh=")
        .await;
    assert_eq!(
        blank.text(),
        r#"{"refresh":["This field may not be blank."]}"#
    );
}
