//! Authoritative tokens: registered clients, audiences and scopes decide what a token says
//! (docs/CONTRACT.md §5), managed over the admin API and the CLI.

use std::time::Duration;

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, Resp, TestApp, claims_of, eventually, spawn_app};

both_backends!(
    clients_and_scopes_are_managed_over_the_admin_api,
    bad_registry_input_gets_400_and_changes_nothing,
    bob_gets_neither_an_unregistered_audience_nor_unregistered_scopes,
    token_endpoint_authenticates_the_client_first,
    confidential_clients_get_client_credentials_tokens,
    refresh_checks_the_user_again,
    introspection_by_client_authentication_sees_only_its_audiences,
    the_grant_shows_in_introspection_me_audit_and_metadata,
    cli_manages_clients_and_scopes_and_running_servers_follow,
    hostile_client_parameters_get_oauth_errors,
);

const BOB_PW: &str = "bob's long password";

/// The payments set-up of the README: a front-end client, a scope anyone may have and one gated
/// by a role, and two users.
async fn payments_setup(app: &TestApp) -> String {
    let admin = app.admin_token().await;
    app.add_user(&admin, "bob", BOB_PW, &["reader"]).await;
    payments_setup_on(app, &admin).await;
    admin
}

/// The same, for an admin and a bob that exist already.
async fn payments_setup_on(app: &TestApp, admin: &str) {
    app.add_scope(admin, "payments:read", &[]).await;
    app.add_scope(admin, "payments:write", &["cashier"]).await;
    app.add_scope(admin, "admin:all", &["admin"]).await;
    app.add_client(
        admin,
        json!({
            "client_id": "payments-web",
            "audiences": ["https://payments.internal"],
            "scopes": ["payments:read", "payments:write"],
        }),
    )
    .await;
    app.add_user(admin, "carol", "carol's long password", &["cashier"])
        .await;
}

async fn password_grant(app: &TestApp, user: &str, pw: &str, extra: &[(&str, &str)]) -> Resp {
    let mut form = vec![
        ("grant_type", "password"),
        ("username", user),
        ("password", pw),
    ];
    form.extend_from_slice(extra);
    app.post_token(&form).await
}

fn description(resp: &Resp) -> String {
    resp.json()["error_description"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn audit_events(app: &TestApp, admin: &str) -> Vec<Value> {
    app.call("GET", "/admin/audit?limit=200", Some(admin), None)
        .await
        .json()["events"]
        .as_array()
        .unwrap()
        .clone()
}

async fn clients_and_scopes_are_managed_over_the_admin_api(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = app.admin_token().await;
    // The built-in public client exists from the first migration.
    let default = app
        .call("GET", "/admin/clients/default", Some(&admin), None)
        .await;
    assert_eq!(default.status, 200, "{}", default.text());
    let default = default.json();
    assert_eq!(default["confidential"], false);
    assert_eq!(
        default["audiences"],
        json!([
            app.address,
            format!("{}/admin", app.address),
            format!("{}/introspect", app.address)
        ])
    );
    assert_eq!(default["scopes"], json!(["*"]));
    assert!(default.get("client_secret").is_none());

    app.add_scope(&admin, "orders:read", &[]).await;
    let scope = app
        .call(
            "POST",
            "/admin/scopes",
            Some(&admin),
            Some(
                json!({"name": "orders:write", "roles": ["clerk"], "description": "place orders"}),
            ),
        )
        .await;
    assert_eq!(scope.status, 201, "{}", scope.text());
    assert_eq!(
        scope.json(),
        json!({"name": "orders:write", "roles": ["clerk"], "description": "place orders", "created_at": scope.json()["created_at"]})
    );
    let scopes = app.call("GET", "/admin/scopes", Some(&admin), None).await;
    let names: Vec<String> = scopes.json()["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["orders:read", "orders:write"]);

    // A confidential client with a generated secret: shown once, 256 bits, never again.
    let created = app
        .add_client(
            &admin,
            json!({"client_id": "orders-svc", "confidential": true, "audiences": ["https://orders.internal", "orders-api"], "scopes": ["orders:read", "orders:write"]}),
        )
        .await;
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 43, "{secret}");
    assert_eq!(created["grant_types"], json!(["client_credentials"]));
    assert_eq!(created["confidential"], true);
    assert_eq!(
        created["audiences"],
        json!(["https://orders.internal", "orders-api"])
    );
    let shown = app
        .call("GET", "/admin/clients/orders-svc", Some(&admin), None)
        .await;
    assert!(!shown.text().contains(&secret));
    assert!(shown.json().get("client_secret").is_none());
    let list = app.call("GET", "/admin/clients", Some(&admin), None).await;
    assert!(!list.text().contains(&secret));
    let ids: Vec<String> = list.json()["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["default", "orders-svc"]);
    // Stored hashed: the database holds no copy of it.
    assert_eq!(
        app.count(&format!(
            "clients WHERE secret_hash = '{secret}' OR audiences LIKE '%{secret}%'"
        )),
        0
    );

    // A supplied secret works as well, and is not echoed.
    let supplied = "s".repeat(40);
    let body = app
        .add_client(
            &admin,
            json!({"client_id": "batch", "client_secret": supplied, "grant_types": ["client_credentials"]}),
        )
        .await;
    assert!(body.get("client_secret").is_none());
    assert_eq!(body["confidential"], true);

    // Edit: PATCH changes only the fields given; a new secret can be generated.
    let patched = app
        .call(
            "PATCH",
            "/admin/clients/orders-svc",
            Some(&admin),
            Some(json!({"scopes": ["orders:read"], "grant_types": ["client_credentials", "password"]})),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text());
    assert_eq!(patched.json()["scopes"], json!(["orders:read"]));
    assert_eq!(
        patched.json()["audiences"],
        json!(["https://orders.internal", "orders-api"])
    );
    let rotated = app
        .call(
            "PATCH",
            "/admin/clients/orders-svc",
            Some(&admin),
            Some(json!({"confidential": true})),
        )
        .await
        .json();
    let new_secret = rotated["client_secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    // The default client can be edited, and stays public; it cannot be removed.
    let edited = app
        .call(
            "PATCH",
            "/admin/clients/default",
            Some(&admin),
            Some(json!({"scopes": ["orders:read"]})),
        )
        .await;
    assert_eq!(edited.status, 200, "{}", edited.text());
    app.call(
        "PATCH",
        "/admin/clients/default",
        Some(&admin),
        Some(json!({"confidential": true})),
    )
    .await
    .assert_error(409, "conflict");
    app.call("DELETE", "/admin/clients/default", Some(&admin), None)
        .await
        .assert_error(409, "conflict");
    // Duplicates and unknown ids.
    let dup = app
        .call(
            "POST",
            "/admin/clients",
            Some(&admin),
            Some(json!({"client_id": "batch"})),
        )
        .await;
    dup.assert_error(409, "conflict");
    app.call("DELETE", "/admin/clients/nope", Some(&admin), None)
        .await
        .assert_error(404, "not_found");
    app.call("GET", "/admin/clients/nope", Some(&admin), None)
        .await
        .assert_error(404, "not_found");
    app.call("DELETE", "/admin/scopes/nope", Some(&admin), None)
        .await
        .assert_error(404, "not_found");
    app.call(
        "POST",
        "/admin/scopes",
        Some(&admin),
        Some(json!({"name": "orders:read"})),
    )
    .await
    .assert_error(409, "conflict");

    // Removing a scope takes it off every client that listed it.
    let removed = app
        .call("DELETE", "/admin/scopes/orders:read", Some(&admin), None)
        .await;
    assert_eq!(removed.status, 204, "{}", removed.text());
    let svc = app
        .call("GET", "/admin/clients/orders-svc", Some(&admin), None)
        .await
        .json();
    assert_eq!(svc["scopes"], json!([]));
    let removed = app
        .call("DELETE", "/admin/clients/batch", Some(&admin), None)
        .await;
    assert_eq!(removed.status, 204);

    // Every change is in the audit log, and no secret is.
    let events = audit_events(&app, &admin).await;
    let text = serde_json::to_string(&events).unwrap();
    for secret in [secret.as_str(), new_secret, supplied.as_str()] {
        assert!(
            !text.contains(secret),
            "a client secret reached the audit log"
        );
    }
    for kind in [
        "scope_created",
        "scope_removed",
        "client_created",
        "client_updated",
        "client_removed",
    ] {
        let e = events.iter().find(|e| e["event"] == kind);
        let e = e.unwrap_or_else(|| panic!("{kind} missing"));
        assert_eq!(e["actor"], "admin", "{kind}");
    }
}

async fn bad_registry_input_gets_400_and_changes_nothing(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = app.admin_token().await;
    app.add_scope(&admin, "read", &[]).await;
    let before = app.count("clients");
    for body in [
        json!({"client_id": "has space"}),
        json!({"client_id": "a/b"}),
        json!({"client_id": ""}),
        json!({"client_id": "x".repeat(200)}),
        json!({"client_id": "ok", "audiences": ["not a uri"]}),
        json!({"client_id": "ok", "audiences": ["https://x.example/#frag"]}),
        json!({"client_id": "ok", "audiences": ["/relative"]}),
        json!({"client_id": "ok", "scopes": ["has space"]}),
        json!({"client_id": "ok", "scopes": ["quo\"te"]}),
        json!({"client_id": "ok", "scopes": ["unregistered"]}),
        json!({"client_id": "ok", "grant_types": ["implicit"]}),
        json!({"client_id": "ok", "grant_types": []}),
        json!({"client_id": "ok", "confidential": false, "client_secret": "s".repeat(40)}),
        json!({"client_id": "ok", "client_secret": "too short"}),
        json!({"client_id": "ok", "audiences": "https://not-a-list"}),
        json!({"client_id": 7}),
        json!({"client_id": "ok", "unknown_field": true}),
        json!({"client_id": "ok", "audiences": (0..40).map(|i| format!("a{i}")).collect::<Vec<_>>()}),
    ] {
        app.call("POST", "/admin/clients", Some(&admin), Some(body.clone()))
            .await
            .assert_error(400, "invalid_request");
    }
    for body in [
        json!({"name": "a b"}),
        json!({"name": "quo\"te"}),
        json!({"name": "*"}),
        json!({"name": "ok", "roles": ["bad role"]}),
        json!({"name": "ok", "description": "line\nbreak"}),
        json!({"name": "ok", "description": "d".repeat(300)}),
    ] {
        app.call("POST", "/admin/scopes", Some(&admin), Some(body.clone()))
            .await
            .assert_error(400, "invalid_request");
    }
    app.post_raw("/admin/clients", "application/json", "{")
        .await
        .assert_error(401, "unauthorized");
    let bad_json = crate::helpers::read(
        app.client
            .post(app.url("/admin/clients"))
            .insert_header(("authorization", format!("Bearer {admin}")))
            .insert_header(("content-type", "application/json"))
            .send_body("{")
            .await
            .unwrap(),
    )
    .await;
    bad_json.assert_error(400, "invalid_request");
    app.call(
        "PATCH",
        "/admin/clients/default",
        Some(&admin),
        Some(json!({"scopes": ["unregistered"]})),
    )
    .await
    .assert_error(400, "invalid_request");
    app.call(
        "PATCH",
        "/admin/clients/nope",
        Some(&admin),
        Some(json!({"scopes": []})),
    )
    .await
    .assert_error(404, "not_found");
    assert_eq!(app.count("clients"), before);
    assert_eq!(app.count("scopes"), 1);
    let default = app
        .call("GET", "/admin/clients/default", Some(&admin), None)
        .await
        .json();
    assert_eq!(default["scopes"], json!(["*"]));
}

async fn bob_gets_neither_an_unregistered_audience_nor_unregistered_scopes(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = app.admin_token().await;
    app.add_user(&admin, "bob", BOB_PW, &["reader"]).await;
    // The exact request from the issue: an audience nobody registered, then scopes nobody did.
    let aud = password_grant(
        &app,
        "bob",
        BOB_PW,
        &[
            ("audience", "https://payments.internal"),
            ("scope", "admin:all payments:write"),
        ],
    )
    .await;
    aud.assert_error(400, "invalid_target");
    assert!(description(&aud).contains("https://payments.internal"));
    let scope = password_grant(
        &app,
        "bob",
        BOB_PW,
        &[("scope", "admin:all payments:write")],
    )
    .await;
    scope.assert_error(400, "invalid_scope");
    assert!(description(&scope).contains("admin:all"), "names the scope");
    // Registered and gated: still refused for bob, granted to those holding the role.
    payments_setup_on(&app, &admin).await;
    let gated = password_grant(
        &app,
        "bob",
        BOB_PW,
        &[
            ("client_id", "payments-web"),
            ("scope", "payments:read payments:write"),
        ],
    )
    .await;
    gated.assert_error(400, "invalid_scope");
    assert!(description(&gated).contains("payments:write"));
    assert!(description(&gated).contains("cashier"));
    // Through the default client the payments audience is still not bob's to ask for.
    password_grant(
        &app,
        "bob",
        BOB_PW,
        &[("audience", "https://payments.internal")],
    )
    .await
    .assert_error(400, "invalid_target");
    // Through its client, bob gets what he may have: the client's audience, the open scope.
    let ok = password_grant(
        &app,
        "bob",
        BOB_PW,
        &[("client_id", "payments-web"), ("scope", "payments:read")],
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["scope"], "payments:read");
    let claims = claims_of(ok.json()["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], "https://payments.internal");
    assert_eq!(claims["scope"], "payments:read");
    assert_eq!(claims["client_id"], "payments-web");
    assert_eq!(claims["roles"], json!(["reader"]));
    // RFC 8707 resource works like audience.
    let res = password_grant(
        &app,
        "bob",
        BOB_PW,
        &[
            ("client_id", "payments-web"),
            ("resource", "https://payments.internal"),
        ],
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["scope"], "");
    let carol = password_grant(
        &app,
        "carol",
        "carol's long password",
        &[
            ("client_id", "payments-web"),
            ("scope", "payments:read payments:write"),
        ],
    )
    .await;
    assert_eq!(carol.status, 200, "{}", carol.text());
    assert_eq!(carol.json()["scope"], "payments:read payments:write");
    // The client may not hand out a scope it does not list, even to an admin.
    password_grant(
        &app,
        "admin",
        &app.admin_password(),
        &[("client_id", "payments-web"), ("scope", "admin:all")],
    )
    .await
    .assert_error(400, "invalid_scope");
    // Several audiences of one client: `aud` becomes an array.
    app.call(
        "PATCH",
        "/admin/clients/payments-web",
        Some(&admin),
        Some(json!({"audiences": ["https://payments.internal", "https://ledger.internal"]})),
    )
    .await;
    let two = app
        .post_token(&[
            ("grant_type", "password"),
            ("username", "bob"),
            ("password", BOB_PW),
            ("client_id", "payments-web"),
            ("resource", "https://payments.internal"),
            ("resource", "https://ledger.internal"),
        ])
        .await;
    assert_eq!(two.status, 200, "{}", two.text());
    assert_eq!(
        claims_of(two.json()["access_token"].as_str().unwrap())["aud"],
        json!(["https://payments.internal", "https://ledger.internal"])
    );
}

async fn token_endpoint_authenticates_the_client_first(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = app.admin_token().await;
    let svc = app
        .add_client(
            &admin,
            json!({"client_id": "svc", "confidential": true, "grant_types": ["client_credentials", "password"]}),
        )
        .await;
    let secret = svc["client_secret"].as_str().unwrap().to_owned();
    app.add_client(&admin, json!({"client_id": "spa"})).await;
    let cc = [("grant_type", "client_credentials")];

    // Unknown client, in the body or by Basic: 401 invalid_client.
    app.post_token(&[("grant_type", "client_credentials"), ("client_id", "ghost")])
        .await
        .assert_error(401, "invalid_client");
    let basic = app.post_form_basic("/oauth/token", "ghost", "x", &cc).await;
    basic.assert_error(401, "invalid_client");
    assert!(
        basic
            .header("www-authenticate")
            .unwrap()
            .starts_with("Basic")
    );
    // Wrong secret, missing secret: 401, with a Basic challenge.
    let wrong = app
        .post_form_basic("/oauth/token", "svc", &"w".repeat(43), &cc)
        .await;
    wrong.assert_error(401, "invalid_client");
    assert!(
        wrong
            .header("www-authenticate")
            .unwrap()
            .starts_with("Basic")
    );
    app.post_token(&[
        ("grant_type", "client_credentials"),
        ("client_id", "svc"),
        ("client_secret", "almost"),
    ])
    .await
    .assert_error(401, "invalid_client");
    let missing = app
        .post_token(&[("grant_type", "client_credentials"), ("client_id", "svc")])
        .await;
    missing.assert_error(401, "invalid_client");
    assert!(missing.header("www-authenticate").is_some());
    // A secret given to a public client.
    app.post_token(&[
        ("grant_type", "password"),
        ("client_id", "spa"),
        ("client_secret", &secret),
        ("username", "admin"),
        ("password", "x"),
    ])
    .await
    .assert_error(401, "invalid_client");
    // Both Basic and body credentials: one method only (RFC 6749 §2.3).
    app.post_form_basic(
        "/oauth/token",
        "svc",
        &secret,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "svc"),
            ("client_secret", &secret),
        ],
    )
    .await
    .assert_error(400, "invalid_request");
    // A grant the client may not use: unauthorized_client, checked after authentication.
    app.post_token(&[("grant_type", "client_credentials"), ("client_id", "spa")])
        .await
        .assert_error(400, "unauthorized_client");
    app.post_form_basic(
        "/oauth/token",
        "svc",
        &secret,
        &[("grant_type", "refresh_token"), ("refresh_token", "x")],
    )
    .await
    .assert_error(400, "unauthorized_client");
    // The right secret, either way.
    assert_eq!(
        app.post_form_basic("/oauth/token", "svc", &secret, &cc)
            .await
            .status,
        200
    );
    let post = app
        .post_token(&[
            ("grant_type", "client_credentials"),
            ("client_id", "svc"),
            ("client_secret", &secret),
        ])
        .await;
    assert_eq!(post.status, 200, "{}", post.text());
    // A confidential client using the password grant authenticates too.
    let pw = app
        .post_form_basic(
            "/oauth/token",
            "svc",
            &secret,
            &[
                ("grant_type", "password"),
                ("username", "admin"),
                ("password", &app.admin_password()),
            ],
        )
        .await;
    assert_eq!(pw.status, 200, "{}", pw.text());
    assert_eq!(
        claims_of(pw.json()["access_token"].as_str().unwrap())["client_id"],
        "svc"
    );
    // Failed client authentication says nothing secret and records nothing secret.
    let events = audit_events(&app, &admin).await;
    assert!(!serde_json::to_string(&events).unwrap().contains(&secret));
}

async fn confidential_clients_get_client_credentials_tokens(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = app.admin_token().await;
    app.add_scope(&admin, "reports:read", &[]).await;
    app.add_scope(&admin, "reports:admin", &["admin"]).await;
    let svc = app
        .add_client(
            &admin,
            json!({"client_id": "reporting", "confidential": true, "audiences": ["https://reports.internal"], "scopes": ["reports:read", "reports:admin"]}),
        )
        .await;
    let secret = svc["client_secret"].as_str().unwrap().to_owned();
    let resp = app
        .post_form_basic(
            "/oauth/token",
            "reporting",
            &secret,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "reports:read"),
            ],
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("cache-control").as_deref(), Some("no-store"));
    let body = resp.json();
    assert!(body.get("refresh_token").is_none());
    assert_eq!(body["scope"], "reports:read");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let claims = claims_of(&token);
    assert_eq!(claims["sub"], "reporting");
    assert_eq!(claims["client_id"], "reporting");
    assert_eq!(claims["aud"], "https://reports.internal");
    assert_eq!(claims["roles"], json!([]));
    assert_eq!(claims["token_type"], "access");
    assert!(claims.get("username").is_none(), "a client is no user");
    // A role-gated scope: a client holds no roles.
    app.post_form_basic(
        "/oauth/token",
        "reporting",
        &secret,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "reports:admin"),
        ],
    )
    .await
    .assert_error(400, "invalid_scope");
    // Introspection knows it; removing the client makes its tokens inactive.
    let got = app
        .post_form_auth("/oauth/introspect", Some(&admin), &[("token", &token)])
        .await
        .json();
    assert_eq!(got["active"], true, "{got}");
    assert_eq!(got["client_id"], "reporting");
    assert!(got.get("username").is_none());
    app.call("DELETE", "/admin/clients/reporting", Some(&admin), None)
        .await;
    let got = app
        .post_form_auth("/oauth/introspect", Some(&admin), &[("token", &token)])
        .await
        .json();
    assert_eq!(got, json!({"active": false}));
    app.post_form_basic(
        "/oauth/token",
        "reporting",
        &secret,
        &[("grant_type", "client_credentials")],
    )
    .await
    .assert_error(401, "invalid_client");
}

async fn refresh_checks_the_user_again(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = payments_setup(&app).await;
    let login = password_grant(
        &app,
        "carol",
        "carol's long password",
        &[
            ("client_id", "payments-web"),
            ("scope", "payments:read payments:write"),
        ],
    )
    .await
    .json();
    let rt = login["refresh_token"].as_str().unwrap().to_owned();
    let refresh = |rt: String| {
        let app = &app;
        async move {
            app.post_token(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &rt),
                ("client_id", "payments-web"),
            ])
            .await
        }
    };
    let first = refresh(rt).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.json()["scope"], "payments:read payments:write");
    // Carol loses the role that gates payments:write: the next refresh drops it, and her
    // token's roles are current.
    app.sql("UPDATE users SET roles = 'clerk' WHERE username = 'carol'");
    let second = refresh(first.json()["refresh_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(second.status, 200, "{}", second.text());
    assert_eq!(second.json()["scope"], "payments:read");
    let claims = claims_of(second.json()["access_token"].as_str().unwrap());
    assert_eq!(claims["scope"], "payments:read");
    assert_eq!(claims["roles"], json!(["clerk"]));
    assert_eq!(claims["aud"], "https://payments.internal");
    // A refresh may not ask for more than the login got.
    let rt = second.json()["refresh_token"].as_str().unwrap().to_owned();
    app.post_token(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &rt),
        ("client_id", "payments-web"),
        ("resource", "https://elsewhere.internal"),
    ])
    .await
    .assert_error(400, "invalid_target");
    // Disabled: the refresh token is dead.
    app.call("DELETE", "/admin/users/carol", Some(&admin), None)
        .await;
    refresh(rt).await.assert_error(400, "invalid_grant");
}

async fn introspection_by_client_authentication_sees_only_its_audiences(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = payments_setup(&app).await;
    let rs = app
        .add_client(
            &admin,
            json!({"client_id": "payments-api", "confidential": true, "audiences": ["https://payments.internal"], "grant_types": ["client_credentials"]}),
        )
        .await;
    let secret = rs["client_secret"].as_str().unwrap().to_owned();
    let ours = password_grant(
        &app,
        "carol",
        "carol's long password",
        &[("client_id", "payments-web")],
    )
    .await
    .json();
    let ours_access = ours["access_token"].as_str().unwrap().to_owned();
    let theirs = app.admin_default_token().await;
    let introspect_basic = |token: String| {
        let (app, secret) = (&app, secret.clone());
        async move {
            app.post_form_basic(
                "/oauth/introspect",
                "payments-api",
                &secret,
                &[("token", &token)],
            )
            .await
        }
    };
    let got = introspect_basic(ours_access.clone()).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["active"], true);
    assert_eq!(got.json()["aud"], "https://payments.internal");
    assert_eq!(got.json()["client_id"], "payments-web");
    // Another service's token, and a refresh token of another client: nothing to see.
    assert_eq!(
        introspect_basic(theirs.clone()).await.json(),
        json!({"active": false})
    );
    assert_eq!(
        introspect_basic(ours["refresh_token"].as_str().unwrap().to_owned())
            .await
            .json(),
        json!({"active": false})
    );
    // client_secret_post works too.
    let post = app
        .post_form_auth(
            "/oauth/introspect",
            None,
            &[
                ("token", &ours_access),
                ("client_id", "payments-api"),
                ("client_secret", &secret),
            ],
        )
        .await;
    assert_eq!(post.json()["active"], true, "{}", post.text());
    // A wrong secret, or a public client, cannot introspect.
    app.post_form_basic(
        "/oauth/introspect",
        "payments-api",
        &"x".repeat(43),
        &[("token", &ours_access)],
    )
    .await
    .assert_error(401, "invalid_client");
    app.post_form_basic(
        "/oauth/introspect",
        "payments-web",
        "",
        &[("token", &ours_access)],
    )
    .await
    .assert_error(401, "invalid_client");
    // The bearer form still sees everything.
    let all = app
        .post_form_auth("/oauth/introspect", Some(&admin), &[("token", &theirs)])
        .await;
    assert_eq!(all.json()["active"], true);
}

async fn the_grant_shows_in_introspection_me_audit_and_metadata(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = payments_setup(&app).await;
    // The default client with no audience asked: the default audience, which /me accepts.
    let login = password_grant(&app, "bob", BOB_PW, &[("scope", "payments:read")])
        .await
        .json();
    let token = login["access_token"].as_str().unwrap();
    let me = app.call("GET", "/me", Some(token), None).await;
    assert_eq!(me.status, 200, "{}", me.text());
    let me = me.json();
    assert_eq!(me["client_id"], "default");
    assert_eq!(me["aud"], app.address.as_str());
    assert_eq!(me["scope"], "payments:read");
    assert_eq!(me["token_type"], "access");
    let got = app
        .post_form_auth("/oauth/introspect", Some(&admin), &[("token", token)])
        .await
        .json();
    assert_eq!(got["client_id"], "default");
    assert_eq!(got["aud"], app.address.as_str());
    assert_eq!(got["scope"], "payments:read");
    let refresh = app
        .post_form_auth(
            "/oauth/introspect",
            Some(&admin),
            &[("token", login["refresh_token"].as_str().unwrap())],
        )
        .await
        .json();
    assert_eq!(refresh["aud"], json!([app.address]));
    assert_eq!(refresh["scope"], "payments:read");
    let events = audit_events(&app, &admin).await;
    let ok = events
        .iter()
        .find(|e| e["event"] == "login_ok" && e["subject"] == "bob")
        .expect("bob's login is audited");
    assert_eq!(
        ok["detail"],
        json!({"client_id": "default", "aud": [app.address], "scope": "payments:read"})
    );
    let meta = app
        .get("/.well-known/oauth-authorization-server")
        .await
        .json();
    assert_eq!(
        meta["scopes_supported"],
        json!(["admin:all", "payments:read", "payments:write"])
    );
    for method in ["client_secret_basic", "client_secret_post", "none"] {
        assert!(
            meta["token_endpoint_auth_methods_supported"]
                .as_array()
                .unwrap()
                .contains(&json!(method)),
            "{method}"
        );
    }
    assert!(
        meta["introspection_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("client_secret_basic"))
    );
}

async fn cli_manages_clients_and_scopes_and_running_servers_follow(backend: Backend) {
    let app = spawn_app(&backend).await;
    let cli = |args: &[&str], stdin: &str| app.cli(args, stdin);
    let (code, out, err) = cli(
        &[
            "scope",
            "add",
            "ledger:write",
            "--role",
            "cashier",
            "--description",
            "post entries",
        ],
        "",
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = cli(&["scope", "add", "ledger:read"], "");
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = cli(&["scope", "list"], "");
    assert_eq!(code, 0);
    assert!(
        out.contains("ledger:write") && out.contains("cashier") && out.contains("post entries")
    );
    // A confidential client with a generated secret, printed once.
    let (code, out, err) = cli(
        &[
            "client",
            "add",
            "ledger-svc",
            "--generate-secret",
            "--audience",
            "https://ledger.internal",
            "--audience",
            "ledger",
            "--scope",
            "ledger:read",
        ],
        "",
    );
    assert_eq!(code, 0, "{out}{err}");
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("client_secret: "))
        .expect("the secret is printed")
        .to_owned();
    assert!(secret.len() >= 43);
    assert!(out.contains("https://ledger.internal ledger"), "{out}");
    let (_, shown, _) = cli(&["client", "show", "ledger-svc"], "");
    assert!(
        shown.contains("confidential") && !shown.contains(&secret),
        "{shown}"
    );
    let (_, listed, _) = cli(&["client", "list"], "");
    assert!(listed.contains("default") && listed.contains("ledger-svc"));
    assert!(!listed.contains(&secret));
    // The running server takes the CLI's change within 5 seconds.
    let token = eventually(
        Duration::from_secs(5),
        "the server taking the new client",
        || async {
            let r = app
                .post_form_basic(
                    "/oauth/token",
                    "ledger-svc",
                    &secret,
                    &[
                        ("grant_type", "client_credentials"),
                        ("scope", "ledger:read"),
                    ],
                )
                .await;
            (r.status == 200).then(|| r.json()["access_token"].as_str().unwrap().to_owned())
        },
    )
    .await;
    assert_eq!(claims_of(&token)["aud"], "https://ledger.internal");
    // A secret from stdin; too short is refused with the reason.
    let (code, _, err) = cli(&["client", "add", "weak", "--secret-stdin"], "short\n");
    assert_ne!(code, 0);
    assert!(err.contains("32"), "{err}");
    let (code, out, err) = cli(
        &[
            "client",
            "add",
            "batch",
            "--secret-stdin",
            "--grant",
            "client_credentials",
        ],
        &format!("{}\n", "b".repeat(40)),
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains(&"b".repeat(40)));
    // Bad values are refused before anything is written.
    for args in [
        vec!["client", "add", "bad id"],
        vec!["client", "add", "x", "--grant", "implicit"],
        vec!["client", "add", "x", "--audience", "not a uri"],
        vec!["client", "add", "x", "--scope", "unregistered"],
        vec!["scope", "add", "bad name"],
    ] {
        let (code, _, err) = cli(&args, "");
        assert_ne!(code, 0, "{args:?}");
        assert!(!err.is_empty());
    }
    let (code, _, err) = cli(&["client", "remove", "default"], "");
    assert_ne!(code, 0);
    assert!(err.contains("not removed"), "{err}");
    let (code, _, _) = cli(&["client", "add", "ledger-svc"], "");
    assert_ne!(code, 0, "duplicate");
    // Remove: the server stops accepting the client within 5 seconds.
    let (code, out, err) = cli(&["client", "remove", "ledger-svc"], "");
    assert_eq!(code, 0, "{out}{err}");
    eventually(
        Duration::from_secs(5),
        "the server dropping the client",
        || async {
            let r = app
                .post_form_basic(
                    "/oauth/token",
                    "ledger-svc",
                    &secret,
                    &[("grant_type", "client_credentials")],
                )
                .await;
            (r.status == 401).then_some(())
        },
    )
    .await;
    let (code, out, _) = cli(&["scope", "remove", "ledger:read"], "");
    assert_eq!(code, 0);
    assert!(out.contains("removed scope ledger:read"));
    let admin = app.admin_token().await;
    let kinds: Vec<String> = audit_events(&app, &admin)
        .await
        .iter()
        .filter(|e| e["actor"] == "cli")
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    for kind in [
        "scope_created",
        "client_created",
        "client_removed",
        "scope_removed",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
}

/// Extra form fields of one case.
type Extra = Vec<(&'static str, String)>;

async fn hostile_client_parameters_get_oauth_errors(backend: Backend) {
    let app = spawn_app(&backend).await;
    let pw = app.admin_password();
    let many_scopes: String = (0..10_000).map(|i| format!("s{i} ")).collect();
    let cases: Vec<(Extra, u16, &str)> = vec![
        (
            vec![("scope", many_scopes.clone())],
            413,
            "payload_too_large",
        ),
        (vec![("scope", "s ".repeat(1_000))], 400, "invalid_scope"),
        (
            vec![("resource", "https://x.example/#frag".into())],
            400,
            "invalid_target",
        ),
        (
            vec![("resource", "relative/path".into())],
            400,
            "invalid_target",
        ),
        (vec![("audience", "\u{0}".into())], 400, "invalid_target"),
        (
            vec![("client_id", "'; DROP TABLE clients; --".into())],
            401,
            "invalid_client",
        ),
        (vec![("client_id", "x".repeat(5000))], 401, "invalid_client"),
        (vec![("scope", "quo\"te".into())], 400, "invalid_scope"),
    ];
    for (extra, status, code) in cases {
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", &pw),
        ];
        form.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
        let resp = app.post_token(&form).await;
        resp.assert_error(status, code);
    }
    // 10,000 scopes in a JSON body small enough to be read: still a clear error.
    let body = json!({"grant_type": "password", "username": "admin", "password": pw, "scope": "a ".repeat(7000)});
    app.post_raw("/oauth/token", "application/json", body.to_string())
        .await
        .assert_error(400, "invalid_scope");
    // More audiences than any client could list.
    let mut form: Vec<(&str, String)> = vec![
        ("grant_type", "password".into()),
        ("username", "admin".into()),
        ("password", pw.clone()),
    ];
    for i in 0..20 {
        form.push(("resource", format!("https://r{i}.example")));
    }
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    app.post_token(&form)
        .await
        .assert_error(400, "invalid_target");
    // The clients table is intact.
    assert_eq!(app.count("clients"), 1);
    assert_eq!(app.login_admin().await["token_type"], "Bearer");
}
