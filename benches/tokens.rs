//! Minting and verifying access tokens, beside the raw signing primitive, so the overhead of
//! our own code (claims, JSON, base64url, header) is visible.
//!
//! `cargo bench --bench tokens`; compare with `openssl speed rsa2048 ecdsap256`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use criterion::{Criterion, criterion_group, criterion_main};
use jwt_issuer::crypto::jwt::{
    self, ACCESS_TOKEN_TYPE, AccessClaims, Audiences, VerificationKey, Verifier,
};
use jwt_issuer::crypto::signing::{Alg, SigningKey};

const ISSUER: &str = "https://auth.example.com";

fn claims() -> AccessClaims {
    let now = chrono::Utc::now().timestamp();
    AccessClaims {
        iss: ISSUER.into(),
        sub: uuid::Uuid::new_v4().to_string(),
        aud: Audiences::new(vec![ISSUER.into()]).unwrap(),
        exp: now + 300,
        iat: now,
        nbf: now,
        jti: uuid::Uuid::new_v4().to_string(),
        client_id: "spa-frontend".into(),
        scope: "read write".into(),
        username: Some("alice@example.com".into()),
        roles: vec!["user".into(), "reader".into()],
        token_type: ACCESS_TOKEN_TYPE.into(),
    }
}

fn bench_alg(c: &mut Criterion, alg: Alg) {
    let (key, pkcs8) = SigningKey::generate(alg).unwrap();
    let name = alg.as_str();
    let mut group = c.benchmark_group(name);

    // The primitive alone: one signature over a message the size of a token's signing input.
    let token = jwt::encode(&key, &claims()).unwrap();
    let signing_input = token.rsplit_once('.').unwrap().0.as_bytes().to_vec();
    let rng = SystemRandom::new();
    match alg {
        Alg::RS256 => {
            let raw = RsaKeyPair::from_pkcs8(&pkcs8.0).unwrap();
            let mut sig = vec![0u8; raw.public_modulus_len()];
            group.bench_function("raw sign (aws-lc-rs)", |b| {
                b.iter(|| {
                    raw.sign(&RSA_PKCS1_SHA256, &rng, &signing_input, &mut sig)
                        .unwrap()
                })
            });
        }
        Alg::ES256 => {
            let raw = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8.0).unwrap();
            group.bench_function("raw sign (aws-lc-rs)", |b| {
                b.iter(|| raw.sign(&rng, &signing_input).unwrap())
            });
        }
    }

    // Our mint: fresh claims (with a new jti), JSON, base64url, the held key's signature.
    group.bench_function("mint access token", |b| {
        b.iter(|| jwt::encode(&key, &claims()).unwrap())
    });

    // Verification as the issuer's own endpoints do it: kid lookup, alg pin, claims checks.
    let vk = VerificationKey {
        alg,
        key: key.public().decoding_key().unwrap(),
    };
    let verifier = Verifier::new(HashMap::from([(key.kid().to_owned(), vk)]), ISSUER, 30);
    group.bench_function("verify access token", |b| {
        b.iter(|| {
            verifier
                .verify(&token, &[ISSUER], chrono::Utc::now().timestamp())
                .unwrap()
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_alg(c, Alg::RS256);
    bench_alg(c, Alg::ES256);
}

criterion_group!(tokens, benches);
criterion_main!(tokens);
