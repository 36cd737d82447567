//! Password hashing runs off the async workers with bounded concurrency: while a flood of
//! logins is being hashed, JWKS and refresh requests are still answered.

use std::cell::Cell;
use std::rc::Rc;

use crate::both_backends;
use crate::helpers::{Backend, spawn_app_hashing_for_real};

both_backends!(a_flood_of_logins_does_not_hold_up_jwks_or_refresh);

async fn a_flood_of_logins_does_not_hold_up_jwks_or_refresh(backend: Backend) {
    // The per-address throttle would turn most of this one-address flood away before hashing;
    // this test is about the hashing itself.
    let app = spawn_app_hashing_for_real(&backend, &["--throttle-per-address", "1000"]).await;
    let rt = app.login_admin().await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    const LOGINS: usize = 60;
    let done = Rc::new(Cell::new(0usize));
    // Distinct unknown names: each costs a full hash and none is throttled.
    let flood = (0..LOGINS).map(|i| {
        let done = done.clone();
        let app = &app;
        async move {
            let r = app.login(&format!("flood-{i}"), "wrong password").await;
            done.set(done.get() + 1);
            r
        }
    });
    let probe = async {
        // Let the flood reach the server first.
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
        let jwks = app.get("/.well-known/jwks.json").await;
        let refresh = app.refresh(&rt).await;
        (jwks, refresh, done.get())
    };
    let (results, (jwks, refresh, finished_logins)) =
        futures_util::future::join(futures_util::future::join_all(flood), probe).await;
    assert_eq!(jwks.status, 200);
    assert_eq!(refresh.status, 200, "{}", refresh.text());
    assert!(
        finished_logins < LOGINS / 2,
        "JWKS and refresh were answered only after {finished_logins} of {LOGINS} logins"
    );
    for r in results {
        r.assert_error(400, "invalid_grant");
    }
}
