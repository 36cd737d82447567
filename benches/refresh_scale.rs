//! Does the refresh grant slow down as refresh tokens pile up? Seeds the table with N stored
//! refresh tokens (1,000 and 1,000,000), then times sequential refresh grants end to end over
//! HTTP against the real application, on SQLite and — with `BENCH_POSTGRES_URL` (a server URL
//! where databases may be created) — PostgreSQL.
//!
//! `cargo bench --bench refresh_scale` (add `-- --quick` for 100,000 instead of 1,000,000).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use clap::Parser as _;
use diesel::{Connection as _, RunQueryDsl as _};
use jwt_issuer::cli::Cli;
use jwt_issuer::db::{DatabaseUrl, Db};
use jwt_issuer::startup::Application;

const GRANTS: usize = 2_000;

fn seed(db: &Db, n: u64) {
    let mut conn = db.conn().unwrap();
    let family = "bench-family";
    diesel::sql_query(format!(
        "INSERT INTO refresh_families (id, user_id, client_id, scope, audience, created_at)
         SELECT '{family}', id, 'bench', '', 'bench', 0 FROM users LIMIT 1"
    ))
    .execute(&mut *conn)
    .unwrap();
    let sql = match db.backend() {
        "sqlite" => format!(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n})
             INSERT INTO refresh_tokens (token_hash, family_id, created_at, expires_at, used_at)
             SELECT lower(hex(randomblob(32))), '{family}', 0, 4102444800, NULL FROM c"
        ),
        _ => format!(
            "INSERT INTO refresh_tokens (token_hash, family_id, created_at, expires_at, used_at)
             SELECT md5(random()::text) || md5(random()::text), '{family}', 0, 4102444800, NULL
             FROM generate_series(1, {n})"
        ),
    };
    diesel::sql_query(sql).execute(&mut *conn).unwrap();
    // Measure the steady state, not autovacuum and the checkpoint catching up with a bulk load.
    if db.backend() == "postgresql" {
        diesel::sql_query("VACUUM ANALYZE refresh_tokens")
            .execute(&mut *conn)
            .unwrap();
        diesel::sql_query("CHECKPOINT").execute(&mut *conn).unwrap();
    } else {
        diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut *conn)
            .unwrap();
    }
}

async fn run(url: &str, keys_dir: &std::path::Path, n: u64) -> Vec<Duration> {
    let db = Db::open(&DatabaseUrl::parse(url).unwrap()).unwrap();
    let args = [
        "jwt-issuer",
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--database",
        url,
        "--keys-dir",
        keys_dir.to_str().unwrap(),
        "--alg",
        "ES256",
    ];
    let options = Cli::try_parse_from(args).unwrap().options;
    let app = Application::build(&options).unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());
    let seeding = Instant::now();
    seed(&db, n);
    eprintln!("  seeded {n} refresh tokens in {:.1?}", seeding.elapsed());

    let client = awc::Client::default();
    let password = std::fs::read_to_string(keys_dir.join("initial-admin-password")).unwrap();
    let form = [
        ("grant_type", "password"),
        ("username", "admin"),
        ("password", password.trim()),
    ];
    let mut resp = client
        .post(format!("{base}/oauth/token"))
        .send_form(&form)
        .await
        .unwrap();
    let body: serde_json::Value = resp.json().await.unwrap();
    let mut rt = body["refresh_token"].as_str().unwrap().to_owned();
    let mut times = Vec::with_capacity(GRANTS);
    for i in 0..GRANTS + 100 {
        let start = Instant::now();
        let mut resp = client
            .post(format!("{base}/oauth/token"))
            .send_form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt.as_str()),
            ])
            .await
            .unwrap();
        let body: serde_json::Value = resp.json().await.unwrap();
        if i >= 100 {
            times.push(start.elapsed()); // the first 100 warm up caches and the pool
        }
        rt = body["refresh_token"]
            .as_str()
            .expect("refresh succeeded")
            .to_owned();
    }
    handle.stop(true).await;
    times
}

fn report(backend: &str, n: u64, mut times: Vec<Duration>) {
    times.sort();
    let mean = times.iter().sum::<Duration>() / u32::try_from(times.len()).unwrap();
    let pct = |p: f64| times[((times.len() as f64 - 1.0) * p) as usize];
    println!(
        "| {backend} | {n} | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} |",
        mean.as_secs_f64() * 1e6,
        pct(0.5).as_secs_f64() * 1e6,
        pct(0.99).as_secs_f64() * 1e6,
        1.0 / mean.as_secs_f64()
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let big = if quick { 100_000 } else { 1_000_000 };
    actix_web::rt::System::new().block_on(async {
        println!("| backend | stored refresh tokens | mean | p50 | p99 | grants/s |");
        println!("| --- | --- | --- | --- | --- | --- |");
        for n in [1_000, big] {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("bench.db").display());
            let times = run(&url, &dir.path().join("keys"), n).await;
            report("SQLite", n, times);
        }
        if let Ok(server) = std::env::var("BENCH_POSTGRES_URL") {
            for n in [1_000, big] {
                let name = format!("jwt_issuer_bench_{}", uuid::Uuid::new_v4().simple());
                let mut admin = diesel::PgConnection::establish(&server).unwrap();
                diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
                    .execute(&mut admin)
                    .unwrap();
                let mut url = url::Url::parse(&server).unwrap();
                url.set_path(&name);
                let dir = tempfile::tempdir().unwrap();
                let times = run(url.as_str(), &dir.path().join("keys"), n).await;
                report("PostgreSQL", n, times);
                diesel::sql_query(format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
                    .execute(&mut admin)
                    .unwrap();
            }
        }
    });
}
