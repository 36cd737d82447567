//! What a security review found by hand (issue 16, item 5), each kept fixed: bodies have a read
//! deadline; answers carry `nosniff`, and those with tokens or user data `no-store`; a control
//! character in a path is a 400, not a database error; a repeated JSON key is refused as a
//! repeated form field is.

use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::both_backends;
use crate::helpers::{Backend, spawn_app, spawn_app_with};

both_backends!(
    every_answer_is_nosniff_and_private_ones_are_no_store,
    a_control_character_in_a_path_is_a_400_and_changes_nothing,
    a_repeated_json_key_is_refused_like_a_repeated_form_field,
);

async fn every_answer_is_nosniff_and_private_ones_are_no_store(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = app.admin_token().await;
    let login = app.login_admin().await;
    let access = login["access_token"].as_str().unwrap().to_owned();
    let get = |path: &'static str, token: Option<String>| {
        let mut req = app.client.get(app.url(path));
        if let Some(t) = token {
            req = req.insert_header(("authorization", format!("Bearer {t}")));
        }
        async move { req.send().await.unwrap() }
    };
    for (path, token, private) in [
        ("/healthz", None, false),
        ("/.well-known/jwks.json", None, false),
        ("/openapi.json", None, false),
        ("/me", Some(access.clone()), true),
        ("/me/sessions", Some(access.clone()), true),
        ("/admin/users", Some(admin.clone()), true),
        ("/admin/audit", Some(admin.clone()), true),
    ] {
        let resp = get(path, token).await;
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(
            header("x-content-type-options").as_deref(),
            Some("nosniff"),
            "{path}"
        );
        if private {
            assert_eq!(resp.status(), 200, "{path}");
            assert_eq!(
                header("cache-control").as_deref(),
                Some("no-store"),
                "{path}"
            );
            assert_eq!(header("pragma").as_deref(), Some("no-cache"), "{path}");
        } else {
            assert_ne!(
                header("cache-control").as_deref(),
                Some("no-store"),
                "{path}"
            );
        }
    }
    // Errors too (every error answer is no-store already).
    let missing = get("/nope", None).await;
    assert_eq!(
        missing.headers().get("x-content-type-options").unwrap(),
        "nosniff"
    );
    // Token, introspection and simplejwt answers.
    let token = app
        .client
        .post(app.url("/oauth/token"))
        .send_form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", login["refresh_token"].as_str().unwrap()),
        ])
        .await
        .unwrap();
    assert_eq!(token.status(), 200);
    assert_eq!(token.headers().get("cache-control").unwrap(), "no-store");
    assert_eq!(token.headers().get("pragma").unwrap(), "no-cache");
    assert_eq!(
        token.headers().get("x-content-type-options").unwrap(),
        "nosniff"
    );
    let drf = app
        .client
        .post(app.url("/api/token/"))
        .send_json(&json!({"username": "admin", "password": app.admin_password()}))
        .await
        .unwrap();
    assert_eq!(drf.status(), 200);
    assert_eq!(drf.headers().get("cache-control").unwrap(), "no-store");
}

async fn a_control_character_in_a_path_is_a_400_and_changes_nothing(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = app.admin_token().await;
    let users = app.count("users");
    for (method, path) in [
        ("GET", "/admin/users/a%00b/sessions"),
        ("DELETE", "/admin/users/a%00b"),
        ("PATCH", "/admin/users/%00"),
        ("GET", "/admin/clients/x%1Fy"),
        ("DELETE", "/admin/scopes/a%7fb"),
        ("POST", "/admin/keys/%00/revoke"),
        ("GET", "/keys/%00.pem"),
    ] {
        let resp = app
            .call(method, path, Some(&admin), Some(json!({"disabled": true})))
            .await;
        resp.assert_error(400, "invalid_request");
    }
    assert_eq!(app.count("users"), users);
    // A percent sign that encodes nothing harmful still routes.
    let resp = app
        .call("GET", "/admin/users/a%41b/sessions", Some(&admin), None)
        .await;
    resp.assert_error(404, "not_found");
}

async fn a_repeated_json_key_is_refused_like_a_repeated_form_field(backend: Backend) {
    let app = spawn_app(&backend).await;
    let password = app.admin_password();
    let body = format!(
        r#"{{"grant_type": "password", "username": "nobody", "username": "admin", "password": "{password}"}}"#
    );
    let resp = app
        .post_raw("/oauth/token", "application/json", body.clone())
        .await;
    resp.assert_error(400, "invalid_request");
    assert!(resp.text().contains("repeated"), "{}", resp.text());
    let form = format!("grant_type=password&username=nobody&username=admin&password={password}");
    app.post_raw("/oauth/token", "application/x-www-form-urlencoded", form)
        .await
        .assert_error(400, "invalid_request");
    // simplejwt's endpoint, and an admin body, refuse it too.
    let drf = app
        .post_raw(
            "/api/token/",
            "application/json",
            format!(r#"{{"username": "nobody", "username": "admin", "password": "{password}"}}"#),
        )
        .await;
    assert_eq!(drf.status, 400, "{}", drf.text());
    let admin = app.admin_token().await;
    let resp = app
        .client
        .post(app.url("/admin/users"))
        .insert_header(("authorization", format!("Bearer {admin}")))
        .content_type("application/json")
        .send_body(r#"{"username": "eve", "password": "a long passphrase", "roles": [], "roles": ["admin"]}"#)
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(app.count("users WHERE username = 'eve'"), 0);
}

/// A raw HTTP/1.1 exchange: headers and the first byte of a body announced longer, then one
/// byte every `every` (forever, or until the server hangs up); returns the answer's status
/// line and how long the server took to close the connection.
fn trickle(port: u16, every: Duration) -> (String, Duration) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let started = Instant::now();
    stream
        .write_all(
            b"POST /oauth/token HTTP/1.1\r\nHost: x\r\n\
              Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\ng",
        )
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    std::thread::spawn(move || {
        while writer.write_all(b"r").is_ok() {
            std::thread::sleep(every);
        }
    });
    let mut answer = Vec::new();
    // Until the server closes: read_to_end returns once it has hung up.
    let _ = stream.read_to_end(&mut answer);
    let closed_after = started.elapsed();
    let text = String::from_utf8_lossy(&answer);
    (text.lines().next().unwrap_or("").to_owned(), closed_after)
}

#[actix_web::test]
async fn a_trickled_body_is_cut_off_at_the_deadline_and_its_connection_closed() {
    let app = spawn_app_with(&Backend::Sqlite, &["--body-timeout", "1s"]).await;
    let port = app.port;
    let (silent, trickled) = tokio::task::spawn_blocking(move || {
        (
            trickle(port, Duration::from_secs(60)),
            trickle(port, Duration::from_millis(200)),
        )
    })
    .await
    .unwrap();
    for (what, (status, closed_after)) in [("silent", silent), ("trickled", trickled)] {
        assert_eq!(status, "HTTP/1.1 408 Request Timeout", "{what}");
        assert!(
            closed_after >= Duration::from_millis(900) && closed_after < Duration::from_secs(5),
            "{what}: closed after {closed_after:?}"
        );
    }
    // The service answers on.
    assert_eq!(app.get("/healthz").await.status, 200);
}

#[actix_web::test]
async fn rsa_keys_up_to_8192_bits_register_and_larger_ones_say_why_not() {
    let app = spawn_app(&Backend::Sqlite).await;
    let admin = app.admin_token().await;
    app.add_user(&admin, "robot", "robot passphrase", &[]).await;
    let pem = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/rsa6144-spki.pub.pem"
    ))
    .unwrap();
    let resp = app
        .call(
            "POST",
            "/admin/users/robot/keys",
            Some(&admin),
            Some(json!({"public_key": pem})),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    // A 9000-bit modulus (its size is the point).
    let n = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        [0xffu8; 1125],
    );
    let resp = app
        .call(
            "POST",
            "/admin/users/robot/keys",
            Some(&admin),
            Some(json!({"public_key": {"kty": "RSA", "n": n, "e": "AQAB"}})),
        )
        .await;
    resp.assert_error(400, "invalid_request");
    assert!(
        resp.text().contains("9000 bits is too large: at most 8192"),
        "{}",
        resp.text()
    );
}
