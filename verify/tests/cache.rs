//! The verifier against a scripted JWKS server: freshness, ETag, failures, unknown kids,
//! rotation, limits; and the token checks. Time is a manual clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jwt_issuer_verify::{Error, FetchOutcome, Reason, Verifier};
use serde_json::{Value, json};

mod common;
use common::*;

#[tokio::test]
async fn a_token_verifies_with_the_cached_keys_and_no_further_fetch() {
    let key = TestKey::new("k1");
    let server = Server::start(Answer::jwks(&set(&[&key]), 300, "\"v1\"")).await;
    let clock = clock();
    let v = verifier(&server, &clock).await;
    for _ in 0..100 {
        let claims = v.verify(&key.token(now(&clock))).await.unwrap();
        assert_eq!(claims.sub, "u1");
        assert_eq!(claims.extra.username.as_deref(), Some("alice"));
    }
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn the_background_refresh_comes_ahead_of_max_age_and_revalidates_with_the_etag() {
    let key = TestKey::new("k1");
    let server = Server::start(Answer::jwks(&set(&[&key]), 300, "\"v1\"")).await;
    let clock = clock();
    let v = verifier(&server, &clock).await;
    clock.advance(Duration::from_secs(230));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(server.requests(), 1, "refreshed before 80% of max-age");
    server.answer(Answer {
        status: 304,
        headers: vec![("Cache-Control".into(), "max-age=300".into())],
        body: vec![],
        hang: false,
    });
    clock.advance(Duration::from_secs(41));
    until_requests(&server, 2).await;
    assert_eq!(
        server.seen.if_none_match.lock().unwrap()[1].as_deref(),
        Some("\"v1\"")
    );
    // The 304 extended the keys' freshness: still fresh 290 s later, and verifying.
    tokio::time::sleep(Duration::from_millis(50)).await;
    clock.advance(Duration::from_secs(200));
    v.verify(&key.token(now(&clock))).await.unwrap();
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn a_failing_issuer_keeps_the_last_good_keys_for_max_stale_then_refuses() {
    let key = TestKey::new("k1");
    let server = Server::start(Answer::jwks(&set(&[&key]), 60, "\"v1\"")).await;
    let clock = clock();
    let v = Verifier::builder(ISSUER)
        .jwks_uri(&server.url)
        .clock(clock.clone())
        .max_stale(Duration::from_secs(600))
        .build()
        .await
        .unwrap();
    server.answer(Answer::status(503));
    // An outage of twice max-age and more: no valid token is rejected.
    for _ in 0..12 {
        clock.advance(Duration::from_secs(50));
        tokio::time::sleep(Duration::from_millis(5)).await;
        v.verify(&key.token(now(&clock))).await.unwrap();
    }
    assert!(server.requests() > 1, "retried");
    clock.advance(Duration::from_secs(61));
    let e = v.verify(&key.token(now(&clock))).await.unwrap_err();
    assert!(matches!(e, Error::Unavailable(_)), "{e:?}");
    assert_eq!(e.status(), 503);
}

#[tokio::test]
async fn an_empty_or_malformed_set_never_replaces_a_good_one() {
    let key = TestKey::new("k1");
    let server = Server::start(Answer::jwks(&set(&[&key]), 300, "\"v1\"")).await;
    let clock = clock();
    let v = verifier(&server, &clock).await;
    for bad in [
        Answer::jwks(&json!({"keys": []}), 300, "\"v2\""),
        Answer {
            body: b"<html>oops</html>".to_vec(),
            ..Answer::jwks(&json!({}), 300, "\"v3\"")
        },
        Answer::jwks(
            &json!({"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256", "k": "c2VjcmV0"}]}),
            300,
            "\"v4\"",
        ),
    ] {
        server.answer(bad);
        assert!(v.refresh().await.is_err());
        v.verify(&key.token(now(&clock))).await.unwrap();
    }
}

#[tokio::test]
async fn unknown_kids_cause_one_shared_refetch_per_cooldown_and_are_rejected_at_once_beyond() {
    let key = TestKey::new("k1");
    let server = Server::start(Answer::jwks(&set(&[&key]), 300, "\"v1\"")).await;
    let clock = clock();
    let v = verifier(&server, &clock).await;
    let t = now(&clock);
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let v = v.clone();
            let token = TestKey::new(&format!("storm-{i}")).token(t);
            tokio::spawn(async move {
                let started = std::time::Instant::now();
                let e = v.verify(&token).await.unwrap_err();
                (e, started.elapsed())
            })
        })
        .collect();
    // One refetch, for the first; the others, with other kids, were rejected at once.
    let mut limited = 0;
    for task in tasks {
        match task.await.unwrap().0 {
            Error::InvalidToken(Reason::UnknownKeyLimited) => limited += 1,
            Error::InvalidToken(Reason::UnknownKey) => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(limited >= 999 - 1, "{limited}");
    assert_eq!(server.requests(), 2, "one refetch for the whole storm");
    // Within the cooldown, new unknown kids are rejected at once, with no fetch.
    let mut took: Vec<Duration> = Vec::new();
    for i in 0..1000 {
        let token = TestKey::new(&format!("again-{i}")).token(t);
        let started = std::time::Instant::now();
        let e = v.verify(&token).await.unwrap_err();
        took.push(started.elapsed());
        assert_eq!(e, Error::InvalidToken(Reason::UnknownKeyLimited));
    }
    took.sort();
    assert!(took[989] < Duration::from_millis(1), "p99 {:?}", took[989]);
    assert_eq!(server.requests(), 2);
    // The valid key still verifies, and after the cooldown one more refetch is allowed.
    v.verify(&key.token(t)).await.unwrap();
    clock.advance(Duration::from_secs(10));
    let _ = v.verify(&TestKey::new("late").token(t)).await;
    assert_eq!(server.requests(), 3);
}

#[tokio::test]
async fn a_new_kid_is_found_by_one_refetch_and_a_prepublished_next_key_needs_none() {
    let (active, next, newer) = (TestKey::new("a"), TestKey::new("n"), TestKey::new("x"));
    let server = Server::start(Answer::jwks(&set(&[&active, &next]), 300, "\"v1\"")).await;
    let clock = clock();
    let v = verifier(&server, &clock).await;
    let t = now(&clock);
    // The rotation promoted `next`: its tokens verify with no fetch.
    v.verify(&next.token(t)).await.unwrap();
    assert_eq!(server.requests(), 1);
    // A key never published before, in every request at once: found by one refetch that
    // they all wait for.
    server.answer(Answer::jwks(&set(&[&next, &newer]), 300, "\"v2\""));
    let token = newer.token(t);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (v, token) = (v.clone(), token.clone());
            tokio::spawn(async move { v.verify(&token).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn fetches_have_limits_no_redirects_and_a_timeout() {
    let key = TestKey::new("k1");
    let server = Server::start(Answer::jwks(&set(&[&key]), 300, "\"v1\"")).await;
    let clock = clock();
    let v = Verifier::builder(ISSUER)
        .jwks_uri(&server.url)
        .clock(clock.clone())
        .max_body(4096)
        .http_timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    server.answer(Answer::jwks(
        &json!({"keys": [key.jwk()], "pad": "x".repeat(5000)}),
        300,
        "\"big\"",
    ));
    assert_eq!(
        v.refresh().await.unwrap_err(),
        jwt_issuer_verify::FetchError::TooLarge(4096)
    );
    server.answer(Answer {
        headers: vec![("Location".into(), "http://127.0.0.1:1/evil".into())],
        ..Answer::status(302)
    });
    assert_eq!(
        v.refresh().await.unwrap_err(),
        jwt_issuer_verify::FetchError::Status(302)
    );
    server.answer(Answer {
        hang: true,
        ..Answer::status(200)
    });
    let started = std::time::Instant::now();
    assert!(matches!(
        v.refresh().await.unwrap_err(),
        jwt_issuer_verify::FetchError::Transport(_)
    ));
    assert!(started.elapsed() < Duration::from_secs(2));
    v.verify(&key.token(now(&clock))).await.unwrap();
    // Plain http is for loopback only.
    let e = Verifier::builder(ISSUER)
        .jwks_uri("http://issuer.example/jwks.json")
        .build()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("neither https"), "{e}");
}

#[tokio::test]
async fn hostile_and_invalid_tokens_are_refused_with_their_reason() {
    let key = TestKey::new("k1");
    let other = TestKey::new("k1");
    let server = Server::start(Answer::jwks(&set(&[&key]), 300, "\"v1\"")).await;
    let clock = clock();
    let v = Verifier::builder(ISSUER)
        .jwks_uri(&server.url)
        .clock(clock.clone())
        .leeway(Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    let t = now(&clock);
    let with = |patch: Value| {
        let mut c = claims(t);
        for (k, val) in patch.as_object().unwrap() {
            if val.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = val.clone();
            }
        }
        key.sign(&key.header(), &c)
    };
    let header = |patch: Value| {
        let mut h = key.header();
        for (k, val) in patch.as_object().unwrap() {
            if val.is_null() {
                h.as_object_mut().unwrap().remove(k);
            } else {
                h[k] = val.clone();
            }
        }
        key.sign(&h, &claims(t))
    };
    let none = format!(
        "{}.{}.",
        B64.encode(json!({"alg": "none", "typ": "at+jwt", "kid": "k1"}).to_string()),
        B64.encode(claims(t).to_string())
    );
    let mut tampered = key.token(t);
    tampered.insert(tampered.len() - 3, 'A');
    let cases: Vec<(String, Reason)> = vec![
        ("garbage".into(), Reason::Malformed),
        (
            format!("{}.{}.AAAA", "A".repeat(20_000), "A".repeat(8)),
            Reason::Malformed,
        ),
        (none, Reason::Algorithm),
        (header(json!({"alg": "HS256"})), Reason::Algorithm),
        (header(json!({"alg": "RS256"})), Reason::Algorithm),
        (header(json!({"kid": null})), Reason::NoKeyId),
        (header(json!({"typ": "JWT"})), Reason::Type),
        (header(json!({"typ": null})), Reason::Type),
        (
            header(json!({"jku": "https://evil/jwks"})),
            Reason::ForbiddenHeader,
        ),
        (
            header(json!({"x5u": "https://evil/cert"})),
            Reason::ForbiddenHeader,
        ),
        (header(json!({"jwk": key.jwk()})), Reason::ForbiddenHeader),
        (header(json!({"crit": ["exp"]})), Reason::ForbiddenHeader),
        (other.token(t), Reason::Signature),
        (tampered, Reason::Signature),
        (with(json!({"iss": "https://evil.example"})), Reason::Issuer),
        (
            with(json!({"aud": "https://billing.example"})),
            Reason::Audience,
        ),
        (with(json!({"exp": t - 31})), Reason::Expired),
        (with(json!({"nbf": t + 31})), Reason::NotYetValid),
        (with(json!({"iat": t + 31})), Reason::IssuedInFuture),
        (with(json!({"client_id": null})), Reason::MissingClaim),
        (with(json!({"jti": null})), Reason::MissingClaim),
        (with(json!({"sub": ""})), Reason::MissingClaim),
    ];
    for (token, reason) in cases {
        assert_eq!(
            v.verify(&token).await.unwrap_err(),
            Error::InvalidToken(reason),
            "{token}"
        );
    }
    // Within the leeway, and a single-string aud.
    v.verify(&with(json!({"exp": t - 29, "aud": ISSUER})))
        .await
        .unwrap();
    // Required scopes.
    let strict = Verifier::builder(ISSUER)
        .jwks_uri(&server.url)
        .audience("https://orders.example")
        .required_scopes(["orders:read", "orders:write"])
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    let e = strict.verify(&key.token(t)).await.unwrap_err();
    assert_eq!(e.status(), 403);
    assert!(
        e.www_authenticate(None)
            .contains(r#"scope="orders:read orders:write""#)
    );
}

#[tokio::test]
async fn discovery_takes_the_jwks_uri_from_the_issuers_metadata_and_checks_its_issuer() {
    let key = TestKey::new("k1");
    let server = Server::start(Answer::jwks(&set(&[&key]), 300, "\"v1\"")).await;
    let issuer = server.url.trim_end_matches("/jwks.json").to_owned();
    let metadata = |issuer: &str| Answer {
        body: json!({"issuer": issuer, "jwks_uri": server.url})
            .to_string()
            .into_bytes(),
        ..Answer::status(200)
    };
    server.route("/.well-known/", metadata(&issuer));
    let v = Verifier::builder(&issuer).build().await.unwrap();
    assert!(format!("{v:?}").contains(&server.url), "{v:?}");
    assert_eq!(server.requests(), 2, "the metadata, then the key set");
    let e = Verifier::builder("http://127.0.0.1:1")
        .build()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("metadata"), "{e}");
    server.route("/.well-known/", metadata("https://other.example"));
    let e = Verifier::builder(&issuer).build().await.unwrap_err();
    assert!(e.to_string().contains("not the one configured"), "{e}");
}

#[tokio::test]
async fn events_report_fetches() {
    #[derive(Clone, Default)]
    struct Counts(Arc<Mutex<Vec<FetchOutcome>>>);
    impl jwt_issuer_verify::Events for Counts {
        fn jwks_fetch(&self, outcome: &FetchOutcome) {
            self.0.lock().unwrap().push(outcome.clone());
        }
    }
    let key = TestKey::new("k1");
    let server = Server::start(Answer::jwks(&set(&[&key]), 300, "\"v1\"")).await;
    let counts = Counts::default();
    let v = Verifier::builder(ISSUER)
        .jwks_uri(&server.url)
        .clock(clock())
        .events(counts.clone())
        .build()
        .await
        .unwrap();
    server.answer(Answer::status(304));
    v.refresh().await.unwrap();
    server.answer(Answer::status(500));
    let _ = v.refresh().await;
    assert_eq!(
        *counts.0.lock().unwrap(),
        vec![
            FetchOutcome::Updated { keys: 1 },
            FetchOutcome::NotModified,
            FetchOutcome::Failed(jwt_issuer_verify::FetchError::Status(500))
        ]
    );
}

#[tokio::test]
async fn the_revocation_feed_denies_its_jtis_until_their_exp_and_its_lag_has_a_limit() {
    let key = TestKey::new("k1");
    let server = Server::start(Answer::jwks(&set(&[&key]), 300, "\"v1\"")).await;
    let clock = clock();
    let t = now(&clock);
    server.route(
        "/oauth/revocations",
        feed(&[(&format!("j{t}"), t + 300)], "c1"),
    );
    let build = |fail| {
        Verifier::builder(ISSUER)
            .jwks_uri(&server.url)
            .revocation_feed(format!("{}/oauth/revocations", server.base()))
            .revocation_interval(Duration::from_secs(5))
            .revocation_max_lag(Duration::from_secs(60), fail)
            .clock(clock.clone())
            .build()
    };
    let closed = build(jwt_issuer_verify::FailMode::Closed).await.unwrap();
    let open = build(jwt_issuer_verify::FailMode::Open).await.unwrap();
    let revoked = key.token(t);
    let mut other = claims(t);
    other["jti"] = json!("another");
    let fine = key.sign(&key.header(), &other);
    for v in [&closed, &open] {
        assert_eq!(
            v.verify(&revoked).await.unwrap_err(),
            Error::InvalidToken(Reason::Revoked)
        );
        v.verify(&fine).await.unwrap();
        assert_eq!(v.revoked_count(), 1);
    }
    // The second read resumes from the cursor.
    server.route("/oauth/revocations", feed(&[], "c2"));
    closed.poll_revocations().await.unwrap();
    assert_eq!(
        server.seen.paths.lock().unwrap().last().unwrap(),
        "/oauth/revocations?after=c1"
    );
    // The feed goes away: within the limit nothing changes; past it, closed refuses every
    // token and open accepts the good ones.
    server.route("/oauth/revocations", Answer::status(503));
    clock.advance(Duration::from_secs(60));
    assert!(closed.poll_revocations().await.is_err());
    closed.verify(&fine).await.unwrap();
    clock.advance(Duration::from_secs(1));
    assert!(matches!(
        closed.verify(&fine).await.unwrap_err(),
        Error::Unavailable(_)
    ));
    open.verify(&fine).await.unwrap();
    assert!(closed.revocation_lag().unwrap() > Duration::from_secs(60));
    // Entries go at their exp.
    server.route("/oauth/revocations", feed(&[], "c3"));
    clock.advance(Duration::from_secs(300));
    closed.poll_revocations().await.unwrap();
    assert_eq!(closed.revoked_count(), 0);
    assert_eq!(closed.revocation_lag(), Some(Duration::ZERO));
}

#[tokio::test]
async fn an_unknown_kid_storm_over_a_minute_fetches_once_per_cooldown() {
    let key = TestKey::new("k1");
    let server = Server::start(Answer::jwks(&set(&[&key]), 3600, "\"v1\"")).await;
    let clock = clock();
    let v = verifier(&server, &clock).await;
    let t = now(&clock);
    // 100,000 tokens with random kids from 1,000 tasks over 60 s (of the manual clock).
    let mut latencies = Vec::with_capacity(100_000);
    for round in 0..100 {
        let tasks: Vec<_> = (0..1000)
            .map(|i| {
                let v = v.clone();
                let token = key.sign(
                    &json!({"alg": "ES256", "typ": "at+jwt", "kid": format!("r{round}-{i}")}),
                    &claims(t),
                );
                tokio::spawn(async move {
                    let started = std::time::Instant::now();
                    let e = v.verify(&token).await.unwrap_err();
                    (e, started.elapsed())
                })
            })
            .collect();
        for task in tasks {
            let (e, took) = task.await.unwrap();
            assert!(
                matches!(
                    e,
                    Error::InvalidToken(Reason::UnknownKey | Reason::UnknownKeyLimited)
                ),
                "{e:?}"
            );
            latencies.push(took);
        }
        clock.advance(Duration::from_millis(600));
    }
    // The first fetch at build, then at most one per 10 s cooldown.
    assert!(
        server.requests() <= 60 / 10 + 1 + 1,
        "{} fetches",
        server.requests()
    );
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    println!(
        "unknown-kid storm: {} fetches, rejection p50 {:?} p99 {:?}",
        server.requests(),
        latencies[latencies.len() / 2],
        p99
    );
    assert!(p99 < Duration::from_millis(1), "p99 {p99:?}");
    v.verify(&key.token(t)).await.unwrap();
}
