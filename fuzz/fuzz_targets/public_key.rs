//! A machine's public key as registered: PEM (SPKI, PKCS#1), an OpenSSH line, a JWK (object or
//! JSON string).
#![no_main]

use jwt_issuer::crypto::client_key::{parse_client_key, parse_text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_text(text);
        let _ = parse_client_key(&serde_json::Value::String(text.to_owned()));
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = parse_client_key(&value);
    }
});
