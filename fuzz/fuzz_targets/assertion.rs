//! A machine login's assertion, in both forms (RFC 7523 `assertion=`, asymmetric-jwt-auth's
//! `Authorization: JWT`): the claimed name, the signature against registered keys of each
//! type, and the claims' checks.
#![no_main]

use std::sync::LazyLock;

use jwt_issuer::crypto::signing::{Alg, SigningKey};
use jwt_issuer::db::client_keys::ClientKeyRow;
use jwt_issuer::service::machine::{self, Form};
use libfuzzer_sys::fuzz_target;

static KEYS: LazyLock<Vec<ClientKeyRow>> = LazyLock::new(|| {
    [Alg::RS256, Alg::ES256]
        .into_iter()
        .map(|alg| {
            let (key, _) = SigningKey::generate(alg).expect("key");
            ClientKeyRow {
                id: key.kid().to_owned(),
                user_id: "u".to_owned().into(),
                kty: "k".into(),
                fingerprint: key.public().pem_sha256(),
                public_der: key.public().spki_der().to_vec(),
                comment: String::new(),
                created_at: 0,
            }
        })
        .collect()
});

fuzz_target!(|data: &[u8]| {
    let Ok(assertion) = std::str::from_utf8(data) else {
        return;
    };
    for form in [Form::JwtBearer, Form::AsymmetricJwtAuth] {
        let _ = machine::claimed_username(assertion, form);
    }
    if let Ok((_, claims)) = machine::signed_by(assertion, &KEYS) {
        for form in [Form::JwtBearer, Form::AsymmetricJwtAuth] {
            let _ = machine::check_claims(
                form,
                &claims,
                "robot",
                "https://issuer.example",
                "https://issuer.example/oauth/token",
                1_800_000_000,
            );
        }
    }
    // The claims' checks on any JSON, as if its signature were good.
    if let Ok(claims) = serde_json::from_slice::<serde_json::Value>(data) {
        for form in [Form::JwtBearer, Form::AsymmetricJwtAuth] {
            let _ = machine::check_claims(
                form,
                &claims,
                "robot",
                "https://issuer.example",
                "https://issuer.example/oauth/token",
                1_800_000_000,
            );
        }
    }
});
