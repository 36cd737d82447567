//! JWKS, metadata, PEM endpoints, health, CORS.

use crate::both_backends;
use crate::helpers::{Backend, Resp, TestApp, spawn_app, spawn_app_with};

both_backends!(
    jwks_publishes_active_and_next_with_caching_headers,
    metadata_is_served_at_both_paths,
    public_keys_are_served_as_pem,
    health_and_readiness,
    cors_headers_only_for_configured_origins,
);

async fn jwks_publishes_active_and_next_with_caching_headers(backend: Backend) {
    let app = spawn_app(&backend).await;
    let resp = app.get("/.well-known/jwks.json").await;
    assert_eq!(resp.status, 200);
    let cache = resp.header("cache-control").unwrap();
    assert!(cache.starts_with("public, max-age="), "{cache}");
    let etag = resp.header("etag").unwrap();
    let jwks = resp.json();
    let keys = jwks["keys"].as_array().unwrap();
    // The active key, and three unused keys per algorithm published ahead of use.
    assert_eq!(keys.len(), 7, "{jwks}");
    for k in keys {
        assert_eq!(k["use"], "sig");
        assert!(k["kid"].as_str().unwrap().len() == 43);
        match k["alg"].as_str().unwrap() {
            "RS256" => {
                assert_eq!(k["kty"], "RSA");
                assert_eq!(k["e"], "AQAB");
                assert!(k["n"].as_str().unwrap().len() >= 342, "2048-bit modulus");
            }
            "ES256" => {
                assert_eq!(k["kty"], "EC");
                assert_eq!(k["crv"], "P-256");
                assert!(k["x"].is_string() && k["y"].is_string());
            }
            other => panic!("unexpected alg {other}"),
        }
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(k.get(private).is_none(), "never private material");
        }
    }
    assert_eq!(keys.iter().filter(|k| k["alg"] == "RS256").count(), 4);
    let token = app.login_admin().await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
    assert!(keys.iter().any(|k| k["kid"] == kid.as_str()));

    let not_modified = app
        .get_with("/.well-known/jwks.json", &[("if-none-match", &etag)])
        .await;
    assert_eq!(not_modified.status, 304);
    assert!(not_modified.body.is_empty());
    assert_eq!(not_modified.header("etag").unwrap(), etag);
    let changed = app
        .get_with("/.well-known/jwks.json", &[("if-none-match", "\"other\"")])
        .await;
    assert_eq!(changed.status, 200);
}

async fn metadata_is_served_at_both_paths(backend: Backend) {
    let app = spawn_app(&backend).await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let m = app.get(path).await.json();
        assert_eq!(m["issuer"], app.address.as_str());
        assert_eq!(m["token_endpoint"], app.url("/oauth/token").as_str());
        assert_eq!(m["jwks_uri"], app.url("/.well-known/jwks.json").as_str());
        assert_eq!(m["response_types_supported"], serde_json::json!([]));
        assert_eq!(m["revocation_endpoint"], app.url("/oauth/revoke").as_str());
        assert_eq!(
            m["revocation_feed_endpoint"],
            app.url("/oauth/revocations").as_str()
        );
        assert_eq!(
            m["introspection_endpoint"],
            app.url("/oauth/introspect").as_str()
        );
        assert_eq!(
            m["grant_types_supported"],
            serde_json::json!([
                "password",
                "refresh_token",
                "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "client_credentials"
            ])
        );
        assert_eq!(
            m["token_endpoint_auth_methods_supported"],
            serde_json::json!(["client_secret_basic", "client_secret_post", "none"])
        );
        assert_eq!(
            m["token_endpoint_auth_signing_alg_values_supported"],
            serde_json::json!(["RS256", "RS384", "RS512", "ES256", "EdDSA"])
        );
        assert_eq!(m["scopes_supported"], serde_json::json!([]));
    }
}

async fn public_keys_are_served_as_pem(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.login_admin().await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let active_kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
    let pem = app.get("/keys/public.pem").await;
    assert_eq!(pem.status, 200);
    let text = pem.text();
    assert!(text.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{text}");
    // The PEM verifies the token on its own.
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(text.as_bytes()).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&[&app.address]);
    jsonwebtoken::decode::<serde_json::Value>(&token, &key, &v).unwrap();
    assert_eq!(
        app.get(&format!("/keys/{active_kid}.pem")).await.text(),
        text
    );
    let jwks = app.get("/.well-known/jwks.json").await.json();
    let next_kid = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .find(|k| *k != active_kid)
        .unwrap();
    let next = app.get(&format!("/keys/{next_kid}.pem")).await;
    assert_eq!(next.status, 200);
    assert_ne!(next.text(), text);
}

async fn health_and_readiness(backend: Backend) {
    let app = spawn_app(&backend).await;
    let h = app.get("/healthz").await;
    assert_eq!(h.status, 200);
    assert_eq!(h.json()["status"], "ok");
    let r = app.get("/readyz").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ready");
    assert!(r.json()["active_kid"].is_string());
}

async fn cors_headers_only_for_configured_origins(backend: Backend) {
    let app = spawn_app_with(&backend, &["--cors-origin", "https://app.example.com"]).await;
    let ok = app
        .get_with(
            "/.well-known/jwks.json",
            &[("origin", "https://app.example.com")],
        )
        .await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.header("access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    let other = app
        .get_with(
            "/.well-known/jwks.json",
            &[("origin", "https://evil.example.com")],
        )
        .await;
    assert!(other.header("access-control-allow-origin").is_none());
    // A browser's preflight for the token endpoint.
    let pre = crate::helpers::read(
        app.client
            .request(awc::http::Method::OPTIONS, app.url("/oauth/token"))
            .insert_header(("origin", "https://app.example.com"))
            .insert_header(("access-control-request-method", "POST"))
            .insert_header(("access-control-request-headers", "content-type"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(pre.status.is_success(), "{}", pre.status);
    assert_eq!(
        pre.header("access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    assert!(
        pre.header("access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
}

both_backends!(
    metrics_count_requests_tokens_keys_sessions_and_the_process,
    metrics_bind_serves_metrics_on_their_own_listener_only,
);

/// The lines of `/metrics` (OpenMetrics text, checked by a parser) starting with `prefix`.
fn metric<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.starts_with(prefix)).collect()
}

async fn metrics_count_requests_tokens_keys_sessions_and_the_process(backend: Backend) {
    let app = spawn_app(&backend).await;
    app.login_admin().await;
    app.login("admin", "wrong password").await;
    app.post_token(&[("grant_type", "implicit")]).await;
    app.post_token(&[("grant_type", "x".repeat(500).as_str())])
        .await;
    app.get("/nope").await;
    app.get("/admin/users/someone").await;
    // What Prometheus sends: OpenMetrics preferred.
    let resp = app
        .get_with(
            "/metrics",
            &[(
                "accept",
                "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3,*/*;q=0.1",
            )],
        )
        .await;
    assert_eq!(resp.status, 200);
    assert!(
        resp.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text; version=1.0.0")
    );
    assert_varies_on_accept(&resp);
    let text = resp.text();
    let parsed = openmetrics_parser::openmetrics::parse_openmetrics(&text)
        .unwrap_or_else(|e| panic!("not OpenMetrics ({e:?}):\n{text}"));
    for family in [
        "jwt_issuer_http_request_duration_seconds",
        "jwt_issuer_token_requests",
        "jwt_issuer_password_hash_wait_seconds",
        "jwt_issuer_password_hash_queue",
        "jwt_issuer_active_key_age_seconds",
        "jwt_issuer_published_keys",
        "jwt_issuer_sessions",
        "jwt_issuer_revoked_access_tokens",
        "process_cpu_seconds",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            parsed.families.contains_key(family),
            "no {family} in:\n{text}"
        );
    }
    for line in [
        "jwt_issuer_token_requests_total{grant_type=\"password\",outcome=\"ok\"} 1",
        "jwt_issuer_token_requests_total{grant_type=\"password\",outcome=\"invalid_grant\"} 1",
        "jwt_issuer_token_requests_total{grant_type=\"other\",outcome=\"unsupported_grant_type\"} 2",
        "jwt_issuer_http_request_duration_seconds_count{method=\"POST\",route=\"/oauth/token\",status=\"2xx\"} 1",
        "jwt_issuer_http_request_duration_seconds_count{method=\"POST\",route=\"/oauth/token\",status=\"4xx\"} 3",
        "jwt_issuer_http_request_duration_seconds_count{method=\"GET\",route=\"unmatched\",status=\"4xx\"} 1",
        "jwt_issuer_http_request_duration_seconds_count{method=\"GET\",route=\"/admin/users/{username}\",status=\"4xx\"} 1",
        "jwt_issuer_published_keys{state=\"active\"} 1",
        "jwt_issuer_published_keys{state=\"next\"} 6",
        "jwt_issuer_password_hash_queue 0",
        "jwt_issuer_password_hash_wait_seconds_count 2",
        "jwt_issuer_sessions 1",
        "jwt_issuer_revoked_access_tokens 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
    // A histogram: cumulative buckets up to +Inf.
    let buckets = metric(
        &text,
        "jwt_issuer_http_request_duration_seconds_bucket{le=\"+Inf\",method=\"POST\",route=\"/oauth/token\",status=\"4xx\"}",
    );
    assert_eq!(buckets.len(), 1, "{text}");
    for name in [
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_cpu_seconds_total ",
    ] {
        let value: f64 = metric(&text, name)[0]
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        assert!(value > 0.0, "{name}{value}");
    }
    assert!(
        !text.contains(&"x".repeat(500)) && !text.contains("someone"),
        "client input never becomes a label"
    );
    assert!(!text.contains(&app.admin_password()));
    prometheus_text_unless_openmetrics_is_asked_for(&app).await;
}

/// `/metrics` negotiates its format, so caches must key it on `Accept` (beside CORS's own
/// `Vary` entries).
fn assert_varies_on_accept(resp: &Resp) {
    let vary = resp.header("vary").unwrap_or_default();
    assert!(
        vary.split(',').any(|v| v.trim() == "Accept"),
        "Vary: {vary}"
    );
}

/// Without `Accept` (curl, most scrapers' defaults) or with OpenMetrics refused, `/metrics`
/// answers the Prometheus text format (CONTRACT.md §1), checked by a parser of that format:
/// counters named after their `_total` samples, no OpenMetrics-only lines.
async fn prometheus_text_unless_openmetrics_is_asked_for(app: &TestApp) {
    for headers in [
        &[][..],
        &[("accept", "text/plain")][..],
        &[("accept", "application/openmetrics-text; q=0, text/plain")][..],
    ] {
        let resp = app.get_with("/metrics", headers).await;
        assert_eq!(resp.status, 200);
        assert_eq!(
            resp.header("content-type").as_deref(),
            Some("text/plain; version=0.0.4; charset=utf-8"),
            "{headers:?}"
        );
        assert_varies_on_accept(&resp);
        let text = resp.text();
        let parsed = openmetrics_parser::prometheus::parse_prometheus(&text)
            .unwrap_or_else(|e| panic!("not the Prometheus text format ({e:?}):\n{text}"));
        for family in [
            "jwt_issuer_token_requests_total",
            "jwt_issuer_http_request_duration_seconds",
            "jwt_issuer_password_hash_queue",
            "process_cpu_seconds_total",
        ] {
            assert!(
                parsed.families.contains_key(family),
                "no {family} in:\n{text}"
            );
        }
        assert!(text.contains("# TYPE jwt_issuer_token_requests_total counter\n"));
        assert!(
            text.lines().any(|l| l
                == "jwt_issuer_token_requests_total{grant_type=\"password\",outcome=\"ok\"} 1")
        );
        assert!(
            !text.contains("# EOF") && !text.contains("# UNIT"),
            "{text}"
        );
    }
}

async fn metrics_bind_serves_metrics_on_their_own_listener_only(backend: Backend) {
    let app = spawn_app_with(&backend, &["--metrics-bind", "127.0.0.1:0"]).await;
    app.login_admin().await;
    app.get("/metrics").await.assert_error(404, "not_found");
    let port = app.metrics_port.expect("a metrics listener");
    let mut resp = app
        .client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = String::from_utf8(resp.body().await.unwrap().to_vec()).unwrap();
    assert!(
        text.contains("jwt_issuer_token_requests_total{grant_type=\"password\",outcome=\"ok\"} 1"),
        "{text}"
    );
    let other = app
        .client
        .get(format!("http://127.0.0.1:{port}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404, "only /metrics there");
}
