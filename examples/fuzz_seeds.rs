//! Writes the fuzzers' signed seeds (`fuzz/seeds/token`, `fuzz/seeds/assertion`) and the JWK
//! seeds of `fuzz/seeds/public_key`, with the service's own signer and the fixed keys of
//! `fuzz/seeds/keys`, valid at the fuzzers' fixed clock:
//!
//!     cargo run --example fuzz_seeds
//!
//! The other seeds are files made once by hand (see `fuzz/README.md`); `tests/fuzz_seeds.rs`
//! checks that every seed is still accepted by the code its target runs.
#![allow(clippy::expect_used)]

use std::fs;
use std::path::Path;

use jwt_issuer::crypto::b64url;
use jwt_issuer::crypto::jwt::{self, AccessClaims, Audiences};
use jwt_issuer::crypto::signing::SigningKey;
use serde_json::{Value, json};

#[path = "../fuzz/common/mod.rs"]
mod common;

use common::{ISSUER, MACHINE, NOW, TOKEN_ENDPOINT};

fn main() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let write = |dir: &str, name: &str, text: &str| {
        fs::write(seeds.join(dir).join(name), text).expect("write a seed");
    };
    for key in common::signing_keys() {
        let alg = key.alg().as_str().to_ascii_lowercase();
        // Access tokens as the service mints them: a user's, a client's own, two audiences.
        let user = access_claims(Some("alice"), vec![ISSUER.to_owned()]);
        let client = access_claims(None, vec![ISSUER.to_owned()]);
        let two = access_claims(
            Some("alice"),
            vec![ISSUER.to_owned(), "https://api.example".to_owned()],
        );
        for (name, claims) in [("user", user), ("client", client), ("two-audiences", two)] {
            let token = jwt::encode(&key, &claims).expect("sign");
            write("token", &format!("{alg}-{name}.jwt"), &token);
        }
        // Machine logins: RFC 7523 (aud a string, then a list; with and without kid) and
        // asymmetric-jwt-auth (nonce a string, then a number).
        let fingerprint = key.public().pem_sha256();
        let assertions = [
            (
                "rfc7523",
                Some(fingerprint.as_str()),
                json!({"iss": MACHINE, "sub": MACHINE, "aud": TOKEN_ENDPOINT,
                       "exp": NOW + 120, "iat": NOW, "jti": "seed-1"}),
            ),
            (
                "rfc7523-aud-list",
                None,
                json!({"iss": MACHINE, "sub": MACHINE, "aud": [ISSUER, "https://other.example"],
                       "exp": NOW + 300, "iat": NOW - 5, "nbf": NOW - 5, "jti": "seed-2"}),
            ),
            (
                "asymmetric",
                None,
                json!({"username": MACHINE, "time": NOW, "nonce": "seed-nonce"}),
            ),
            (
                "asymmetric-nonce-number",
                Some(fingerprint.as_str()),
                json!({"username": MACHINE, "time": NOW - 3, "nonce": 8_472_051, "aud": ISSUER}),
            ),
        ];
        for (name, kid, claims) in assertions {
            write(
                "assertion",
                &format!("{name}-{alg}.jwt"),
                &assertion(&key, kid, &claims),
            );
        }
        // Public keys as JWKs: an object, and the same JWK as a JSON string.
        let jwk = key.public().jwk(key.kid(), key.alg().as_str());
        write("public_key", &format!("jwk-{alg}.json"), &jwk.to_string());
        write(
            "public_key",
            &format!("jwk-{alg}-as-string.json"),
            &Value::String(jwk.to_string()).to_string(),
        );
    }
}

fn access_claims(username: Option<&str>, audiences: Vec<String>) -> AccessClaims {
    AccessClaims {
        iss: ISSUER.to_owned(),
        sub: if username.is_some() {
            "5f0c6f2e-7a51-4d38-9a52-1f3b8f0f7c11".to_owned()
        } else {
            "reporting".to_owned()
        },
        aud: Audiences::new(audiences).expect("an audience"),
        exp: NOW + 840,
        iat: NOW - 60,
        nbf: NOW - 60,
        jti: "0b8f5c5e-4c1a-4f7e-9d0e-3a2b1c0d9e8f".to_owned(),
        client_id: if username.is_some() {
            "spa"
        } else {
            "reporting"
        }
        .to_owned(),
        scope: "openid profile".to_owned(),
        username: username.map(str::to_owned),
        roles: if username.is_some() {
            vec!["admin".to_owned()]
        } else {
            vec![]
        },
        token_type: jwt::ACCESS_TOKEN_TYPE.to_owned(),
    }
}

/// A compact JWS of `claims` signed by `key`, typed `JWT` as machine clients send them.
fn assertion(key: &SigningKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = json!({"alg": key.alg().as_str(), "typ": "JWT"});
    if let Some(kid) = kid {
        header["kid"] = json!(kid);
    }
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let signature = key.sign(signing_input.as_bytes()).expect("sign");
    format!("{signing_input}.{}", b64url(&signature))
}
