//! `kill -9`: every refresh token the service answered with, and every rotation it answered,
//! is still stored after the process is killed without warning and started again. On SQLite the
//! single writer answers a batch only once it has committed; this is the test that it does.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::both_backends;
use crate::helpers::{Backend, TestDb, answers_health};

/// Refresh chains running at once, and refreshes in each.
const CHAINS: usize = 24;
const ROTATIONS: usize = 8;

/// The real binary as an operator runs it (production hashing, its own process, so that it
/// can be killed).
struct Server {
    child: Child,
    base: String,
    client: awc::Client,
}

impl Server {
    async fn start(db: &TestDb, keys: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_jwt-issuer"))
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            // The issuer (and so the audience) must not change with the port.
            .args(["--issuer", "http://issuer.test"])
            .args([
                "--database",
                &db.url,
                "--keys-dir",
                &keys.display().to_string(),
            ])
            // One address logs in many times at once here.
            .args([
                "--throttle-per-user-address",
                "10000",
                "--throttle-per-address",
                "100000",
            ])
            .args(["--throttle-per-user", "1000000"])
            .env_remove("DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn jwt-issuer");
        let server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: awc::Client::builder()
                .timeout(Duration::from_secs(30))
                .finish(),
        };
        answers_health(&server.client, &server.base).await;
        server
    }

    async fn token(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let mut resp = self
            .client
            .post(format!("{}/oauth/token", self.base))
            .send_form(&form)
            .await
            .expect("POST /oauth/token");
        let body = resp.body().await.expect("body");
        (
            resp.status().as_u16(),
            serde_json::from_slice(&body).unwrap_or(Value::Null),
        )
    }

    async fn refresh(&self, token: &str) -> (u16, Value) {
        self.token(&[("grant_type", "refresh_token"), ("refresh_token", token)])
            .await
    }

    fn kill_9(self) {
        // Drop kills it: std's kill is SIGKILL on Unix, no shutdown, no flush, nothing of ours
        // runs.
    }
}

/// A test that fails half-way leaves no server behind.
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

both_backends!(tokens_answered_before_a_kill_9_survive_it);

async fn tokens_answered_before_a_kill_9_survive_it(backend: Backend) {
    let db = Arc::new(TestDb::create(&backend));
    let keys = db.dir().join("keys");
    let server = Server::start(&db, &keys).await;
    let password = std::fs::read_to_string(keys.join("initial-admin-password")).unwrap();
    let password = password.trim();

    // Many chains at once, so that the answers come out of shared batches.
    let chains = futures_util::future::join_all((0..CHAINS).map(|_| async {
        let (status, login) = server
            .token(&[
                ("grant_type", "password"),
                ("username", "admin"),
                ("password", password),
            ])
            .await;
        assert_eq!(status, 200, "{login}");
        let mut tokens = vec![login["refresh_token"].as_str().unwrap().to_owned()];
        for _ in 0..ROTATIONS {
            let (status, next) = server.refresh(tokens.last().unwrap()).await;
            assert_eq!(status, 200, "{next}");
            tokens.push(next["refresh_token"].as_str().unwrap().to_owned());
        }
        tokens
    }))
    .await;
    // The last answer is in: kill at once.
    server.kill_9();

    let server = Server::start(&db, &keys).await;
    let (fresh, reused) = chains.split_at(CHAINS / 2);
    for tokens in fresh {
        // The last token issued is live...
        let (status, body) = server.refresh(tokens.last().unwrap()).await;
        assert_eq!(status, 200, "an answered refresh token was lost: {body}");
    }
    for tokens in reused {
        // ...and every rotation stuck: a rotated token is refused, and presenting it burns the
        // family, so the last token goes too.
        let (status, body) = server.refresh(&tokens[ROTATIONS / 2]).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{body}"
        );
        let (status, body) = server.refresh(tokens.last().unwrap()).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{body}"
        );
    }
    server.kill_9();
}
