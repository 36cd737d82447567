//! Logs, from the real binary: one span per request carrying its id (kept from `X-Request-Id`
//! when well-formed), JSON lines with `--log-format json`, no colour codes when stderr is not a
//! terminal, and no secret in a trace-level log of a whole session.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Backend, TestDb, answers_health};

/// The real binary, its stderr in a file.
struct Logged {
    child: Child,
    base: String,
    client: awc::Client,
    log: std::path::PathBuf,
}

impl Logged {
    async fn start(db: &TestDb, keys: &Path, rust_log: &str, format: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = db.dir().join(format!("stderr-{format}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_jwt-issuer"))
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .args([
                "--database",
                &db.url,
                "--keys-dir",
                &keys.display().to_string(),
            ])
            .args(["--log-format", format])
            .env("RUST_LOG", rust_log)
            .env_remove("DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn jwt-issuer");
        let server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: awc::Client::builder()
                .timeout(Duration::from_secs(30))
                .finish(),
            log,
        };
        answers_health(&server.client, &server.base).await;
        server
    }

    async fn post_form(&self, path: &str, auth: Option<String>, form: &[(&str, &str)]) -> Value {
        let mut req = self.client.post(format!("{}{path}", self.base));
        if let Some(auth) = auth {
            req = req.insert_header(("authorization", auth));
        }
        let mut resp = req.send_form(&form).await.unwrap();
        let body = resp.body().await.unwrap();
        assert!(
            resp.status().is_success(),
            "{path}: {} {}",
            resp.status(),
            String::from_utf8_lossy(&body)
        );
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    }

    async fn post_json(&self, path: &str, bearer: &str, body: Value) -> Value {
        let mut resp = self
            .client
            .post(format!("{}{path}", self.base))
            .insert_header(("authorization", format!("Bearer {bearer}")))
            .send_json(&body)
            .await
            .unwrap();
        let bytes = resp.body().await.unwrap();
        assert!(
            resp.status().is_success(),
            "{path}: {}",
            String::from_utf8_lossy(&bytes)
        );
        serde_json::from_slice(&bytes).unwrap()
    }

    /// Stops the server as an operator would (SIGTERM: it finishes, writes what its logs
    /// still hold and exits) and returns what it logged.
    fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid}");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::fs::read_to_string(&self.log).unwrap()
    }

    /// What the server has written to its log so far.
    fn written(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }
}

/// A failed test leaves no server behind.
impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[actix_web::test]
async fn a_trace_level_log_of_a_whole_session_holds_none_of_its_secrets() {
    let db = TestDb::create(&Backend::Sqlite);
    let keys = db.dir().join("keys");
    let server = Logged::start(&db, &keys, "trace", "text").await;
    let admin_password = std::fs::read_to_string(keys.join("initial-admin-password"))
        .unwrap()
        .trim()
        .to_owned();
    let mut secrets = vec![admin_password.clone()];

    // The admin logs in for the admin API; refreshes; revokes.
    let admin = server
        .post_form(
            "/oauth/token",
            None,
            &[
                ("grant_type", "password"),
                ("username", "admin"),
                ("password", &admin_password),
                ("audience", &format!("{}/admin", server.base)),
            ],
        )
        .await;
    let admin_token = admin["access_token"].as_str().unwrap().to_owned();
    secrets.push(admin["refresh_token"].as_str().unwrap().to_owned());
    let session = server
        .post_form(
            "/oauth/token",
            None,
            &[
                ("grant_type", "password"),
                ("username", "admin"),
                ("password", &admin_password),
            ],
        )
        .await;
    let first_refresh = session["refresh_token"].as_str().unwrap().to_owned();
    secrets.push(session["access_token"].as_str().unwrap().to_owned());
    let refreshed = server
        .post_form(
            "/oauth/token",
            None,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &first_refresh),
            ],
        )
        .await;
    let second_refresh = refreshed["refresh_token"].as_str().unwrap().to_owned();
    let second_access = refreshed["access_token"].as_str().unwrap().to_owned();
    server
        .post_form("/oauth/revoke", None, &[("token", &second_refresh)])
        .await;
    secrets.extend([
        admin_token.clone(),
        first_refresh,
        second_refresh,
        second_access,
    ]);

    // A user with a password and a key logs in both ways.
    let password = "correct horse battery staple 42!";
    server
        .post_json(
            "/admin/users",
            &admin_token,
            json!({"username": "robot", "password": password, "roles": ["service"]}),
        )
        .await;
    let key = crate::machine::ec_key();
    server
        .post_json(
            "/admin/users/robot/keys",
            &admin_token,
            json!({"public_key": key.spki_pem, "comment": "logs"}),
        )
        .await;
    let user = server
        .post_form(
            "/oauth/token",
            None,
            &[
                ("grant_type", "password"),
                ("username", "robot"),
                ("password", password),
            ],
        )
        .await;
    let t = chrono::Utc::now().timestamp();
    let assertion = key.sign(
        jsonwebtoken::Algorithm::ES256,
        None,
        &json!({"iss": "robot", "sub": "robot", "aud": format!("{}/oauth/token", server.base), "iat": t, "exp": t + 60, "jti": uuid::Uuid::new_v4().to_string()}),
    );
    let machine = server
        .post_form(
            "/oauth/token",
            None,
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", &assertion),
            ],
        )
        .await;
    secrets.extend([
        password.to_owned(),
        user["access_token"].as_str().unwrap().to_owned(),
        user["refresh_token"].as_str().unwrap().to_owned(),
        assertion,
        machine["access_token"].as_str().unwrap().to_owned(),
        key.private_pem.clone(),
    ]);

    // A confidential client authenticates with its secret (HTTP Basic).
    let client = server
        .post_json(
            "/admin/clients",
            &admin_token,
            json!({"client_id": "batch", "confidential": true}),
        )
        .await;
    let client_secret = client["client_secret"].as_str().unwrap().to_owned();
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("batch:{client_secret}"),
    );
    server
        .post_form(
            "/oauth/token",
            Some(format!("Basic {basic}")),
            &[("grant_type", "client_credentials")],
        )
        .await;
    secrets.extend([client_secret, basic]);

    let log = server.stop();
    assert!(log.contains("answered"), "the log has the requests:\n{log}");
    assert!(!log.contains('\u{1b}'), "no colour codes in a file");
    // Lines logged inside the service's own spans name their request first.
    assert!(
        log.lines().any(
            |l| l.contains(r#" method=POST route="/oauth/token"}:password{"#)
                && l.contains("login succeeded")
        ),
        "no login line names its request:\n{log}"
    );
    for secret in &secrets {
        let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        for form in [secret.as_str(), encoded.as_str()] {
            // Long secrets also by a piece of them, in case one is logged cut or wrapped.
            let piece = &form[..form.len().min(24)];
            assert!(
                !log.contains(piece),
                "a secret ({}…) is in the log",
                &piece[..6]
            );
        }
    }
}

#[actix_web::test]
async fn json_logs_carry_the_request_id_given_or_a_new_one() {
    let db = TestDb::create(&Backend::Sqlite);
    let keys = db.dir().join("keys");
    let server = Logged::start(&db, &keys, "info", "json").await;
    let get = |id: Option<&'static str>| {
        let mut req = server
            .client
            .get(format!("{}/admin/users/x/sessions", server.base));
        if let Some(id) = id {
            req = req.insert_header(("x-request-id", id));
        }
        req.send()
    };
    let kept = get(Some("trace-me-42")).await.unwrap();
    assert_eq!(kept.status(), 401);
    assert_eq!(kept.headers().get("x-request-id").unwrap(), "trace-me-42");
    let replaced = get(Some("no spaces allowed")).await.unwrap();
    let new_id = replaced
        .headers()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(new_id.len(), 32, "a new id: {new_id}");
    let too_long: &'static str = "a".repeat(129).leak();
    let replaced = get(Some(too_long)).await.unwrap();
    assert_ne!(replaced.headers().get("x-request-id").unwrap(), too_long);
    let generated = get(None).await.unwrap();
    assert!(generated.headers().get("x-request-id").is_some());
    // A line logged inside a span of the service's own still names its request.
    let password = std::fs::read_to_string(keys.join("initial-admin-password")).unwrap();
    let login = [
        ("grant_type", "password"),
        ("username", "admin"),
        ("password", password.trim()),
    ];
    server.post_form("/oauth/token", None, &login).await;

    let log = server.stop();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l}")))
        .collect();
    let line = lines
        .iter()
        .find(|l| l["span"]["request_id"] == "trace-me-42")
        .unwrap_or_else(|| panic!("no line of the request in:\n{log}"));
    assert_eq!(line["span"]["route"], "/admin/users/{username}/sessions");
    assert_eq!(line["span"]["method"], "GET");
    assert_eq!(line["fields"]["status"], 401);
    assert!(line["fields"]["latency_ms"].as_f64().is_some(), "{line}");
    assert_eq!(line["request_id"], "trace-me-42");
    let succeeded = lines
        .iter()
        .find(|l| l["fields"]["message"] == "login succeeded")
        .unwrap_or_else(|| panic!("no login line in:\n{log}"));
    let answered = lines
        .iter()
        .find(|l| l["span"]["route"] == "/oauth/token")
        .unwrap_or_else(|| panic!("no line of the login in:\n{log}"));
    assert_eq!(succeeded["request_id"], answered["span"]["request_id"]);
    assert_eq!(answered["request_id"], answered["span"]["request_id"]);
    assert_eq!(succeeded["span"]["name"], "password", "{succeeded}");
    assert!(
        !log.contains("/admin/users/x/"),
        "paths are not logged, their patterns are"
    );
}

/// Log lines are written in batches (issue 12), but a line does not wait for the next ones: a
/// lone request's line reaches the log while the server keeps running.
#[actix_web::test]
async fn a_request_line_is_written_without_waiting_for_more_traffic_or_the_exit() {
    let db = TestDb::create(&Backend::Sqlite);
    let keys = db.dir().join("keys");
    let server = Logged::start(&db, &keys, "info", "json").await;
    let resp = server
        .client
        .get(format!("{}/.well-known/jwks.json", server.base))
        .insert_header(("x-request-id", "alone-in-the-log"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !server.written().contains("alone-in-the-log") {
        assert!(
            std::time::Instant::now() < deadline,
            "the request's line was not written within 10 s:\n{}",
            server.written()
        );
        actix_web::rt::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(server.child.id() > 0);
    let log = server.stop();
    assert!(log.contains("alone-in-the-log"));
}
