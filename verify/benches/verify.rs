//! Verifications per second, RS256 and ES256, against the signature check alone (the same
//! aws-lc-rs call on the same parsed key): the difference is the verifier's own cost (splitting
//! and base64, header checks, key lookup, claims parsing and checks). Compare the signature-only rate
//! with `openssl speed -seconds 3 rsa2048 ecdsap256` (the `verify/s` columns) on the same
//! machine.
//!
//!     cargo bench -p jwt-issuer-verify --bench verify
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use criterion::{Criterion, criterion_group, criterion_main};
use jwt_issuer_verify::Verifier;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const ISSUER: &str = "https://issuer.example";

/// Polls a future that is ready at once (a verification with cached keys) without an
/// executor's overhead.
fn now_ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the verification waited"),
    }
}

fn token(header: &Value, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let sig = sign(input.as_bytes());
    format!("{input}.{}", B64.encode(sig))
}

/// Serves `body` to every request on a loopback port; returns its URL.
async fn serve(body: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\nCache-Control: max-age=86400\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    url
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rng = SystemRandom::new();
    let rsa = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let (n, e) = (
        B64.encode(rsa.public_key().modulus().big_endian_without_leading_zero()),
        B64.encode(
            rsa.public_key()
                .exponent()
                .big_endian_without_leading_zero(),
        ),
    );
    let point = ec.public_key().as_ref();
    let (x, y) = (B64.encode(&point[1..33]), B64.encode(&point[33..65]));
    let jwks = json!({"keys": [
        {"kty": "RSA", "kid": "rsa", "alg": "RS256", "use": "sig", "n": n, "e": e},
        {"kty": "EC", "kid": "ec", "alg": "ES256", "use": "sig", "crv": "P-256", "x": x, "y": y},
    ]});
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = json!({"iss": ISSUER, "sub": "8d3f0d8e-5c1b-4b7e-9a53-4d8f1c2b7a10",
        "aud": ISSUER, "exp": now + 3600, "iat": now, "nbf": now,
        "jti": "0f6e4c1a-2b3d-4e5f-8a9b-c0d1e2f3a4b5", "client_id": "default",
        "scope": "orders:read profile", "username": "alice", "roles": ["admin"],
        "token_type": "access"});
    let rs_token = token(
        &json!({"alg": "RS256", "typ": "at+jwt", "kid": "rsa"}),
        &claims,
        |m| {
            let mut sig = vec![0; rsa.public_modulus_len()];
            rsa.sign(&RSA_PKCS1_SHA256, &rng, m, &mut sig).unwrap();
            sig
        },
    );
    let es_token = token(
        &json!({"alg": "ES256", "typ": "at+jwt", "kid": "ec"}),
        &claims,
        |m| ec.sign(&rng, m).unwrap().as_ref().to_vec(),
    );
    let verifier = runtime.block_on(async {
        let url = serve(jwks.to_string()).await;
        Verifier::builder(ISSUER)
            .jwks_uri(url)
            .build()
            .await
            .unwrap()
    });
    let rs_key =
        ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, rsa.public_key().as_ref()).unwrap();
    let es_key = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, ec.public_key().as_ref()).unwrap();

    let mut group = c.benchmark_group("verify");
    for (name, token, key) in [("RS256", &rs_token, &rs_key), ("ES256", &es_token, &es_key)] {
        let (message, signature) = token.rsplit_once('.').unwrap();
        let signature = B64.decode(signature).unwrap();
        group.bench_function(format!("{name} signature only"), |b| {
            b.iter(|| {
                key.verify_sig(black_box(message.as_bytes()), black_box(&signature))
                    .unwrap()
            })
        });
        group.bench_function(format!("{name} Verifier::verify"), |b| {
            b.iter(|| now_ready(verifier.verify(black_box(token))).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
