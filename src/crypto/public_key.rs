//! Public keys as the outside world sees them: parsed from SPKI DER once, then rendered as a
//! JWK (RFC 7517), a PEM block, an RFC 7638 thumbprint, and a ready-made verification key.

use anyhow::{Context as _, bail};
use jsonwebtoken::DecodingKey;
use p256::pkcs8::DecodePublicKey as _;
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};

use super::b64url;

/// The smallest RSA modulus accepted anywhere.
pub const MIN_RSA_BITS: usize = 2048;

/// The largest RSA modulus accepted anywhere (signing keys, machine keys, in every format).
pub const MAX_RSA_BITS: usize = 8192;

/// Checks an RSA modulus's size against [`MIN_RSA_BITS`] and [`MAX_RSA_BITS`].
pub fn check_rsa_bits(bits: usize) -> anyhow::Result<()> {
    if bits < MIN_RSA_BITS {
        bail!("RSA key of {bits} bits is too small: at least {MIN_RSA_BITS} are required");
    }
    if bits > MAX_RSA_BITS {
        bail!("RSA key of {bits} bits is too large: at most {MAX_RSA_BITS} are accepted");
    }
    Ok(())
}

/// The modulus and exponent of an RSA SubjectPublicKeyInfo, whatever its size (the `rsa`
/// crate's own parser refuses keys above 4096 bits as if they were not RSA keys at all).
fn rsa_spki_parts(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    use rsa::pkcs1::der::Decode as _;
    use rsa::pkcs8::spki::SubjectPublicKeyInfoRef;
    let spki = SubjectPublicKeyInfoRef::from_der(der).ok()?;
    if spki.algorithm.oid != rsa::pkcs1::ALGORITHM_OID {
        return None;
    }
    let key = rsa::pkcs1::RsaPublicKey::from_der(spki.subject_public_key.as_bytes()?).ok()?;
    Some((
        key.modulus.as_bytes().to_vec(),
        key.public_exponent.as_bytes().to_vec(),
    ))
}

/// The size in bits of a big-endian unsigned integer.
fn bit_len(be: &[u8]) -> usize {
    let trimmed: &[u8] = match be.iter().position(|&b| b != 0) {
        Some(i) => &be[i..],
        None => return 0,
    };
    trimmed.len() * 8 - trimmed[0].leading_zeros() as usize
}

/// The key material of a public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyMaterial {
    /// RSA: big-endian modulus and exponent.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// NIST P-256: the point's coordinates, 32 bytes each.
    P256 { x: Vec<u8>, y: Vec<u8> },
    /// Ed25519: the 32-byte public key.
    Ed25519 { x: Vec<u8> },
}

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the key's 32 bytes follow.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// A parsed public key with its encodings.
#[derive(Clone)]
pub struct PublicKeyInfo {
    material: KeyMaterial,
    spki_der: Vec<u8>,
}

impl std::fmt::Debug for PublicKeyInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKeyInfo")
            .field("kty", &self.kty())
            .field("thumbprint", &self.thumbprint())
            .finish()
    }
}

impl PublicKeyInfo {
    /// Parses a SubjectPublicKeyInfo (RSA of 2048 to 8192 bits, P-256 or Ed25519).
    pub fn from_spki_der(der: &[u8]) -> anyhow::Result<Self> {
        let material = if let Some(x) = der
            .strip_prefix(&ED25519_SPKI_PREFIX[..])
            .filter(|x| x.len() == 32)
        {
            KeyMaterial::Ed25519 { x: x.to_vec() }
        } else if let Some((n, e)) = rsa_spki_parts(der) {
            check_rsa_bits(bit_len(&n))?;
            // Validated as the rsa crate would (odd modulus, sane exponent), up to our limit.
            let key = rsa::RsaPublicKey::new_with_max_size(
                rsa::BigUint::from_bytes_be(&n),
                rsa::BigUint::from_bytes_be(&e),
                MAX_RSA_BITS,
            )
            .context("not a valid RSA public key")?;
            KeyMaterial::Rsa {
                n: key.n().to_bytes_be(),
                e: key.e().to_bytes_be(),
            }
        } else if let Ok(ec) = p256::PublicKey::from_public_key_der(der) {
            use p256::elliptic_curve::sec1::ToEncodedPoint as _;
            let point = ec.to_encoded_point(false);
            let (Some(x), Some(y)) = (point.x(), point.y()) else {
                bail!("P-256 key without coordinates");
            };
            KeyMaterial::P256 {
                x: x.to_vec(),
                y: y.to_vec(),
            }
        } else {
            bail!("not an RSA, P-256 or Ed25519 public key (SubjectPublicKeyInfo)");
        };
        Ok(Self {
            material,
            spki_der: der.to_vec(),
        })
    }

    /// An Ed25519 public key from its 32 bytes.
    pub fn ed25519(x: &[u8]) -> anyhow::Result<Self> {
        if x.len() != 32 {
            bail!("an Ed25519 public key has 32 bytes, not {}", x.len());
        }
        Self::from_spki_der(&[&ED25519_SPKI_PREFIX[..], x].concat())
    }

    /// The key material.
    pub fn material(&self) -> &KeyMaterial {
        &self.material
    }

    /// The JWK `kty`.
    pub fn kty(&self) -> &'static str {
        match self.material {
            KeyMaterial::Rsa { .. } => "RSA",
            KeyMaterial::P256 { .. } => "EC",
            KeyMaterial::Ed25519 { .. } => "OKP",
        }
    }

    /// The JWS algorithms this key may verify: its type decides, never the token.
    pub fn algorithms(&self) -> &'static [jsonwebtoken::Algorithm] {
        use jsonwebtoken::Algorithm::{ES256, EdDSA, RS256, RS384, RS512};
        match self.material {
            KeyMaterial::Rsa { .. } => &[RS256, RS384, RS512],
            KeyMaterial::P256 { .. } => &[ES256],
            KeyMaterial::Ed25519 { .. } => &[EdDSA],
        }
    }

    /// SHA-256 (hex) of the key's PEM text: the fingerprint of a registered machine key, and
    /// the `kid` the asymmetric-jwt-auth client sends.
    pub fn pem_sha256(&self) -> String {
        crate::domain::sha256_hex(self.pem().as_bytes())
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The key's required members only, as RFC 7638 orders them.
    fn required_members(&self) -> Value {
        match &self.material {
            KeyMaterial::Rsa { n, e } => json!({"e": b64url(e), "kty": "RSA", "n": b64url(n)}),
            KeyMaterial::P256 { x, y } => {
                json!({"crv": "P-256", "kty": "EC", "x": b64url(x), "y": b64url(y)})
            }
            KeyMaterial::Ed25519 { x } => json!({"crv": "Ed25519", "kty": "OKP", "x": b64url(x)}),
        }
    }

    /// The RFC 7638 JWK thumbprint (SHA-256, base64url): a stable, verifiable key id.
    pub fn thumbprint(&self) -> String {
        // serde_json's map is ordered by key, which is exactly RFC 7638's canonical order.
        let canonical = self.required_members().to_string();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
        b64url(digest.as_ref())
    }

    /// The public JWK for a signing key.
    pub fn jwk(&self, kid: &str, alg: &str) -> Value {
        let mut jwk = self.required_members();
        if let Value::Object(map) = &mut jwk {
            map.insert("kid".into(), kid.into());
            map.insert("use".into(), "sig".into());
            map.insert("alg".into(), alg.into());
        }
        jwk
    }

    /// The PEM `PUBLIC KEY` block (SPKI).
    pub fn pem(&self) -> String {
        super::encoding::pem_encode("PUBLIC KEY", &self.spki_der)
    }

    /// A verification key for jsonwebtoken.
    pub fn decoding_key(&self) -> anyhow::Result<DecodingKey> {
        match &self.material {
            KeyMaterial::Rsa { n, e } => Ok(DecodingKey::from_rsa_raw_components(n, e)),
            KeyMaterial::P256 { x, y } => {
                DecodingKey::from_ec_components(&b64url(x), &b64url(y)).context("P-256 key")
            }
            KeyMaterial::Ed25519 { x } => {
                DecodingKey::from_ed_components(&b64url(x)).context("Ed25519 key")
            }
        }
    }
}
