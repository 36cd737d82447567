//! `jwt-issuer key import`: every supported format becomes `next` (or `active`), and what
//! cannot be used is refused with a one-line reason.

use std::sync::Arc;

use aws_lc_rs::encoding::AsDer as _;
use p256::pkcs8::DecodePrivateKey as _;
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::pkcs8::{EncodePrivateKey as _, LineEnding};

use crate::both_backends;
use std::time::Duration;

use crate::helpers::{Backend, TestApp, TestDb, eventually, run_cli, spawn_app_on};

both_backends!(
    each_private_key_format_imports_and_signs,
    unusable_keys_are_refused_with_the_reason
);

// The OpenSSH cases need `ssh-keygen` to make their keys: ignored by plain `cargo test` (which
// needs only the Rust toolchain), run by CI with `--include-ignored`, and then a missing
// `ssh-keygen` fails them instead of skipping.
#[actix_web::test]
#[ignore = "needs ssh-keygen; CI runs it with --include-ignored"]
async fn openssh_private_keys_import_and_sign() {
    let dir = tempfile::tempdir().unwrap();
    imports_and_signs(&Backend::Sqlite, openssh_files(dir.path())).await;
}

#[actix_web::test]
#[ignore = "needs ssh-keygen; CI runs it with --include-ignored"]
async fn unusable_openssh_keys_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cases = vec![
        (
            "ed25519".to_owned(),
            ssh_keygen(dir.path(), "ed25519", &["-t", "ed25519"], ""),
            "Ed25519",
        ),
        (
            "ssh-encrypted".to_owned(),
            ssh_keygen(
                dir.path(),
                "ssh-encrypted",
                &["-t", "ecdsa", "-b", "256"],
                "passphrase",
            ),
            "encrypted",
        ),
        (
            "p384".to_owned(),
            ssh_keygen(dir.path(), "p384", &["-t", "ecdsa", "-b", "384"], ""),
            "P-256",
        ),
    ];
    refuses(&Backend::Sqlite, cases);
}

fn rsa_pkcs8_der() -> Vec<u8> {
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der: aws_lc_rs::encoding::Pkcs8V1Der = pair.as_der().unwrap();
    der.as_ref().to_vec()
}

fn p256_pkcs8_der() -> Vec<u8> {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
        .unwrap()
        .to_pkcs8v1()
        .unwrap()
        .as_ref()
        .to_vec()
}

/// Each supported format, as (name, PEM or OpenSSH text).
fn key_files() -> Vec<(&'static str, String)> {
    let rsa = rsa::RsaPrivateKey::from_pkcs8_der(&rsa_pkcs8_der()).unwrap();
    let ec = p256::SecretKey::from_pkcs8_der(&p256_pkcs8_der()).unwrap();
    vec![
        (
            "rsa-pkcs8",
            rsa.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
        ),
        (
            "rsa-pkcs1",
            rsa::RsaPrivateKey::from_pkcs8_der(&rsa_pkcs8_der())
                .unwrap()
                .to_pkcs1_pem(LineEnding::LF)
                .unwrap()
                .to_string(),
        ),
        (
            "ec-pkcs8",
            ec.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
        ),
        (
            "ec-sec1",
            p256::SecretKey::from_pkcs8_der(&p256_pkcs8_der())
                .unwrap()
                .to_sec1_pem(LineEnding::LF)
                .unwrap()
                .to_string(),
        ),
    ]
}

/// RSA and ECDSA private keys as `ssh-keygen` writes them.
fn openssh_files(dir: &std::path::Path) -> Vec<(&'static str, String)> {
    [
        ("openssh-rsa", &["-t", "rsa", "-b", "2048"][..]),
        ("openssh-ecdsa", &["-t", "ecdsa", "-b", "256"][..]),
    ]
    .into_iter()
    .map(|(name, args)| (name, ssh_keygen(dir, name, args, "")))
    .collect()
}

/// A private key made by `ssh-keygen`; a missing tool fails the test.
fn ssh_keygen(dir: &std::path::Path, name: &str, args: &[&str], passphrase: &str) -> String {
    let path = dir.join(name);
    let status = std::process::Command::new("ssh-keygen")
        .args(args)
        .args(["-q", "-N", passphrase, "-C", "test", "-f"])
        .arg(&path)
        .status()
        .unwrap_or_else(|e| panic!("ssh-keygen (openssh-client) is needed for this test: {e}"));
    assert!(status.success(), "ssh-keygen failed");
    std::fs::read_to_string(path).unwrap()
}

fn import(db: &TestDb, file: &std::path::Path, activate: bool) -> (i32, String, String) {
    let keys = db.dir().join("keys");
    let mut args = vec![
        "key",
        "import",
        file.to_str().unwrap(),
        "--database",
        &db.url,
        "--keys-dir",
        keys.to_str().unwrap(),
    ];
    if activate {
        args.push("--activate");
    }
    run_cli(&args, "")
}

async fn each_private_key_format_imports_and_signs(backend: Backend) {
    imports_and_signs(&backend, key_files()).await;
}

/// Imports each of `files` as next, rotates to it and signs with it; then `--activate`.
async fn imports_and_signs(backend: &Backend, files: Vec<(&'static str, String)>) {
    let db = Arc::new(TestDb::create(backend));
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_on(db.clone(), &[]).await;
    for (name, text) in files {
        let file = dir.path().join(format!("{name}.key"));
        std::fs::write(&file, &text).unwrap();
        // As next: published at once (the instance picks it up), signing after a rotation.
        let (code, out, err) = import(&db, &file, false);
        assert_eq!(code, 0, "{name}: {out}{err}");
        assert!(out.contains(" as next"), "{name}: {out}");
        let kid = out.split_whitespace().nth(3).unwrap().to_owned();
        eventually(
            Duration::from_secs(5),
            "publishing the imported key",
            || async { app.jwks_kids().await.contains(&kid).then_some(()) },
        )
        .await;
        let admin = app.admin_token().await;
        let rotated = app
            .call("POST", "/admin/keys/rotate", Some(&admin), None)
            .await
            .json();
        assert_eq!(rotated["active"], kid.as_str(), "{name}");
        let token = app.admin_default_token().await;
        assert_eq!(TestApp::kid_of(&token), kid, "{name}");
        crate::helpers::verify_with_jwks(&app, &token)
            .await
            .unwrap();
        // The same key again: refused.
        let (code, _, err) = import(&db, &file, false);
        assert_ne!(code, 0);
        assert!(err.contains("already stored"), "{name}: {err}");
    }
    // --activate: signs at once.
    let file = dir.path().join("activate.pem");
    let ec = p256::SecretKey::from_pkcs8_der(&p256_pkcs8_der()).unwrap();
    std::fs::write(&file, ec.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes()).unwrap();
    let (code, out, err) = import(&db, &file, true);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(" as active"), "{out}");
    let kid = out.split_whitespace().nth(3).unwrap().to_owned();
    eventually(
        Duration::from_secs(5),
        "signing with the activated key",
        || async { (TestApp::kid_of(&app.admin_token().await) == kid).then_some(()) },
    )
    .await;
}

async fn unusable_keys_are_refused_with_the_reason(backend: Backend) {
    let cases: Vec<(String, String, &str)> = vec![
        ("garbage".into(), "hello world".into(), "no -----BEGIN"),
        ("public".into(), rsa::RsaPrivateKey::from_pkcs8_der(&rsa_pkcs8_der()).unwrap().to_public_key().to_public_key_pem_string(), "public key"),
        ("encrypted-pkcs8".into(), "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----\n".into(), "encrypted"),
        ("small-rsa".into(), SMALL_RSA.into(), "too small"),
    ];
    refuses(&backend, cases);
}

/// Each case is refused by `key import` with its reason, in one line, without key material.
fn refuses(backend: &Backend, cases: Vec<(String, String, &str)>) {
    let db = TestDb::create(backend);
    let dir = tempfile::tempdir().unwrap();
    for (name, text, reason) in cases {
        let file = dir.path().join(format!("{name}.key"));
        std::fs::write(&file, text).unwrap();
        let (code, out, err) = import(&db, &file, false);
        assert_ne!(code, 0, "{name} was accepted: {out}");
        assert!(err.contains(reason), "{name}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{name}: one line: {err}");
        assert!(
            !err.contains("PRIVATE KEY-----"),
            "{name}: no key material in the message"
        );
    }
}

trait PemString {
    fn to_public_key_pem_string(&self) -> String;
}
impl PemString for rsa::RsaPublicKey {
    fn to_public_key_pem_string(&self) -> String {
        use rsa::pkcs8::EncodePublicKey as _;
        self.to_public_key_pem(LineEnding::LF).unwrap()
    }
}

/// A 1024-bit RSA key (a test fixture; too small to be accepted).
pub const SMALL_RSA: &str = "-----BEGIN PRIVATE KEY-----
MIICdQIBADANBgkqhkiG9w0BAQEFAASCAl8wggJbAgEAAoGBALl8ATgOQ24dDykl
lYAiIzb9V0NruvGzapK3ClSP8t6fFMHj8P6h7JWQBVo79HUm3nfBf+NpsB23CFzP
7Zxx+FtskeDfxdRBVxJ7SXgbNz7YDwJTPsvP3YQULrWexl+CIpGp2WZ5PuSV3h5i
Ew+9Px5zakloT50183KmbvZACfZZAgMBAAECgYAR09xeIejTPZHGd6lN3noZ//GS
NlmKf58fqN4iUI+cXBfnptvz7WZK3cPV72tIk0rQodWD6xWVVZFFMmr5HW8sWFN5
j0waS3qDfMmew9nczPHAV6uxq0oqfGHDN6nxONStAKLr/HRocZRjYlcuAhdgqMdp
v0FCb7ysAXzDfgvc8QJBAOzPYY6NLGZi94DA4j0x0FWpYTGNdKOD0KlPUDI4ghS5
eJcGpVKGL9IK8WNgWGDzWGJzJQDp2TJbKB5Vv934hY0CQQDIg9+lhnW4ib+QX7fn
1LeCVXuvCrzbzk9gdVanZXjZZhjl9VCkALoMf55azyaqjjuDcv7nyIloyZl9yPJR
BmL9AkAimR3wvNF62AS/K+8h77A3g7quibM73JtU0UCvRbBDpOFod1EaIH7GGlEw
Krhe2c7U+2uxmXjhMY5H+FFC9fdVAkBIz8pImxjoV+zeCkQHxTCV/WCaYXXPA43D
YxiCVNCbcP2dk4Ui6LimjTj9lLdfu6JUy09Q73smN/6qtGt5jK4pAkBtW8T5dCha
zVEZWL+lSpqVrxZ84tR2QlCQz4Mf0omBEDNTABj/qBiDZvQ50V/0wt2viGIcJ5II
1AoTdoQI1Hbm
-----END PRIVATE KEY-----
";
