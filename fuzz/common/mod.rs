//! What the fuzz targets, the seed generator (`cargo run --example fuzz_seeds`) and the seed
//! test (`tests/fuzz_seeds.rs`) share: two fixed signing keys (checked in, used nowhere else),
//! one fixed clock and issuer, so the checked-in seed tokens and assertions verify in the
//! fuzzer and the fuzzer starts from inputs that reach the end of every check.
#![allow(dead_code)]

use std::collections::HashMap;

use jwt_issuer::crypto::import::parse_private_key;
use jwt_issuer::crypto::jwt::{VerificationKey, Verifier};
use jwt_issuer::crypto::signing::SigningKey;
use jwt_issuer::db::client_keys::ClientKeyRow;
use jwt_issuer::domain::Cidr;

/// The fuzzers' clock: every seed is valid at this instant.
pub const NOW: i64 = 1_800_000_000;
pub const ISSUER: &str = "https://issuer.example";
pub const TOKEN_ENDPOINT: &str = "https://issuer.example/oauth/token";
/// The machine user whose keys sign the seed assertions.
pub const MACHINE: &str = "robot";
/// The verifier's leeway, as the service's default.
pub const LEEWAY: u64 = 30;

const PEMS: [&[u8]; 2] = [
    include_bytes!("../seeds/keys/rs256.pem"),
    include_bytes!("../seeds/keys/es256.pem"),
];

/// The RS256 and ES256 keys that sign the seed tokens and assertions.
pub fn signing_keys() -> Vec<SigningKey> {
    PEMS.iter()
        .map(|pem| match parse_private_key(pem) {
            Ok((key, _)) => key,
            Err(e) => panic!("fuzz/seeds/keys: {e}"),
        })
        .collect()
}

/// The key ring the token target verifies against: both keys' public halves.
pub fn verifier() -> Verifier {
    let keys = signing_keys()
        .into_iter()
        .map(|key| {
            let decoding = match key.public().decoding_key() {
                Ok(k) => k,
                Err(e) => panic!("decoding key: {e}"),
            };
            (
                key.kid().to_owned(),
                VerificationKey {
                    alg: key.alg(),
                    key: decoding,
                },
            )
        })
        .collect::<HashMap<_, _>>();
    Verifier::new(keys, ISSUER, LEEWAY)
}

/// The same keys registered as the machine user's client keys.
pub fn machine_keys() -> Vec<ClientKeyRow> {
    signing_keys()
        .into_iter()
        .map(|key| ClientKeyRow {
            id: key.kid().to_owned(),
            user_id: MACHINE.to_owned().into(),
            kty: key.public().kty().into(),
            fingerprint: key.public().pem_sha256(),
            public_der: key.public().spki_der().to_vec(),
            comment: String::new(),
            created_at: 0,
        })
        .collect()
}

/// The `--trusted-proxy` networks the forwarded target resolves behind.
pub fn trusted_proxies() -> Vec<Cidr> {
    ["10.0.0.0/8", "127.0.0.1", "::1", "fd00::/8"]
        .iter()
        .map(|c| match c.parse() {
            Ok(net) => net,
            Err(e) => panic!("{c}: {e}"),
        })
        .collect()
}
