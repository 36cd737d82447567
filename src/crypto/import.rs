//! Reading an existing private key for `jwt-issuer key import`: PEM PKCS#8 (`PRIVATE KEY`),
//! PKCS#1 (`RSA PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`) or an OpenSSH private key as written
//! by `ssh-keygen`. Every refusal is one line naming the problem.

use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::traits::PublicKeyParts as _;

use super::encoding::{pem_decode, pem_label};
use super::public_key::check_rsa_bits;
use super::signing::{Pkcs8, SigningKey};

/// Parses a private key file into a signing key and its PKCS#8 encoding.
pub fn parse_private_key(input: &[u8]) -> Result<(SigningKey, Pkcs8), String> {
    let text = std::str::from_utf8(input)
        .map_err(|_| "not a PEM or OpenSSH private key (the file is binary)".to_owned())?;
    let label = pem_label(text)
        .ok_or_else(|| "not a PEM or OpenSSH private key (no -----BEGIN line)".to_owned())?;
    let legacy_encrypted = text.contains("Proc-Type: 4,ENCRYPTED");
    let pkcs8 = match label {
        "OPENSSH PRIVATE KEY" => from_openssh(text)?,
        "ENCRYPTED PRIVATE KEY" => return Err(encrypted("openssl pkey -in FILE -out plain.pem")),
        _ if legacy_encrypted => return Err(encrypted("openssl pkey -in FILE -out plain.pem")),
        "PRIVATE KEY" => from_pkcs8(&pem_decode(text)?)?,
        "RSA PRIVATE KEY" => {
            let key = rsa::RsaPrivateKey::from_pkcs1_der(&pem_decode(text)?)
                .map_err(|e| format!("not a valid PKCS#1 RSA private key: {e}"))?;
            rsa_to_pkcs8(&key)?
        }
        "EC PRIVATE KEY" => {
            let key = p256::SecretKey::from_sec1_der(&pem_decode(text)?).map_err(|_| {
                "not a P-256 EC private key: only P-256 (ES256) EC keys are supported".to_owned()
            })?;
            p256_to_pkcs8(&key)?
        }
        "PUBLIC KEY" | "RSA PUBLIC KEY" => {
            return Err("this is a public key: import needs the private key".into());
        }
        other => {
            return Err(format!(
                "unsupported key format BEGIN {other}: expected PRIVATE KEY (PKCS#8), RSA PRIVATE KEY \
                 (PKCS#1), EC PRIVATE KEY (SEC1) or OPENSSH PRIVATE KEY"
            ));
        }
    };
    let key = SigningKey::from_pkcs8(&pkcs8).map_err(|e| format!("unusable key: {e:#}"))?;
    Ok((key, Pkcs8(pkcs8)))
}

fn encrypted(how: &str) -> String {
    format!("the key is encrypted: decrypt it first (e.g. {how})")
}

fn rsa_to_pkcs8(key: &rsa::RsaPrivateKey) -> Result<Vec<u8>, String> {
    check_rsa_bits(key.n().bits()).map_err(|e| e.to_string())?;
    key.to_pkcs8_der()
        .map(|d| d.as_bytes().to_vec())
        .map_err(|e| format!("cannot re-encode the RSA key: {e}"))
}

fn p256_to_pkcs8(key: &p256::SecretKey) -> Result<Vec<u8>, String> {
    key.to_pkcs8_der()
        .map(|d| d.as_bytes().to_vec())
        .map_err(|e| format!("cannot re-encode the EC key: {e}"))
}

fn from_pkcs8(der: &[u8]) -> Result<Vec<u8>, String> {
    if let Ok(key) = rsa::RsaPrivateKey::from_pkcs8_der(der) {
        return rsa_to_pkcs8(&key);
    }
    if let Ok(key) = p256::SecretKey::from_pkcs8_der(der) {
        return p256_to_pkcs8(&key);
    }
    let info = rsa::pkcs8::PrivateKeyInfo::try_from(der)
        .map_err(|e| format!("not a valid PKCS#8 private key: {e}"))?;
    Err(match info.algorithm.oid.to_string().as_str() {
        "1.3.101.112" => {
            "Ed25519 keys cannot sign RS256 or ES256 tokens: use an RSA (2048+) or P-256 key".into()
        }
        "1.2.840.10045.2.1" => "unsupported EC curve: only P-256 (ES256) is supported".into(),
        oid => format!("unsupported key algorithm (OID {oid}): use an RSA (2048+) or P-256 key"),
    })
}

fn from_openssh(text: &str) -> Result<Vec<u8>, String> {
    use ssh_key::private::{EcdsaKeypair, KeypairData};
    let key = ssh_key::PrivateKey::from_openssh(text.trim())
        .map_err(|e| format!("not a valid OpenSSH private key: {e}"))?;
    if key.is_encrypted() {
        return Err(encrypted("ssh-keygen -p -N '' -f FILE"));
    }
    match key.key_data() {
        KeypairData::Rsa(pair) => {
            // Built from the components here: ssh-key 0.6.7's own conversion passes `p` twice
            // instead of `p` and `q`, and so rejects every key.
            let int = |m: &ssh_key::Mpint| {
                m.as_positive_bytes()
                    .map(rsa::BigUint::from_bytes_be)
                    .ok_or_else(|| "not a valid OpenSSH RSA key (negative component)".to_owned())
            };
            let rsa = rsa::RsaPrivateKey::from_components(
                int(&pair.public.n)?,
                int(&pair.public.e)?,
                int(&pair.private.d)?,
                vec![int(&pair.private.p)?, int(&pair.private.q)?],
            )
            .map_err(|e| format!("not a valid OpenSSH RSA key: {e}"))?;
            rsa_to_pkcs8(&rsa)
        }
        KeypairData::Ecdsa(EcdsaKeypair::NistP256 { private, .. }) => {
            let secret = p256::SecretKey::from_slice(private.as_slice())
                .map_err(|_| "not a valid OpenSSH P-256 key".to_owned())?;
            p256_to_pkcs8(&secret)
        }
        KeypairData::Ecdsa(other) => Err(format!(
            "unsupported EC curve {}: only P-256 (ES256) is supported",
            other.curve()
        )),
        KeypairData::Ed25519(_) => Err(
            "Ed25519 keys cannot sign RS256 or ES256 tokens: use an RSA (2048+) or P-256 key"
                .into(),
        ),
        other => Err(format!(
            "unsupported OpenSSH key type {}: use an RSA (2048+) or P-256 key",
            other
                .algorithm()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| "unknown".into())
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn rsa_keys_up_to_8192_bits_import_in_every_format() {
        for name in ["rsa6144-pkcs8.pem", "rsa6144-pkcs1.pem"] {
            let (key, _) =
                parse_private_key(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(key.alg().as_str(), "RS256", "{name}");
        }
    }

    #[test]
    fn rejects_what_it_cannot_use_with_a_reason() {
        let cases: &[(&[u8], &str)] = &[
            (b"\x30\x82\x01", "binary"),
            (b"hello", "no -----BEGIN"),
            (b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n", "encrypted"),
            (b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n", "encrypted"),
            (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "public key"),
            (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "unsupported key format"),
        ];
        for (input, expected) in cases {
            let err = parse_private_key(input).unwrap_err();
            assert!(err.contains(expected), "{err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }
}
