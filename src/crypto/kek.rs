//! The key-encryption key (KEK): 256 bits in `<keys-dir>/kek.key` (mode 0600), used with
//! AES-256-GCM to encrypt every private signing key before it reaches the database. A
//! database dump alone reveals no private key. The KEK is the custodian of private keys: it
//! also makes the new ones ([`KeyGen`]).

use std::fs;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::signing::{Alg, Pkcs8, SigningKey};

/// The file name of the KEK inside the keys dir.
pub const KEK_FILE: &str = "kek.key";

/// Where new signing keys come from: the operating system's CSPRNG, or (for the test suite,
/// which starts hundreds of issuers) a source of keys generated earlier.
#[derive(Clone, Default)]
pub struct KeyGen(Option<Arc<KeySource>>);

/// A source of signing keys standing in for generation.
pub type KeySource = dyn Fn(Alg) -> anyhow::Result<(SigningKey, Pkcs8)> + Send + Sync;

impl KeyGen {
    /// Keys from `source` instead of fresh randomness. Each key it gives must be new to the
    /// database it goes into.
    pub fn from_source(source: Arc<KeySource>) -> Self {
        Self(Some(source))
    }

    /// A new key of `alg`.
    pub fn generate(&self, alg: Alg) -> anyhow::Result<(SigningKey, Pkcs8)> {
        match &self.0 {
            Some(source) => source(alg),
            None => SigningKey::generate(alg),
        }
    }
}

/// The loaded key-encryption key.
pub struct Kek {
    id: String,
    key: LessSafeKey,
    keygen: KeyGen,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Kek {
    /// Loads the KEK from `dir`, creating the folder (0700) and the key (0600) if missing.
    pub fn load_or_create(dir: &Path) -> anyhow::Result<Self> {
        crate::files::create_private_dir(dir)?;
        crate::files::warn_if_shared(dir, "the keys dir");
        let path = dir.join(KEK_FILE);
        if !path.exists() {
            let mut raw = [0u8; 32];
            getrandom::getrandom(&mut raw).context("reading the OS random generator")?;
            crate::files::write_private_file(
                &path,
                format!("{}\n", STANDARD.encode(raw)).as_bytes(),
            )?;
        }
        crate::files::warn_if_shared(&path, "the key-encryption key");
        let text = fs::read_to_string(&path)
            .with_context(|| format!("reading the key-encryption key {}", path.display()))?;
        let raw = STANDARD
            .decode(text.trim())
            .ok()
            .filter(|r| r.len() == 32)
            .with_context(|| format!("{} is not a base64 256-bit key", path.display()))?;
        Self::from_bytes(&raw)
    }

    /// The same KEK, making new keys with `keygen`.
    pub fn with_keygen(mut self, keygen: KeyGen) -> Self {
        self.keygen = keygen;
        self
    }

    /// A new signing key of `alg`.
    pub fn generate(&self, alg: Alg) -> anyhow::Result<(SigningKey, Pkcs8)> {
        self.keygen.generate(alg)
    }

    /// A KEK from its raw 32 bytes.
    pub fn from_bytes(raw: &[u8]) -> anyhow::Result<Self> {
        let key = UnboundKey::new(&AES_256_GCM, raw)
            .map_err(|_| anyhow::anyhow!("the key-encryption key must be 32 bytes"))?;
        let digest = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            &[b"jwt-issuer kek id\0".as_slice(), raw].concat(),
        );
        let id = crate::domain::hex(&digest.as_ref()[..8]);
        Ok(Self {
            id,
            key: LessSafeKey::new(key),
            keygen: KeyGen::default(),
        })
    }

    /// A short public identifier of this KEK, stored beside what it encrypts.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Encrypts `plaintext`, bound to `context` (the kid): `nonce || ciphertext || tag`.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> anyhow::Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce).context("reading the OS random generator")?;
        let mut buf = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .map_err(|_| anyhow::anyhow!("encryption failed"))?;
        Ok([nonce.as_slice(), &buf].concat())
    }

    /// Decrypts what [`Kek::seal`] produced for the same `context`.
    pub fn open(&self, sealed: &[u8], context: &str) -> anyhow::Result<Vec<u8>> {
        if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            bail!("encrypted key for {context} is truncated");
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| anyhow::anyhow!("bad nonce for {context}"))?;
        let mut buf = ct.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| {
                anyhow::anyhow!(
                    "cannot decrypt the private key {context}: wrong key-encryption key?"
                )
            })?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_bound_to_context() {
        let kek = Kek::from_bytes(&[7u8; 32]).unwrap();
        let sealed = kek.seal(b"private", "kid-1").unwrap();
        assert_eq!(kek.open(&sealed, "kid-1").unwrap(), b"private");
        assert!(kek.open(&sealed, "kid-2").is_err());
        let other = Kek::from_bytes(&[8u8; 32]).unwrap();
        assert!(other.open(&sealed, "kid-1").is_err());
        assert_ne!(kek.id(), other.id());
    }

    #[test]
    fn creates_the_file_with_mode_0600_and_reloads_it() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let a = Kek::load_or_create(&keys).unwrap();
        let b = Kek::load_or_create(&keys).unwrap();
        assert_eq!(a.id(), b.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(keys.join(KEK_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
