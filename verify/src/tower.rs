//! tower (axum, tonic, hyper): [`VerifyLayer`] verifies the bearer token of every request and
//! puts its [`Claims`] in the request's extensions; [`RequireScopeLayer`] refuses requests
//! whose claims lack scopes. Refusals are answered with the status and `WWW-Authenticate`
//! (RFC 6750) and an empty body of the service's own type.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use crate::claims::Claims;
use crate::http::{Rejection, bearer_of};
use crate::verifier::Verifier;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Verifies the bearer token of every request (see the module).
#[derive(Clone, Debug)]
pub struct VerifyLayer {
    verifier: Verifier,
}

impl VerifyLayer {
    /// A layer verifying with `verifier`.
    pub fn new(verifier: Verifier) -> Self {
        Self { verifier }
    }
}

impl<S> Layer<S> for VerifyLayer {
    type Service = VerifyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        VerifyService {
            inner,
            verifier: self.verifier.clone(),
        }
    }
}

/// The service of [`VerifyLayer`].
#[derive(Clone, Debug)]
pub struct VerifyService<S> {
    inner: S,
    verifier: Verifier,
}

fn refuse<B: Default>(rejection: &Rejection, realm: Option<&str>) -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() =
        StatusCode::from_u16(rejection.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    if let Some(value) = rejection
        .www_authenticate(realm)
        .and_then(|c| HeaderValue::from_str(&c).ok())
    {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    response
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for VerifyService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // The clone is the one made ready for this call (tower's usual dance).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        let token = bearer_of(
            req.headers()
                .get_all(AUTHORIZATION)
                .iter()
                .map(|v| v.as_bytes()),
        );
        Box::pin(async move {
            let verified = match token {
                Ok(token) => verifier.verify(&token).await.map_err(Rejection::Token),
                Err(e) => Err(e),
            };
            match verified {
                Ok(claims) => {
                    req.extensions_mut().insert(claims);
                    inner.call(req).await
                }
                Err(rejection) => Ok(refuse(&rejection, verifier.realm())),
            }
        })
    }
}

/// Refuses (403 `insufficient_scope`) requests whose [`Claims`] (put there by
/// [`VerifyLayer`], which must come first) lack any of the scopes; 401 when there are none.
#[derive(Clone, Debug)]
pub struct RequireScopeLayer {
    scopes: Arc<[String]>,
}

impl RequireScopeLayer {
    /// Requires every one of `scopes`.
    pub fn new<I, T>(scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        Self {
            scopes: scopes.into_iter().map(Into::into).collect(),
        }
    }
}

impl<S> Layer<S> for RequireScopeLayer {
    type Service = RequireScope<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireScope {
            inner,
            scopes: self.scopes.clone(),
        }
    }
}

/// The service of [`RequireScopeLayer`].
#[derive(Clone, Debug)]
pub struct RequireScope<S> {
    inner: S,
    scopes: Arc<[String]>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireScope<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Default + Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let scopes: Vec<&str> = self.scopes.iter().map(String::as_str).collect();
        let refused = match req.extensions().get::<Claims>() {
            None => Some(Rejection::Missing),
            Some(claims) => claims.require_scopes(&scopes).err().map(Rejection::Token),
        };
        match refused {
            Some(rejection) => Box::pin(async move { Ok(refuse(&rejection, None)) }),
            None => Box::pin(self.inner.call(req)),
        }
    }
}
