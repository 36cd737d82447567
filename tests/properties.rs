//! Property tests (proptest) of the invariants that need no server: every token we mint
//! verifies with the published JWK and PEM, by our verifier and by jsonwebtoken as a third
//! party would, and with no other key; any one-byte change to a token fails verification;
//! refresh tokens never repeat; durations and scopes parse back to what they mean.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use jsonwebtoken::{DecodingKey, Validation};
use jwt_issuer::cli::args::parse_duration;
use jwt_issuer::crypto::jwt::{self, AccessClaims, Audiences, VerificationKey, Verifier};
use jwt_issuer::crypto::signing::{Alg, SigningKey};
use jwt_issuer::domain::{RefreshToken, Scope};
use proptest::prelude::*;

const ISSUER: &str = "https://issuer.example";

/// Two keys of each algorithm, made once: the one that signs, and another.
static KEYS: LazyLock<HashMap<&'static str, (SigningKey, SigningKey)>> = LazyLock::new(|| {
    let pair = |alg| {
        (
            SigningKey::generate(alg).unwrap().0,
            SigningKey::generate(alg).unwrap().0,
        )
    };
    HashMap::from([("RS256", pair(Alg::RS256)), ("ES256", pair(Alg::ES256))])
});

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

prop_compose! {
    fn claims()(
        sub in "[a-z0-9-]{1,36}",
        audiences in prop::collection::vec("https://[a-z]{1,12}\\.example", 1..4),
        lifetime in 60i64..86_400,
        scope in prop::collection::vec("[a-z]{1,8}(:[a-z]{1,8})?", 0..5),
        username in prop::option::of("[ -~]{1,40}"),
        roles in prop::collection::vec("[a-z]{1,10}", 0..4),
    ) -> AccessClaims {
        let t = now();
        AccessClaims {
            iss: ISSUER.into(),
            sub,
            aud: Audiences::new(audiences).unwrap(),
            exp: t + lifetime,
            iat: t,
            nbf: t,
            jti: uuid::Uuid::new_v4().to_string(),
            client_id: "default".into(),
            scope: scope.join(" "),
            username,
            roles,
            token_type: jwt::ACCESS_TOKEN_TYPE.into(),
        }
    }
}

fn verifier(key: &SigningKey, kid: &str) -> Verifier {
    let entry = VerificationKey {
        alg: key.alg(),
        key: key.public().decoding_key().unwrap(),
    };
    Verifier::new(HashMap::from([(kid.to_owned(), entry)]), ISSUER, 30)
}

/// Verifies as a third party would, with jsonwebtoken and the published JWK or PEM.
fn third_party(token: &str, key: DecodingKey, alg: Alg, audience: &str) -> bool {
    let alg = match alg {
        Alg::RS256 => jsonwebtoken::Algorithm::RS256,
        Alg::ES256 => jsonwebtoken::Algorithm::ES256,
    };
    let mut validation = Validation::new(alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[ISSUER]);
    jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation).is_ok()
}

fn from_pem(pem: &str, alg: Alg) -> DecodingKey {
    match alg {
        Alg::RS256 => DecodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        Alg::ES256 => DecodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
    }
}

fn from_jwk(key: &SigningKey) -> DecodingKey {
    let jwk: jsonwebtoken::jwk::Jwk =
        serde_json::from_value(key.public().jwk(key.kid(), key.alg().as_str())).unwrap();
    DecodingKey::from_jwk(&jwk).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn minted_tokens_verify_with_their_published_key_and_no_other(
        claims in claims(),
        alg in prop::sample::select(vec!["RS256", "ES256"]),
    ) {
        let (key, other) = &KEYS[alg];
        let token = jwt::encode(key, &claims).unwrap();
        let audience = claims.aud.iter().next().unwrap().to_owned();
        let ours = verifier(key, key.kid()).verify(&token, &[&audience], now()).unwrap();
        prop_assert_eq!(&ours, &claims);
        prop_assert!(third_party(&token, from_jwk(key), key.alg(), &audience));
        prop_assert!(third_party(&token, from_pem(&key.public().pem(), key.alg()), key.alg(), &audience));
        // Another key, even published under the token's kid, does not verify it.
        prop_assert!(verifier(other, key.kid()).verify(&token, &[&audience], now()).is_err());
        prop_assert!(!third_party(&token, from_jwk(other), other.alg(), &audience));
        prop_assert!(!third_party(&token, from_pem(&other.public().pem(), other.alg()), other.alg(), &audience));
    }

    #[test]
    fn any_one_byte_change_to_a_token_fails_verification(
        claims in claims(),
        alg in prop::sample::select(vec!["RS256", "ES256"]),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let (key, _) = &KEYS[alg];
        let token = jwt::encode(key, &claims).unwrap();
        let mut bytes = token.clone().into_bytes();
        let i = at.index(bytes.len());
        prop_assume!(bytes[i] != byte);
        bytes[i] = byte;
        let changed = String::from_utf8_lossy(&bytes).into_owned();
        let audience = claims.aud.iter().next().unwrap().to_owned();
        prop_assert!(verifier(key, key.kid()).verify(&changed, &[&audience], now()).is_err(),
            "byte {} changed to {:#04x} still verifies", i, byte);
        prop_assert!(!third_party(&changed, from_jwk(key), key.alg(), &audience));
    }

    #[test]
    fn refresh_tokens_never_repeat(n in 2usize..300) {
        let tokens: Vec<RefreshToken> = (0..n).map(|_| RefreshToken::generate().unwrap()).collect();
        let values: HashSet<String> = tokens.iter().map(|t| t.expose().to_owned()).collect();
        let hashes: HashSet<String> = tokens.iter().map(RefreshToken::hash).collect();
        prop_assert_eq!(values.len(), n);
        prop_assert_eq!(hashes.len(), n);
        for t in &tokens {
            prop_assert_eq!(RefreshToken::parse(t.expose()).unwrap().hash(), t.hash());
        }
    }

    #[test]
    fn durations_mean_what_they_say(n in 0u64..100_000_000, unit in prop::sample::select(vec![("s", 1u64), ("m", 60), ("h", 3600), ("d", 86_400)])) {
        let text = format!("{n}{}", unit.0);
        let secs = n.checked_mul(unit.1);
        match parse_duration(&text) {
            Ok(parsed) => prop_assert_eq!(Some(parsed), secs),
            Err(_) => prop_assert!(secs.is_none_or(|s| !(1..=3650 * 86_400).contains(&s))),
        }
    }

    #[test]
    fn duration_parsing_never_panics(text in ".{0,24}") {
        let _ = parse_duration(&text);
    }

    #[test]
    fn scopes_round_trip(tokens in prop::collection::vec("[!#-\\[\\]-~]{1,12}", 0..12)) {
        let text = tokens.join(" ");
        let scope = Scope::parse(&text).unwrap();
        let again = Scope::parse(&scope.to_string()).unwrap();
        prop_assert_eq!(&again, &scope);
        // Order kept, repeats dropped.
        let mut seen = HashSet::new();
        let expected: Vec<&str> = tokens.iter().map(String::as_str).filter(|t| seen.insert(*t)).collect();
        prop_assert_eq!(scope.tokens().collect::<Vec<_>>(), expected);
    }

    #[test]
    fn scope_parsing_refuses_what_it_cannot_carry(text in ".{0,40}") {
        if let Ok(scope) = Scope::parse(&text) {
            prop_assert!(scope.tokens().all(|t| !t.contains(['"', '\\']) && t.bytes().all(|b| (0x21..=0x7e).contains(&b))));
        }
    }
}

/// The last character of each segment carries bits the decoded bytes may not use: a decoder
/// that ignored them would accept a changed token. Every other character there is refused.
#[test]
fn changed_trailing_bits_of_any_segment_fail_verification() {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for alg in ["RS256", "ES256"] {
        let (key, _) = &KEYS[alg];
        let claims = AccessClaims {
            iss: ISSUER.into(),
            sub: "s".into(),
            aud: Audiences::new(vec!["https://a.example".into()]).unwrap(),
            exp: now() + 600,
            iat: now(),
            nbf: now(),
            jti: "j".into(),
            client_id: "default".into(),
            scope: String::new(),
            username: None,
            roles: vec![],
            token_type: jwt::ACCESS_TOKEN_TYPE.into(),
        };
        let token = jwt::encode(key, &claims).unwrap();
        let ends: Vec<usize> = token
            .match_indices('.')
            .map(|(i, _)| i - 1)
            .chain([token.len() - 1])
            .collect();
        for end in ends {
            for &c in alphabet.iter().filter(|&&c| c != token.as_bytes()[end]) {
                let mut bytes = token.clone().into_bytes();
                bytes[end] = c;
                let changed = String::from_utf8(bytes).unwrap();
                assert!(
                    verifier(key, key.kid())
                        .verify(&changed, &["https://a.example"], now())
                        .is_err(),
                    "{alg}: {} at {end} still verifies",
                    c as char
                );
            }
        }
    }
}
