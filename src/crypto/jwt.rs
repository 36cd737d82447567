//! Access tokens (RFC 9068 JWT profile): their claims, how they are encoded with a held
//! signing key, and how they are verified against the published keys.

use std::collections::HashMap;

use jsonwebtoken::{DecodingKey, Validation};
use serde::{Deserialize, Serialize};

use super::b64url;
use super::signing::{Alg, SigningKey};

/// The `aud` claim: one or more audiences, a string when it holds one (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audiences(Vec<String>);

impl Audiences {
    /// The audiences, in order. An empty list is not an audience claim.
    pub fn new(audiences: Vec<String>) -> Option<Self> {
        (!audiences.is_empty()).then_some(Self(audiences))
    }

    /// Each audience.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// Whether `audience` is one of them.
    pub fn contains(&self, audience: &str) -> bool {
        self.0.iter().any(|a| a == audience)
    }

    /// The audiences as a list.
    pub fn to_vec(&self) -> Vec<String> {
        self.0.clone()
    }
}

impl Serialize for Audiences {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => s.serialize_str(one),
            many => many.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Audiences {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Aud {
            One(String),
            Many(Vec<String>),
        }
        let list = match Aud::deserialize(d)? {
            Aud::One(a) => vec![a],
            Aud::Many(list) => list,
        };
        Self::new(list).ok_or_else(|| serde::de::Error::custom("aud is empty"))
    }
}

/// The `token_type` claim of access tokens: what djangorestframework-simplejwt checks.
pub const ACCESS_TOKEN_TYPE: &str = "access";

fn access_token_type() -> String {
    ACCESS_TOKEN_TYPE.to_owned()
}

/// The claims of every access token, in the contract's order.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    /// The user's stable id (a UUID), or the client id of a `client_credentials` token.
    pub sub: String,
    pub aud: Audiences,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    pub client_id: String,
    /// Space-separated; may be empty.
    pub scope: String,
    /// The user's name; absent from a client's own (`client_credentials`) token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    /// Always [`ACCESS_TOKEN_TYPE`].
    #[serde(default = "access_token_type")]
    pub token_type: String,
}

/// Encodes and signs `claims` as a compact JWS with `key`'s precomputed header.
pub fn encode(key: &SigningKey, claims: &AccessClaims) -> anyhow::Result<String> {
    let payload = b64url(&serde_json::to_vec(claims)?);
    let mut token = String::with_capacity(key.header_b64().len() + payload.len() + 350);
    token.push_str(key.header_b64());
    token.push('.');
    token.push_str(&payload);
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    token.push_str(&b64url(&signature));
    Ok(token)
}

/// Why a token was not accepted. Deliberately coarse: callers learn nothing useful.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's key is not published")]
    UnknownKey,
    #[error("the token is not an access token of this issuer")]
    WrongType,
    #[error("the token's signature or claims are invalid")]
    Invalid,
    #[error("the token is meant for another audience")]
    WrongAudience,
    #[error("the token has expired")]
    Expired,
    #[error("the token uses a critical header extension this issuer does not understand")]
    UnknownCritical,
    #[error("the token was issued in the future")]
    IssuedInFuture,
}

/// A published key ready to verify: its algorithm is fixed, so a token cannot choose another
/// (no `none`, no HMAC with the public key as secret).
#[derive(Clone)]
pub struct VerificationKey {
    pub alg: Alg,
    pub key: DecodingKey,
}

/// Verifies access tokens against a set of published keys.
#[derive(Clone)]
pub struct Verifier {
    keys: HashMap<String, VerificationKey>,
    issuer: String,
    leeway: u64,
}

impl Verifier {
    /// A verifier for tokens of `issuer` signed by one of `keys` (by kid).
    pub fn new(keys: HashMap<String, VerificationKey>, issuer: &str, leeway: u64) -> Self {
        Self {
            keys,
            issuer: issuer.to_owned(),
            leeway,
        }
    }

    /// Verifies `token` at time `now`: header (`typ: at+jwt`, a published `kid`, that key's
    /// `alg`, no `crit`), the signature, `iss`, `aud` (one of `audiences`), and `exp`, `nbf`
    /// and `iat` with the leeway.
    pub fn verify(
        &self,
        token: &str,
        audiences: &[&str],
        now: i64,
    ) -> Result<AccessClaims, VerifyError> {
        self.verify_with(token, Some(audiences), now)
    }

    /// As [`Verifier::verify`], for a token meant for any audience (introspection, revocation).
    pub fn verify_any_audience(&self, token: &str, now: i64) -> Result<AccessClaims, VerifyError> {
        self.verify_with(token, None, now)
    }

    fn verify_with(
        &self,
        token: &str,
        audiences: Option<&[&str]>,
        now: i64,
    ) -> Result<AccessClaims, VerifyError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
        let typ_ok = header.typ.as_deref().is_some_and(|t| {
            t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
        });
        if !typ_ok {
            return Err(VerifyError::WrongType);
        }
        // RFC 7515 §4.1.11: we understand no extension, so any `crit` is refused.
        if header.crit.is_some() {
            return Err(VerifyError::UnknownCritical);
        }
        let kid = header.kid.ok_or(VerifyError::UnknownKey)?;
        let key = self.keys.get(&kid).ok_or(VerifyError::UnknownKey)?;
        if header.alg != key.alg.jsonwebtoken() {
            return Err(VerifyError::Invalid);
        }
        let mut validation = Validation::new(key.alg.jsonwebtoken());
        // Times are checked below against the issuer's clock, not jsonwebtoken's.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_issuer(&[&self.issuer]);
        match audiences {
            Some(auds) => validation.set_audience(auds),
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&["exp", "iat", "nbf", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<AccessClaims>(token, &key.key, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => VerifyError::Expired,
                jsonwebtoken::errors::ErrorKind::InvalidAudience => VerifyError::WrongAudience,
                _ => VerifyError::Invalid,
            })?;
        let leeway = i64::try_from(self.leeway).unwrap_or(i64::MAX);
        if claims.exp <= now.saturating_sub(leeway) {
            return Err(VerifyError::Expired);
        }
        if claims.nbf > now.saturating_add(leeway) {
            return Err(VerifyError::Invalid);
        }
        if claims.iat > now.saturating_add(leeway) {
            return Err(VerifyError::IssuedInFuture);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(now: i64) -> AccessClaims {
        AccessClaims {
            iss: "http://issuer".into(),
            sub: "8d3f0d8e-0000-4000-8000-000000000000".into(),
            aud: Audiences::new(vec!["http://issuer".into()]).unwrap(),
            exp: now + 300,
            iat: now,
            nbf: now,
            jti: "j1".into(),
            client_id: "default".into(),
            scope: String::new(),
            username: Some("alice".into()),
            roles: vec!["admin".into()],
            token_type: ACCESS_TOKEN_TYPE.into(),
        }
    }

    fn verifier_for(key: &SigningKey) -> Verifier {
        let vk = VerificationKey {
            alg: key.alg(),
            key: key.public().decoding_key().unwrap(),
        };
        Verifier::new(
            HashMap::from([(key.kid().to_owned(), vk)]),
            "http://issuer",
            5,
        )
    }

    #[test]
    fn tokens_we_sign_verify_with_both_algorithms() {
        let now = chrono::Utc::now().timestamp();
        for alg in [Alg::RS256, Alg::ES256] {
            let (key, _) = SigningKey::generate(alg).unwrap();
            let token = encode(&key, &claims(now)).unwrap();
            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(header.typ.as_deref(), Some("at+jwt"));
            assert_eq!(header.kid.as_deref(), Some(key.kid()));
            let got = verifier_for(&key)
                .verify(&token, &["http://issuer"], now)
                .unwrap();
            assert_eq!(got, claims(now));
        }
    }

    #[test]
    fn rejects_expired_wrong_audience_tampered_and_foreign_tokens() {
        let now = chrono::Utc::now().timestamp();
        let (key, _) = SigningKey::generate(Alg::ES256).unwrap();
        let v = verifier_for(&key);
        let mut old = claims(now - 1000);
        old.exp = now - 100;
        let expired = encode(&key, &old).unwrap();
        assert_eq!(
            v.verify(&expired, &["http://issuer"], now),
            Err(VerifyError::Expired)
        );
        let token = encode(&key, &claims(now)).unwrap();
        assert_eq!(
            v.verify(&token, &["other"], now),
            Err(VerifyError::WrongAudience)
        );
        let mut tampered = token.clone();
        tampered.insert(token.find('.').unwrap() + 3, 'x');
        assert!(v.verify(&tampered, &["http://issuer"], now).is_err());
        let (other, _) = SigningKey::generate(Alg::ES256).unwrap();
        let foreign = encode(&other, &claims(now)).unwrap();
        assert_eq!(
            v.verify(&foreign, &["http://issuer"], now),
            Err(VerifyError::UnknownKey)
        );
        assert_eq!(
            v.verify("garbage", &["http://issuer"], now),
            Err(VerifyError::Malformed)
        );
    }

    /// Signs `claims` under a header we choose (what a forger with our key could send).
    fn sign_with_header(
        key: &SigningKey,
        header: serde_json::Value,
        claims: &AccessClaims,
    ) -> String {
        let mut token = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(&serde_json::to_vec(claims).unwrap())
        );
        let signature = key.sign(token.as_bytes()).unwrap();
        token.push('.');
        token.push_str(&b64url(&signature));
        token
    }

    #[test]
    fn refuses_unknown_crit_and_iat_in_the_future() {
        let now = chrono::Utc::now().timestamp();
        let (key, _) = SigningKey::generate(Alg::ES256).unwrap();
        let v = verifier_for(&key);
        let header = |extra: serde_json::Value| {
            let mut h = serde_json::json!({"alg": "ES256", "typ": "at+jwt", "kid": key.kid()});
            h.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            h
        };
        let plain = sign_with_header(&key, header(serde_json::json!({})), &claims(now));
        assert!(v.verify(&plain, &["http://issuer"], now).is_ok());
        let crit = sign_with_header(
            &key,
            header(serde_json::json!({"crit": ["exp-policy"], "exp-policy": 1})),
            &claims(now),
        );
        assert_eq!(
            v.verify(&crit, &["http://issuer"], now),
            Err(VerifyError::UnknownCritical)
        );
        let mut future = claims(now);
        future.iat = now + 600;
        let future = sign_with_header(&key, header(serde_json::json!({})), &future);
        assert_eq!(
            v.verify(&future, &["http://issuer"], now),
            Err(VerifyError::IssuedInFuture)
        );
        let mut skewed = claims(now);
        skewed.iat = now + 3;
        let skewed = sign_with_header(&key, header(serde_json::json!({})), &skewed);
        assert!(
            v.verify(&skewed, &["http://issuer"], now).is_ok(),
            "within the leeway"
        );
    }

    #[test]
    fn aud_is_a_string_for_one_and_an_array_for_several() {
        let one = Audiences::new(vec!["a".into()]).unwrap();
        assert_eq!(serde_json::to_value(&one).unwrap(), serde_json::json!("a"));
        let two = Audiences::new(vec!["a".into(), "b".into()]).unwrap();
        assert_eq!(
            serde_json::to_value(&two).unwrap(),
            serde_json::json!(["a", "b"])
        );
        assert_eq!(
            serde_json::from_value::<Audiences>(serde_json::json!("a")).unwrap(),
            one
        );
        assert_eq!(
            serde_json::from_value::<Audiences>(serde_json::json!(["a", "b"])).unwrap(),
            two
        );
        assert!(serde_json::from_value::<Audiences>(serde_json::json!([])).is_err());
        assert!(Audiences::new(vec![]).is_none());
    }
}
