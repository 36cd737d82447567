//! A bearer token: header and claims decoding and verification against a fixed key ring
//! (RS256 and ES256), as `/me`, `/admin/*` and introspection do.
#![no_main]

use std::collections::HashMap;
use std::sync::LazyLock;

use jwt_issuer::crypto::jwt::{VerificationKey, Verifier};
use jwt_issuer::crypto::signing::{Alg, SigningKey};
use libfuzzer_sys::fuzz_target;

static VERIFIER: LazyLock<Verifier> = LazyLock::new(|| {
    let mut keys = HashMap::new();
    for alg in [Alg::RS256, Alg::ES256] {
        let (key, _) = SigningKey::generate(alg).expect("key");
        keys.insert(
            key.kid().to_owned(),
            VerificationKey {
                alg,
                key: key.public().decoding_key().expect("decoding key"),
            },
        );
    }
    Verifier::new(keys, "https://issuer.example", 30)
});

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        let _ = VERIFIER.verify(token, &["https://issuer.example"], 1_800_000_000);
        let _ = VERIFIER.verify_any_audience(token, 1_800_000_000);
    }
});
