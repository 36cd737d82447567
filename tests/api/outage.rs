//! A database outage (docs/CONTRACT.md §6): requests that need the database answer 503
//! `temporarily_unavailable` with `Retry-After` within 3 seconds; the JWKS, PEM, metadata and
//! `/healthz` answer from memory; the service recovers by itself; CLI commands fail fast with
//! one line naming the database. PostgreSQL is taken away with a TCP proxy between the service
//! and the server (an embedded SQLite file does not go away).

use std::time::{Duration, Instant};

use crate::helpers::{Backend, TcpProxy, TestDb, eventually, run_cli, spawn_app_on};

#[actix_web::test]
#[ignore = "PostgreSQL: set TEST_POSTGRES_URL and run with --include-ignored"]
async fn postgres_outage_answers_503_fast_serves_keys_from_memory_and_recovers() {
    let backend = Backend::postgres();
    let db = TestDb::create(&backend);
    let real = url::Url::parse(&db.url).unwrap();
    let target = format!(
        "{}:{}",
        real.host_str().unwrap(),
        real.port().unwrap_or(5432)
    );
    let mut proxy = TcpProxy::start(&target).await;
    let mut via_proxy = real.clone();
    via_proxy.set_port(Some(proxy.port)).unwrap();
    let mut db = db;
    db.url = via_proxy.to_string();
    let app = spawn_app_on(std::sync::Arc::new(db), &[]).await;
    let rt = app.login_admin().await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let admin = app.admin_token().await;

    proxy.stop().await;
    // Refused, as by a stopped server (the port stays the proxy's).
    let refused = std::net::TcpStream::connect(("127.0.0.1", proxy.port)).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    let pw = app.admin_password();
    for what in [
        "password login",
        "refresh",
        "admin API",
        "revocation feed",
        "bad login",
    ] {
        let started = Instant::now();
        let resp = match what {
            "password login" => app.login("admin", &pw).await,
            "refresh" => app.refresh(&rt).await,
            "admin API" => app.call("GET", "/admin/keys", Some(&admin), None).await,
            "revocation feed" => app.get("/oauth/revocations").await,
            _ => app.login("admin", "x").await,
        };
        let took = started.elapsed();
        resp.assert_error(503, "temporarily_unavailable");
        assert!(took < Duration::from_secs(3), "{what} took {took:?}");
        assert!(resp.header("retry-after").is_some(), "{what}");
        let text = resp.text();
        assert!(
            !text.contains("postgres") && !text.contains("refused"),
            "{text}"
        );
    }
    // What is held in memory keeps answering.
    for path in [
        "/.well-known/jwks.json",
        "/keys/public.pem",
        "/.well-known/oauth-authorization-server",
        "/healthz",
    ] {
        let started = Instant::now();
        let r = app.get(path).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(started.elapsed() < Duration::from_secs(1), "{path}");
    }
    assert_eq!(app.get("/readyz").await.status, 503);
    // A CLI command fails within a few seconds, in one line naming the database.
    let started = Instant::now();
    let (code, _, err) = run_cli(&["user", "list", "--database", &app.db.url], "");
    assert_ne!(code, 0);
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("cannot reach the database") && err.contains(&proxy.port.to_string()),
        "{err}"
    );

    // Back: the service recovers without a restart.
    proxy.resume().await;
    eventually(Duration::from_secs(10), "recovery", || async {
        (app.refresh(&rt).await.status == 200).then_some(())
    })
    .await;
    assert_eq!(app.get("/readyz").await.status, 200);
    assert_eq!(app.login("admin", &app.admin_password()).await.status, 200);
}
