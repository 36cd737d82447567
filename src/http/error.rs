//! The one error type of the HTTP edge.
//!
//! Error layers: database code returns `QueryResult`; service code returns its own error enums
//! (or `anyhow` with context for the unexpected); handlers return [`ApiError`], which maps
//! every case to a status and a JSON body `{"error", "error_description"}` (RFC 6749 §5.2
//! codes on `/oauth/*`). Internal errors are logged with their whole chain and reach the client
//! only as `server_error` — never SQL, a stack trace or a secret.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::service::clients::ClientError;
use crate::service::grants::GrantError;
use crate::service::keys::KeyError;
use crate::service::machine::RegistryError;
use crate::service::registry::AuthFailure;
use crate::service::sessions::SessionError;
use crate::service::users::UserError;

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `invalid_request`: missing, repeated or malformed parameters.
    #[error("{0}")]
    InvalidRequest(String),
    /// 400 `invalid_grant`.
    #[error("{0}")]
    InvalidGrant(String),
    /// 400 `invalid_scope`.
    #[error("{0}")]
    InvalidScope(String),
    /// 400 `unsupported_grant_type`.
    #[error("{0}")]
    UnsupportedGrantType(String),
    /// 400 `unauthorized_client`: the client may not use this grant.
    #[error("{0}")]
    UnauthorizedClient(String),
    /// 400 `invalid_target` (RFC 8707): an audience or resource the client may not have.
    #[error("{0}")]
    InvalidTarget(String),
    /// 401 `invalid_client` with `WWW-Authenticate: Basic`.
    #[error("{0}")]
    InvalidClient(String),
    /// 401 with `WWW-Authenticate: Bearer` (RFC 6750): `error` is `invalid_token` when a token
    /// was sent, absent when none was.
    #[error("{description}")]
    Unauthorized {
        error: Option<&'static str>,
        description: String,
    },
    /// 403 `forbidden`: authenticated, but without the needed role.
    #[error("{0}")]
    Forbidden(String),
    /// 409 `conflict`: a duplicate.
    #[error("{0}")]
    Conflict(String),
    /// 404 `not_found`.
    #[error("{0}")]
    NotFound(String),
    /// 405 `method_not_allowed`.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 408 `invalid_request`: the body did not arrive in time; the connection is closed.
    #[error("the request body did not arrive within {0} s")]
    BodyTimeout(u64),
    /// 413 `payload_too_large`.
    #[error("request body larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// 415 `unsupported_media_type`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 429 `too_many_requests` with `Retry-After`.
    #[error("{description}")]
    TooManyRequests {
        retry_after: i64,
        description: String,
    },
    /// 503 `temporarily_unavailable` with `Retry-After`.
    #[error("{0}")]
    Unavailable(String),
    /// 500 `server_error`; the cause is logged, not sent.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    error_description: String,
}

impl ApiError {
    /// The stable error code sent as `error`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) | Self::BodyTimeout(_) => "invalid_request",
            Self::InvalidGrant(_) => "invalid_grant",
            Self::InvalidScope(_) => "invalid_scope",
            Self::UnsupportedGrantType(_) => "unsupported_grant_type",
            Self::UnauthorizedClient(_) => "unauthorized_client",
            Self::InvalidTarget(_) => "invalid_target",
            Self::InvalidClient(_) => "invalid_client",
            Self::Unauthorized { error, .. } => error.unwrap_or("unauthorized"),
            Self::Forbidden(_) => "forbidden",
            Self::Conflict(_) => "conflict",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::TooManyRequests { .. } => "too_many_requests",
            Self::Unavailable(_) => "temporarily_unavailable",
            Self::Internal(e) if crate::service::is_outage(e) => "temporarily_unavailable",
            Self::Internal(_) => "server_error",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::InvalidRequest(_)
            | Self::InvalidGrant(_)
            | Self::InvalidScope(_)
            | Self::UnsupportedGrantType(_)
            | Self::UnauthorizedClient(_)
            | Self::InvalidTarget(_) => StatusCode::BAD_REQUEST,
            Self::InvalidClient(_) | Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(e) if crate::service::is_outage(e) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let description = match self {
            Self::Internal(e) if crate::service::is_outage(e) => {
                tracing::warn!(error = format!("{e:#}"), "database unavailable");
                "the database is not reachable; retry shortly".to_owned()
            }
            Self::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "internal error");
                "the server could not complete the request".to_owned()
            }
            other => other.to_string(),
        };
        let mut resp = HttpResponse::build(self.status_code());
        resp.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
        match self {
            Self::InvalidClient(_) => {
                resp.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"jwt-issuer\""),
                ));
            }
            Self::Unauthorized { error, description } => {
                let challenge = match error {
                    Some(code) => format!(
                        "Bearer realm=\"jwt-issuer\", error=\"{code}\", error_description=\"{}\"",
                        description.replace(['"', '\\'], "")
                    ),
                    None => "Bearer realm=\"jwt-issuer\"".to_owned(),
                };
                resp.insert_header((header::WWW_AUTHENTICATE, challenge));
            }
            Self::TooManyRequests { retry_after, .. } => {
                resp.insert_header((header::RETRY_AFTER, retry_after.max(&1).to_string()));
            }
            Self::Unavailable(_) => {
                resp.insert_header((header::RETRY_AFTER, "1"));
            }
            Self::BodyTimeout(_) => {
                resp.force_close();
            }
            Self::Internal(e) if crate::service::is_outage(e) => {
                resp.insert_header((header::RETRY_AFTER, "2"));
            }
            _ => {}
        }
        resp.json(Body {
            error: self.code(),
            error_description: description,
        })
    }
}

impl ApiError {
    /// 401 `invalid_token`: a bearer token was sent but is not acceptable.
    pub fn invalid_token(description: &str) -> Self {
        Self::Unauthorized {
            error: Some("invalid_token"),
            description: description.to_owned(),
        }
    }
}

impl From<GrantError> for ApiError {
    fn from(e: GrantError) -> Self {
        match e {
            GrantError::InvalidGrant(m) => Self::InvalidGrant(m.into()),
            GrantError::Rejected(m) => Self::InvalidGrant(m),
            GrantError::InvalidScope(m) => Self::InvalidScope(m),
            GrantError::InvalidTarget(m) => Self::InvalidTarget(m),
            GrantError::Throttled(secs) => Self::TooManyRequests {
                retry_after: secs,
                description: format!(
                    "too many failed logins for this username; retry after {secs} seconds"
                ),
            },
            GrantError::Busy => {
                Self::Unavailable("too many logins in progress; retry shortly".into())
            }
            GrantError::Internal(e) => Self::Internal(e),
        }
    }
}

// Every service error maps here, exhaustively, so a new variant cannot slip through as a 500.

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::NotFound(_) => Self::NotFound(e.to_string()),
            KeyError::Duplicate { .. } => Self::Conflict(e.to_string()),
            KeyError::Internal(e) => Self::Internal(e),
        }
    }
}

impl From<UserError> for ApiError {
    fn from(e: UserError) -> Self {
        match e {
            UserError::Duplicate(_) => Self::Conflict(e.to_string()),
            UserError::NotFound(_) => Self::NotFound(e.to_string()),
            UserError::BadPassword(m) => Self::InvalidRequest(m),
            UserError::WrongPassword => Self::InvalidRequest(e.to_string()),
            UserError::Throttled(secs) => Self::TooManyRequests {
                retry_after: secs,
                description: e.to_string(),
            },
            UserError::Busy => Self::Unavailable(e.to_string()),
            UserError::Internal(e) => Self::Internal(e),
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::UnknownUser(_) | RegistryError::UnknownKey(_) => {
                Self::NotFound(e.to_string())
            }
            RegistryError::Duplicate(_) => Self::Conflict(e.to_string()),
            RegistryError::Internal(e) => Self::Internal(e),
        }
    }
}

impl From<AuthFailure> for ApiError {
    fn from(e: AuthFailure) -> Self {
        Self::InvalidClient(e.to_string())
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Invalid(m) => Self::InvalidRequest(m),
            ClientError::Duplicate(_) | ClientError::Protected(_) => Self::Conflict(e.to_string()),
            ClientError::NotFound(m) => Self::NotFound(m),
            ClientError::Internal(e) => Self::Internal(e),
        }
    }
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::NotFound(_) | SessionError::UnknownUser(_) => {
                Self::NotFound(e.to_string())
            }
            SessionError::Internal(e) => Self::Internal(e),
        }
    }
}
