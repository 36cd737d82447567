//! # jwt-issuer-verify
//!
//! Verifies the access tokens of [jwt-issuer](https://github.com/) offline, in the services
//! that receive them: the issuer's public keys come from its JWK Set and are cached; a token is
//! checked against them without a call to the issuer.
//!
//! - The JWK Set is discovered from the issuer's metadata (RFC 8414) or given, fetched with
//!   a timeout, a body cap, no redirects, and https only (plain http is allowed to loopback
//!   addresses). Its `Cache-Control: max-age` is honoured (clamped to 1 min – 24 h) and it is
//!   revalidated with `If-None-Match`: a 304 extends the keys' freshness without re-parsing
//!   them.
//! - A background task refreshes the set ahead of expiry (at 80–90% of its freshness, with
//!   jitter), so a verification never waits on the network in the steady state. Reads take no
//!   lock: the set is an immutable map swapped whole after each fetch, its keys parsed once.
//! - One fetch at a time, shared by everyone who needs it. A failed fetch keeps the last good
//!   set for `max_stale` and is retried with backoff; an empty or malformed set never replaces
//!   a good one.
//! - A token whose `kid` is unknown causes one shared refetch, at most once per cooldown (a
//!   token bucket); beyond, it is rejected at once instead of waiting; a kid still unknown
//!   after a refetch is remembered and rejected without asking again for a while. The issuer
//!   publishes its `next` keys ahead of use, so a key rotation costs verifiers no fetch.
//! - The checks of RFC 9068 and RFC 8725: `kid` required and each key pinned to its JWK's
//!   `alg`; only RS256 and ES256 (never `none` or HS*); `jku`, `x5u`, `jwk`, `x5c` and `crit`
//!   refused; `typ` `at+jwt`; exact `iss`; `aud` containing this service; `exp`, `nbf` and
//!   `iat` with leeway; `sub`, `jti` and `client_id` present. Errors map to RFC 6750, with a
//!   `WWW-Authenticate` value ready to send ([`Error::www_authenticate`]).
//! - Optionally ([`Builder::follow_revocations`]), the issuer's revocation feed is followed in
//!   the background: a local deny list of revoked `jti`s, each dropped at its `exp`; when the
//!   feed has not been read for longer than allowed, tokens are refused (fail closed) or
//!   accepted (fail open), as configured.
//! - Optionally ([`Builder::introspection`]), [`Verifier::introspect`] also asks the issuer
//!   (RFC 7662, with the service's client credentials) whether the token is still active, for
//!   routes that must know now; answers are cached briefly in a bounded map.
//!
//! A complete service to run, with the walkthrough of logging in, calling it, rotating the
//! issuer's key and revoking the token: `examples/resource-server` in jwt-issuer's repository
//! (`cargo run --example resource-server`). In short:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use jwt_issuer_verify::Verifier;
//!
//! let verifier = Verifier::builder("https://auth.example")
//!     .audience("https://orders.example")
//!     .required_scopes(["orders:read"])
//!     .build()
//!     .await?;
//! # let token = "";
//! match verifier.verify(token).await {
//!     Ok(claims) => println!("{} via {}", claims.sub, claims.client_id),
//!     Err(e) => println!("{} {}", e.status(), e.www_authenticate(Some("orders"))),
//! }
//! # Ok(())
//! # }
//! ```

#[cfg(feature = "actix")]
pub mod actix;
mod claims;
mod clock;
mod error;
mod events;
mod fetch;
mod http;
mod introspection;
mod jwks;
mod keys;
mod revocations;
#[cfg(feature = "tower")]
pub mod tower;
mod verifier;

pub use claims::{Claims, IssuerClaims};
pub use clock::{Clock, ManualClock, Sleep, SystemClock};
pub use error::{Error, Reason};
pub use events::{Events, FetchOutcome, UnknownKid};
pub use fetch::FetchError;
pub use http::{Rejection, bearer};
pub use revocations::FailMode;
pub use verifier::{BuildError, Builder, Verifier};
