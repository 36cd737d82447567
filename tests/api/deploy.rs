//! The deployment files: the Dockerfile and the systemd unit are what the README tells
//! operators to use, so they are checked against the binary. No container engine runs here:
//! CI builds with the Dockerfile's own `cargo build` line, and builds and runs the image where
//! an engine exists (.ci/run).

use std::path::Path;

use crate::helpers::{Backend, run_cli, spawn_app};

fn repo_file(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(name)).unwrap()
}

/// Runs the binary with exactly `env` as its environment (plus PATH).
fn run_with_only(args: &[&str], env: &[(String, String)]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jwt-issuer"))
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[actix_web::test]
async fn healthcheck_asks_the_service_at_the_bind_address() {
    let app = spawn_app(&Backend::Sqlite).await;
    // Off the test's thread, which serves the app meanwhile.
    let check = |bind: String| {
        tokio::task::spawn_blocking(move || run_cli(&["healthcheck", "--bind", &bind], ""))
    };
    for bind in [
        format!("127.0.0.1:{}", app.port),
        format!("0.0.0.0:{}", app.port),
    ] {
        let (code, _, err) = check(bind.clone()).await.unwrap();
        assert_eq!(code, 0, "{bind}: {err}");
    }
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (code, _, err) = check(format!("127.0.0.1:{port}")).await.unwrap();
    assert_eq!(code, 1);
    assert!(err.contains("connecting to 127.0.0.1"), "{err}");
}

#[test]
fn the_dockerfile_builds_with_ci_flags_runs_unprivileged_and_checks_health() {
    let dockerfile = repo_file("Dockerfile");
    let lines: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let from: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(from.len(), 2, "multi-stage: {from:?}");
    assert!(from[0].ends_with(" AS build"));
    assert!(
        lines.contains(&"RUN cargo build --locked --release --bin jwt-issuer"),
        ".ci/run builds with this very line"
    );
    // Everything the build stage copies exists and is not excluded from the context.
    let ignored = repo_file(".dockerignore");
    for line in lines
        .iter()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for source in &parts[1..parts.len() - 1] {
            assert!(
                Path::new(env!("CARGO_MANIFEST_DIR")).join(source).exists(),
                "{source}"
            );
            assert!(
                !ignored.lines().any(|i| i == *source),
                "{source} is ignored"
            );
        }
    }
    let user = lines.iter().rfind(|l| l.starts_with("USER ")).unwrap();
    assert!(!user.contains("root") && !user.ends_with(" 0"), "{user}");
    assert!(lines.contains(&"VOLUME [\"/data\", \"/keys\"]"));
    assert!(
        dockerfile.contains("CMD [\"jwt-issuer\", \"healthcheck\"]"),
        "HEALTHCHECK runs the binary's own check"
    );
    // The image's environment is a valid configuration naming the volumes.
    let mut env = Vec::new();
    let mut in_env = false;
    for line in dockerfile.lines() {
        let line = line.trim();
        let body = match (line.strip_prefix("ENV "), in_env) {
            (Some(body), _) => body,
            (None, true) => line,
            (None, false) => continue,
        };
        in_env = body.ends_with('\\');
        let (k, v) = body.trim_end_matches('\\').trim().split_once('=').unwrap();
        env.push((k.to_owned(), v.to_owned()));
    }
    let (code, out, err) = run_with_only(&["config"], &env);
    assert_eq!(code, 0, "{err}");
    for line in [
        "database = \"sqlite:///data/issuer.db\"  # environment",
        "keys-dir = \"/keys\"  # environment",
        "bind = \"0.0.0.0:8080\"  # environment",
        "log-format = \"json\"  # environment",
    ] {
        assert!(out.lines().any(|l| l == line), "{line} in:\n{out}");
    }
}

#[test]
fn the_systemd_unit_is_hardened_and_its_configuration_is_valid() {
    let unit = repo_file("deploy/jwt-issuer.service");
    let directives: Vec<(&str, &str)> = unit
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .collect();
    for required in [
        ("DynamicUser", "yes"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("StateDirectory", "jwt-issuer"),
        ("ExecStart", "/usr/local/bin/jwt-issuer serve"),
    ] {
        assert!(directives.contains(&required), "{required:?}");
    }
    // Its environment is a valid configuration, writing only under the state directory (the
    // only writable place with ProtectSystem=strict).
    let env: Vec<(String, String)> = directives
        .iter()
        .filter(|(k, _)| *k == "Environment")
        .map(|(_, v)| {
            let (k, v) = v.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let (code, out, err) = run_with_only(&["config"], &env);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("database = \"sqlite:///var/lib/jwt-issuer/issuer.db\""),
        "{out}"
    );
    assert!(
        out.contains("keys-dir = \"/var/lib/jwt-issuer/keys\""),
        "{out}"
    );
}
