//! Machine (client) public keys as people hand them over: a PEM public key (SPKI
//! `PUBLIC KEY` or PKCS#1 `RSA PUBLIC KEY`), an OpenSSH public key line (`ssh-rsa`,
//! `ecdsa-sha2-nistp256`, `ssh-ed25519`, with or without a comment) or a JWK. Each is
//! normalised to a SubjectPublicKeyInfo; every refusal says why.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use super::encoding::{p256_spki, pem_decode, pem_label, rsa_spki};
use super::public_key::PublicKeyInfo;

/// Parses a registered key given as a JSON value: a string (PEM, OpenSSH or a JWK's JSON) or
/// a JWK object.
pub fn parse_client_key(value: &Value) -> Result<PublicKeyInfo, String> {
    match value {
        Value::String(s) if s.trim_start().starts_with('{') => {
            let jwk: Value =
                serde_json::from_str(s).map_err(|_| "not a valid JWK (bad JSON)".to_owned())?;
            from_jwk(&jwk)
        }
        Value::String(s) => parse_text(s),
        Value::Object(_) => from_jwk(value),
        _ => Err(
            "public_key must be a PEM string, an OpenSSH public key line or a JWK object".into(),
        ),
    }
}

/// Parses a key file's text: PEM or an OpenSSH public key line.
pub fn parse_text(text: &str) -> Result<PublicKeyInfo, String> {
    let text = text.trim();
    if let Some(label) = pem_label(text) {
        let der = || pem_decode(text);
        return match label {
            "PUBLIC KEY" => from_spki(&der()?),
            "RSA PUBLIC KEY" => {
                use rsa::pkcs1::der::Decode as _;
                let der = der()?;
                let key = rsa::pkcs1::RsaPublicKey::from_der(&der)
                    .map_err(|e| format!("not a valid PKCS#1 RSA public key: {e}"))?;
                rsa_from_parts(key.modulus.as_bytes(), key.public_exponent.as_bytes(), "PKCS#1")
            }
            l if l.contains("PRIVATE KEY") => {
                Err("this is a private key: register only the public key, and keep the private key secret".into())
            }
            other => Err(format!(
                "unsupported PEM block BEGIN {other}: expected PUBLIC KEY or RSA PUBLIC KEY"
            )),
        };
    }
    let mut parts = text.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(kind), Some(_))
            if kind.starts_with("ssh-")
                || kind.starts_with("ecdsa-")
                || kind.starts_with("sk-") =>
        {
            from_openssh(text)
        }
        _ => Err("not a PEM public key, an OpenSSH public key line or a JWK".into()),
    }
}

fn from_spki(der: &[u8]) -> Result<PublicKeyInfo, String> {
    PublicKeyInfo::from_spki_der(der).map_err(|e| {
        let msg = format!("{e:#}");
        if msg.contains("too small") || msg.contains("too large") || msg.contains("not a valid") {
            msg
        } else {
            "unsupported public key: use RSA (2048 to 8192 bits), P-256 or Ed25519".into()
        }
    })
}

/// An RSA public key from its modulus and exponent (big-endian), of any size the limits of
/// [`PublicKeyInfo::from_spki_der`] then judge.
fn rsa_from_parts(n: &[u8], e: &[u8], what: &str) -> Result<PublicKeyInfo, String> {
    let key = rsa::RsaPublicKey::new_with_max_size(
        rsa::BigUint::from_bytes_be(n),
        rsa::BigUint::from_bytes_be(e),
        1 << 20,
    )
    .map_err(|e| format!("not a valid {what} RSA public key: {e}"))?;
    from_spki(&rsa_spki(&key)?)
}

fn from_openssh(line: &str) -> Result<PublicKeyInfo, String> {
    use ssh_key::public::{EcdsaPublicKey, KeyData};
    let key = ssh_key::PublicKey::from_openssh(line)
        .map_err(|e| format!("not a valid OpenSSH public key: {e}"))?;
    match key.key_data() {
        KeyData::Rsa(rsa) => {
            let int = |m: &ssh_key::Mpint| {
                m.as_positive_bytes()
                    .map(rsa::BigUint::from_bytes_be)
                    .ok_or_else(|| "not a valid OpenSSH RSA key".to_owned())
            };
            let key = rsa::RsaPublicKey::new_with_max_size(int(&rsa.n)?, int(&rsa.e)?, 1 << 20)
                .map_err(|e| format!("not a valid OpenSSH RSA key: {e}"))?;
            from_spki(&rsa_spki(&key)?)
        }
        KeyData::Ecdsa(EcdsaPublicKey::NistP256(point)) => {
            let key = p256::PublicKey::from_sec1_bytes(point.as_bytes())
                .map_err(|_| "not a valid P-256 point".to_owned())?;
            from_spki(&p256_spki(&key)?)
        }
        KeyData::Ecdsa(other) => Err(format!(
            "unsupported curve {}: use P-256 (ecdsa-sha2-nistp256), RSA or Ed25519",
            other.curve()
        )),
        KeyData::Ed25519(pk) => PublicKeyInfo::ed25519(pk.as_ref()).map_err(|e| e.to_string()),
        other => Err(format!(
            "unsupported OpenSSH key type {}: use ssh-rsa, ecdsa-sha2-nistp256 or ssh-ed25519",
            other.algorithm()
        )),
    }
}

fn from_jwk(jwk: &Value) -> Result<PublicKeyInfo, String> {
    let field = |name: &str| -> Result<Vec<u8>, String> {
        let s = jwk
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("the JWK has no {name}"))?;
        URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .map_err(|_| format!("the JWK's {name} is not base64url"))
    };
    if ["d", "p", "q", "dp", "dq", "qi"]
        .iter()
        .any(|k| jwk.get(k).is_some())
    {
        return Err("this JWK holds a private key: register only the public key".into());
    }
    match (
        jwk.get("kty").and_then(Value::as_str),
        jwk.get("crv").and_then(Value::as_str),
    ) {
        (Some("RSA"), _) => rsa_from_parts(&field("n")?, &field("e")?, "JWK"),
        (Some("EC"), Some("P-256")) => {
            let (x, y) = (field("x")?, field("y")?);
            if x.len() != 32 || y.len() != 32 {
                return Err("a P-256 JWK has 32-byte x and y".into());
            }
            let point = [&[4u8][..], &x, &y].concat();
            let key = p256::PublicKey::from_sec1_bytes(&point)
                .map_err(|_| "not a point on P-256".to_owned())?;
            from_spki(&p256_spki(&key)?)
        }
        (Some("OKP"), Some("Ed25519")) => {
            PublicKeyInfo::ed25519(&field("x")?).map_err(|e| e.to_string())
        }
        (Some("EC" | "OKP"), crv) => Err(format!(
            "unsupported curve {}: use P-256 or Ed25519",
            crv.unwrap_or("(none)")
        )),
        (kty, _) => Err(format!(
            "unsupported JWK kty {}: use RSA, EC (P-256) or OKP (Ed25519)",
            kty.unwrap_or("(none)")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    /// An RSA public key with a modulus of `bits` bits (not a real key: its size is the point).
    fn rsa_jwk(bits: usize) -> Value {
        let mut n = vec![0xffu8; bits.div_ceil(8)];
        if bits % 8 != 0 {
            n[0] = 0xff >> (8 - bits % 8);
        }
        serde_json::json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode(&n), "e": "AQAB"})
    }

    #[test]
    fn rsa_keys_of_2048_to_8192_bits_in_every_format_and_no_others() {
        for name in ["rsa6144-spki.pub.pem", "rsa6144-pkcs1.pub.pem"] {
            let key = parse_text(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(key.kty(), "RSA", "{name}");
        }
        assert!(parse_client_key(&rsa_jwk(8192)).is_ok());
        let err = parse_client_key(&rsa_jwk(8200)).unwrap_err();
        assert_eq!(
            err,
            "RSA key of 8200 bits is too large: at most 8192 are accepted"
        );
        let err = parse_client_key(&rsa_jwk(1024)).unwrap_err();
        assert_eq!(
            err,
            "RSA key of 1024 bits is too small: at least 2048 are required"
        );
    }
    use serde_json::json;

    #[test]
    fn refuses_private_keys_garbage_and_other_curves() {
        for (input, expected) in [
            (
                json!("-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----"),
                "private key",
            ),
            (
                json!(
                    "-----BEGIN OPENSSH PRIVATE KEY-----\nAA==\n-----END OPENSSH PRIVATE KEY-----"
                ),
                "private key",
            ),
            (
                json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "d": "AA"}),
                "private key",
            ),
            (
                json!({"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}),
                "unsupported curve",
            ),
            (json!({"kty": "oct", "k": "AA"}), "unsupported JWK kty"),
            (json!("hello"), "not a PEM"),
            (json!(42), "public_key must be"),
            (
                json!("ssh-dss AAAAB3NzaC1kc3MAAACBAP"),
                "not a valid OpenSSH",
            ),
        ] {
            let err = parse_client_key(&input).unwrap_err();
            assert!(err.contains(expected), "{input}: {err}");
        }
    }

    #[test]
    fn the_same_key_in_every_format_has_one_fingerprint() {
        let ed = PublicKeyInfo::ed25519(&[9u8; 32]).unwrap();
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode([9u8; 32])});
        assert_eq!(
            parse_client_key(&jwk).unwrap().pem_sha256(),
            ed.pem_sha256()
        );
        assert_eq!(
            parse_client_key(&json!(ed.pem())).unwrap().pem_sha256(),
            ed.pem_sha256()
        );
        assert_eq!(
            parse_client_key(&json!(jwk.to_string()))
                .unwrap()
                .pem_sha256(),
            ed.pem_sha256()
        );
    }
}
