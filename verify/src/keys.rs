//! The issuer's key set, parsed once per fetch.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

/// One usable verification key: pinned to the algorithm its JWK names.
pub(crate) struct Key {
    pub alg: Algorithm,
    pub decoding: DecodingKey,
}

/// The keys of one JWK Set, by `kid`.
pub(crate) type KeySet = HashMap<String, Key>;

/// Why a fetched document did not become the key set.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum SetError {
    #[error("the JWK Set is not JSON of the expected shape")]
    Malformed,
    #[error("the JWK Set holds no usable key")]
    Empty,
}

#[derive(Deserialize)]
struct Set {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

/// Parses a JWK Set (RFC 7517): keys with a `kid` and an `alg` of RS256 (RSA) or ES256 (EC
/// P-256), for signatures. Other keys are skipped (a set may hold keys for others); a set with
/// none left is [`SetError::Empty`], so that it never replaces a good one.
pub(crate) fn parse(body: &[u8]) -> Result<KeySet, SetError> {
    let set: Set = serde_json::from_slice(body).map_err(|_| SetError::Malformed)?;
    let mut keys = KeySet::new();
    for value in set.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            continue;
        };
        if let Some((kid, key)) = usable(jwk) {
            keys.insert(kid, key);
        }
    }
    if keys.is_empty() {
        return Err(SetError::Empty);
    }
    Ok(keys)
}

fn usable(jwk: Jwk) -> Option<(String, Key)> {
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    let kid = jwk.kid.filter(|k| !k.is_empty())?;
    let decoding = match (jwk.kty.as_str(), jwk.alg.as_deref()?) {
        ("RSA", "RS256") => {
            DecodingKey::from_rsa_components(jwk.n.as_deref()?, jwk.e.as_deref()?).ok()?
        }
        ("EC", "ES256") if jwk.crv.as_deref() == Some("P-256") => {
            DecodingKey::from_ec_components(jwk.x.as_deref()?, jwk.y.as_deref()?).ok()?
        }
        _ => return None,
    };
    let alg = match jwk.kty.as_str() {
        "RSA" => Algorithm::RS256,
        _ => Algorithm::ES256,
    };
    Some((kid, Key { alg, decoding }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_signing_keys_with_a_kid_and_a_supported_alg_are_kept() {
        let set = serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "r", "alg": "RS256", "use": "sig", "n": "sXch", "e": "AQAB"},
            {"kty": "RSA", "alg": "RS256", "n": "sXch", "e": "AQAB"},
            {"kty": "RSA", "kid": "enc", "alg": "RS256", "use": "enc", "n": "sXch", "e": "AQAB"},
            {"kty": "RSA", "kid": "noalg", "n": "sXch", "e": "AQAB"},
            {"kty": "oct", "kid": "h", "alg": "HS256", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "rs512", "alg": "RS512", "n": "sXch", "e": "AQAB"},
            {"kty": "EC", "kid": "p384", "alg": "ES256", "crv": "P-384", "x": "AA", "y": "AA"},
            "not an object"
        ]});
        let keys = parse(set.to_string().as_bytes()).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["r"]);
        assert_eq!(keys["r"].alg, Algorithm::RS256);
    }

    #[test]
    fn empty_or_malformed_sets_are_refused() {
        assert_eq!(parse(br#"{"keys": []}"#).err(), Some(SetError::Empty));
        assert_eq!(
            parse(br#"{"keys": [{"kty": "oct", "kid": "h", "alg": "HS256", "k": "AA"}]}"#).err(),
            Some(SetError::Empty)
        );
        assert_eq!(parse(b"<html>").err(), Some(SetError::Malformed));
        assert_eq!(parse(br#"{"keys": 1}"#).err(), Some(SetError::Malformed));
    }
}
