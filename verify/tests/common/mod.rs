//! What the verifier's tests share: a scripted HTTP server, issuer keys, tokens.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jwt_issuer_verify::{ManualClock, Verifier};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub const ISSUER: &str = "https://issuer.example";

/// What the scripted server answers next.
#[derive(Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Never answer (a hung server).
    pub hang: bool,
}

impl Answer {
    pub fn jwks(set: &Value, max_age: u64, etag: &str) -> Self {
        Self {
            status: 200,
            headers: vec![
                ("Cache-Control".into(), format!("public, max-age={max_age}")),
                ("ETag".into(), etag.into()),
            ],
            body: set.to_string().into_bytes(),
            hang: false,
        }
    }

    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: vec![],
            body: b"{}".to_vec(),
            hang: false,
        }
    }
}

#[derive(Default)]
pub struct Seen {
    pub requests: AtomicUsize,
    pub if_none_match: Mutex<Vec<Option<String>>>,
    pub paths: Mutex<Vec<String>>,
}

pub struct Server {
    pub url: String,
    pub answer: Arc<Mutex<Answer>>,
    /// Answers by path prefix (`/.well-known/`, `/oauth/revocations`); other paths get
    /// `answer`.
    pub routes: Arc<Mutex<Vec<(String, Answer)>>>,
    pub seen: Arc<Seen>,
}

impl Server {
    pub async fn start(first: Answer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let answer = Arc::new(Mutex::new(first));
        let seen = Arc::new(Seen::default());
        let routes = Arc::new(Mutex::new(Vec::<(String, Answer)>::new()));
        let (a, s, m) = (answer.clone(), seen.clone(), routes.clone());
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let (a, s, m) = (a.clone(), s.clone(), m.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).to_string();
                    let inm = head
                        .lines()
                        .find_map(|l| l.strip_prefix("if-none-match: "))
                        .map(str::to_owned);
                    s.requests.fetch_add(1, Ordering::SeqCst);
                    s.if_none_match.lock().unwrap().push(inm);
                    let path = head.split(' ').nth(1).unwrap_or("").to_owned();
                    s.paths.lock().unwrap().push(path.clone());
                    let routed = m
                        .lock()
                        .unwrap()
                        .iter()
                        .find(|(prefix, _)| path.starts_with(prefix.as_str()))
                        .map(|(_, answer)| answer.clone());
                    let answer = routed.unwrap_or_else(|| a.lock().unwrap().clone());
                    if answer.hang {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        return;
                    }
                    let mut out = format!(
                        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                        answer.status,
                        answer.body.len()
                    );
                    for (k, v) in &answer.headers {
                        out.push_str(&format!("{k}: {v}\r\n"));
                    }
                    out.push_str("\r\n");
                    let mut bytes = out.into_bytes();
                    bytes.extend_from_slice(&answer.body);
                    let _ = stream.write_all(&bytes).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self {
            url,
            answer,
            routes,
            seen,
        }
    }

    pub fn answer(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    pub fn route(&self, prefix: &str, answer: Answer) {
        let mut routes = self.routes.lock().unwrap();
        routes.retain(|(p, _)| p != prefix);
        routes.push((prefix.to_owned(), answer));
    }

    pub fn base(&self) -> String {
        self.url.trim_end_matches("/jwks.json").to_owned()
    }

    pub fn requests(&self) -> usize {
        self.seen.requests.load(Ordering::SeqCst)
    }
}

/// An ES256 key of the issuer's.
pub struct TestKey {
    pub kid: String,
    pub pair: EcdsaKeyPair,
}

impl TestKey {
    pub fn new(kid: &str) -> Self {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        Self {
            kid: kid.into(),
            pair,
        }
    }

    pub fn jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "alg": "ES256", "use": "sig",
               "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65])})
    }

    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let sig = self.pair.sign(&rng, input.as_bytes()).unwrap();
        format!("{input}.{}", B64.encode(sig.as_ref()))
    }

    pub fn token(&self, now: i64) -> String {
        self.sign(&self.header(), &claims(now))
    }

    pub fn header(&self) -> Value {
        json!({"alg": "ES256", "typ": "at+jwt", "kid": self.kid})
    }

    #[allow(dead_code)]
    pub fn pkcs8(&self) -> Vec<u8> {
        self.pair.to_pkcs8v1().unwrap().as_ref().to_vec()
    }
}

pub fn claims(now: i64) -> Value {
    json!({"iss": ISSUER, "sub": "u1", "aud": [ISSUER, "https://orders.example"], "exp": now + 300,
           "iat": now, "nbf": now, "jti": format!("j{now}"), "client_id": "default",
           "scope": "orders:read profile", "username": "alice", "roles": ["admin"]})
}

pub fn set(keys: &[&TestKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()})
}

pub const T0: u64 = 1_800_000_000;

pub fn clock() -> ManualClock {
    ManualClock::at(SystemTime::UNIX_EPOCH + Duration::from_secs(T0))
}

pub fn now(clock: &ManualClock) -> i64 {
    use jwt_issuer_verify::Clock;
    clock
        .now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub async fn verifier(server: &Server, clock: &ManualClock) -> Verifier {
    Verifier::builder(ISSUER)
        .jwks_uri(&server.url)
        .clock(clock.clone())
        .build()
        .await
        .unwrap()
}

/// Waits (for real, briefly) until the background task has made `n` requests.
pub async fn until_requests(server: &Server, n: usize) {
    for _ in 0..500 {
        if server.requests() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{} requests, expected {n}", server.requests());
}

pub fn feed(entries: &[(&str, i64)], cursor: &str) -> Answer {
    Answer {
        body: json!({
            "revoked": entries.iter().map(|(j, e)| json!({"jti": j, "exp": e})).collect::<Vec<_>>(),
            "cursor": cursor,
        })
        .to_string()
        .into_bytes(),
        ..Answer::status(200)
    }
}
