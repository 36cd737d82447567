//! A machine login's assertion, in both forms (RFC 7523 `assertion=`, asymmetric-jwt-auth's
//! `Authorization: JWT`): the claimed name, the signature against registered keys of each
//! type, and the claims' checks.
#![no_main]

use std::sync::LazyLock;

use jwt_issuer::db::client_keys::ClientKeyRow;
use jwt_issuer::service::machine::{self, Form};
use libfuzzer_sys::fuzz_target;

#[path = "../common/mod.rs"]
mod common;

/// The machine user's registered keys: the ones that signed the seed assertions.
static KEYS: LazyLock<Vec<ClientKeyRow>> = LazyLock::new(common::machine_keys);

fn check(claims: &serde_json::Value) {
    for form in [Form::JwtBearer, Form::AsymmetricJwtAuth] {
        let _ = machine::check_claims(
            form,
            claims,
            common::MACHINE,
            common::ISSUER,
            common::TOKEN_ENDPOINT,
            common::NOW,
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(assertion) = std::str::from_utf8(data) else {
        return;
    };
    for form in [Form::JwtBearer, Form::AsymmetricJwtAuth] {
        let _ = machine::claimed_username(assertion, form);
    }
    if let Ok((_, claims)) = machine::signed_by(assertion, &KEYS) {
        check(&claims);
    }
    // The claims' checks on any JSON, as if its signature were good.
    if let Ok(claims) = serde_json::from_slice::<serde_json::Value>(data) {
        check(&claims);
    }
});
