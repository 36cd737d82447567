//! Key-encryption key rotation (`jwt-issuer kek rotate`): every stored private key encrypted
//! anew under a new KEK in one transaction, the previous KEK kept until no key needs it, and
//! instances sharing the database signing throughout, each opening a key with the KEK its row
//! names.

use std::time::Duration;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, eventually, spawn_app, spawn_app_with_keys};

both_backends!(kek_rotation_reencrypts_every_key_and_instances_keep_signing);

fn kek_ids(app: &TestApp) -> Vec<String> {
    let (code, out, err) = app.cli(&["kek", "list"], "");
    assert_eq!(code, 0, "{err}");
    out.lines()
        .map(|l| l.split_whitespace().nth(1).unwrap().to_owned())
        .collect()
}

async fn signing_kid(app: &TestApp) -> String {
    let token = app.login_admin().await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    TestApp::kid_of(&token)
}

async fn kek_rotation_reencrypts_every_key_and_instances_keep_signing(backend: Backend) {
    let a = spawn_app(&backend).await;
    // A second instance on the same database with a keys dir of its own (another machine),
    // holding a copy of the same KEK.
    let b_keys = a.db.dir().join("keys-b");
    std::fs::create_dir(&b_keys).unwrap();
    for file in ["kek.key", "initial-admin-password"] {
        std::fs::copy(a.keys_dir.join(file), b_keys.join(file)).unwrap();
    }
    let b = spawn_app_with_keys(a.db.clone(), b_keys.clone(), &["--issuer", &a.address]).await;
    let first_kid = signing_kid(&a).await;
    assert_eq!(signing_kid(&b).await, first_kid);
    let old = kek_ids(&a)[0].clone();
    let stored = a.count("signing_keys");
    assert_eq!(
        a.count(&format!("signing_keys WHERE kek_id = '{old}'")),
        stored
    );

    let (code, out, err) = a.cli(&["kek", "rotate"], "");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("re-encrypted {stored} stored private keys")),
        "{out}"
    );
    let new = kek_ids(&a)[0].clone();
    assert_ne!(new, old);
    assert_eq!(
        a.count(&format!("signing_keys WHERE kek_id = '{new}'")),
        stored
    );
    assert!(a.keys_dir.join(format!("kek-{old}.key")).exists(), "kept");
    let (_, listed, _) = a.cli(&["kek", "list"], "");
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("kek.key") && l.contains(&new) && l.contains("current")),
        "{listed}"
    );
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&format!("kek-{old}.key")) && l.contains("removable")),
        "{listed}"
    );
    let (_, audit, _) = a.cli(&["audit", "--limit", "1"], "");
    assert!(
        audit.contains("kek_rotated") && audit.contains(&new),
        "{audit}"
    );

    // Both keep signing with the key they hold.
    assert_eq!(signing_kid(&a).await, first_kid);
    assert_eq!(signing_kid(&b).await, first_kid);

    // A signing-key rotation: `a` opens the new active key with the new KEK (its keys dir
    // has it); the keys it generates meanwhile are encrypted with it too.
    let admin = a.admin_token().await;
    let rotated = a
        .call("POST", "/admin/keys/rotate", Some(&admin), None)
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text());
    let second_kid = rotated.json()["active"].as_str().unwrap().to_owned();
    eventually(
        Duration::from_secs(10),
        "a signs with the new key",
        || async { (signing_kid(&a).await == second_kid).then_some(()) },
    )
    .await;
    assert_eq!(a.count(&format!("signing_keys WHERE kek_id = '{old}'")), 0);
    // `b` cannot open it yet and keeps signing with the key it holds (still published) ...
    assert_eq!(signing_kid(&b).await, first_kid);
    // ... until the new KEK is copied to it, as the error it logs says.
    std::fs::copy(
        a.keys_dir.join("kek.key"),
        b_keys.join(format!("kek-{new}.key")),
    )
    .unwrap();
    eventually(
        Duration::from_secs(10),
        "b signs with the new key",
        || async { (signing_kid(&b).await == second_kid).then_some(()) },
    )
    .await;

    // A restart loads the rotated KEK and signs on.
    let a = a.restart().await;
    assert_eq!(signing_kid(&a).await, second_kid);
}
