//! Key encodings shared by every parser and renderer: PEM (sniffing the block label, decoding,
//! encoding, by the `der` crate the `rsa` crate brings) and SubjectPublicKeyInfo from RSA and
//! P-256 public keys. One place, so that every format reaches the same SPKI bytes.

use rsa::pkcs8::EncodePublicKey as _;
use rsa::pkcs8::der::pem::{self, LineEnding};

/// The label of the first `-----BEGIN …-----` line, if the text has one.
pub fn pem_label(text: &str) -> Option<&str> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
}

/// The DER inside a PEM block.
pub fn pem_decode(text: &str) -> Result<Vec<u8>, String> {
    pem::decode_vec(text.trim().as_bytes())
        .map(|(_, der)| der)
        .map_err(|e| format!("malformed PEM: {e}"))
}

/// A PEM block with 64-character lines.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    // Only an invalid label can fail, and every label here is a constant.
    pem::encode_string(label, LineEnding::LF, der).unwrap_or_default()
}

/// The SubjectPublicKeyInfo (DER) of an RSA public key.
pub fn rsa_spki(key: &rsa::RsaPublicKey) -> Result<Vec<u8>, String> {
    key.to_public_key_der()
        .map(|d| d.as_bytes().to_vec())
        .map_err(|e| format!("cannot encode the RSA public key: {e}"))
}

/// The SubjectPublicKeyInfo (DER) of a P-256 public key.
pub fn p256_spki(key: &p256::PublicKey) -> Result<Vec<u8>, String> {
    key.to_public_key_der()
        .map(|d| d.as_bytes().to_vec())
        .map_err(|e| format!("cannot encode the P-256 public key: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trips_with_64_character_lines() {
        let der: Vec<u8> = (0..100u8).collect();
        let text = pem_encode("PUBLIC KEY", &der);
        assert!(text.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert!(text.lines().all(|l| l.len() <= 64));
        assert_eq!(pem_label(&text), Some("PUBLIC KEY"));
        assert_eq!(pem_decode(&text).unwrap(), der);
        assert_eq!(pem_label("no pem here"), None);
        assert!(pem_decode("-----BEGIN X-----\n!!\n-----END X-----").is_err());
    }
}
