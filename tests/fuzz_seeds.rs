//! The fuzzers' checked-in seeds (`fuzz/seeds`) are real, valid inputs: each is accepted by
//! the code its target runs, with the targets' own fixed keys and clock (`fuzz/common`). A
//! parser change that starts refusing one fails here, rather than quietly leaving the fuzzer
//! to start from inputs that stop at the first check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use jwt_issuer::crypto::client_key::{parse_client_key, parse_text};
use jwt_issuer::crypto::import::parse_private_key;
use jwt_issuer::domain::Cidr;
use jwt_issuer::http::client_auth::parse_basic;
use jwt_issuer::http::params::{Params, strict_json};
use jwt_issuer::http::peer::resolve;
use jwt_issuer::service::machine::{self, Form};

#[path = "../fuzz/common/mod.rs"]
mod common;

/// The seeds of one target, by file name; a target without seeds is a failure.
fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut seeds: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&path).unwrap())
        })
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 4, "{target}: too few seeds");
    seeds
}

fn text(name: &str, bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap_or_else(|_| panic!("{name} is not UTF-8"))
}

#[test]
fn token_seeds_verify_against_the_fuzzers_key_ring() {
    let verifier = common::verifier();
    for (name, bytes) in seeds("token") {
        let token = text(&name, &bytes);
        let claims = verifier
            .verify(&token, &[common::ISSUER], common::NOW)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(claims.iss, common::ISSUER, "{name}");
        assert!(verifier.verify_any_audience(&token, common::NOW).is_ok());
    }
}

#[test]
fn assertion_seeds_are_signed_by_the_machine_keys_and_pass_their_forms_checks() {
    let keys = common::machine_keys();
    for (name, bytes) in seeds("assertion") {
        let assertion = text(&name, &bytes);
        let form = if name.starts_with("rfc7523") {
            Form::JwtBearer
        } else {
            Form::AsymmetricJwtAuth
        };
        let user = machine::claimed_username(&assertion, form).unwrap();
        assert_eq!(user.as_str(), common::MACHINE, "{name}");
        let (_, claims) = machine::signed_by(&assertion, &keys)
            .unwrap_or_else(|e| panic!("{name}: not signed by a machine key: {e}"));
        machine::check_claims(
            form,
            &claims,
            common::MACHINE,
            common::ISSUER,
            common::TOKEN_ENDPOINT,
            common::NOW,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn token_request_seeds_parse_as_their_kind() {
    for (name, bytes) in seeds("token_request") {
        if name.ends_with(".form") {
            let params = Params::from_form(&bytes).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert!(params.optional("grant_type").is_some(), "{name}");
        } else if name.ends_with(".json") {
            strict_json(&bytes).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            Params::from_json(&bytes).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        } else {
            let (id, secret) = parse_basic(&bytes).unwrap().expect("Basic credentials");
            assert_eq!(
                (id.as_str(), secret.as_str()),
                ("reporting", "s3cret:with colon")
            );
        }
    }
}

#[test]
fn forwarded_seeds_name_clients_or_networks() {
    let trusted = common::trusted_proxies();
    let peer = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    for (name, bytes) in seeds("forwarded") {
        let text = text(&name, &bytes);
        if name == "networks" {
            for line in text.lines() {
                line.parse::<Cidr>()
                    .unwrap_or_else(|e| panic!("{name}: {line}: {e}"));
            }
        } else {
            let values: Vec<&str> = text.split('\n').collect();
            assert_ne!(resolve(peer, &values, &trusted), peer, "{name}");
        }
    }
}

#[test]
fn private_key_seeds_import_except_the_refused_ed25519() {
    for (name, bytes) in seeds("private_key") {
        let imported = parse_private_key(&bytes);
        if name.contains("ed25519") {
            assert!(imported.is_err(), "{name}: Ed25519 cannot sign RS256/ES256");
        } else {
            imported.unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}

#[test]
fn public_key_seeds_register() {
    for (name, bytes) in seeds("public_key") {
        let parsed = if name.ends_with(".json") {
            parse_client_key(&serde_json::from_slice(&bytes).unwrap())
        } else {
            parse_text(&text(&name, &bytes))
        };
        parsed.unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
