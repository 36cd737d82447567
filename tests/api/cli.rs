//! The command line: options, `migrate`, `user add/list`, `key list`, and bad values.

use crate::helpers::{Backend, TestApp, TestDb, eventually, run_cli, spawn_app, spawn_app_on};

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

/// Runs the binary with extra environment variables; returns (status, stdout, stderr).
fn run_with_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_jwt-issuer"));
    cmd.args(args).env_remove("DATABASE_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn secrets_from_the_environment_never_reach_help_or_errors() {
    let secret = "s3cret-Pa55word";
    let url = format!("postgres://issuer:{secret}@db.internal:5432/issuer");
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["user", "add", "--help"],
    ] {
        let (code, out, err) = run_with_env(&args, &[("DATABASE_URL", &url)]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("DATABASE_URL"), "the variable is named: {out}");
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "{args:?}: {out}"
        );
    }
    // A bad value names the option, never echoes the value.
    for bad in [
        format!("mysql://issuer:{secret}@db.internal/issuer"),
        format!("postgres://issuer:{secret}@db internal/issuer"),
    ] {
        let (code, out, err) = run_with_env(&["migrate"], &[("DATABASE_URL", &bad)]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("--database"), "{err}");
        assert!(!out.contains(secret) && !err.contains(secret), "{err}");
        let (code, _, err) = run_with_env(&["migrate", "--database", &bad], &[]);
        assert_eq!(code, 2);
        assert!(!err.contains(secret), "{err}");
    }
}

#[test]
fn the_sqlite_file_and_keys_dir_are_created_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("data").join("issuer.db");
    let keys = dir.path().join("keys");
    let url = format!("sqlite://{}", db_path.display());
    let (code, out, err) = run_with_env(
        &[
            "key",
            "rotate",
            "--database",
            &url,
            "--keys-dir",
            keys.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&db_path), 0o600, "the database file");
    assert_eq!(mode(&keys), 0o700, "the keys dir");
    assert_eq!(mode(&keys.join("kek.key")), 0o600);
    for extra in ["issuer.db-wal", "issuer.db-shm"] {
        let p = db_path.with_file_name(extra);
        if p.exists() {
            assert_eq!(mode(&p) & 0o077, 0, "{extra}");
        }
    }
    // Existing files are left as they are, with a warning.
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&db_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, _, err) = run_with_env(
        &[
            "key",
            "rotate",
            "--database",
            &url,
            "--keys-dir",
            keys.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("the keys dir is readable by other users"),
        "{err}"
    );
    assert!(
        err.contains("the SQLite database is readable by other users"),
        "{err}"
    );
    assert_eq!(mode(&keys), 0o755, "left as it is");
}

#[actix_web::test]
async fn key_revoke_unpublishes_a_key_and_promotes_next() {
    let app = spawn_app(&Backend::Sqlite).await;
    let token = app.login_admin().await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let active = TestApp::kid_of(&token);
    let (code, out, err) = app.cli(&["key", "revoke", &active], "");
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with(&format!("revoked {active}: active ")),
        "{out}"
    );
    let (_, list, _) = app.cli(&["key", "list"], "");
    let line = list.lines().find(|l| l.starts_with(&active)).unwrap();
    assert!(line.contains("revoked"), "{line}");
    // The running instance stops publishing it.
    eventually(
        std::time::Duration::from_secs(10),
        "the revoked key unpublished",
        || async { (!app.jwks_kids().await.contains(&active)).then_some(()) },
    )
    .await;
    let (code, _, err) = app.cli(&["key", "revoke", "no-such-kid"], "");
    assert_ne!(code, 0);
    assert!(err.contains("no-such-kid"), "{err}");
}

#[actix_web::test]
async fn audit_prints_the_newest_events_as_json_lines() {
    let app = spawn_app(&Backend::Sqlite).await;
    app.login_admin().await;
    app.login("admin", "wrong password").await;
    let (code, out, err) = app.cli(&["audit", "--limit", "2"], "");
    assert_eq!(code, 0, "{out}{err}");
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{out}");
    assert_eq!(events[0]["event"], "login_failed", "{out}");
    assert!(events[0]["id"].as_i64() > events[1]["id"].as_i64());
    let (code, _, err) = app.cli(&["audit", "--limit", "0"], "");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--limit"), "{err}");
}

#[test]
fn config_file_values_rank_below_flags_and_the_environment_and_secrets_stay_masked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("issuer.toml");
    let secret = "hunter2-in-a-file";
    std::fs::write(
        &file,
        format!(
            "access-ttl = 600\nrefresh-ttl = 7200\nbind = \"0.0.0.0:9000\"\n\
             cors-origin = [\"https://a.example\", \"https://b.example\"]\n\
             database = \"postgres://issuer:{secret}@db.internal/issuer\"\n"
        ),
    )
    .unwrap();
    let path = file.display().to_string();
    // `config` needs no database: this one does not exist.
    let (code, out, err) = run_with_env(
        &["config", "--config", &path, "--bind", "127.0.0.1:1"],
        &[("ISSUER_REFRESH_TTL", "3600")],
    );
    assert_eq!(code, 0, "{err}");
    for line in [
        "bind = \"127.0.0.1:1\"  # flag",
        "refresh-ttl = \"3600\"  # environment",
        "access-ttl = \"600\"  # file",
        "cors-origin = [\"https://a.example\", \"https://b.example\"]  # file",
        "database = \"postgres://issuer:***@db.internal/issuer\"  # file",
        "keys-dir = \"keys\"  # default",
    ] {
        assert!(out.lines().any(|l| l == line), "no {line:?} in:\n{out}");
    }
    assert!(!out.contains(secret) && !err.contains(secret));
    // Named by the variable instead; `--help` shows nothing of the file.
    let (code, out, _) = run_with_env(&["serve", "--help"], &[("ISSUER_CONFIG", &path)]);
    assert_eq!(code, 0);
    assert!(
        out.contains("--config <FILE>") && !out.contains(secret),
        "{out}"
    );
    // What `config` prints is a valid config file.
    let (_, printed, _) = run_with_env(&["config", "--config", &path], &[]);
    let again = dir.path().join("again.toml");
    std::fs::write(&again, &printed).unwrap();
    let (code, reprinted, err) =
        run_with_env(&["config", "--config", &again.display().to_string()], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        reprinted.contains("access-ttl = \"600\"  # file"),
        "{reprinted}"
    );
}

#[test]
fn config_file_errors_name_the_key_and_exit_2_before_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("never.db");
    let db_url = format!("sqlite://{}", db.display());
    for (content, expected) in [
        ("acess-ttl = 60\n", "unknown key `acess-ttl`"),
        ("access-ttl = 0\n", "bad value for `access-ttl`"),
        ("access-ttl = \"soon\"\n", "bad value for `access-ttl`"),
        ("access-ttl = [60, 70]\n", "`access-ttl` takes one value"),
        (
            "rotate-every = { days = 1 }\n",
            "`rotate-every` takes a string",
        ),
        (
            "database = \"mysql://u:pw-secret@h/db\"\n",
            "bad value for `database`",
        ),
        ("access-ttl = \n", "not TOML"),
        ("config = \"other.toml\"\n", "unknown key `config`"),
    ] {
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, content).unwrap();
        let (code, _, err) = run_with_env(
            &[
                "migrate",
                "--config",
                &file.display().to_string(),
                "--database",
                &db_url,
            ],
            &[],
        );
        assert_eq!(code, 2, "{content}: {err}");
        assert!(err.contains(expected), "{content}: {err}");
        assert!(!err.contains("pw-secret"), "{err}");
        assert!(!db.exists(), "nothing written");
    }
    let (code, _, err) = run_with_env(&["config", "--config", "/nonexistent/x.toml"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read it"), "{err}");
}

#[actix_web::test]
async fn serve_takes_its_options_from_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let file = dir.path().join("issuer.toml");
    std::fs::write(
        &file,
        format!(
            "bind = \"127.0.0.1:{port}\"\ndatabase = \"sqlite://{}/issuer.db\"\n\
             keys-dir = \"{}/keys\"\naccess-ttl = 123\n",
            dir.path().display(),
            dir.path().display()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_jwt-issuer"))
        .args(["serve", "--config", &file.display().to_string()])
        .env_remove("DATABASE_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let client = awc::Client::default();
    let base = format!("http://127.0.0.1:{port}");
    crate::helpers::answers_health(&client, &base).await;
    let password = std::fs::read_to_string(dir.path().join("keys/initial-admin-password")).unwrap();
    let mut resp = client
        .post(format!("{base}/oauth/token"))
        .send_form(&[
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", password.trim()),
        ])
        .await
        .unwrap();
    let body: serde_json::Value = resp.json().await.unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(body["expires_in"], 123, "{body}");
}

#[actix_web::test]
async fn user_key_add_list_and_remove_on_the_command_line() {
    let app = spawn_app(&Backend::Sqlite).await;
    let (code, _, err) = app.cli(
        &["user", "add", "robot", "--password-stdin"],
        "robot password\n",
    );
    assert_eq!(code, 0, "{err}");
    let key = crate::machine::ec_key();
    let file = app.db.dir().join("robot.pem");
    std::fs::write(&file, &key.spki_pem).unwrap();
    let (code, out, err) = app.cli(
        &[
            "user",
            "key",
            "add",
            "robot",
            file.to_str().unwrap(),
            "--comment",
            "ci",
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("added EC key "), "{out}");
    let (_, listed, _) = app.cli(&["user", "key", "list", "robot"], "");
    let id = listed
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let assertion = || {
        let t = chrono::Utc::now().timestamp();
        key.sign(
            jsonwebtoken::Algorithm::ES256,
            None,
            &serde_json::json!({"iss": "robot", "sub": "robot", "aud": app.url("/oauth/token"), "iat": t, "exp": t + 60, "jti": uuid::Uuid::new_v4().to_string()}),
        )
    };
    let bearer = "urn:ietf:params:oauth:grant-type:jwt-bearer";
    let login = app
        .post_token(&[("grant_type", bearer), ("assertion", &assertion())])
        .await;
    assert_eq!(login.status, 200, "{}", login.text());

    let (code, out, err) = app.cli(&["user", "key", "remove", "robot", &id], "");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), format!("removed key {id} of robot"));
    app.post_token(&[("grant_type", bearer), ("assertion", &assertion())])
        .await
        .assert_error(400, "invalid_grant");
    let (_, listed, _) = app.cli(&["user", "key", "list", "robot"], "");
    assert!(!listed.contains(&id), "{listed}");
    // Again, or a key that never was: an error naming it.
    let (code, _, err) = app.cli(&["user", "key", "remove", "robot", &id], "");
    assert_ne!(code, 0);
    assert!(err.contains(&id), "{err}");
    let (code, _, err) = app.cli(&["user", "key", "remove", "nobody", &id], "");
    assert_ne!(code, 0);
    assert!(err.contains("nobody"), "{err}");
    // The audit log says who removed it.
    let (_, audit, _) = app.cli(&["audit", "--limit", "5"], "");
    assert!(
        audit.contains("client_key_removed") && audit.contains("\"cli\""),
        "{audit}"
    );
}

#[test]
fn help_groups_the_options_by_who_reads_them() {
    let (code, out, _) = run_cli(&["user", "add", "--help"], "");
    assert_eq!(code, 0);
    let heading = |h: &str| {
        out.find(&format!("\n{h}:\n"))
            .unwrap_or_else(|| panic!("{h}: {out}"))
    };
    let (own, common, server) = (
        heading("Options"),
        heading("Common options"),
        heading("Server options (serve)"),
    );
    assert!(own < common && common < server, "{out}");
    let section = |from: usize, to: usize| &out[from..to];
    assert!(section(own, common).contains("--password-stdin"));
    assert!(!section(own, common).contains("--bind"));
    assert!(section(common, server).contains("--database"));
    for flag in [
        "--bind",
        "--access-ttl",
        "--trusted-proxy",
        "--metrics-bind",
    ] {
        assert!(
            out[server..].contains(flag),
            "{flag} under the server heading"
        );
    }
}

#[test]
fn output_to_a_reader_that_stopped_early_exits_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/issuer.db", dir.path().display());
    let keys = dir.path().join("keys").display().to_string();
    for args in [
        vec!["config"],
        vec!["key", "list", "--database", &db, "--keys-dir", &keys],
    ] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_jwt-issuer"))
            .args(&args)
            .env_remove("DATABASE_URL")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Like `jwt-issuer … | head -0`: the reader is gone before anything is written.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
    }
}
