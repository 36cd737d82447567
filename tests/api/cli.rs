//! The command line: options, `migrate`, `user add/list`, `key list`, and bad values.

use crate::helpers::{Backend, TestDb, run_cli, spawn_app_on};

#[actix_web::test]
async fn user_added_on_the_command_line_can_log_in() {
    let db = TestDb::create(&Backend::Sqlite);
    let keys = db.dir().join("keys");
    let keys = keys.to_str().unwrap();
    let (code, out, err) = run_cli(
        &[
            "user",
            "add",
            "alice",
            "--role",
            "reader",
            "--role",
            "introspect",
            "--password-stdin",
            "--database",
            &db.url,
            "--keys-dir",
            keys,
        ],
        "correct horse battery\n",
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("correct horse") && !err.contains("correct horse"));
    let (code, out, _) = run_cli(&["--database", &db.url, "user", "list"], "");
    assert_eq!(code, 0);
    assert!(
        out.contains("alice") && out.contains("reader introspect"),
        "{out}"
    );
    // Duplicate names are refused.
    let (code, _, err) = run_cli(
        &[
            "user",
            "add",
            "alice",
            "--password-stdin",
            "--database",
            &db.url,
        ],
        "another password\n",
    );
    assert_ne!(code, 0);
    assert!(err.contains("already exists"), "{err}");

    // The service on that database lets alice in (and creates no bootstrap admin: users exist).
    let app = spawn_app_on(std::sync::Arc::new(db), &[]).await;
    let resp = app.login("alice", "correct horse battery").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let claims = crate::helpers::claims_of(resp.json()["access_token"].as_str().unwrap());
    assert_eq!(claims["roles"], serde_json::json!(["reader", "introspect"]));
    assert!(!app.keys_dir.join("initial-admin-password").exists());
}

#[test]
fn migrate_and_key_list_work_on_a_fresh_database() {
    let db = TestDb::create(&Backend::Sqlite);
    let (code, out, err) = run_cli(&["migrate", "--database", &db.url], "");
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = run_cli(&["key", "list", "--database", &db.url], "");
    assert_eq!(code, 0);
    assert!(out.starts_with("kid"), "{out}");
}

#[test]
fn bad_options_exit_2_naming_the_option_before_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("sub/issuer.db").display());
    for (args, option) in [
        (vec!["serve", "--access-ttl", "abc"], "--access-ttl"),
        (vec!["serve", "--alg", "HS256"], "--alg"),
        (vec!["serve", "--bind", "nope"], "--bind"),
        (vec!["serve", "--database", "mysql://x"], "--database"),
        (
            vec!["user", "add", "bad\u{1}name", "--password-stdin"],
            "NAME",
        ),
    ] {
        let mut full = args.clone();
        if option != "--database" {
            full.extend(["--database", db.as_str()]);
        }
        let (code, _, err) = run_cli(&full, "");
        assert_eq!(code, 2, "{full:?}: {err}");
        assert!(err.contains(option), "{full:?}: {err}");
    }
    assert!(!dir.path().join("sub").exists(), "nothing written");
}

#[test]
fn user_add_reads_the_password_only_from_stdin() {
    let db = TestDb::create(&Backend::Sqlite);
    let (code, _, err) = run_cli(&["user", "add", "bob", "--database", &db.url], "");
    assert_eq!(code, 2, "--password-stdin is required: {err}");
    let (code, _, err) = run_cli(
        &[
            "user",
            "add",
            "bob",
            "--password-stdin",
            "--database",
            &db.url,
        ],
        "",
    );
    assert_ne!(code, 0);
    assert!(err.contains("stdin"), "{err}");
    let (code, _, err) = run_cli(
        &[
            "user",
            "add",
            "bob",
            "--password-stdin",
            "--database",
            &db.url,
        ],
        "short\n",
    );
    assert_ne!(code, 0);
    assert!(err.contains("at least 8"), "{err}");
}
