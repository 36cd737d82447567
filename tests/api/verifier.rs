//! The verifier crate (`jwt-issuer-verify`) against the real service: discovery, our tokens,
//! a rotation that costs no fetch, a key it has never seen found by one refetch.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use jwt_issuer_verify::{Error, Events, FetchOutcome, ManualClock, Reason, Verifier};
use serde_json::json;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, spawn_app};

both_backends!(
    the_verifier_crate_checks_our_tokens_across_rotations,
    the_verifier_crate_refuses_a_revoked_token_once_it_has_read_the_feed,
    the_example_resource_server_walkthrough,
    the_verifier_crate_introspects_with_its_own_client_credentials,
);

#[derive(Clone, Default)]
struct Fetches(Arc<AtomicUsize>);

impl Events for Fetches {
    fn jwks_fetch(&self, outcome: &FetchOutcome) {
        if matches!(
            outcome,
            FetchOutcome::Updated { .. } | FetchOutcome::NotModified
        ) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Fetches {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

async fn access_token(app: &TestApp) -> String {
    app.login_admin().await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn rotate(app: &TestApp, admin: &str, alg: &str) {
    let resp = app
        .call(
            "POST",
            "/admin/keys/rotate",
            Some(admin),
            Some(json!({"alg": alg})),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
}

async fn the_verifier_crate_checks_our_tokens_across_rotations(backend: Backend) {
    let app = spawn_app(&backend).await;
    let fetches = Fetches::default();
    let verifier = Verifier::builder(&app.issuer)
        .events(fetches.clone())
        .build()
        .await
        .unwrap();
    assert_eq!(fetches.count(), 1);
    let seen = app.jwks_kids().await;

    let token = access_token(&app).await;
    let claims = verifier.verify(&token).await.unwrap();
    assert_eq!(claims.iss, app.issuer);
    assert_eq!(claims.extra.username.as_deref(), Some("admin"));
    assert!(claims.extra.roles.contains(&"admin".to_owned()));

    let admin = app.admin_token().await;
    // The rotation promotes the key published as `next`: its tokens verify with no fetch, and
    // so do the old key's. Both algorithms.
    for alg in ["ES256", "RS256"] {
        rotate(&app, &admin, alg).await;
        let after = access_token(&app).await;
        verifier.verify(&after).await.unwrap();
        verifier.verify(&token).await.unwrap();
    }
    assert_eq!(fetches.count(), 1, "a rotation cost a fetch");

    // Rotations until the active key is one the verifier has never seen (generated after its
    // fetch): found by one refetch.
    let mut unseen = access_token(&app).await;
    for _ in 0..10 {
        if !seen.contains(&TestApp::kid_of(&unseen)) {
            break;
        }
        rotate(&app, &admin, "ES256").await;
        unseen = access_token(&app).await;
    }
    assert!(!seen.contains(&TestApp::kid_of(&unseen)));
    verifier.verify(&unseen).await.unwrap();
    assert_eq!(fetches.count(), 2);

    // Tampered, or meant for another service.
    let mut tampered = unseen.clone();
    tampered.insert_str(tampered.len() - 4, "AA");
    assert!(matches!(
        verifier.verify(&tampered).await,
        Err(Error::InvalidToken(Reason::Signature | Reason::Malformed))
    ));
    let other = Verifier::builder(&app.issuer)
        .audience("https://billing.example")
        .build()
        .await
        .unwrap();
    assert_eq!(
        other.verify(&unseen).await.unwrap_err(),
        Error::InvalidToken(Reason::Audience)
    );
}

async fn the_verifier_crate_refuses_a_revoked_token_once_it_has_read_the_feed(backend: Backend) {
    let app = spawn_app(&backend).await;
    let clock = ManualClock::at(SystemTime::now());
    let verifier = Verifier::builder(&app.issuer)
        .follow_revocations()
        .revocation_interval(Duration::from_secs(5))
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    assert_eq!(verifier.revocation_lag(), Some(Duration::ZERO));
    let token = access_token(&app).await;
    let kept = access_token(&app).await;
    verifier.verify(&token).await.unwrap();

    let resp = app
        .post_form_auth("/oauth/revoke", None, &[("token", token.as_str())])
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    // Until the next read of the feed, the verifier does not know.
    verifier.verify(&token).await.unwrap();
    clock.advance(Duration::from_secs(5));
    for _ in 0..400 {
        if verifier.revoked_count() == 1 {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(verifier.revoked_count(), 1);
    assert_eq!(
        verifier.verify(&token).await.unwrap_err(),
        Error::InvalidToken(Reason::Revoked)
    );
    verifier.verify(&kept).await.unwrap();
}

/// The README's walkthrough of `examples/resource-server`: log in, call it, rotate the key,
/// call it again, revoke the token, see it refused after the next read of the feed.
async fn the_example_resource_server_walkthrough(backend: Backend) {
    use actix_web::{App, test};
    let app = spawn_app(&backend).await;
    let clock = ManualClock::at(SystemTime::now());
    let verifier = crate::resource_server::verifier(&app.issuer, None, Duration::from_secs(5))
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    let service = test::init_service(
        App::new()
            .app_data(verifier.clone())
            .configure(crate::resource_server::routes),
    )
    .await;
    let get = |path: &str, token: &str| {
        test::TestRequest::get()
            .uri(path)
            .insert_header(("Authorization", format!("Bearer {token}")))
            .to_request()
    };
    let token = access_token(&app).await;
    let resp = test::call_service(&service, get("/whoami", &token)).await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = test::read_body_json(resp).await;
    assert_eq!(body["username"], "admin");
    let resp = test::call_service(&service, get("/orders", &token)).await;
    assert_eq!(resp.status(), 403);

    rotate(&app, &app.admin_token().await, "ES256").await;
    let after = access_token(&app).await;
    assert_ne!(TestApp::kid_of(&after), TestApp::kid_of(&token));
    for t in [&after, &token] {
        let resp = test::call_service(&service, get("/whoami", t)).await;
        assert_eq!(resp.status(), 200);
    }

    let resp = app
        .post_form_auth("/oauth/revoke", None, &[("token", token.as_str())])
        .await;
    assert_eq!(resp.status, 200);
    clock.advance(Duration::from_secs(5));
    for _ in 0..400 {
        if verifier.revoked_count() == 1 {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(5)).await;
    }
    let resp = test::call_service(&service, get("/whoami", &token)).await;
    assert_eq!(resp.status(), 401);
    assert!(
        resp.headers()
            .get("WWW-Authenticate")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("the token has been revoked")
    );
    let resp = test::call_service(&service, get("/whoami", &after)).await;
    assert_eq!(resp.status(), 200);
}

async fn the_verifier_crate_introspects_with_its_own_client_credentials(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = app.admin_token().await;
    let client = app
        .add_client(
            &admin,
            json!({"client_id": "orders-api", "confidential": true,
                   "audiences": [app.issuer.clone()], "grant_types": ["client_credentials"]}),
        )
        .await;
    let secret = client["client_secret"].as_str().unwrap().to_owned();
    let clock = ManualClock::at(SystemTime::now());
    let verifier = Verifier::builder(&app.issuer)
        .introspection("orders-api", &secret)
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    let token = access_token(&app).await;
    verifier.introspect(&token).await.unwrap();

    let resp = app
        .post_form_auth("/oauth/revoke", None, &[("token", token.as_str())])
        .await;
    assert_eq!(resp.status, 200);
    // The answer is reused for 30 s, then asked again.
    verifier.introspect(&token).await.unwrap();
    clock.advance(Duration::from_secs(31));
    assert_eq!(
        verifier.introspect(&token).await.unwrap_err(),
        Error::InvalidToken(Reason::Inactive)
    );
    // Wrong credentials, or none configured: the answer cannot be had.
    let wrong = Verifier::builder(&app.issuer)
        .introspection("orders-api", "not the secret")
        .build()
        .await
        .unwrap();
    let fresh = access_token(&app).await;
    assert!(matches!(
        wrong.introspect(&fresh).await.unwrap_err(),
        Error::Unavailable(_)
    ));
    let plain = Verifier::builder(&app.issuer).build().await.unwrap();
    assert!(matches!(
        plain.introspect(&fresh).await.unwrap_err(),
        Error::Unavailable(_)
    ));
    plain.verify(&fresh).await.unwrap();
}
