//! The issuer's key set, parsed once per fetch: each key an aws-lc-rs parsed public key, so a
//! verification does no key set-up (jsonwebtoken builds the RSA key again on every call, a
//! fifth of an RS256 verification).

use std::collections::HashMap;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Deserialize;

/// The algorithms accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alg {
    RS256,
    ES256,
}

impl Alg {
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "RS256" => Some(Self::RS256),
            "ES256" => Some(Self::ES256),
            _ => None,
        }
    }
}

/// One usable verification key: pinned to the algorithm its JWK names.
pub(crate) struct Key {
    pub alg: Alg,
    pub public: ParsedPublicKey,
}

impl Key {
    /// Whether `signature` (raw: PKCS#1 v1.5 for RS256, r‖s for ES256) signs `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        self.public.verify_sig(message, signature).is_ok()
    }
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
    let b64 = |v: Option<String>| v.and_then(|v| B64.decode(v).ok());
    let key = match (jwk.kty.as_str(), Alg::from_name(jwk.alg.as_deref()?)?) {
        ("RSA", Alg::RS256) => {
            let n = b64(jwk.n)?;
            // 2048 to 8192 bits (RFC 8725 §3.5 and the verification algorithm's bounds).
            let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            if !(2048..=8192).contains(&bits) {
                return None;
            }
            let der = rsa_public_key_der(&n, &b64(jwk.e)?);
            Key {
                alg: Alg::RS256,
                public: ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, der).ok()?,
            }
        }
        ("EC", Alg::ES256) if jwk.crv.as_deref() == Some("P-256") => {
            let (x, y) = (b64(jwk.x)?, b64(jwk.y)?);
            if x.len() != 32 || y.len() != 32 {
                return None;
            }
            let mut point = Vec::with_capacity(65);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            Key {
                alg: Alg::ES256,
                public: ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).ok()?,
            }
        }
        _ => return None,
    };
    Some((kid, key))
}

/// RFC 8017 `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`, DER.
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn push_len(out: &mut Vec<u8>, len: usize) {
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes: Vec<u8> = len
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend_from_slice(&bytes);
        }
    }
    fn integer(value: &[u8]) -> Vec<u8> {
        let trimmed = match value.iter().position(|b| *b != 0) {
            Some(i) => &value[i..],
            None => &[0u8][..],
        };
        let mut out = vec![0x02];
        let pad = trimmed[0] & 0x80 != 0;
        push_len(&mut out, trimmed.len() + usize::from(pad));
        if pad {
            out.push(0);
        }
        out.extend_from_slice(trimmed);
        out
    }
    let body = [integer(n), integer(e)].concat();
    let mut out = vec![0x30];
    push_len(&mut out, body.len());
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_signing_keys_with_a_kid_and_a_supported_alg_are_kept() {
        use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        let rsa = |size| {
            let pair = RsaKeyPair::generate(size).unwrap();
            let public = pair.public_key();
            (
                B64.encode(public.modulus().big_endian_without_leading_zero()),
                B64.encode(public.exponent().big_endian_without_leading_zero()),
            )
        };
        let (n, e) = rsa(KeySize::Rsa2048);
        let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let point = ec.public_key().as_ref();
        let (x, y) = (B64.encode(&point[1..33]), B64.encode(&point[33..65]));
        let set = serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "r", "alg": "RS256", "use": "sig", "n": n, "e": e},
            {"kty": "EC", "kid": "p", "alg": "ES256", "crv": "P-256", "x": x, "y": y},
            {"kty": "RSA", "alg": "RS256", "n": n, "e": e},
            {"kty": "RSA", "kid": "enc", "alg": "RS256", "use": "enc", "n": n, "e": e},
            {"kty": "RSA", "kid": "noalg", "n": n, "e": e},
            {"kty": "RSA", "kid": "short", "alg": "RS256", "n": "sXch", "e": "AQAB"},
            {"kty": "oct", "kid": "h", "alg": "HS256", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "rs512", "alg": "RS512", "n": n, "e": e},
            {"kty": "EC", "kid": "p384", "alg": "ES256", "crv": "P-384", "x": x, "y": y},
            {"kty": "EC", "kid": "off-curve", "alg": "ES256", "crv": "P-256", "x": x, "y": x},
            {"kty": "EC", "kid": "as-rsa", "alg": "RS256", "crv": "P-256", "x": x, "y": y},
            "not an object"
        ]});
        let keys = parse(set.to_string().as_bytes()).unwrap();
        let mut kids: Vec<_> = keys.keys().map(String::as_str).collect();
        kids.sort();
        assert_eq!(kids, vec!["p", "r"]);
        assert_eq!(keys["r"].alg, Alg::RS256);
        assert_eq!(keys["p"].alg, Alg::ES256);
    }

    #[test]
    fn der_integers_are_minimal_and_positive() {
        assert_eq!(
            rsa_public_key_der(&[0, 0x80, 1], &[1, 0, 1]),
            vec![
                0x30, 0x0a, 0x02, 0x03, 0x00, 0x80, 0x01, 0x02, 0x03, 0x01, 0x00, 0x01
            ]
        );
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
