//! The verifier: builder, discovery, the background refresh, and the checks of RFC 9068 and
//! RFC 8725.

use std::borrow::Cow;
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::de::DeserializeOwned;
use url::Url;

use crate::claims::{Claims, IssuerToken};
use crate::clock::{self, Clock, SystemClock};
use crate::error::{Error, Reason};
use crate::events::{Events, NoEvents};
use crate::fetch::{self, FetchError, Fetched, Http};
use crate::introspection::Introspector;
use crate::jwks::{self, Jwks, Policy};
use crate::keys::Alg;
use crate::revocations::{FailMode, FeedPolicy, Follower};

/// Why a verifier could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The issuer or a URL given is not a valid URL.
    #[error("not a valid URL: {0}")]
    Url(String),
    /// The issuer's metadata could not be fetched.
    #[error("fetching the issuer's metadata: {0}")]
    Discovery(FetchError),
    /// The metadata is not the issuer's (RFC 8414 §3.3) or lacks `jwks_uri`.
    #[error("the issuer's metadata is not usable: {0}")]
    Metadata(&'static str),
    /// An HTTP client could not be made.
    #[error("{0}")]
    Http(FetchError),
    /// Not called within a tokio runtime (the background refresh needs one).
    #[error("the verifier must be built within a tokio runtime")]
    NoRuntime,
}

/// Configures a [`Verifier`]. Defaults: audience = the issuer, leeway 60 s, `max-age` clamped
/// to 1 min – 24 h (5 min when the issuer gives none), stale keys used for at most 1 h while
/// the issuer cannot be reached, unknown kids looked up at most once per 10 s, HTTP timeout
/// 5 s, bodies up to 256 KiB.
pub struct Builder {
    issuer: String,
    jwks_uri: Option<String>,
    audience: Option<String>,
    leeway: Duration,
    required_scopes: Vec<String>,
    policy: Policy,
    timeout: Duration,
    max_body: usize,
    clock: Arc<dyn Clock>,
    events: Arc<dyn Events>,
    feed: Option<FeedPolicy>,
    feed_uri: Option<String>,
    realm: Option<String>,
    introspection: Option<(String, String)>,
    introspection_uri: Option<String>,
    introspection_ttl: Duration,
}

impl Builder {
    /// Enables [`Verifier::introspect`]: RFC 7662 introspection at the issuer (its metadata's
    /// `introspection_endpoint`), authenticated as the confidential client `client_id` with
    /// `secret` (HTTP Basic). The issuer tells a client only about tokens meant for one of its
    /// audiences.
    pub fn introspection(
        mut self,
        client_id: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        self.introspection = Some((client_id.into(), secret.into()));
        self
    }

    /// The introspection endpoint, instead of the metadata's.
    pub fn introspection_endpoint(mut self, uri: impl Into<String>) -> Self {
        self.introspection_uri = Some(uri.into());
        self
    }

    /// How long an introspection answer is reused for the same token (30 s; never past the
    /// token's `exp`). Zero asks every time.
    pub fn introspection_cache(mut self, ttl: Duration) -> Self {
        self.introspection_ttl = ttl;
        self
    }

    /// The `realm` of the `WWW-Authenticate` challenges the integrations send.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// Follows the issuer's revocation feed (from its metadata's `revocation_feed_endpoint`,
    /// else `{issuer}/oauth/revocations`), read every 5 s; tokens are refused while it has not
    /// been read for 5 minutes ([`Builder::revocation_max_lag`]).
    pub fn follow_revocations(mut self) -> Self {
        self.feed.get_or_insert(FeedPolicy {
            interval: Duration::from_secs(5),
            max_lag: Duration::from_secs(300),
            fail: FailMode::Closed,
        });
        self
    }

    /// The revocation feed's URL (implies [`Builder::follow_revocations`]).
    pub fn revocation_feed(mut self, uri: impl Into<String>) -> Self {
        self.feed_uri = Some(uri.into());
        self.follow_revocations()
    }

    /// How often the feed is read (implies [`Builder::follow_revocations`]).
    pub fn revocation_interval(mut self, interval: Duration) -> Self {
        self = self.follow_revocations();
        if let Some(feed) = &mut self.feed {
            feed.interval = interval;
        }
        self
    }

    /// How long the feed may go unread before `fail` applies (implies
    /// [`Builder::follow_revocations`]).
    pub fn revocation_max_lag(mut self, max_lag: Duration, fail: FailMode) -> Self {
        self = self.follow_revocations();
        if let Some(feed) = &mut self.feed {
            feed.max_lag = max_lag;
            feed.fail = fail;
        }
        self
    }

    /// The audience a token must name in `aud` (RFC 9068 §4): this service's identifier.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// The clock skew allowed on `exp`, `nbf` and `iat`.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Scopes every token must have ([`Error::InsufficientScope`] otherwise).
    pub fn required_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// The JWK Set's URL, instead of discovering it from the issuer's metadata.
    pub fn jwks_uri(mut self, uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(uri.into());
        self
    }

    /// The bounds a `Cache-Control: max-age` is clamped to.
    pub fn max_age_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.policy.min_age = min;
        self.policy.max_age = max.max(min);
        self
    }

    /// How long past their freshness keys are still used while the issuer cannot be reached.
    pub fn max_stale(mut self, max_stale: Duration) -> Self {
        self.policy.max_stale = max_stale;
        self
    }

    /// At most one refetch for unknown kids per `cooldown`; a kid still unknown after one is
    /// rejected without asking again for as long.
    pub fn unknown_kid_cooldown(mut self, cooldown: Duration) -> Self {
        self.policy.cooldown = cooldown;
        self
    }

    /// The timeout of each HTTP request (connecting included).
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The largest metadata or JWK Set body accepted.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Where the time comes from (tests: [`crate::ManualClock`]).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Metrics hooks.
    pub fn events(mut self, events: impl Events) -> Self {
        self.events = Arc::new(events);
        self
    }

    /// Discovers the JWK Set from the issuer's metadata (unless given), fetches it once and
    /// starts the background refresh. A failed first fetch is not an error: the background
    /// task retries, and tokens are answered [`Error::Unavailable`] until keys arrive.
    pub async fn build(self) -> Result<Verifier, BuildError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        let issuer = Url::parse(&self.issuer).map_err(|_| BuildError::Url(self.issuer.clone()))?;
        let http = Http::new(self.timeout, self.max_body).map_err(BuildError::Http)?;
        let discovered = match &self.jwks_uri {
            Some(uri) => Discovered {
                jwks_uri: parse(uri)?,
                feed: None,
                introspection: None,
            },
            None => discover(&http, &self.issuer, &issuer).await?,
        };
        let (jwks_uri, advertised_feed) = (discovered.jwks_uri, discovered.feed);
        fetch::check_secure(&jwks_uri).map_err(BuildError::Discovery)?;
        let revocations = match self.feed {
            None => None,
            Some(policy) => {
                let uri = match (&self.feed_uri, advertised_feed) {
                    (Some(uri), _) => parse(uri)?,
                    (None, Some(uri)) => uri,
                    (None, None) => parse(&format!(
                        "{}/oauth/revocations",
                        self.issuer.trim_end_matches('/')
                    ))?,
                };
                fetch::check_secure(&uri).map_err(BuildError::Discovery)?;
                Some(Follower::new(uri, http.clone(), policy))
            }
        };
        let introspector = match self.introspection {
            None => None,
            Some((client_id, secret)) => {
                let uri = match (&self.introspection_uri, discovered.introspection) {
                    (Some(uri), _) => parse(uri)?,
                    (None, Some(uri)) => uri,
                    (None, None) => parse(&format!(
                        "{}/oauth/introspect",
                        self.issuer.trim_end_matches('/')
                    ))?,
                };
                fetch::check_secure(&uri).map_err(BuildError::Discovery)?;
                Some(Introspector::new(
                    uri,
                    http.clone(),
                    client_id,
                    secret,
                    self.introspection_ttl,
                ))
            }
        };
        let inner = Arc::new(Inner {
            introspector,
            audience: self.audience.unwrap_or_else(|| self.issuer.clone()),
            issuer: self.issuer,
            leeway: i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX),
            required_scopes: self.required_scopes,
            jwks: Jwks::new(jwks_uri, http, self.policy),
            revocations,
            realm: self.realm,
            clock: self.clock,
            events: self.events,
        });
        let _ = inner.jwks.refresh(&*inner.clock, &*inner.events).await;
        runtime.spawn(refresher(Arc::downgrade(&inner)));
        if let Some(feed) = &inner.revocations {
            let _ = feed.poll(&*inner.clock, &*inner.events).await;
            runtime.spawn(follower(Arc::downgrade(&inner)));
        }
        Ok(Verifier { inner })
    }
}

fn parse(uri: &str) -> Result<Url, BuildError> {
    Url::parse(uri).map_err(|_| BuildError::Url(uri.to_owned()))
}

/// Where the metadata says things are.
struct Discovered {
    jwks_uri: Url,
    feed: Option<Url>,
    introspection: Option<Url>,
}

/// RFC 8414: `{issuer}/.well-known/oauth-authorization-server`, whose `issuer` must be ours:
/// its `jwks_uri`, and its `revocation_feed_endpoint` and `introspection_endpoint` if it has
/// them.
async fn discover(http: &Http, issuer: &str, url: &Url) -> Result<Discovered, BuildError> {
    #[derive(serde::Deserialize)]
    struct Metadata {
        issuer: String,
        jwks_uri: Option<String>,
        revocation_feed_endpoint: Option<String>,
        introspection_endpoint: Option<String>,
    }
    let mut metadata_url = url.clone();
    let path = format!(
        "{}/.well-known/oauth-authorization-server",
        url.path().trim_end_matches('/')
    );
    metadata_url.set_path(&path);
    let body = match http
        .get(&metadata_url, None)
        .await
        .map_err(BuildError::Discovery)?
    {
        Fetched::Fresh { body, .. } => body,
        Fetched::NotModified { .. } => return Err(BuildError::Metadata("unexpected 304")),
    };
    let metadata: Metadata =
        serde_json::from_slice(&body).map_err(|_| BuildError::Metadata("not JSON metadata"))?;
    if metadata.issuer != issuer {
        return Err(BuildError::Metadata("its issuer is not the one configured"));
    }
    let optional = |uri: Option<String>| uri.as_deref().map(parse).transpose();
    Ok(Discovered {
        jwks_uri: parse(
            &metadata
                .jwks_uri
                .ok_or(BuildError::Metadata("no jwks_uri"))?,
        )?,
        feed: optional(metadata.revocation_feed_endpoint)?,
        introspection: optional(metadata.introspection_endpoint)?,
    })
}

/// Reads the revocation feed every interval; ends when the last [`Verifier`] is dropped.
async fn follower(inner: Weak<Inner>) {
    loop {
        let (interval, clock) = {
            let Some(inner) = inner.upgrade() else { return };
            let Some(feed) = &inner.revocations else {
                return;
            };
            (feed.policy.interval, inner.clock.clone())
        };
        clock.sleep(interval).await;
        let Some(inner) = inner.upgrade() else { return };
        if let Some(feed) = &inner.revocations {
            let _ = feed.poll(&*inner.clock, &*inner.events).await;
        }
    }
}

/// The background refresh: ahead of expiry while healthy, with backoff while failing; ends
/// when the last [`Verifier`] is dropped.
async fn refresher(inner: Weak<Inner>) {
    let mut seed = jitter_seed();
    loop {
        let (wait, clock) = {
            let Some(inner) = inner.upgrade() else { return };
            seed = next_random(seed);
            let jitter = (seed >> 11) as f64 / (1u64 << 53) as f64;
            let wait = inner.jwks.next_refresh_in(inner.clock.now(), jitter);
            (wait, inner.clock.clone())
        };
        clock.sleep(wait).await;
        let Some(inner) = inner.upgrade() else { return };
        let _ = inner.jwks.refresh(&*inner.clock, &*inner.events).await;
    }
}

fn jitter_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x9e37_79b9_7f4a_7c15);
    h.finish() | 1
}

/// xorshift64*: jitter needs no cryptographic randomness.
fn next_random(mut x: u64) -> u64 {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

struct Inner {
    issuer: String,
    audience: String,
    leeway: i64,
    required_scopes: Vec<String>,
    jwks: Jwks,
    revocations: Option<Follower>,
    introspector: Option<Introspector>,
    realm: Option<String>,
    clock: Arc<dyn Clock>,
    events: Arc<dyn Events>,
}

/// Verifies jwt-issuer's access tokens. Cheap to clone (one shared cache); build it once per
/// service with [`Verifier::builder`].
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.inner.issuer)
            .field("audience", &self.inner.audience)
            .field("jwks_uri", &self.inner.jwks.uri().as_str())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A builder for tokens of `issuer` (the exact `iss` value, e.g. `https://auth.example`).
    pub fn builder(issuer: impl Into<String>) -> Builder {
        Builder {
            issuer: issuer.into(),
            jwks_uri: None,
            audience: None,
            leeway: Duration::from_secs(60),
            required_scopes: Vec::new(),
            policy: Policy {
                min_age: Duration::from_secs(60),
                max_age: Duration::from_secs(24 * 3600),
                default_age: Duration::from_secs(300),
                max_stale: Duration::from_secs(3600),
                cooldown: Duration::from_secs(10),
            },
            timeout: Duration::from_secs(5),
            max_body: 256 * 1024,
            clock: Arc::new(SystemClock),
            events: Arc::new(NoEvents),
            feed: None,
            feed_uri: None,
            realm: None,
            introspection: None,
            introspection_uri: None,
            introspection_ttl: Duration::from_secs(30),
        }
    }

    /// Verifies an access token (the value after `Bearer `) and returns its claims.
    pub async fn verify(&self, token: &str) -> Result<Claims, Error> {
        self.verify_with(token, |payload| {
            claims::<IssuerToken>(payload).map(Claims::from)
        })
        .await
    }

    /// As [`Verifier::verify`], with the claims beyond the registered ones read as `T`.
    pub async fn verify_as<T: DeserializeOwned>(&self, token: &str) -> Result<Claims<T>, Error> {
        self.verify_with(token, claims::<Claims<T>>).await
    }

    /// The checks, with the claims read by `read` once the signature is good.
    async fn verify_with<T>(
        &self,
        token: &str,
        read: impl FnOnce(&[u8]) -> Result<Claims<T>, Error>,
    ) -> Result<Claims<T>, Error> {
        let parts = split(token)?;
        let (kid, alg) = header(&parts)?;
        let inner = &*self.inner;
        let keys = inner.jwks.key(&kid, &*inner.clock, &*inner.events).await?;
        let key = jwks::get(&keys, &kid).ok_or(Error::InvalidToken(Reason::UnknownKey))?;
        if key.alg != alg {
            return Err(Error::InvalidToken(Reason::Algorithm));
        }
        if !key.verifies(parts.signed.as_bytes(), &parts.signature) {
            return Err(Error::InvalidToken(Reason::Signature));
        }
        let claims = read(&b64(parts.payload)?)?;
        self.check(&claims)?;
        if let Some(feed) = &inner.revocations {
            feed.check(&claims.jti, inner.clock.now())?;
        }
        Ok(claims)
    }

    /// Verifies the token as [`Verifier::verify`] does, then asks the issuer whether it is still
    /// active (RFC 7662; see [`Builder::introspection`]): for routes that must not accept a
    /// token revoked a moment ago. Answers are cached for a short while; a token the issuer
    /// says is inactive is [`Reason::Inactive`]; an issuer that cannot be asked,
    /// [`Error::Unavailable`]. Without [`Builder::introspection`], [`Error::Unavailable`].
    pub async fn introspect(&self, token: &str) -> Result<Claims, Error> {
        let claims = self.verify(token).await?;
        let inner = &*self.inner;
        let Some(introspector) = &inner.introspector else {
            return Err(Error::Unavailable("introspection is not configured"));
        };
        introspector
            .check(token, &claims.jti, claims.exp, inner.clock.now())
            .await?;
        Ok(claims)
    }

    /// The realm set with [`Builder::realm`].
    pub fn realm(&self) -> Option<&str> {
        self.inner.realm.as_deref()
    }

    /// How long since the revocation feed was last read to its end (`None`: not followed, or
    /// never read).
    pub fn revocation_lag(&self) -> Option<std::time::Duration> {
        let inner = &*self.inner;
        inner.revocations.as_ref()?.lag(inner.clock.now())
    }

    /// Revoked tokens known from the feed and not yet expired.
    pub fn revoked_count(&self) -> usize {
        self.inner.revocations.as_ref().map_or(0, Follower::len)
    }

    /// Reads the revocation feed now (if followed).
    pub async fn poll_revocations(&self) -> Result<(), FetchError> {
        let inner = &*self.inner;
        match &inner.revocations {
            Some(feed) => feed.poll(&*inner.clock, &*inner.events).await,
            None => Ok(()),
        }
    }

    /// Fetches the key set now (one fetch shared with any under way), whatever its freshness.
    pub async fn refresh(&self) -> Result<(), FetchError> {
        let inner = &*self.inner;
        inner.jwks.refresh(&*inner.clock, &*inner.events).await
    }

    fn check<T>(&self, claims: &Claims<T>) -> Result<(), Error> {
        let inner = &*self.inner;
        let invalid = |r| Err(Error::InvalidToken(r));
        if [&claims.iss, &claims.sub, &claims.jti, &claims.client_id]
            .iter()
            .any(|c| c.is_empty())
            || claims.aud.is_empty()
        {
            return invalid(Reason::MissingClaim);
        }
        if claims.iss != inner.issuer {
            return invalid(Reason::Issuer);
        }
        if !claims.aud.contains(&inner.audience) {
            return invalid(Reason::Audience);
        }
        let now = clock::unix(inner.clock.now());
        let leeway = inner.leeway;
        if claims.exp <= now.saturating_sub(leeway) {
            return invalid(Reason::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(leeway))
        {
            return invalid(Reason::NotYetValid);
        }
        if claims.iat > now.saturating_add(leeway) {
            return invalid(Reason::IssuedInFuture);
        }
        if inner.required_scopes.iter().any(|s| !claims.has_scope(s)) {
            return Err(Error::InsufficientScope {
                required: inner.required_scopes.clone(),
            });
        }
        Ok(())
    }
}

/// The header of a token, as far as it is read.
#[derive(serde::Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Option<Cow<'a, str>>,
    #[serde(borrow)]
    typ: Option<Cow<'a, str>>,
    #[serde(borrow)]
    kid: Option<Cow<'a, str>>,
    jku: Option<serde::de::IgnoredAny>,
    x5u: Option<serde::de::IgnoredAny>,
    jwk: Option<serde::de::IgnoredAny>,
    x5c: Option<serde::de::IgnoredAny>,
    crit: Option<serde::de::IgnoredAny>,
}

/// The longest token accepted: ours are under 2 KiB; a larger one is refused before anything
/// is decoded.
const MAX_TOKEN: usize = 16 * 1024;

/// A compact JWS split into its parts: the signed input, the decoded header and signature, and
/// the payload, decoded only once the signature is good.
struct Parts<'a> {
    signed: &'a str,
    header: Vec<u8>,
    payload: &'a str,
    signature: Vec<u8>,
}

fn b64(part: &str) -> Result<Vec<u8>, Error> {
    use base64::Engine;
    // Decoded into a vector of the right capacity: no zeroing, one allocation.
    let mut out = Vec::with_capacity(part.len() / 4 * 3 + 3);
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode_vec(part, &mut out)
        .map_err(|_| Error::InvalidToken(Reason::Malformed))?;
    Ok(out)
}

fn split(token: &str) -> Result<Parts<'_>, Error> {
    let malformed = || Error::InvalidToken(Reason::Malformed);
    if token.len() > MAX_TOKEN {
        return Err(malformed());
    }
    let (signed, signature) = token.rsplit_once('.').ok_or_else(malformed)?;
    let (header, payload) = signed.split_once('.').ok_or_else(malformed)?;
    Ok(Parts {
        signed,
        header: b64(header)?,
        payload,
        signature: b64(signature)?,
    })
}

/// The header checks (RFC 8725, RFC 9068 §4): `kid` and `typ: at+jwt` required; only RS256
/// and ES256 (never `none` or HS*); never `jku`, `x5u`, `jwk`, `x5c` or `crit`.
fn header<'p>(parts: &'p Parts<'_>) -> Result<(Cow<'p, str>, Alg), Error> {
    let invalid = Error::InvalidToken;
    let header: Header =
        serde_json::from_slice(&parts.header).map_err(|_| invalid(Reason::Malformed))?;
    let alg = header
        .alg
        .as_deref()
        .and_then(Alg::from_name)
        .ok_or(invalid(Reason::Algorithm))?;
    if header.jku.is_some()
        || header.x5u.is_some()
        || header.jwk.is_some()
        || header.x5c.is_some()
        || header.crit.is_some()
    {
        return Err(invalid(Reason::ForbiddenHeader));
    }
    let typ_ok = header.typ.as_deref().is_some_and(|t| {
        t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
    });
    if !typ_ok {
        return Err(invalid(Reason::Type));
    }
    let kid = header
        .kid
        .filter(|k| !k.is_empty())
        .ok_or(invalid(Reason::NoKeyId))?;
    Ok((kid, alg))
}

/// The claims of a token whose signature has been checked; their values are checked by
/// [`Verifier::check`] against the verifier's clock.
fn claims<C: DeserializeOwned>(payload: &[u8]) -> Result<C, Error> {
    serde_json::from_slice(payload).map_err(|e| {
        Error::InvalidToken(if e.to_string().starts_with("missing field") {
            Reason::MissingClaim
        } else {
            Reason::Malformed
        })
    })
}
