//! Machine login with client-held keys: the registry, RFC 7523 and the asymmetric-jwt-auth form.

use std::time::Duration;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::{DecodePrivateKey as _, EncodePublicKey as _, LineEnding};
use rsa::pkcs1::EncodeRsaPublicKey as _;
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{
    Backend, TestApp, claims_of, eventually, spawn_app, spawn_app_on, spawn_app_with,
};

both_backends!(
    each_key_type_and_format_registers_once,
    bad_keys_are_refused_with_the_reason,
    rfc7523_logs_in_with_each_algorithm,
    rfc7523_rejects_bad_assertions,
    asymmetric_jwt_auth_form_logs_in_within_20_seconds,
    replays_fail_across_two_instances,
    machine_login_does_not_reveal_which_users_exist,
    asymmetric_jwt_auth_assertion_with_an_aud_must_name_us,
    machine_logins_follow_the_clients_audience_and_scope_rules,
);

/// A machine's key pair: how to sign, and its public key in each format.
pub(crate) struct MachineKey {
    alg: Algorithm,
    signer: EncodingKey,
    /// Its private key, PKCS#8 PEM.
    pub(crate) private_pem: String,
    pub(crate) spki_pem: String,
    openssh: String,
    jwk: Value,
    pkcs1_pem: Option<String>,
}

fn pem(label: &str, der: &[u8]) -> String {
    jwt_issuer::crypto::encoding::pem_encode(label, der)
}

fn rsa_key(alg: Algorithm) -> MachineKey {
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let pkcs8: aws_lc_rs::encoding::Pkcs8V1Der = pair.as_der().unwrap();
    let private = rsa::RsaPrivateKey::from_pkcs8_der(pkcs8.as_ref()).unwrap();
    let public = private.to_public_key();
    let ssh = ssh_key::public::KeyData::Rsa(ssh_key::public::RsaPublicKey {
        e: ssh_key::Mpint::from_positive_bytes(&public.e().to_bytes_be()).unwrap(),
        n: ssh_key::Mpint::from_positive_bytes(&public.n().to_bytes_be()).unwrap(),
    });
    MachineKey {
        alg,
        signer: EncodingKey::from_rsa_pem(pem("PRIVATE KEY", pkcs8.as_ref()).as_bytes()).unwrap(),
        private_pem: pem("PRIVATE KEY", pkcs8.as_ref()),
        spki_pem: public.to_public_key_pem(LineEnding::LF).unwrap(),
        openssh: ssh_key::PublicKey::new(ssh, "machine@example")
            .to_openssh()
            .unwrap(),
        jwk: json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()), "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be())}),
        pkcs1_pem: Some(public.to_pkcs1_pem(LineEnding::LF).unwrap()),
    }
}

pub(crate) fn ec_key() -> MachineKey {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let pkcs8 = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
        .unwrap()
        .to_pkcs8v1()
        .unwrap();
    let secret = p256::SecretKey::from_pkcs8_der(pkcs8.as_ref()).unwrap();
    let point =
        p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&secret.public_key(), false);
    let ssh = ssh_key::public::KeyData::Ecdsa(ssh_key::public::EcdsaPublicKey::NistP256(
        ssh_key::sec1::EncodedPoint::from_bytes(point.as_bytes()).unwrap(),
    ));
    MachineKey {
        alg: Algorithm::ES256,
        signer: EncodingKey::from_ec_pem(pem("PRIVATE KEY", pkcs8.as_ref()).as_bytes()).unwrap(),
        private_pem: pem("PRIVATE KEY", pkcs8.as_ref()),
        spki_pem: secret
            .public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap(),
        openssh: ssh_key::PublicKey::new(ssh, "").to_openssh().unwrap(),
        jwk: json!({"kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()), "y": URL_SAFE_NO_PAD.encode(point.y().unwrap())}),
        pkcs1_pem: None,
    }
}

fn ed25519_key() -> MachineKey {
    let pair = aws_lc_rs::signature::Ed25519KeyPair::generate().unwrap();
    let pkcs8 = pair.to_pkcs8().unwrap();
    let raw = pair.public_key().as_ref().to_vec();
    let spki = [
        &[
            0x30u8, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ][..],
        &raw,
    ]
    .concat();
    let ssh = ssh_key::public::KeyData::Ed25519(ssh_key::public::Ed25519PublicKey(
        raw.clone().try_into().unwrap(),
    ));
    MachineKey {
        alg: Algorithm::EdDSA,
        signer: EncodingKey::from_ed_pem(pem("PRIVATE KEY", pkcs8.as_ref()).as_bytes()).unwrap(),
        private_pem: pem("PRIVATE KEY", pkcs8.as_ref()),
        spki_pem: pem("PUBLIC KEY", &spki),
        openssh: ssh_key::PublicKey::new(ssh, "ed key").to_openssh().unwrap(),
        jwk: json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(&raw)}),
        pkcs1_pem: None,
    }
}

/// SHA-256 hex of the PEM text: what asymmetric-jwt-auth sends as `kid`.
fn fingerprint(k: &MachineKey) -> String {
    crate::helpers::sha256_hex(&k.spki_pem)
}

impl MachineKey {
    pub(crate) fn sign(&self, alg: Algorithm, kid: Option<String>, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = kid;
        jsonwebtoken::encode(&header, claims, &self.signer).unwrap()
    }
}

async fn add_user(app: &TestApp, admin: &str, name: &str) {
    let r = app
        .call(
            "POST",
            "/admin/users",
            Some(admin),
            Some(json!({"username": name, "password": "machine password", "roles": ["service"]})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
}

async fn register(app: &TestApp, admin: &str, user: &str, key: Value) -> crate::helpers::Resp {
    app.call(
        "POST",
        &format!("/admin/users/{user}/keys"),
        Some(admin),
        Some(json!({"public_key": key, "comment": "test"})),
    )
    .await
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn rfc7523_claims(app: &TestApp, user: &str) -> Value {
    let t = now();
    json!({"iss": user, "sub": user, "aud": app.url("/oauth/token"), "iat": t, "exp": t + 120, "jti": uuid::Uuid::new_v4().to_string()})
}

async fn jwt_bearer(app: &TestApp, assertion: &str) -> crate::helpers::Resp {
    app.post_token(&[
        ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
        ("assertion", assertion),
    ])
    .await
}

async fn asymmetric(app: &TestApp, assertion: &str) -> crate::helpers::Resp {
    let resp = app
        .client
        .post(app.url("/oauth/token"))
        .insert_header(("authorization", format!("JWT {assertion}")))
        .send_form(&[("grant_type", "client_credentials")])
        .await
        .unwrap();
    crate::helpers::read(resp).await
}

async fn each_key_type_and_format_registers_once(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = app.admin_token().await;
    add_user(&app, &admin, "svc").await;
    for key in [rsa_key(Algorithm::RS256), ec_key(), ed25519_key()] {
        let mut formats = vec![
            json!(key.spki_pem),
            json!(key.openssh),
            key.jwk.clone(),
            json!(key.jwk.to_string()),
        ];
        if let Some(p) = &key.pkcs1_pem {
            formats.push(json!(p));
        }
        let first = register(&app, &admin, "svc", formats[0].clone()).await;
        assert_eq!(first.status, 201, "{}", first.text());
        let body = first.json();
        assert_eq!(
            body["fingerprint"],
            fingerprint(&key).as_str(),
            "SHA-256 of the PEM text"
        );
        assert!(body["id"].is_string() && body["alg"].is_string());
        // Every other format of the same key is the same key.
        for f in &formats[1..] {
            register(&app, &admin, "svc", f.clone())
                .await
                .assert_error(409, "conflict");
        }
        // Delete it; then the OpenSSH line registers it again, with the same fingerprint.
        let id = body["id"].as_str().unwrap();
        assert_eq!(
            app.call(
                "DELETE",
                &format!("/admin/users/svc/keys/{id}"),
                Some(&admin),
                None
            )
            .await
            .status,
            200
        );
        let again = register(&app, &admin, "svc", json!(key.openssh)).await;
        assert_eq!(again.json()["fingerprint"], fingerprint(&key).as_str());
    }
    let list = app
        .call("GET", "/admin/users/svc/keys", Some(&admin), None)
        .await
        .json();
    let mut kinds: Vec<&str> = list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kty"].as_str().unwrap())
        .collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["EC", "OKP", "RSA"]);
    // The CLI sees the same, and registers from a file.
    let file = app.db.dir().join("machine.pub");
    std::fs::write(&file, ec_key().openssh).unwrap();
    let (code, out, err) = crate::helpers::run_cli(
        &[
            "user",
            "key",
            "add",
            "svc",
            file.to_str().unwrap(),
            "--comment",
            "ci",
            "--database",
            &app.db.url,
        ],
        "",
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = crate::helpers::run_cli(
        &["user", "key", "list", "svc", "--database", &app.db.url],
        "",
    );
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 5, "{out}");
}

async fn bad_keys_are_refused_with_the_reason(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = app.admin_token().await;
    add_user(&app, &admin, "svc").await;
    let small = rsa::RsaPrivateKey::from_pkcs8_pem(crate::import::SMALL_RSA)
        .unwrap()
        .to_public_key();
    let p384 = json!({"kty": "EC", "crv": "P-384", "x": URL_SAFE_NO_PAD.encode([1u8; 48]), "y": URL_SAFE_NO_PAD.encode([2u8; 48])});
    for (key, reason) in [
        (
            json!(small.to_public_key_pem(LineEnding::LF).unwrap()),
            "too small",
        ),
        (p384, "unsupported curve"),
        (json!(crate::import::SMALL_RSA), "private key"),
        (
            json!({"kty": "OKP", "crv": "Ed25519", "x": "AA", "d": "AA"}),
            "private key",
        ),
        (json!("garbage"), "not a PEM"),
        (json!(12), "public_key must be"),
        (json!("ssh-rsa AAAA"), "OpenSSH"),
    ] {
        let r = register(&app, &admin, "svc", key).await;
        r.assert_error(400, "invalid_request");
        assert!(
            r.json()["error_description"]
                .as_str()
                .unwrap()
                .contains(reason),
            "{}",
            r.text()
        );
    }
    register(&app, &admin, "nobody", json!(ed25519_key().spki_pem))
        .await
        .assert_error(404, "not_found");
    app.call("DELETE", "/admin/users/svc/keys/nope", Some(&admin), None)
        .await
        .assert_error(404, "not_found");
    app.call(
        "POST",
        "/admin/users/svc/keys",
        Some(&admin),
        Some(json!({"key": "x"})),
    )
    .await
    .assert_error(400, "invalid_request");
    let list = app
        .call("GET", "/admin/users/svc/keys", Some(&admin), None)
        .await
        .json();
    assert_eq!(list["keys"], json!([]));
}

async fn rfc7523_logs_in_with_each_algorithm(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = app.admin_token().await;
    add_user(&app, &admin, "svc").await;
    for key in [
        rsa_key(Algorithm::RS256),
        rsa_key(Algorithm::RS384),
        rsa_key(Algorithm::RS512),
        ec_key(),
        ed25519_key(),
    ] {
        assert_eq!(
            register(&app, &admin, "svc", key.jwk.clone()).await.status,
            201
        );
        for kid in [
            Some(fingerprint(&key)),
            None,
            Some("not-a-fingerprint".into()),
        ] {
            let resp =
                jwt_bearer(&app, &key.sign(key.alg, kid, &rfc7523_claims(&app, "svc"))).await;
            assert_eq!(resp.status, 200, "{:?}: {}", key.alg, resp.text());
            let body = resp.json();
            assert!(body.get("refresh_token").is_none());
            assert_eq!(body["token_type"], "Bearer");
            let claims = claims_of(body["access_token"].as_str().unwrap());
            assert_eq!(claims["username"], "svc");
            assert_eq!(claims["client_id"], "svc");
            assert_eq!(claims["roles"], json!(["service"]));
            crate::helpers::verify_with_jwks(&app, body["access_token"].as_str().unwrap())
                .await
                .unwrap();
        }
    }
    // The issuer URL is an acceptable audience too, also inside an array.
    let key = ec_key();
    register(&app, &admin, "svc", json!(key.openssh)).await;
    let mut claims = rfc7523_claims(&app, "svc");
    claims["aud"] = json!(["https://other", app.address]);
    assert_eq!(
        jwt_bearer(&app, &key.sign(Algorithm::ES256, None, &claims))
            .await
            .status,
        200
    );
}

async fn rfc7523_rejects_bad_assertions(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = app.admin_token().await;
    add_user(&app, &admin, "svc").await;
    let key = rsa_key(Algorithm::RS256);
    let registered = register(&app, &admin, "svc", json!(key.spki_pem))
        .await
        .json();
    let ok = rfc7523_claims(&app, "svc");
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = rfc7523_claims(&app, "svc");
        f(&mut c);
        c
    };
    let replayed = key.sign(Algorithm::RS256, None, &ok);
    assert_eq!(jwt_bearer(&app, &replayed).await.status, 200);
    let stranger = rsa_key(Algorithm::RS256);
    let hmac = {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some(fingerprint(&key));
        jsonwebtoken::encode(
            &h,
            &rfc7523_claims(&app, "svc"),
            &EncodingKey::from_secret(key.spki_pem.as_bytes()),
        )
        .unwrap()
    };
    let ec_header_on_rsa = {
        // An ES256 assertion claiming the RSA key: the key's type decides, so it never verifies.
        ec_key().sign(
            Algorithm::ES256,
            Some(fingerprint(&key)),
            &rfc7523_claims(&app, "svc"),
        )
    };
    let cases: Vec<(&str, String)> = vec![
        ("replayed jti", replayed),
        (
            "expired",
            key.sign(
                Algorithm::RS256,
                None,
                &with(&|c| c["exp"] = json!(now() - 10)),
            ),
        ),
        (
            "exp too far ahead",
            key.sign(
                Algorithm::RS256,
                None,
                &with(&|c| c["exp"] = json!(now() + 3600)),
            ),
        ),
        (
            "iat in the future",
            key.sign(
                Algorithm::RS256,
                None,
                &with(&|c| c["iat"] = json!(now() + 300)),
            ),
        ),
        (
            "wrong audience",
            key.sign(
                Algorithm::RS256,
                None,
                &with(&|c| c["aud"] = json!("https://elsewhere")),
            ),
        ),
        (
            "sub is someone else",
            key.sign(
                Algorithm::RS256,
                None,
                &with(&|c| c["sub"] = json!("admin")),
            ),
        ),
        (
            "no jti",
            key.sign(
                Algorithm::RS256,
                None,
                &with(&|c| {
                    c.as_object_mut().unwrap().remove("jti");
                }),
            ),
        ),
        (
            "unregistered key",
            stranger.sign(Algorithm::RS256, None, &rfc7523_claims(&app, "svc")),
        ),
        ("HS256 with the PEM as secret", hmac),
        ("ES256 header on an RSA key", ec_header_on_rsa),
        (
            "unknown user",
            key.sign(Algorithm::RS256, None, &rfc7523_claims(&app, "ghost")),
        ),
        ("garbage", "not.a.jwt".into()),
    ];
    for (what, assertion) in &cases {
        let r = jwt_bearer(&app, assertion).await;
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        assert_eq!(r.json()["error"], "invalid_grant", "{what}");
    }
    jwt_bearer(&app, "")
        .await
        .assert_error(400, "invalid_request");
    // A deleted key stops working at once; so does a disabled user.
    let fresh = key.sign(Algorithm::RS256, None, &rfc7523_claims(&app, "svc"));
    let id = registered["id"].as_str().unwrap();
    app.call(
        "DELETE",
        &format!("/admin/users/svc/keys/{id}"),
        Some(&admin),
        None,
    )
    .await;
    jwt_bearer(&app, &fresh)
        .await
        .assert_error(400, "invalid_grant");
    register(&app, &admin, "svc", json!(key.spki_pem)).await;
    app.call("DELETE", "/admin/users/svc", Some(&admin), None)
        .await;
    jwt_bearer(
        &app,
        &key.sign(Algorithm::RS256, None, &rfc7523_claims(&app, "svc")),
    )
    .await
    .assert_error(400, "invalid_grant");
    // Failures are audited.
    let audit = app
        .call("GET", "/admin/audit?limit=100", Some(&admin), None)
        .await
        .json();
    // Identical failures fold into one row with a count.
    let failed: i64 = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "machine_login_failed")
        .map(|e| e["count"].as_i64().unwrap())
        .sum();
    assert!(failed >= cases.len() as i64, "{failed}");
}

async fn asymmetric_jwt_auth_form_logs_in_within_20_seconds(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = app.admin_token().await;
    add_user(&app, &admin, "svc").await;
    let rsa = rsa_key(Algorithm::RS512);
    let ed = ed25519_key();
    register(&app, &admin, "svc", json!(rsa.openssh)).await;
    register(&app, &admin, "svc", json!(ed.spki_pem)).await;
    let claims = |skew: i64| json!({"username": "svc", "time": now() + skew, "nonce": uuid::Uuid::new_v4().simple().to_string()});
    // As the package's client 1.3 signs: RS512 for RSA, EdDSA for Ed25519, kid = SHA-256 of the PEM.
    for (key, alg) in [(&rsa, Algorithm::RS512), (&ed, Algorithm::EdDSA)] {
        for skew in [0, 19, -19] {
            let r = asymmetric(&app, &key.sign(alg, Some(fingerprint(key)), &claims(skew))).await;
            assert_eq!(r.status, 200, "{alg:?} skew {skew}: {}", r.text());
            let body = r.json();
            assert!(body.get("refresh_token").is_none());
            assert_eq!(
                claims_of(body["access_token"].as_str().unwrap())["client_id"],
                "svc"
            );
        }
        for skew in [25, -25] {
            asymmetric(&app, &key.sign(alg, Some(fingerprint(key)), &claims(skew)))
                .await
                .assert_error(400, "invalid_grant");
        }
    }
    // A kid that names no key: each of the user's keys is tried.
    assert_eq!(
        asymmetric(
            &app,
            &rsa.sign(Algorithm::RS512, Some("0".repeat(64)), &claims(0))
        )
        .await
        .status,
        200
    );
    // The same username + time + nonce again is a replay.
    let once = rsa.sign(Algorithm::RS512, Some(fingerprint(&rsa)), &claims(0));
    assert_eq!(asymmetric(&app, &once).await.status, 200);
    asymmetric(&app, &once)
        .await
        .assert_error(400, "invalid_grant");
    // Missing fields, and a missing header.
    for bad in [
        json!({"username": "svc", "time": now()}),
        json!({"username": "svc", "nonce": "n"}),
        json!({"time": now(), "nonce": "n"}),
    ] {
        asymmetric(&app, &rsa.sign(Algorithm::RS512, None, &bad))
            .await
            .assert_error(400, "invalid_grant");
    }
    let r = app
        .post_token(&[("grant_type", "client_credentials")])
        .await;
    r.assert_error(401, "invalid_client");
}

async fn replays_fail_across_two_instances(backend: Backend) {
    let a = spawn_app_with(&backend, &["--purge-every", "1s"]).await;
    let b = spawn_app_on(a.db.clone(), &["--issuer", &a.address]).await;
    let admin = a.admin_token().await;
    add_user(&a, &admin, "svc").await;
    let key = ec_key();
    register(&a, &admin, "svc", key.jwk.clone()).await;
    let assertion = key.sign(Algorithm::ES256, None, &rfc7523_claims(&a, "svc"));
    let attempts = (0..8).map(|i| jwt_bearer(if i % 2 == 0 { &a } else { &b }, &assertion));
    let results = futures_util::future::join_all(attempts).await;
    assert_eq!(
        results.iter().filter(|r| r.status == 200).count(),
        1,
        "one use, whichever instance"
    );
    // Used assertion ids are purged once expired.
    assert_eq!(a.count("assertion_replays"), 1);
    a.sql("UPDATE assertion_replays SET expires_at = 1");
    eventually(Duration::from_secs(5), "purging replay rows", || async {
        (a.count("assertion_replays") == 0).then_some(())
    })
    .await;
}

async fn machine_login_does_not_reveal_which_users_exist(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = app.admin_token().await;
    let key = ec_key();
    add_user(&app, &admin, "svc").await;
    register(&app, &admin, "svc", json!(key.spki_pem)).await;
    add_user(&app, &admin, "keyless").await;
    add_user(&app, &admin, "gone").await;
    register(&app, &admin, "gone", json!(key.openssh)).await;
    app.call("DELETE", "/admin/users/gone", Some(&admin), None)
        .await;
    let stranger = ec_key();
    let cases = [
        (
            "unknown user",
            key.sign(Algorithm::ES256, None, &rfc7523_claims(&app, "ghost")),
        ),
        (
            "disabled user",
            key.sign(Algorithm::ES256, None, &rfc7523_claims(&app, "gone")),
        ),
        (
            "user without keys",
            key.sign(Algorithm::ES256, None, &rfc7523_claims(&app, "keyless")),
        ),
        (
            "bad signature",
            stranger.sign(Algorithm::ES256, None, &rfc7523_claims(&app, "svc")),
        ),
    ];
    let mut bodies = Vec::new();
    for (what, assertion) in &cases {
        let r = jwt_bearer(&app, assertion).await;
        r.assert_error(400, "invalid_grant");
        bodies.push((what, r.json()));
    }
    for (what, body) in &bodies[1..] {
        assert_eq!(*body, bodies[0].1, "{what} differs from {}", bodies[0].0);
    }
    // The same for the asymmetric-jwt-auth form.
    let asym = |user: &str, k: &MachineKey| {
        k.sign(
            Algorithm::ES256,
            None,
            &json!({"username": user, "time": now(), "nonce": uuid::Uuid::new_v4().to_string()}),
        )
    };
    let a = asymmetric(&app, &asym("ghost", &key)).await.json();
    let b = asymmetric(&app, &asym("svc", &stranger)).await.json();
    assert_eq!(a, b);
    assert_eq!(a, bodies[0].1);
    // The audit log tells them apart.
    let audit = app
        .call("GET", "/admin/audit?limit=100", Some(&admin), None)
        .await
        .json();
    let reasons: std::collections::HashSet<String> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "machine_login_failed")
        .map(|e| e["detail"]["reason"].as_str().unwrap().to_owned())
        .collect();
    assert!(reasons.len() >= 4, "{reasons:?}");
}

async fn asymmetric_jwt_auth_assertion_with_an_aud_must_name_us(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = app.admin_token().await;
    add_user(&app, &admin, "svc").await;
    let key = rsa_key(Algorithm::RS512);
    register(&app, &admin, "svc", json!(key.spki_pem)).await;
    let claims = |aud: Option<Value>| {
        let mut c =
            json!({"username": "svc", "time": now(), "nonce": uuid::Uuid::new_v4().to_string()});
        if let Some(aud) = aud {
            c["aud"] = aud;
        }
        c
    };
    for aud in [
        None,
        Some(json!(app.address)),
        Some(json!(["x", app.url("/oauth/token")])),
    ] {
        let r = asymmetric(
            &app,
            &key.sign(Algorithm::RS512, None, &claims(aud.clone())),
        )
        .await;
        assert_eq!(r.status, 200, "{aud:?}: {}", r.text());
    }
    for aud in [
        json!("https://other.service"),
        json!(["https://other.service"]),
        json!(7),
    ] {
        let r = asymmetric(
            &app,
            &key.sign(Algorithm::RS512, None, &claims(Some(aud.clone()))),
        )
        .await;
        r.assert_error(400, "invalid_grant");
        assert!(
            r.json()["error_description"]
                .as_str()
                .unwrap()
                .contains("aud"),
            "{aud}"
        );
    }
}

async fn machine_logins_follow_the_clients_audience_and_scope_rules(backend: Backend) {
    let app = spawn_app(&backend).await;
    let admin = app.admin_token().await;
    add_user(&app, &admin, "svc").await;
    let key = ec_key();
    register(&app, &admin, "svc", json!(key.spki_pem)).await;
    app.add_scope(&admin, "jobs:run", &["service"]).await;
    app.add_scope(&admin, "jobs:admin", &["admin"]).await;
    app.add_client(
        &admin,
        json!({"client_id": "jobs", "audiences": ["https://jobs.internal"], "scopes": ["jobs:run", "jobs:admin"], "grant_types": ["urn:ietf:params:oauth:grant-type:jwt-bearer"]}),
    )
    .await;
    app.add_client(&admin, json!({"client_id": "spa"})).await;
    let bearer = |extra: &[(&str, &str)]| {
        let assertion = key.sign(Algorithm::ES256, None, &rfc7523_claims(&app, "svc"));
        let app = &app;
        let extra: Vec<(String, String)> = extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        async move {
            let mut form = vec![
                (
                    "grant_type".to_owned(),
                    "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned(),
                ),
                ("assertion".to_owned(), assertion),
            ];
            form.extend(extra);
            let form: Vec<(&str, &str)> =
                form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            app.post_token(&form).await
        }
    };
    // Through a client allowed the grant: its audience, scopes the user's roles allow.
    let ok = bearer(&[("client_id", "jobs"), ("scope", "jobs:run")]).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let claims = claims_of(ok.json()["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], "https://jobs.internal");
    assert_eq!(claims["scope"], "jobs:run");
    assert_eq!(claims["client_id"], "svc", "machine logins name the user");
    bearer(&[("client_id", "jobs"), ("scope", "jobs:admin")])
        .await
        .assert_error(400, "invalid_scope");
    bearer(&[("client_id", "jobs"), ("audience", "https://elsewhere")])
        .await
        .assert_error(400, "invalid_target");
    // A client without the grant may not use it.
    bearer(&[("client_id", "spa")])
        .await
        .assert_error(400, "unauthorized_client");
    // Naming no client is `default`: its audiences, every registered scope behind its roles.
    let plain = bearer(&[("scope", "jobs:run")]).await;
    assert_eq!(plain.status, 200, "{}", plain.text());
    assert_eq!(
        claims_of(plain.json()["access_token"].as_str().unwrap())["aud"],
        app.address.as_str()
    );
    bearer(&[("audience", "https://jobs.internal")])
        .await
        .assert_error(400, "invalid_target");
    // The asymmetric-jwt-auth form follows the same rules.
    let asym = key.sign(
        Algorithm::ES256,
        None,
        &json!({"username": "svc", "time": now(), "nonce": "n-1"}),
    );
    let resp = app
        .client
        .post(app.url("/oauth/token"))
        .insert_header(("authorization", format!("JWT {asym}")))
        .send_form(&[
            ("grant_type", "client_credentials"),
            ("scope", "jobs:admin"),
        ])
        .await
        .unwrap();
    crate::helpers::read(resp)
        .await
        .assert_error(400, "invalid_scope");
    // Taking the grant off `default` turns machine login off for requests naming no client.
    let patched = app
        .call(
            "PATCH",
            "/admin/clients/default",
            Some(&admin),
            Some(json!({"grant_types": ["password", "refresh_token"]})),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text());
    bearer(&[]).await.assert_error(400, "unauthorized_client");
}
