//! Signing keys held parsed in memory. A key is parsed once (at load) and every signature
//! reuses it; the JWS header of each key is encoded once too.

use std::fmt;

use anyhow::{Context as _, anyhow};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _, RSA_PKCS1_SHA256,
};
use serde_json::json;

use super::b64url;
use super::public_key::PublicKeyInfo;

pub use crate::domain::Alg;

impl Alg {
    /// The same algorithm for jsonwebtoken's verifier.
    pub fn jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::RS256 => jsonwebtoken::Algorithm::RS256,
            Self::ES256 => jsonwebtoken::Algorithm::ES256,
        }
    }
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

/// A private signing key, parsed once and kept for every signature.
pub struct SigningKey {
    kid: String,
    alg: Alg,
    pair: Pair,
    public: PublicKeyInfo,
    /// `base64url({"alg","typ":"at+jwt","kid"})`, the first part of every token it signs.
    header_b64: String,
    rng: SystemRandom,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// PKCS#8 DER of a private key. Wiped on drop is left to the allocator; it is never logged.
pub struct Pkcs8(pub Vec<u8>);

impl fmt::Debug for Pkcs8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pkcs8(<redacted>)")
    }
}

impl SigningKey {
    /// Generates a new key: RSA 2048 for RS256, P-256 for ES256. Returns it with its PKCS#8.
    pub fn generate(alg: Alg) -> anyhow::Result<(Self, Pkcs8)> {
        let pkcs8 = match alg {
            Alg::RS256 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048)
                    .map_err(|_| anyhow!("RSA key generation failed"))?;
                let der: Pkcs8V1Der<'static> = pair
                    .as_der()
                    .map_err(|_| anyhow!("RSA key encoding failed"))?;
                der.as_ref().to_vec()
            }
            Alg::ES256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .and_then(|pair| pair.to_pkcs8v1())
                .map_err(|_| anyhow!("P-256 key generation failed"))?
                .as_ref()
                .to_vec(),
        };
        let key = Self::from_pkcs8(&pkcs8)?;
        debug_assert_eq!(key.alg, alg);
        Ok((key, Pkcs8(pkcs8)))
    }

    /// Parses a PKCS#8 private key (RSA of 2048–8192 bits, or P-256); the kid is the RFC 7638
    /// thumbprint of its public key.
    pub fn from_pkcs8(der: &[u8]) -> anyhow::Result<Self> {
        let (alg, pair, spki) = if let Ok(rsa) = RsaKeyPair::from_pkcs8(der) {
            let spki = rsa
                .public_key()
                .as_der()
                .map_err(|_| anyhow!("RSA public key encoding failed"))?
                .as_ref()
                .to_vec();
            (Alg::RS256, Pair::Rsa(rsa), spki)
        } else if let Ok(ec) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
            let spki = ec
                .public_key()
                .as_der()
                .map_err(|_| anyhow!("P-256 public key encoding failed"))?
                .as_ref()
                .to_vec();
            (Alg::ES256, Pair::Ec(ec), spki)
        } else {
            anyhow::bail!("not an RSA (2048-8192 bits) or P-256 private key in PKCS#8");
        };
        let public = PublicKeyInfo::from_spki_der(&spki).context("signing key's public half")?;
        let kid = public.thumbprint();
        let header = json!({"alg": alg.as_str(), "typ": "at+jwt", "kid": kid});
        Ok(Self {
            header_b64: b64url(header.to_string().as_bytes()),
            kid,
            alg,
            pair,
            public,
            rng: SystemRandom::new(),
        })
    }

    /// The key id (RFC 7638 thumbprint).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm it signs with.
    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// Its public half.
    pub fn public(&self) -> &PublicKeyInfo {
        &self.public
    }

    /// The encoded JWS protected header of every token this key signs.
    pub fn header_b64(&self) -> &str {
        &self.header_b64
    }

    /// Signs `msg`, returning the JWS signature bytes (PKCS#1 v1.5, or ECDSA `r || s`).
    pub fn sign(&self, msg: &[u8]) -> anyhow::Result<Vec<u8>> {
        match &self.pair {
            Pair::Rsa(pair) => {
                let mut sig = vec![0u8; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &self.rng, msg, &mut sig)
                    .map_err(|_| anyhow!("RSA signing failed"))?;
                Ok(sig)
            }
            Pair::Ec(pair) => pair
                .sign(&self.rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| anyhow!("ECDSA signing failed")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_round_trip_through_pkcs8_with_a_stable_kid() {
        for alg in [Alg::RS256, Alg::ES256] {
            let (key, pkcs8) = SigningKey::generate(alg).unwrap();
            let again = SigningKey::from_pkcs8(&pkcs8.0).unwrap();
            assert_eq!(key.kid(), again.kid());
            assert_eq!(again.alg(), alg);
            assert_eq!(key.kid().len(), 43);
        }
    }

    #[test]
    fn rejects_garbage() {
        assert!(SigningKey::from_pkcs8(b"not a key").is_err());
    }
}
