//! Revocation (RFC 7009), introspection (RFC 7662), the revocation feed, and purging.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{
    Backend, TestApp, claims_of, eventually, spawn_app, spawn_app_on, spawn_app_with,
};

both_backends!(
    logout_revokes_the_refresh_family,
    revoked_access_token_is_inactive_rejected_by_me_and_listed_in_the_feed,
    revoke_answers_200_for_unknown_malformed_and_repeated_tokens,
    introspection_describes_live_access_and_refresh_tokens,
    every_inactive_case_introspects_as_exactly_active_false,
    introspection_requires_a_bearer_token_for_its_audience_and_role,
    feed_pages_and_resumes_without_missing_entries_across_instances,
    purge_removes_expired_rows_and_keeps_live_ones,
    a_purge_larger_than_one_round_goes_in_rounds_to_the_end,
);

async fn revoke(app: &TestApp, token: &str, hint: Option<&str>) {
    let mut form = vec![("token", token)];
    if let Some(h) = hint {
        form.push(("token_type_hint", h));
    }
    let resp = app.post_form_auth("/oauth/revoke", None, &form).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
}

async fn introspect(app: &TestApp, caller: &str, token: &str) -> Value {
    let resp = app
        .post_form_auth("/oauth/introspect", Some(caller), &[("token", token)])
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("cache-control").as_deref(), Some("no-store"));
    resp.json()
}

async fn logout_revokes_the_refresh_family(backend: Backend) {
    let app = spawn_app(&backend).await;
    let login = app.login_admin().await;
    let rt1 = login["refresh_token"].as_str().unwrap().to_owned();
    let rt2 = app.refresh(&rt1).await.json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Logout with the newest token, and the wrong hint: the whole family goes.
    revoke(&app, &rt2, Some("access_token")).await;
    app.refresh(&rt2).await.assert_error(400, "invalid_grant");
    // Another session of the same user is untouched.
    let other = app.login_admin().await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.refresh(&other).await.status, 200);
}

async fn revoked_access_token_is_inactive_rejected_by_me_and_listed_in_the_feed(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = app.admin_token().await;
    let victim = app.admin_default_token().await;
    let bystander = app.admin_default_token().await;
    assert_eq!(introspect(&app, &admin, &victim).await["active"], true);
    revoke(&app, &victim, Some("refresh_token")).await;
    assert_eq!(
        introspect(&app, &admin, &victim).await,
        json!({"active": false})
    );
    app.call("GET", "/me", Some(&victim), None)
        .await
        .assert_error(401, "invalid_token");
    assert_eq!(
        app.call("GET", "/me", Some(&bystander), None).await.status,
        200,
        "other tokens unaffected"
    );
    let feed = app.get("/oauth/revocations").await;
    assert_eq!(feed.status, 200);
    let claims = claims_of(&victim);
    assert_eq!(
        feed.json()["revoked"],
        json!([{"jti": claims["jti"], "exp": claims["exp"]}])
    );
    assert!(feed.json()["cursor"].is_string());
}

async fn revoke_answers_200_for_unknown_malformed_and_repeated_tokens(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.admin_token().await;
    for junk in ["x", &"A".repeat(43), "a.b.c", &"z".repeat(5000), "\u{0}"] {
        revoke(&app, junk, None).await;
        revoke(&app, junk, Some("refresh_token")).await;
        revoke(&app, junk, Some("something_else")).await;
    }
    revoke(&app, &token, Some("access_token")).await;
    revoke(&app, &token, None).await;
    assert_eq!(
        app.get("/oauth/revocations").await.json()["revoked"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // A missing token is a malformed request; a secret cannot be checked.
    app.post_form_auth(
        "/oauth/revoke",
        None,
        &[("token_type_hint", "access_token")],
    )
    .await
    .assert_error(400, "invalid_request");
    app.post_form_auth(
        "/oauth/revoke",
        None,
        &[("token", "x"), ("client_secret", "s")],
    )
    .await
    .assert_error(401, "invalid_client");
    app.post_raw("/oauth/revoke", "text/plain", "token=x")
        .await
        .assert_error(415, "unsupported_media_type");
    let big = format!("token={}", "x".repeat(20_000));
    app.post_raw("/oauth/revoke", "application/x-www-form-urlencoded", big)
        .await
        .assert_error(413, "payload_too_large");
}

async fn introspection_describes_live_access_and_refresh_tokens(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = app.admin_token().await;
    app.add_scope(&admin, "read", &[]).await;
    app.add_client(
        &admin,
        json!({"client_id": "spa", "audiences": ["https://api.example"], "scopes": ["read"]}),
    )
    .await;
    let pw = app.admin_password();
    let login = app
        .post_token(&[
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", &pw),
            ("scope", "read"),
            ("client_id", "spa"),
            ("audience", "https://api.example"),
        ])
        .await
        .json();
    let access = login["access_token"].as_str().unwrap();
    let caller = app.admin_token().await;
    let claims = claims_of(access);
    let got = introspect(&app, &caller, access).await;
    assert_eq!(got["active"], true);
    assert_eq!(got["token_type"], "access_token");
    for field in [
        "sub",
        "username",
        "scope",
        "client_id",
        "exp",
        "iat",
        "nbf",
        "aud",
        "iss",
        "jti",
    ] {
        assert_eq!(got[field], claims[field], "{field}");
    }
    let rt = login["refresh_token"].as_str().unwrap();
    let got = introspect(&app, &caller, rt).await;
    assert_eq!(got["active"], true);
    assert_eq!(got["token_type"], "refresh_token");
    assert_eq!(got["sub"], claims["sub"]);
    assert_eq!(got["username"], "admin");
    assert!(got["exp"].as_i64().unwrap() > claims["exp"].as_i64().unwrap());
    // A role of its own is enough to introspect.
    app.call(
        "POST",
        "/admin/users",
        Some(&caller),
        Some(
            json!({"username": "gateway", "password": "gateway password", "roles": ["introspect"]}),
        ),
    )
    .await;
    // ...with a token for the introspection audience.
    let introspect_audience = format!("{}/introspect", app.address);
    let gateway = app
        .post_token(&[
            ("grant_type", "password"),
            ("username", "gateway"),
            ("password", "gateway password"),
            ("audience", &introspect_audience),
        ])
        .await
        .json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(introspect(&app, &gateway, access).await["active"], true);
    // Its ordinary token is for resource servers, not for the introspection endpoint.
    let ordinary = app.login("gateway", "gateway password").await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post_form_auth("/oauth/introspect", Some(&ordinary), &[("token", access)])
        .await
        .assert_error(401, "invalid_token");
}

/// An EC key we hold, imported as the active signing key, so the test can sign tokens the
/// issuer's verifier accepts — and craft expired ones.
async fn import_known_key(app: &TestApp) -> (String, jsonwebtoken::EncodingKey) {
    use p256::pkcs8::{EncodePrivateKey as _, LineEnding};
    let secret = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
    let pem = secret.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    let file = app.db.dir().join("known.pem");
    std::fs::write(&file, &pem).unwrap();
    let keys = app.keys_dir.to_str().unwrap().to_owned();
    let (code, out, err) = crate::helpers::run_cli(
        &[
            "key",
            "import",
            file.to_str().unwrap(),
            "--activate",
            "--database",
            &app.db.url,
            "--keys-dir",
            &keys,
        ],
        "",
    );
    assert_eq!(code, 0, "{out}{err}");
    let kid = out.split_whitespace().nth(3).unwrap().to_owned();
    eventually(
        Duration::from_secs(5),
        "signing with the imported key",
        || async { (TestApp::kid_of(&app.admin_token().await) == kid).then_some(()) },
    )
    .await;
    (
        kid,
        jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
    )
}

async fn every_inactive_case_introspects_as_exactly_active_false(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (kid, key) = import_known_key(&app).await;
    let caller = app.admin_token().await;
    let live = app.admin_token().await;
    let claims = claims_of(&live);
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(kid.clone());
    header.typ = Some("at+jwt".into());
    let sign = |c: &Value| jsonwebtoken::encode(&header, c, &key).unwrap();
    assert_eq!(
        introspect(&app, &caller, &sign(&claims)).await["active"],
        true,
        "the crafted token is valid"
    );

    let mut expired = claims.clone();
    expired["exp"] = json!(claims["iat"].as_i64().unwrap() - 3600);
    let mut future = claims.clone();
    future["nbf"] = json!(claims["iat"].as_i64().unwrap() + 3600);
    let mut foreign_iss = claims.clone();
    foreign_iss["iss"] = json!("https://evil.example");
    let parts: Vec<&str> = live.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], b64(&json!({"sub": "x"})), parts[2]);
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "at+jwt", "kid": kid})),
        parts[1]
    );
    let pem = app.get(&format!("/keys/{kid}.pem")).await.text();
    let mut hs = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs.kid = Some(kid.clone());
    hs.typ = Some("at+jwt".into());
    let hmac = jsonwebtoken::encode(
        &hs,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(pem.as_bytes()),
    )
    .unwrap();

    // Refresh tokens: reused family, expired, disabled user.
    let login = app.login_admin().await;
    let rt1 = login["refresh_token"].as_str().unwrap().to_owned();
    let rt2 = app.refresh(&rt1).await.json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.refresh(&rt1).await; // reuse burns rt2's family
    let aged = app.login_admin().await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.call(
        "POST",
        "/admin/users",
        Some(&caller),
        Some(json!({"username": "frank", "password": "frank's password"})),
    )
    .await;
    let frank = app.login("frank", "frank's password").await.json();
    app.call("DELETE", "/admin/users/frank", Some(&caller), None)
        .await;
    let hash = crate::helpers::sha256_hex;
    app.sql(&format!(
        "UPDATE refresh_tokens SET expires_at = 1 WHERE token_hash = '{}'",
        hash(&aged)
    ));
    let revoked_access = app.admin_token().await;
    revoke(&app, &revoked_access, None).await;
    // RFC 7515 §4.1.11: a critical extension we do not understand; RFC 7519: iat ahead.
    let mut crit_header = header.clone();
    crit_header.crit = Some(vec!["exp-policy".into()]);
    let crit = jsonwebtoken::encode(&crit_header, &claims, &key).unwrap();
    let mut issued_later = claims.clone();
    issued_later["iat"] = json!(claims["iat"].as_i64().unwrap() + 3600);

    let cases: Vec<(&str, String)> = vec![
        ("unknown crit header", crit.clone()),
        ("iat in the future", sign(&issued_later)),
        ("expired", sign(&expired)),
        ("not yet valid", sign(&future)),
        ("foreign issuer", sign(&foreign_iss)),
        ("tampered", tampered),
        ("alg none", none),
        ("HMAC with the public key", hmac),
        ("revoked access token", revoked_access),
        ("reused family", rt2),
        ("expired refresh token", aged),
        (
            "disabled user's access token",
            frank["access_token"].as_str().unwrap().to_owned(),
        ),
        (
            "disabled user's refresh token",
            frank["refresh_token"].as_str().unwrap().to_owned(),
        ),
        ("unknown refresh token", "B".repeat(43)),
        ("garbage", "not a token".into()),
        ("huge", "a.".repeat(4000)),
    ];
    // Our own bearer checks refuse them too.
    let crit_default_aud = {
        let mut c = claims.clone();
        c["aud"] = json!(app.address);
        jsonwebtoken::encode(&crit_header, &c, &key).unwrap()
    };
    app.call("GET", "/admin/keys", Some(&crit), None)
        .await
        .assert_error(401, "invalid_token");
    app.call("GET", "/me", Some(&crit_default_aud), None)
        .await
        .assert_error(401, "invalid_token");
    app.call("GET", "/admin/keys", Some(&sign(&issued_later)), None)
        .await
        .assert_error(401, "invalid_token");
    for (what, token) in &cases {
        assert_eq!(
            introspect(&app, &caller, token).await,
            json!({"active": false}),
            "{what}"
        );
    }
    // Signed by a key that was then revoked in an emergency.
    let signed_by_known = sign(&claims);
    let resp = app
        .call(
            "POST",
            &format!("/admin/keys/{kid}/revoke"),
            Some(&caller),
            None,
        )
        .await;
    assert_eq!(resp.status, 200);
    let caller = app.admin_token().await;
    assert_eq!(
        introspect(&app, &caller, &signed_by_known).await,
        json!({"active": false})
    );
}

async fn introspection_requires_a_bearer_token_for_its_audience_and_role(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = app.admin_token().await;
    let none = app
        .post_form_auth("/oauth/introspect", None, &[("token", &admin)])
        .await;
    none.assert_error(401, "unauthorized");
    assert!(
        none.header("www-authenticate")
            .unwrap()
            .starts_with("Bearer")
    );
    app.call(
        "POST",
        "/admin/users",
        Some(&admin),
        Some(json!({"username": "plain", "password": "plain password"})),
    )
    .await;
    let plain = app.login("plain", "plain password").await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // A plain user's token is for the default audience: not accepted here, and a token for
    // the introspection audience is not issued to them at all.
    app.post_form_auth("/oauth/introspect", Some(&plain), &[("token", &admin)])
        .await
        .assert_error(401, "invalid_token");
    let introspect_audience = format!("{}/introspect", app.address);
    app.post_token(&[
        ("grant_type", "password"),
        ("username", "plain"),
        ("password", "plain password"),
        ("audience", &introspect_audience),
    ])
    .await
    .assert_error(400, "invalid_target");
    app.post_form_auth("/oauth/introspect", Some(&admin), &[])
        .await
        .assert_error(400, "invalid_request");
}

async fn feed_pages_and_resumes_without_missing_entries_across_instances(backend: Backend) {
    let a = spawn_app(&backend).await;
    let b = spawn_app_on(a.db.clone(), &["--issuer", &a.address]).await;
    // Tokens to revoke, through both instances at once, while a follower polls the feed.
    let mut tokens = Vec::new();
    for _ in 0..30 {
        tokens.push(a.admin_token().await);
    }
    let expected: HashSet<String> = tokens
        .iter()
        .map(|t| claims_of(t)["jti"].as_str().unwrap().to_owned())
        .collect();
    let revokes = tokens.iter().enumerate().map(|(i, t)| {
        let app = if i % 2 == 0 { &a } else { &b };
        revoke(app, t, None)
    });
    let follower = async {
        let mut seen = Vec::new();
        let mut cursor = String::new();
        let started = Instant::now();
        while seen.len() < 30 && started.elapsed() < Duration::from_secs(20) {
            let page = a
                .get(&format!("/oauth/revocations?after={cursor}&limit=7"))
                .await
                .json();
            for r in page["revoked"].as_array().unwrap() {
                seen.push(r["jti"].as_str().unwrap().to_owned());
            }
            cursor = page["cursor"].as_str().unwrap().to_owned();
        }
        seen
    };
    let (_, seen) =
        futures_util::future::join(futures_util::future::join_all(revokes), follower).await;
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no entry twice");
    assert_eq!(unique, expected, "every revocation seen exactly once");
    // Paging from the start gives the same entries, oldest first, in pages of at most `limit`.
    let mut cursor = String::new();
    let mut all = Vec::new();
    loop {
        let page = b
            .get(&format!("/oauth/revocations?after={cursor}&limit=7"))
            .await
            .json();
        let n = page["revoked"].as_array().unwrap().len();
        assert!(n <= 7);
        all.extend(
            page["revoked"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["jti"].as_str().unwrap().to_owned()),
        );
        cursor = page["cursor"].as_str().unwrap().to_owned();
        if n < 7 {
            break;
        }
    }
    assert_eq!(
        all, seen,
        "the same entries in the same (oldest first) order"
    );
    assert_eq!(all.iter().cloned().collect::<HashSet<_>>(), expected);
    // The final cursor is empty-handed until something new is revoked.
    let tail = a
        .get(&format!("/oauth/revocations?after={cursor}"))
        .await
        .json();
    assert_eq!(tail["revoked"], json!([]));
    for bad in [
        "after=garbage",
        "after=MTIz",
        "limit=0",
        "limit=1001",
        "limit=x",
        "since=1",
    ] {
        a.get(&format!("/oauth/revocations?{bad}"))
            .await
            .assert_error(400, "invalid_request");
    }
}

async fn purge_removes_expired_rows_and_keeps_live_ones(backend: Backend) {
    let app = spawn_app_with(&backend, &["--purge-every", "1s"]).await;
    // Live: one refresh family, one revoked access token. Expired: aged copies of each, and a
    // stale throttle row.
    let live = app.login_admin().await;
    let old = app.login_admin().await;
    let old_rt = old["refresh_token"].as_str().unwrap().to_owned();
    app.refresh(&old_rt).await;
    revoke(&app, live["access_token"].as_str().unwrap(), None).await;
    revoke(&app, old["access_token"].as_str().unwrap(), None).await;
    app.login("ghost", "wrong").await;
    let old_jti = claims_of(old["access_token"].as_str().unwrap())["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    let live_rt = live["refresh_token"].as_str().unwrap();
    let hash = crate::helpers::sha256_hex;
    app.sql(&format!(
        "UPDATE refresh_tokens SET expires_at = 1 WHERE token_hash <> '{}'",
        hash(live_rt)
    ));
    app.sql(&format!("UPDATE refresh_families SET created_at = 1 WHERE id IN (SELECT family_id FROM refresh_tokens WHERE token_hash <> '{}')", hash(live_rt)));
    app.sql(&format!(
        "UPDATE revoked_access_tokens SET exp = 1 WHERE jti = '{old_jti}'"
    ));
    app.sql("UPDATE login_attempts SET window_start = 1, locked_until = 1");
    let audit_before = app.count("audit_log");
    let keys_before = app.count("signing_keys");

    eventually(Duration::from_secs(5), "the purge", || async {
        (app.count("refresh_tokens") == 1
            && app.count("revoked_access_tokens") == 1
            && app.count("login_attempts") == 0
            && app.count("refresh_families") == 1)
            .then_some(())
    })
    .await;
    // What is live still works; history is kept.
    assert_eq!(app.refresh(live_rt).await.status, 200);
    assert_eq!(
        app.get("/oauth/revocations").await.json()["revoked"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // The purge keeps the audit log (within its retention) and the key history whole.
    assert_eq!(app.count("audit_log"), audit_before);
    assert_eq!(app.count("signing_keys"), keys_before);
}

async fn a_purge_larger_than_one_round_goes_in_rounds_to_the_end(backend: Backend) {
    // One purge an hour, the first at start-up: what that one purge leaves stays.
    let app = spawn_app_with(&backend, &["--purge-every", "1h"]).await;
    let live = app.login_admin().await;
    // 5,000 expired refresh tokens (2.5 rounds of 2,000) in the live token's family.
    let live_hash = crate::helpers::sha256_hex(live["refresh_token"].as_str().unwrap());
    let rows = format!(
        "SELECT 'expired-' || x, family_id, 1, 2, 1 FROM refresh_tokens, {{series}} \
         WHERE token_hash = '{live_hash}'"
    );
    app.sql(&if app.db.url.starts_with("sqlite") {
        format!(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000) \
             INSERT INTO refresh_tokens (token_hash, family_id, created_at, expires_at, used_at) {}",
            rows.replace("{series}", "c")
        )
    } else {
        format!(
            "INSERT INTO refresh_tokens (token_hash, family_id, created_at, expires_at, used_at) {}",
            rows.replace("{series}", "generate_series(1, 5000) AS x")
        )
    });
    assert_eq!(app.count("refresh_tokens"), 5001);
    let app = app.restart().await;
    eventually(Duration::from_secs(10), "the whole purge", || async {
        (app.count("refresh_tokens") == 1).then_some(())
    })
    .await;
    // The live token is the one left, and still works.
    assert_eq!(
        app.count(&format!("refresh_tokens WHERE token_hash = '{live_hash}'")),
        1
    );
    assert_eq!(
        app.refresh(live["refresh_token"].as_str().unwrap())
            .await
            .status,
        200
    );
}
