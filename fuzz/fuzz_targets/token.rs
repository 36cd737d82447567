//! A bearer token: header and claims decoding and verification against the fixed key ring
//! of `common` (RS256 and ES256, the keys that signed the seeds), as `/me`, `/admin/*` and introspection do.
#![no_main]

use std::sync::LazyLock;

use jwt_issuer::crypto::jwt::Verifier;
use libfuzzer_sys::fuzz_target;

#[path = "../common/mod.rs"]
mod common;

static VERIFIER: LazyLock<Verifier> = LazyLock::new(common::verifier);

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        let _ = VERIFIER.verify(token, &[common::ISSUER], common::NOW);
        let _ = VERIFIER.verify_any_audience(token, common::NOW);
    }
});
