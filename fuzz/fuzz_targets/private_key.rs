//! `jwt-issuer key import`: PEM PKCS#8, PKCS#1, SEC1 and OpenSSH private keys.
#![no_main]

use jwt_issuer::crypto::import::parse_private_key;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_private_key(data);
});
