//! Spawning the real application on a free port with a fresh database, and typed helpers to
//! talk to it over HTTP.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use awc::http::StatusCode;
use clap::Parser as _;
use diesel::RunQueryDsl as _;
use jwt_issuer::cli::{Cli, Options};
use jwt_issuer::clock::Clock;
use jwt_issuer::crypto::kek::KeyGen;
use jwt_issuer::crypto::signing::{Alg, Pkcs8, SigningKey};
use jwt_issuer::service::passwords::HashProfile;
use jwt_issuer::startup::{Application, Tuning};
use serde_json::Value;

/// Which database a test runs against.
#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    /// The server URL from `TEST_POSTGRES_URL`; each test creates its own database there.
    Postgres(String),
}

impl Backend {
    /// PostgreSQL at `TEST_POSTGRES_URL`. The PostgreSQL variants are `#[ignore]`d, so plain
    /// `cargo test` needs nothing but the Rust toolchain and says how many it left out; CI runs
    /// them with `--include-ignored`, and then a missing variable or an unreachable server fails
    /// them — they never pass without running.
    pub fn postgres() -> Self {
        match std::env::var("TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Self::Postgres(url),
            _ => panic!(
                "TEST_POSTGRES_URL is not set: set it to a server where tests may create databases"
            ),
        }
    }
}

/// A database that exists for one test and is dropped after it.
pub struct TestDb {
    pub url: String,
    pg: Option<(String, String)>,
    _dir: tempfile::TempDir,
    /// One pool for the test's own SQL, opened on first use.
    pool: std::sync::OnceLock<jwt_issuer::db::Db>,
}

impl TestDb {
    pub fn create(backend: &Backend) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => Self {
                url: format!("sqlite://{}", dir.path().join("issuer.db").display()),
                pg: None,
                _dir: dir,
                pool: std::sync::OnceLock::new(),
            },
            Backend::Postgres(server) => {
                let name = format!("jwt_issuer_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = jwt_issuer::db::connect_postgres(server)
                    .unwrap_or_else(|e| panic!("TEST_POSTGRES_URL is set but not reachable: {e}"));
                diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
                    .execute(&mut conn)
                    .expect("create test database");
                let mut url = url::Url::parse(server).expect("TEST_POSTGRES_URL is a URL");
                url.set_path(&name);
                Self {
                    url: url.to_string(),
                    pg: Some((server.clone(), name)),
                    _dir: dir,
                    pool: std::sync::OnceLock::new(),
                }
            }
        }
    }

    pub fn dir(&self) -> PathBuf {
        self._dir.path().to_path_buf()
    }

    /// A connection to the test database, from one pool opened on first use.
    pub fn conn(&self) -> diesel::r2d2::PooledConnection<jwt_issuer::db::Manager> {
        let db = self.pool.get_or_init(|| {
            let url = jwt_issuer::db::DatabaseUrl::parse(&self.url).unwrap();
            jwt_issuer::db::Db::open(&url).unwrap()
        });
        db.conn().unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((server, name)) = &self.pg {
            if let Ok(mut conn) = jwt_issuer::db::connect_postgres(server) {
                let _ =
                    diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .execute(&mut conn);
            }
        }
    }
}

/// Signing keys generated once per test process and handed to every test database: an RSA
/// key takes a tenth of a second to make, and each issuer starts with seven keys.
static KEY_POOL: std::sync::Mutex<Vec<(Alg, Vec<u8>)>> = std::sync::Mutex::new(Vec::new());

/// How many pooled keys of each algorithm each database has taken (by database URL): a key
/// is never given twice to one database, whichever instance asks.
static KEYS_TAKEN: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<(String, &'static str), usize>>,
> = std::sync::LazyLock::new(Default::default);

/// The `n`-th pooled key of `alg`, generated if the pool is not that long yet.
fn pooled_key(alg: Alg, n: usize) -> Vec<u8> {
    loop {
        {
            let pool = KEY_POOL.lock().unwrap();
            if let Some((_, der)) = pool.iter().filter(|(a, _)| *a == alg).nth(n) {
                return der.clone();
            }
        }
        let (_, pkcs8) = SigningKey::generate(alg).unwrap();
        KEY_POOL.lock().unwrap().push((alg, pkcs8.0));
    }
}

/// A key generator for the issuer on `db_url` that takes keys from the pool.
fn pooled_keygen(db_url: &str) -> KeyGen {
    let db_url = db_url.to_owned();
    KeyGen::from_source(Arc::new(move |alg: Alg| {
        let n = {
            let mut taken = KEYS_TAKEN.lock().unwrap();
            let count = taken.entry((db_url.clone(), alg.as_str())).or_insert(0);
            *count += 1;
            *count - 1
        };
        let der = pooled_key(alg, n);
        Ok((SigningKey::from_pkcs8(&der)?, Pkcs8(der)))
    }))
}

/// A running instance of the application.
pub struct TestApp {
    /// The app's clock: tests move it instead of sleeping.
    pub clock: Clock,
    pub address: String,
    /// The `--issuer` it runs with (its address unless given).
    pub issuer: String,
    pub port: u16,
    /// The port of `/metrics` with `--metrics-bind`.
    pub metrics_port: Option<u16>,
    pub keys_dir: PathBuf,
    pub db: Arc<TestDb>,
    pub args: Vec<String>,
    pub client: awc::Client,
    handle: ServerHandle,
}

/// Spawns the app with default options on a fresh database.
pub async fn spawn_app(backend: &Backend) -> TestApp {
    spawn_app_with(backend, &[]).await
}

/// Spawns the app with extra command-line options on a fresh database.
pub async fn spawn_app_with(backend: &Backend, extra: &[&str]) -> TestApp {
    spawn_app_on(Arc::new(TestDb::create(backend)), extra).await
}

/// Spawns the app with extra options, hashing passwords with the production parameters (for
/// the tests about hashing itself).
pub async fn spawn_app_hashing_for_real(backend: &Backend, extra: &[&str]) -> TestApp {
    let db = Arc::new(TestDb::create(backend));
    spawn_tuned(db, extra, HashProfile::Production).await
}

/// Spawns the app on an existing test database (its keys dir is `<db dir>/keys`).
pub async fn spawn_app_on(db: Arc<TestDb>, extra: &[&str]) -> TestApp {
    spawn_tuned(db, extra, HashProfile::TestOnly).await
}

/// Spawns the app on an existing test database with a keys dir of its own (an instance on
/// another machine).
pub async fn spawn_app_with_keys(db: Arc<TestDb>, keys_dir: PathBuf, extra: &[&str]) -> TestApp {
    spawn_keyed(db, keys_dir, extra, HashProfile::TestOnly).await
}

async fn spawn_tuned(db: Arc<TestDb>, extra: &[&str], hashing: HashProfile) -> TestApp {
    let keys_dir = db.dir().join("keys");
    spawn_keyed(db, keys_dir, extra, hashing).await
}

async fn spawn_keyed(
    db: Arc<TestDb>,
    keys_dir: PathBuf,
    extra: &[&str],
    hashing: HashProfile,
) -> TestApp {
    let mut args: Vec<String> = vec![
        "--database".into(),
        db.url.clone(),
        "--keys-dir".into(),
        keys_dir.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    start(db, keys_dir, args, "127.0.0.1:0", hashing).await
}

async fn start(
    db: Arc<TestDb>,
    keys_dir: PathBuf,
    args: Vec<String>,
    bind: &str,
    hashing: HashProfile,
) -> TestApp {
    let mut argv = vec![
        "jwt-issuer".to_string(),
        "serve".into(),
        "--bind".into(),
        bind.into(),
    ];
    argv.extend(args.iter().cloned());
    let cli = Cli::try_parse_from(&argv).expect("valid test options");
    let options: Options = cli.options;
    let clock = Clock::adjustable();
    let tuning = Tuning {
        hashing,
        keygen: pooled_keygen(&db.url),
        clock: clock.clone(),
    };
    let app = tokio::task::spawn_blocking(move || Application::build_tuned(&options, tuning))
        .await
        .unwrap()
        .expect("application builds");
    let port = app.port();
    let metrics_port = app.metrics_port();
    let handle = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());
    let address = format!("http://127.0.0.1:{port}");
    let issuer = args
        .iter()
        .position(|a| a == "--issuer")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| address.clone());
    TestApp {
        clock,
        issuer,
        address,
        port,
        metrics_port,
        keys_dir,
        db,
        args,
        client: awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .finish(),
        handle,
    }
}

/// A response, read whole.
pub struct Resp {
    pub status: StatusCode,
    pub headers: awc::http::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts an error answer: status, JSON `error` code and a description.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text());
        let body = self.json();
        assert_eq!(body["error"], code, "body: {body}");
        assert!(body["error_description"].is_string(), "body: {body}");
    }
}

pub async fn read(
    resp: awc::ClientResponse<
        impl futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>>
        + Unpin,
    >,
) -> Resp {
    let mut resp = resp;
    let body = resp
        .body()
        .limit(10 * 1024 * 1024)
        .await
        .expect("read body")
        .to_vec();
    Resp {
        status: resp.status(),
        headers: resp.headers().clone(),
        body,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> Resp {
        read(self.client.get(self.url(path)).send().await.expect("GET")).await
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        let mut req = self.client.get(self.url(path));
        for (k, v) in headers {
            req = req.insert_header((*k, *v));
        }
        read(req.send().await.expect("GET")).await
    }

    /// POSTs a form to the token endpoint.
    pub async fn post_token(&self, form: &[(&str, &str)]) -> Resp {
        read(
            self.client
                .post(self.url("/oauth/token"))
                .send_form(&form)
                .await
                .expect("POST"),
        )
        .await
    }

    /// POSTs raw bytes with a content type.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: impl Into<Vec<u8>>) -> Resp {
        let body: Vec<u8> = body.into();
        read(
            self.client
                .post(self.url(path))
                .insert_header(("content-type", content_type))
                .send_body(body)
                .await
                .expect("POST"),
        )
        .await
    }

    /// Runs the binary on this app's database and keys dir; returns (status, stdout, stderr).
    pub fn cli(&self, args: &[&str], stdin: &str) -> (i32, String, String) {
        let keys = self.keys_dir.display().to_string();
        let mut argv = args.to_vec();
        argv.extend(["--database", &self.db.url, "--keys-dir", &keys]);
        run_cli(&argv, stdin)
    }

    /// The bootstrap admin password.
    pub fn admin_password(&self) -> String {
        std::fs::read_to_string(self.keys_dir.join("initial-admin-password"))
            .expect("bootstrap password file")
            .trim()
            .to_owned()
    }

    /// Logs in with the password grant.
    pub async fn login(&self, username: &str, password: &str) -> Resp {
        self.post_token(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ])
        .await
    }

    /// Logs the bootstrap admin in; returns the token response body.
    pub async fn login_admin(&self) -> Value {
        let resp = self.login("admin", &self.admin_password()).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        resp.json()
    }

    pub async fn refresh(&self, refresh_token: &str) -> Resp {
        self.post_token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .await
    }

    /// Stops the server and starts it again on the same port, database and keys dir.
    pub async fn restart(self) -> TestApp {
        self.handle.stop(true).await;
        let bind = format!("127.0.0.1:{}", self.port);
        start(
            self.db.clone(),
            self.keys_dir.clone(),
            self.args.clone(),
            &bind,
            HashProfile::TestOnly,
        )
        .await
    }

    /// Runs one SQL statement directly on the app's database (to age rows instead of sleeping).
    pub fn sql(&self, statement: &str) {
        self.try_sql(statement).unwrap();
    }

    /// Runs one SQL statement directly on the app's database; returns the database's answer.
    pub fn try_sql(&self, statement: &str) -> Result<usize, String> {
        let mut conn = self.db.conn();
        diesel::sql_query(statement)
            .execute(&mut *conn)
            .map_err(|e| e.to_string())
    }

    /// `SELECT COUNT(*) FROM <from_where>` on the app's database.
    pub fn count(&self, from_where: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.db.conn();
        diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {from_where}"))
            .get_result::<Count>(&mut *conn)
            .unwrap()
            .n
    }

    /// POSTs a form with a bearer token.
    pub async fn post_form_auth(
        &self,
        path: &str,
        token: Option<&str>,
        form: &[(&str, &str)],
    ) -> Resp {
        let mut req = self.client.post(self.url(path));
        if let Some(t) = token {
            req = req.insert_header(("authorization", format!("Bearer {t}")));
        }
        read(req.send_form(&form).await.expect("POST")).await
    }

    /// An access token of the bootstrap admin for the admin API (audience `ISSUER/admin`).
    pub async fn admin_token(&self) -> String {
        let admin_audience = format!("{}/admin", self.issuer);
        let resp = self
            .post_token(&[
                ("grant_type", "password"),
                ("username", "admin"),
                ("password", &self.admin_password()),
                ("audience", &admin_audience),
            ])
            .await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        resp.json()["access_token"].as_str().unwrap().to_owned()
    }

    /// Registers a client through the admin API; returns the answer's body.
    pub async fn add_client(&self, admin: &str, body: Value) -> Value {
        let resp = self
            .call("POST", "/admin/clients", Some(admin), Some(body))
            .await;
        assert_eq!(resp.status, 201, "{}", resp.text());
        resp.json()
    }

    /// Registers a scope through the admin API.
    pub async fn add_scope(&self, admin: &str, name: &str, roles: &[&str]) {
        let body = serde_json::json!({"name": name, "roles": roles});
        let resp = self
            .call("POST", "/admin/scopes", Some(admin), Some(body))
            .await;
        assert_eq!(resp.status, 201, "{}", resp.text());
    }

    /// Creates a user through the admin API.
    pub async fn add_user(&self, admin: &str, username: &str, password: &str, roles: &[&str]) {
        let body = serde_json::json!({"username": username, "password": password, "roles": roles});
        let resp = self
            .call("POST", "/admin/users", Some(admin), Some(body))
            .await;
        assert_eq!(resp.status, 201, "{}", resp.text());
    }

    /// POSTs a form to `path` with HTTP Basic credentials.
    pub async fn post_form_basic(
        &self,
        path: &str,
        id: &str,
        secret: &str,
        form: &[(&str, &str)],
    ) -> Resp {
        use base64::Engine as _;
        let creds = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        read(
            self.client
                .post(self.url(path))
                .insert_header(("authorization", format!("Basic {creds}")))
                .send_form(&form)
                .await
                .expect("POST"),
        )
        .await
    }

    /// An access token of the bootstrap admin for the default audience (what `/me` accepts).
    pub async fn admin_default_token(&self) -> String {
        self.login_admin().await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Sends `method path` with a bearer token and an optional JSON body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.insert_header(("authorization", format!("Bearer {t}")));
        }
        let resp = match body {
            Some(b) => req.send_json(&b).await,
            None => req.send().await,
        };
        read(resp.expect("request")).await
    }

    /// The kids in the JWKS.
    pub async fn jwks_kids(&self) -> Vec<String> {
        let jwks = self.get("/.well-known/jwks.json").await.json();
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The kid an access token names.
    pub fn kid_of(token: &str) -> String {
        jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
    }
}

/// Runs the jwt-issuer binary with `args` and `stdin`; returns (status, stdout, stderr).
pub fn run_cli(args: &[&str], stdin: &str) -> (i32, String, String) {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_jwt-issuer"))
        .args(args)
        .env_remove("DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn jwt-issuer");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Decodes a JWT's payload without verifying it (for assertions only).
pub fn claims_of(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Verifies a token the way a microservice would: with only the JWKS fetched from the issuer.
/// The audience may be the default one or the admin API's (tests mint both).
pub async fn verify_with_jwks(app: &TestApp, token: &str) -> Result<Value, String> {
    use jsonwebtoken::jwk::JwkSet;
    let jwks: JwkSet =
        serde_json::from_slice(&app.get("/.well-known/jwks.json").await.body).unwrap();
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("no kid")?;
    let jwk = jwks.find(&kid).ok_or("kid not in the JWKS")?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let alg = match jwk.common.key_algorithm {
        Some(jsonwebtoken::jwk::KeyAlgorithm::RS256) => jsonwebtoken::Algorithm::RS256,
        Some(jsonwebtoken::jwk::KeyAlgorithm::ES256) => jsonwebtoken::Algorithm::ES256,
        other => return Err(format!("unexpected alg {other:?}")),
    };
    let mut validation = jsonwebtoken::Validation::new(alg);
    validation.set_issuer(&[&app.issuer]);
    validation.set_audience(&[app.issuer.clone(), format!("{}/admin", app.issuer)]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}

/// Declares a test function once for each backend: `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[actix_web::test]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }
            #[actix_web::test]
            #[ignore = "PostgreSQL: set TEST_POSTGRES_URL and run with --include-ignored"]
            async fn postgres() {
                super::$name($crate::helpers::Backend::postgres()).await
            }
        }
    )*};
}

/// SHA-256 of `text`, hex: how refresh tokens are stored and machine keys fingerprinted.
pub fn sha256_hex(text: &str) -> String {
    jwt_issuer::domain::sha256_hex(text.as_bytes())
}

/// A TCP proxy to a database server that a test can take away and bring back: the service
/// behind it sees a real outage (connections cut, new ones refused) without anyone stopping
/// the shared server. Its port stays bound through the outage (by a socket that does not
/// listen, so connections are refused): released, it was taken meanwhile by another test's
/// connection or listener once (EADDRINUSE when the database came back).
pub struct TcpProxy {
    pub port: u16,
    target: String,
    task: Option<tokio::task::JoinHandle<()>>,
    /// The port during an outage: bound, not listening.
    held: Option<tokio::net::TcpSocket>,
}

impl TcpProxy {
    /// Starts forwarding a free local port to `target` (`host:port`).
    pub async fn start(target: &str) -> Self {
        let socket = Self::socket(0);
        let port = socket.local_addr().unwrap().port();
        let mut proxy = Self {
            port,
            target: target.to_owned(),
            task: None,
            held: None,
        };
        proxy.task = Some(Self::serve(
            socket.listen(1024).unwrap(),
            proxy.target.clone(),
        ));
        proxy
    }

    /// A socket bound to `port` (0: any free one) that another socket may share while both
    /// exist (`SO_REUSEPORT`), so that the port is never free between the listener and its
    /// stand-in.
    fn socket(port: u16) -> tokio::net::TcpSocket {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.set_reuseport(true).unwrap();
        socket
            .bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
            .unwrap();
        socket
    }

    fn serve(listener: tokio::net::TcpListener, target: String) -> tokio::task::JoinHandle<()> {
        actix_web::rt::spawn(async move {
            // Dropping the set (when this task is aborted) aborts every connection.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                connections.spawn_local(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        })
    }

    /// The outage: every connection is cut and the port refuses new ones.
    pub async fn stop(&mut self) {
        if self.held.is_none() {
            self.held = Some(Self::socket(self.port));
        }
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// The database is back, on the same port.
    pub async fn resume(&mut self) {
        let socket = self.held.take().unwrap_or_else(|| Self::socket(self.port));
        self.task = Some(Self::serve(
            socket.listen(1024).unwrap(),
            self.target.clone(),
        ));
    }
}

/// Waits (up to 30 s) until a server started as a process answers `GET /healthz`.
pub async fn answers_health(client: &awc::Client, base: &str) {
    eventually(Duration::from_secs(30), "the server answers", || async {
        let r = client.get(format!("{base}/healthz")).send().await;
        r.ok().filter(|r| r.status() == 200).map(|_| ())
    })
    .await;
}

/// Polls `probe` every 100 ms until it returns `Some`, and returns that; fails the test, saying
/// `what` did not happen, after `within`. For what the service does on its own schedule (key
/// watchers, purges, other instances): tests wait for the outcome, not for a fixed time.
pub async fn eventually<T, Fut>(within: Duration, what: &str, mut probe: impl FnMut() -> Fut) -> T
where
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = std::time::Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            started.elapsed() < within,
            "{what} did not happen within {within:?}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}
