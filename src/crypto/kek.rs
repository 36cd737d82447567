//! The key-encryption key (KEK): 256 bits in `<keys-dir>/kek.key` (mode 0600), used with
//! AES-256-GCM to encrypt every private signing key before it reaches the database. A
//! database dump alone reveals no private key. The KEK is the custodian of private keys: it
//! also makes the new ones ([`KeyGen`]).
//!
//! Each stored key names the KEK that encrypted it (its id, from the KEK's bytes). `kek.key`
//! is the current KEK, which encrypts new keys; earlier ones stay beside it as
//! `kek-<id>.key` after a KEK rotation (`jwt-issuer kek rotate`) until no stored key uses them,
//! and a key is decrypted with the KEK its row names. A KEK file copied into the keys dir while
//! the service runs is found when a key needs it: instances sharing a database keep working
//! while a rotation made elsewhere reaches them.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

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

/// The file name of an earlier KEK, kept to decrypt what it encrypted.
pub fn previous_kek_file(id: &str) -> String {
    format!("kek-{id}.key")
}

/// The loaded key-encryption keys: the current one (`kek.key`), and the earlier ones found in
/// the keys dir.
pub struct Kek {
    /// The keys dir: `kek.key` is read again before each encryption (a rotation made by the
    /// CLI replaces it while the service runs), and the folder searched again for a KEK a
    /// stored key names but none loaded has.
    dir: Option<PathBuf>,
    /// Every KEK loaded, by id.
    known: RwLock<HashMap<String, Arc<LessSafeKey>>>,
    /// The id of the one that encrypts.
    current: RwLock<String>,
    keygen: KeyGen,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek")
            .field(
                "current",
                &*self.current.read().map_err(|_| std::fmt::Error)?,
            )
            .finish_non_exhaustive()
    }
}

impl Kek {
    /// Loads the KEKs of `dir`, creating the folder (0700) and `kek.key` (0600) if missing.
    pub fn load_or_create(dir: &Path) -> anyhow::Result<Self> {
        crate::files::create_private_dir(dir)?;
        crate::files::warn_if_shared(dir, "the keys dir");
        let path = dir.join(KEK_FILE);
        if !path.exists() {
            crate::files::write_private_file(&path, &new_kek_file()?.1)?;
        }
        crate::files::warn_if_shared(&path, "the key-encryption key");
        let kek = Self {
            dir: Some(dir.to_owned()),
            known: RwLock::default(),
            current: RwLock::default(),
            keygen: KeyGen::default(),
        };
        kek.reload()?;
        Ok(kek)
    }

    /// Loads every KEK file of the keys dir (`kek.key`, `kek-*.key`); `kek.key` becomes the
    /// current one.
    fn reload(&self) -> anyhow::Result<()> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name == KEK_FILE || (name.starts_with("kek-") && name.ends_with(".key")) {
                self.add(&path)?;
            }
        }
        self.refresh_current()?;
        Ok(())
    }

    /// Loads the KEK of `path`; returns its id.
    fn add(&self, path: &Path) -> anyhow::Result<String> {
        let (id, key) = aead_key(&read_kek_file(path)?)?;
        if let Ok(mut known) = self.known.write() {
            known.entry(id.clone()).or_insert_with(|| Arc::new(key));
        }
        Ok(id)
    }

    /// Reads `kek.key` again: the current KEK, loaded.
    fn refresh_current(&self) -> anyhow::Result<String> {
        let Some(dir) = &self.dir else {
            return self.current_id();
        };
        let id = self.add(&dir.join(KEK_FILE))?;
        if let Ok(mut current) = self.current.write() {
            current.clone_from(&id);
        }
        Ok(id)
    }

    fn current_id(&self) -> anyhow::Result<String> {
        self.current
            .read()
            .map(|c| c.clone())
            .map_err(|_| anyhow::anyhow!("the key-encryption keys are unavailable"))
    }

    fn get(&self, id: &str) -> Option<Arc<LessSafeKey>> {
        self.known.read().ok().and_then(|k| k.get(id).cloned())
    }

    /// The ids of the KEKs loaded other than the current one.
    pub fn previous_ids(&self) -> Vec<String> {
        let current = self.current_id().unwrap_or_default();
        let mut ids: Vec<String> = self
            .known
            .read()
            .map(|k| k.keys().filter(|id| **id != current).cloned().collect())
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// The KEK of one file (nothing else of its folder).
    pub fn load_file(path: &Path) -> anyhow::Result<Self> {
        Self::from_bytes(&read_kek_file(path)?)
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
        let (id, key) = aead_key(raw)?;
        Ok(Self {
            dir: None,
            known: RwLock::new(HashMap::from([(id.clone(), Arc::new(key))])),
            current: RwLock::new(id),
            keygen: KeyGen::default(),
        })
    }

    /// The short public identifier of the current KEK, stored beside what it encrypts.
    pub fn id(&self) -> anyhow::Result<String> {
        self.refresh_current()
    }

    /// Encrypts `plaintext` with the current KEK, bound to `context` (the kid): returns the
    /// KEK's id and `nonce || ciphertext || tag`.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> anyhow::Result<(String, Vec<u8>)> {
        let id = self.refresh_current()?;
        let key = self
            .get(&id)
            .context("the current key-encryption key is not loaded")?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce).context("reading the OS random generator")?;
        let mut buf = plaintext.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(context.as_bytes()),
            &mut buf,
        )
        .map_err(|_| anyhow::anyhow!("encryption failed"))?;
        Ok((id, [nonce.as_slice(), &buf].concat()))
    }

    /// Decrypts what the KEK `kek_id` (the current one or an earlier one) sealed for
    /// `context`, looking in the keys dir again for a KEK not loaded yet.
    pub fn open(&self, kek_id: &str, sealed: &[u8], context: &str) -> anyhow::Result<Vec<u8>> {
        let key = match self.get(kek_id) {
            Some(key) => key,
            None => {
                self.reload()?;
                self.get(kek_id).with_context(|| {
                    let dir = self.dir.as_deref().unwrap_or(Path::new("the keys dir"));
                    format!(
                        "the private key {context} is encrypted with the key-encryption key {kek_id}, which is not in {}: copy its file ({}) there from the instance that rotated it",
                        dir.display(),
                        previous_kek_file(kek_id)
                    )
                })?
            }
        };
        open_with(&key, sealed, context)
    }
}

/// The id and the AES key of a KEK's raw bytes.
fn aead_key(raw: &[u8]) -> anyhow::Result<(String, LessSafeKey)> {
    let key = UnboundKey::new(&AES_256_GCM, raw)
        .map_err(|_| anyhow::anyhow!("the key-encryption key must be 32 bytes"))?;
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        &[b"jwt-issuer kek id\0".as_slice(), raw].concat(),
    );
    Ok((
        crate::domain::hex(&digest.as_ref()[..8]),
        LessSafeKey::new(key),
    ))
}

/// A KEK file's 32 bytes (base64 text).
fn read_kek_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("reading the key-encryption key {}", path.display()))?;
    STANDARD
        .decode(text.trim())
        .ok()
        .filter(|r| r.len() == 32)
        .with_context(|| format!("{} is not a base64 256-bit key", path.display()))
}

/// A new KEK's file content: 256 random bits in base64.
pub fn new_kek_file() -> anyhow::Result<(String, Vec<u8>)> {
    let mut raw = [0u8; 32];
    getrandom::getrandom(&mut raw).context("reading the OS random generator")?;
    let (id, _) = aead_key(&raw)?;
    Ok((id, format!("{}\n", STANDARD.encode(raw)).into_bytes()))
}

fn open_with(key: &LessSafeKey, sealed: &[u8], context: &str) -> anyhow::Result<Vec<u8>> {
    if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
        bail!("encrypted key for {context} is truncated");
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce)
        .map_err(|_| anyhow::anyhow!("bad nonce for {context}"))?;
    let mut buf = ct.to_vec();
    let plain = key
        .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
        .map_err(|_| {
            anyhow::anyhow!("cannot decrypt the private key {context}: wrong key-encryption key?")
        })?;
    Ok(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_bound_to_context() {
        let kek = Kek::from_bytes(&[7u8; 32]).unwrap();
        let (id, sealed) = kek.seal(b"private", "kid-1").unwrap();
        assert_eq!(id, kek.id().unwrap());
        assert_eq!(kek.open(&id, &sealed, "kid-1").unwrap(), b"private");
        assert!(kek.open(&id, &sealed, "kid-2").is_err());
        let other = Kek::from_bytes(&[8u8; 32]).unwrap();
        assert!(
            other.open(&id, &sealed, "kid-1").is_err(),
            "an unknown KEK id"
        );
        assert!(
            other.open(&other.id().unwrap(), &sealed, "kid-1").is_err(),
            "the wrong KEK"
        );
        assert_ne!(id, other.id().unwrap());
    }

    #[test]
    fn creates_the_file_with_mode_0600_and_reloads_it() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let a = Kek::load_or_create(&keys).unwrap();
        let b = Kek::load_or_create(&keys).unwrap();
        assert_eq!(a.id().unwrap(), b.id().unwrap());
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

    #[test]
    fn earlier_keks_are_found_by_id_even_when_copied_in_later() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let current = Kek::load_or_create(&keys).unwrap();
        let (old_id, old_file) = new_kek_file().unwrap();
        let old = Kek::from_bytes(
            &STANDARD
                .decode(String::from_utf8(old_file.clone()).unwrap().trim())
                .unwrap(),
        )
        .unwrap();
        let (sealed_by, sealed) = old.seal(b"private", "kid-1").unwrap();
        assert_eq!(sealed_by, old_id);
        let err = current.open(&old_id, &sealed, "kid-1").unwrap_err();
        assert!(
            err.to_string().contains(&previous_kek_file(&old_id)),
            "{err}"
        );
        // Copied into the keys dir while running: found on the next use.
        crate::files::write_private_file(&keys.join(previous_kek_file(&old_id)), &old_file)
            .unwrap();
        assert_eq!(current.open(&old_id, &sealed, "kid-1").unwrap(), b"private");
        assert_eq!(current.previous_ids(), std::slice::from_ref(&old_id));
        assert_eq!(Kek::load_or_create(&keys).unwrap().previous_ids(), [old_id]);
        // kek.key replaced while running (a rotation by the CLI): the next encryption uses it.
        let before = current.id().unwrap();
        let (new_id, new_file) = new_kek_file().unwrap();
        std::fs::remove_file(keys.join(KEK_FILE)).unwrap();
        crate::files::write_private_file(&keys.join(KEK_FILE), &new_file).unwrap();
        let (sealed_by, sealed) = current.seal(b"next", "kid-2").unwrap();
        assert_eq!(sealed_by, new_id);
        assert_eq!(current.open(&new_id, &sealed, "kid-2").unwrap(), b"next");
        assert!(current.previous_ids().contains(&before));
    }
}
