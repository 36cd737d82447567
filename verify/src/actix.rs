//! actix-web: [`Claims<T>`] as an extractor, and (feature `actix-httpauth`) a validator for
//! actix-web-httpauth's `HttpAuthentication::bearer`.
//!
//! Both find the [`Verifier`] in the app's data: `App::new().app_data(verifier.clone())` (or
//! `web::Data<Verifier>`).

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use crate::claims::Claims;
use crate::http::{Rejection, bearer_of};
use crate::verifier::Verifier;

/// A refused request, as actix-web answers it: the status, `WWW-Authenticate` (RFC 6750) and
/// a JSON body `{"error", "error_description"}`.
#[derive(Debug)]
pub struct Rejected {
    /// Why.
    pub rejection: Rejection,
    realm: Option<String>,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.rejection.body())
    }
}

impl ResponseError for Rejected {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.rejection.status()).unwrap_or(StatusCode::UNAUTHORIZED)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((CONTENT_TYPE, "application/json"));
        if let Some(challenge) = self.rejection.www_authenticate(self.realm.as_deref()) {
            response.insert_header((WWW_AUTHENTICATE, challenge));
        }
        response.body(self.rejection.body())
    }
}

fn verifier_of(req: &HttpRequest) -> Option<Verifier> {
    req.app_data::<Verifier>().cloned().or_else(|| {
        req.app_data::<web::Data<Verifier>>()
            .map(|d| d.get_ref().clone())
    })
}

impl<T> FromRequest for Claims<T>
where
    T: DeserializeOwned + Clone + 'static,
{
    type Error = Rejected;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    /// The claims the actix-web-httpauth validator already put in the request, else those of
    /// its bearer token, verified now.
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        if let Some(claims) = req.extensions().get::<Claims<T>>() {
            let claims = claims.clone();
            return Box::pin(async move { Ok(claims) });
        }
        let verifier = verifier_of(req);
        let token = bearer_of(req.headers().get_all(AUTHORIZATION).map(|v| v.as_bytes()));
        Box::pin(async move {
            let Some(verifier) = verifier else {
                return Err(Rejected {
                    rejection: Rejection::NotConfigured,
                    realm: None,
                });
            };
            let realm = verifier.realm().map(str::to_owned);
            let reject = |rejection| Rejected {
                rejection,
                realm: realm.clone(),
            };
            let token = token.map_err(reject)?;
            verifier
                .verify_as::<T>(&token)
                .await
                .map_err(|e| reject(Rejection::Token(e)))
        })
    }
}

/// An error of [`Claims::require_scopes`] (or of [`Verifier::verify`]) returned from a handler:
/// answered as [`Rejected`] is.
impl ResponseError for crate::Error {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status()).unwrap_or(StatusCode::UNAUTHORIZED)
    }

    fn error_response(&self) -> HttpResponse {
        Rejected {
            rejection: Rejection::Token(self.clone()),
            realm: None,
        }
        .error_response()
    }
}

/// For `HttpAuthentication::bearer(jwt_issuer_verify::actix::validator)`: verifies the token
/// and puts its [`Claims`] in the request's extensions (where the [`Claims`] extractor finds
/// them); refuses the request otherwise.
#[cfg(feature = "actix-httpauth")]
pub async fn validator(
    req: actix_web::dev::ServiceRequest,
    credentials: actix_web_httpauth::extractors::bearer::BearerAuth,
) -> Result<actix_web::dev::ServiceRequest, (actix_web::Error, actix_web::dev::ServiceRequest)> {
    let Some(verifier) = verifier_of(req.request()) else {
        let rejected = Rejected {
            rejection: Rejection::NotConfigured,
            realm: None,
        };
        return Err((rejected.into(), req));
    };
    match verifier.verify(credentials.token()).await {
        Ok(claims) => {
            req.extensions_mut().insert(claims);
            Ok(req)
        }
        Err(e) => {
            let rejected = Rejected {
                rejection: Rejection::Token(e),
                realm: verifier.realm().map(str::to_owned),
            };
            Err((rejected.into(), req))
        }
    }
}
