//! RFC 7662 introspection, for routes that must know now whether a token is still active:
//! asked of the issuer with the service's own client credentials, the answers cached for a
//! short while in a bounded map.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use url::Url;

use crate::error::{Error, Reason};
use crate::fetch::Http;

/// Answers kept at most; beyond, expired ones go, and then all.
const MAX_CACHED: usize = 10_000;

pub(crate) struct Introspector {
    uri: Url,
    http: Http,
    client_id: String,
    secret: String,
    ttl: Duration,
    /// jti -> (active, until when the answer is used).
    cache: Mutex<HashMap<String, (bool, SystemTime)>>,
}

#[derive(Deserialize)]
struct Answer {
    active: bool,
}

impl Introspector {
    pub fn new(uri: Url, http: Http, client_id: String, secret: String, ttl: Duration) -> Self {
        Self {
            uri,
            http,
            client_id,
            secret,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the issuer says the token (already verified locally: `jti`, `exp`) is active,
    /// from the cache when it answered less than the cache's lifetime ago.
    pub async fn check(
        &self,
        token: &str,
        jti: &str,
        exp: i64,
        now: SystemTime,
    ) -> Result<(), Error> {
        let cached = self
            .lock()
            .get(jti)
            .filter(|(_, until)| now < *until)
            .map(|(a, _)| *a);
        let active = match cached {
            Some(active) => active,
            None => {
                let active = self.ask(token).await?;
                let expires =
                    SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(exp).unwrap_or(0));
                let until = (now + self.ttl).min(expires.max(now));
                let mut cache = self.lock();
                if cache.len() >= MAX_CACHED {
                    cache.retain(|_, (_, until)| now < *until);
                    if cache.len() >= MAX_CACHED {
                        cache.clear();
                    }
                }
                cache.insert(jti.to_owned(), (active, until));
                active
            }
        };
        if active {
            Ok(())
        } else {
            Err(Error::InvalidToken(Reason::Inactive))
        }
    }

    async fn ask(&self, token: &str) -> Result<bool, Error> {
        let body = self
            .http
            .post_form(
                &self.uri,
                (&self.client_id, &self.secret),
                &[("token", token), ("token_type_hint", "access_token")],
            )
            .await
            .map_err(|e| {
                tracing::warn!(uri = %self.uri, error = %e, "introspection failed");
                Error::Unavailable("the issuer cannot be asked about the token")
            })?;
        serde_json::from_slice::<Answer>(&body)
            .map(|a| a.active)
            .map_err(|_| Error::Unavailable("the issuer's introspection answer is malformed"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (bool, SystemTime)>> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
