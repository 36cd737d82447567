//! djangorestframework-simplejwt's token endpoints (docs/CONTRACT.md §7): `POST /api/token/`,
//! `/api/token/refresh/`, `/api/token/verify/` and `/api/token/blacklist/`. The first two are
//! the password and refresh grants of `/oauth/token` for the `default` client, the last one is
//! `/oauth/revoke` for a refresh token — the same service calls, so the same throttling,
//! sessions, audit and metrics — in simplejwt 5.x's wire format (ROTATE_REFRESH_TOKENS and
//! BLACKLIST_AFTER_ROTATION on): bodies as Django REST framework parses them (JSON, form or
//! multipart), answers and errors as simplejwt and DRF send them, so that a front-end written
//! for simplejwt works unchanged.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};

use super::AppState;
use super::error::ApiError;
use super::params::{MAX_BODY, read_body};
use super::peer;
use crate::domain::{ClientId, GrantType, Password, Scope, Username};
use crate::service::grants::{GrantError, Issued, PasswordLogin, TokenRequest};
use crate::service::revocation::{TokenKind, TokenState};

/// The challenge of simplejwt's 401s (`TokenViewBase.www_authenticate_realm`).
const CHALLENGE: &str = "Bearer realm=\"api\"";

/// An answer in DRF's shapes.
#[derive(Debug)]
enum DrfError {
    /// 400 `{"field": ["message"], …}`: serializer field errors, in field order.
    Fields(Vec<(&'static str, &'static str)>),
    /// 400 `{"non_field_errors": ["message"]}`.
    NonField(String),
    /// 400 `{"detail": "JSON parse error - …"}` and other parse failures.
    Parse(String),
    /// 401 `{"detail": …}`: a wrong password, an unknown or inactive user.
    NoActiveAccount,
    /// 401 `{"detail": …, "code": "token_not_valid"}`.
    TokenNotValid(&'static str),
    /// 401 `{"detail": …, "code": "no_active_account"}`: a refresh token of a disabled user.
    NoActiveAccountForToken,
    /// 405 `{"detail": "Method \"GET\" not allowed."}` with `Allow`.
    MethodNotAllowed(Method),
    /// 415 `{"detail": "Unsupported media type \"…\" in request."}`.
    UnsupportedMediaType(String),
    /// 429 `{"detail": "Request was throttled. Expected available in N seconds."}`.
    Throttled(i64),
    /// Anything else (413, 503, 500, a refused client): our own error, with a `detail` body.
    Api(ApiError),
}

impl From<ApiError> for DrfError {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl DrfError {
    fn response(self) -> HttpResponse {
        let (status, body) = match self {
            Self::Fields(errors) => {
                return HttpResponse::BadRequest()
                    .json(InOrder(errors.into_iter().map(|(f, m)| (f, [m])).collect()));
            }
            Self::NonField(message) => (
                StatusCode::BAD_REQUEST,
                json!({"non_field_errors": [message]}),
            ),
            Self::Parse(message) => (StatusCode::BAD_REQUEST, json!({"detail": message})),
            Self::NoActiveAccount => (
                StatusCode::UNAUTHORIZED,
                json!({"detail": "No active account found with the given credentials"}),
            ),
            Self::TokenNotValid(message) => (
                StatusCode::UNAUTHORIZED,
                json!({"detail": message, "code": "token_not_valid"}),
            ),
            Self::NoActiveAccountForToken => (
                StatusCode::UNAUTHORIZED,
                json!({"detail": "No active account found for the given token.", "code": "no_active_account"}),
            ),
            Self::MethodNotAllowed(method) => {
                return HttpResponse::MethodNotAllowed()
                    .insert_header((header::ALLOW, "POST, OPTIONS"))
                    .json(json!({"detail": format!("Method \"{method}\" not allowed.")}));
            }
            Self::UnsupportedMediaType(media_type) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                json!({"detail": format!("Unsupported media type \"{media_type}\" in request.")}),
            ),
            Self::Throttled(seconds) => {
                let seconds = seconds.max(1);
                let unit = if seconds == 1 { "second" } else { "seconds" };
                return HttpResponse::TooManyRequests()
                    .insert_header((header::RETRY_AFTER, seconds.to_string()))
                    .json(json!({"detail": format!(
                        "Request was throttled. Expected available in {seconds} {unit}."
                    )}));
            }
            Self::Api(e) => {
                // Our own answer (status, headers such as Retry-After, the logging of a 500),
                // with the body a DRF client reads: `detail`.
                let ours = actix_web::ResponseError::error_response(&e);
                let mut resp = HttpResponse::build(ours.status());
                for (name, value) in ours.headers() {
                    if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                        resp.insert_header((name.clone(), value.clone()));
                    }
                }
                let detail = match &e {
                    ApiError::Internal(_) => ours
                        .status()
                        .canonical_reason()
                        .unwrap_or("error")
                        .to_owned(),
                    other => other.to_string(),
                };
                return resp.json(json!({"detail": detail}));
            }
        };
        let mut resp = HttpResponse::build(status);
        if status == StatusCode::UNAUTHORIZED {
            resp.insert_header((header::WWW_AUTHENTICATE, CHALLENGE));
        }
        resp.json(body)
    }
}

/// A request body as DRF's parsers read it: field name → value.
enum Data {
    /// A JSON object (values of any JSON type).
    Json(Map<String, Value>),
    /// A form or multipart body: the last value of each name, as DRF's `QueryDict` gives it.
    Form(Vec<(String, String)>),
}

/// One field as a DRF `CharField` sees it: required, not null, not blank once trimmed, and a
/// string (a JSON number is taken as its decimal text, as Python's `str` would).
fn char_field(data: &Data, name: &'static str) -> Result<String, &'static str> {
    let value = match data {
        Data::Json(object) => match object.get(name) {
            None => return Err("This field is required."),
            Some(Value::Null) => return Err("This field may not be null."),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => return Err("Not a valid string."),
        },
        Data::Form(pairs) => match pairs.iter().rev().find(|(k, _)| k == name) {
            None => return Err("This field is required."),
            Some((_, v)) => v.clone(),
        },
    };
    if value.trim().is_empty() {
        return Err("This field may not be blank.");
    }
    Ok(value)
}

/// The named fields, or every field error at once (DRF validates them all before answering).
fn fields<const N: usize>(data: &Data, names: [&'static str; N]) -> Result<[String; N], DrfError> {
    let mut errors = Vec::new();
    let values = names.map(|name| {
        char_field(data, name).unwrap_or_else(|message| {
            errors.push((name, message));
            String::new()
        })
    });
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(DrfError::Fields(errors))
    }
}

/// Parses the body as DRF's default parsers do: JSON, form or multipart by `Content-Type`; no
/// `Content-Type` is an empty form; anything else is 415 naming what was sent.
async fn parse(req: &HttpRequest, payload: web::Payload) -> Result<Data, DrfError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let body = read_body(req, payload).await?;
    let Some(content_type) = content_type else {
        return Ok(Data::Form(Vec::new()));
    };
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media_type.as_str() {
        "application/json" => {
            let value: Value = super::params::strict_json(&body).map_err(|mut message| {
                message.truncate(200);
                DrfError::Parse(format!("JSON parse error - {message}"))
            })?;
            match value {
                Value::Object(object) => Ok(Data::Json(object)),
                Value::Null => Err(DrfError::NonField("No data provided".into())),
                other => Err(DrfError::NonField(format!(
                    "Invalid data. Expected a dictionary, but got {}.",
                    python_type(&other)
                ))),
            }
        }
        "application/x-www-form-urlencoded" => Ok(Data::Form(
            url::form_urlencoded::parse(&body).into_owned().collect(),
        )),
        "multipart/form-data" => multipart(&content_type, body).await,
        _ => {
            let mut shown = content_type;
            shown.truncate(200);
            Err(DrfError::UnsupportedMediaType(shown))
        }
    }
}

/// The text fields of a `multipart/form-data` body (what a browser's `FormData` sends); file
/// parts are ignored, as a serializer of text fields ignores them.
async fn multipart(content_type: &str, body: web::Bytes) -> Result<Data, DrfError> {
    let malformed = |e: multer::Error| {
        let mut message = e.to_string();
        message.truncate(200);
        DrfError::Parse(format!("Multipart form parse error - {message}"))
    };
    let boundary = multer::parse_boundary(content_type).map_err(malformed)?;
    let constraints = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().whole_stream(MAX_BODY as u64));
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
    let mut parts = multer::Multipart::with_constraints(stream, boundary, constraints);
    let mut pairs = Vec::new();
    while let Some(field) = parts.next_field().await.map_err(malformed)? {
        let Some(name) = field.name().map(str::to_owned) else {
            continue;
        };
        if field.file_name().is_some() {
            continue;
        }
        pairs.push((name, field.text().await.map_err(malformed)?));
    }
    Ok(Data::Form(pairs))
}

/// The request's body, parsed as DRF would, and the named fields of it (every field error at
/// once).
async fn body_fields<const N: usize>(
    req: &HttpRequest,
    payload: web::Payload,
    names: [&'static str; N],
) -> Result<[String; N], DrfError> {
    fields(&parse(req, payload).await?, names)
}

/// The Python type name DRF puts in "Expected a dictionary, but got …".
fn python_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// The request for the `default` client, as `/oauth/token` builds it for a request without
/// client credentials (simplejwt's views ignore `Authorization`).
fn default_request(
    req: &HttpRequest,
    state: &AppState,
    grant: GrantType,
) -> Result<TokenRequest, DrfError> {
    let client = state
        .issuer
        .registry
        .current()
        .client(ClientId::DEFAULT)
        .filter(|c| !c.confidential && c.allows(grant))
        .ok_or_else(|| {
            ApiError::UnauthorizedClient(format!(
                "the client {} (public) must allow the {grant} grant for /api/token/",
                ClientId::DEFAULT
            ))
        })?;
    Ok(TokenRequest {
        client,
        audiences: Vec::new(),
        scope: Scope::default(),
        source: peer::client_address(req),
        user_agent: peer::user_agent(req),
    })
}

/// Whatever the grant refused, in simplejwt's terms.
fn refused(e: GrantError, invalid: DrfError) -> DrfError {
    match e {
        GrantError::InvalidGrant(_) | GrantError::Rejected(_) => invalid,
        GrantError::Throttled(seconds) => DrfError::Throttled(seconds),
        other => DrfError::Api(other.into()),
    }
}

/// A JSON object whose keys keep the given order (DRF answers fields in declaration order).
struct InOrder<K, V>(Vec<(K, V)>);

impl<K: serde::Serialize, V: serde::Serialize> serde::Serialize for InOrder<K, V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// simplejwt's pair: `{"refresh", "access"}`, in that order.
fn pair(issued: &Issued) -> HttpResponse {
    let refresh = issued.refresh_token.as_ref().map_or("", |t| t.expose());
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .json(InOrder(vec![
            ("refresh", refresh),
            ("access", issued.access_token.as_str()),
        ]))
}

/// `POST /api/token/` `{username, password}` → `{"refresh", "access"}`.
#[utoipa::path(
    post,
    path = "/api/token/",
    tag = "simplejwt",
    request_body(content = crate::http::openapi::SimpleJwtLogin, content_type = "application/json"),
    responses(
        (status = 200, description = "access and refresh", body = crate::http::openapi::SimpleJwtTokens),
        (status = 400, description = "Field errors", body = crate::http::openapi::SimpleJwtError),
        (status = 401, description = "No active account, or a bad token", body = crate::http::openapi::SimpleJwtError),
        (status = 413, description = "Too large", body = crate::http::openapi::SimpleJwtError),
        (status = 415, description = "Unsupported media type", body = crate::http::openapi::SimpleJwtError),
        (status = 503, description = "Unavailable", body = crate::http::openapi::SimpleJwtError)
    )
)]
pub async fn obtain(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let result = async {
        let [username, password] = body_fields(&req, payload, ["username", "password"]).await?;
        let password = Password::for_login(&password).map_err(ApiError::InvalidRequest)?;
        let login = PasswordLogin {
            // A name that cannot exist is just a wrong username.
            username: Username::parse(&username).ok(),
            password,
        };
        let request = default_request(&req, &state, GrantType::Password)?;
        state
            .issuer
            .password(login, request)
            .await
            .map_err(|e| refused(e, DrfError::NoActiveAccount))
    }
    .await;
    finish(&state, GrantType::Password, result)
}

/// `POST /api/token/refresh/` `{refresh}` → `{"refresh", "access"}` (rotated).
#[utoipa::path(
    post,
    path = "/api/token/refresh/",
    tag = "simplejwt",
    request_body(content = crate::http::openapi::SimpleJwtRefresh, content_type = "application/json"),
    responses(
        (status = 200, description = "a new access (and rotated refresh) token", body = crate::http::openapi::SimpleJwtTokens),
        (status = 400, description = "Field errors", body = crate::http::openapi::SimpleJwtError),
        (status = 401, description = "No active account, or a bad token", body = crate::http::openapi::SimpleJwtError),
        (status = 413, description = "Too large", body = crate::http::openapi::SimpleJwtError),
        (status = 415, description = "Unsupported media type", body = crate::http::openapi::SimpleJwtError),
        (status = 503, description = "Unavailable", body = crate::http::openapi::SimpleJwtError)
    )
)]
pub async fn refresh(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let result = async {
        let [presented] = body_fields(&req, payload, ["refresh"]).await?;
        let request = default_request(&req, &state, GrantType::RefreshToken)?;
        match state.issuer.refresh(&presented, None, request).await {
            Ok(issued) => Ok(issued),
            // Refused: say why as simplejwt would (one more lookup, on failures only).
            Err(GrantError::InvalidGrant(_)) => {
                Err(not_a_live_refresh_token(&state, &presented).await)
            }
            Err(e) => Err(refused(e, DrfError::TokenNotValid("Token is invalid"))),
        }
    }
    .await;
    finish(&state, GrantType::RefreshToken, result)
}

/// `POST /api/token/verify/` `{token}` → `{}` for a live access token or refresh token.
#[utoipa::path(
    post,
    path = "/api/token/verify/",
    tag = "simplejwt",
    request_body(content = crate::http::openapi::SimpleJwtToken, content_type = "application/json"),
    responses(
        (status = 200, description = "the token is valid: {}", body = crate::http::openapi::SimpleJwtTokens),
        (status = 400, description = "Field errors", body = crate::http::openapi::SimpleJwtError),
        (status = 401, description = "No active account, or a bad token", body = crate::http::openapi::SimpleJwtError),
        (status = 413, description = "Too large", body = crate::http::openapi::SimpleJwtError),
        (status = 415, description = "Unsupported media type", body = crate::http::openapi::SimpleJwtError),
        (status = 503, description = "Unavailable", body = crate::http::openapi::SimpleJwtError)
    )
)]
pub async fn verify(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let result = async {
        let [token] = body_fields(&req, payload, ["token"]).await?;
        match state
            .issuer
            .token_state(&token)
            .await
            .map_err(ApiError::from)?
        {
            (_, TokenState::Live) => Ok(()),
            // simplejwt's verify answers a blacklisted token with a validation error, not 401.
            // It does not look at the user; we do, and a disabled user's token is refused the
            // same way.
            (_, TokenState::Revoked | TokenState::UserDisabled) => {
                Err(DrfError::NonField("Token is blacklisted".into()))
            }
            (_, TokenState::Expired) => Err(DrfError::TokenNotValid("Token is expired")),
            (_, TokenState::Invalid) => Err(DrfError::TokenNotValid("Token is invalid")),
        }
    }
    .await;
    empty(result)
}

/// `POST /api/token/blacklist/` `{refresh}` → `{}`: the refresh token's session ends (its whole
/// family, as `/oauth/revoke` does), and the access tokens issued from it are revoked.
#[utoipa::path(
    post,
    path = "/api/token/blacklist/",
    tag = "simplejwt",
    request_body(content = crate::http::openapi::SimpleJwtRefresh, content_type = "application/json"),
    responses(
        (status = 200, description = "blacklisted: {}", body = crate::http::openapi::SimpleJwtTokens),
        (status = 400, description = "Field errors", body = crate::http::openapi::SimpleJwtError),
        (status = 401, description = "No active account, or a bad token", body = crate::http::openapi::SimpleJwtError),
        (status = 413, description = "Too large", body = crate::http::openapi::SimpleJwtError),
        (status = 415, description = "Unsupported media type", body = crate::http::openapi::SimpleJwtError),
        (status = 503, description = "Unavailable", body = crate::http::openapi::SimpleJwtError)
    )
)]
pub async fn blacklist(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let result = async {
        let [presented] = body_fields(&req, payload, ["refresh"]).await?;
        let live = matches!(
            state
                .issuer
                .token_state(&presented)
                .await
                .map_err(ApiError::from)?,
            (TokenKind::Refresh, TokenState::Live)
        );
        if !live {
            return Err(not_a_live_refresh_token(&state, &presented).await);
        }
        let source = peer::client_address(&req).map(|ip| ip.to_string());
        state
            .issuer
            .revoke(&presented, source)
            .await
            .map_err(ApiError::from)?;
        Ok(())
    }
    .await;
    empty(result)
}

/// simplejwt's `{}` on success.
fn empty(result: Result<(), DrfError>) -> HttpResponse {
    match result {
        Ok(()) => HttpResponse::Ok().json(json!({})),
        Err(e) => e.response(),
    }
}

/// Why `presented` is not a refresh token that can be used, in simplejwt's words: what its
/// `RefreshToken(…)` raises for such a token.
async fn not_a_live_refresh_token(state: &AppState, presented: &str) -> DrfError {
    match state.issuer.token_state(presented).await {
        Err(e) => DrfError::Api(ApiError::from(e)),
        Ok((_, TokenState::Expired)) => DrfError::TokenNotValid("Token is expired"),
        Ok((TokenKind::Refresh, TokenState::UserDisabled)) => DrfError::NoActiveAccountForToken,
        Ok((_, TokenState::Invalid)) => DrfError::TokenNotValid("Token is invalid"),
        Ok((TokenKind::Access, _)) => DrfError::TokenNotValid("Token has wrong type"),
        Ok((TokenKind::Refresh, TokenState::Revoked)) => {
            DrfError::TokenNotValid("Token is blacklisted")
        }
        // Live, yet refused: issued to another client than `default`.
        Ok((TokenKind::Refresh, TokenState::Live)) => DrfError::TokenNotValid("Token is invalid"),
    }
}

/// Counts the request with `/oauth/token`'s and answers it.
fn finish(state: &AppState, grant: GrantType, result: Result<Issued, DrfError>) -> HttpResponse {
    let outcome = match &result {
        Ok(_) => "ok",
        Err(
            DrfError::NoActiveAccount
            | DrfError::NoActiveAccountForToken
            | DrfError::TokenNotValid(_),
        ) => "invalid_grant",
        Err(DrfError::Throttled(_)) => "too_many_requests",
        Err(DrfError::Api(e)) => e.code(),
        Err(_) => "invalid_request",
    };
    state.metrics.token_request(Some(grant.as_str()), outcome);
    match result {
        Ok(issued) => pair(&issued),
        Err(e) => e.response(),
    }
}

/// Any other method on these paths: DRF's 405, except `OPTIONS`, which DRF answers with the
/// view's metadata (a CORS preflight never gets here: the CORS middleware answers it).
pub async fn not_allowed(req: HttpRequest) -> HttpResponse {
    if req.method() != Method::OPTIONS {
        return DrfError::MethodNotAllowed(req.method().clone()).response();
    }
    let (name, description) = match req.path() {
        "/api/token/verify/" => (
            "Token Verify",
            "Takes a token and indicates if it is valid.  This view provides no\ninformation about a token's fitness for a particular use.",
        ),
        "/api/token/blacklist/" => (
            "Token Blacklist",
            "Takes a token and blacklists it. Must be used with the\n`rest_framework_simplejwt.token_blacklist` app installed.",
        ),
        "/api/token/refresh/" => (
            "Token Refresh",
            "Takes a refresh type JSON web token and returns an access type JSON web\ntoken if the refresh token is valid.",
        ),
        _ => (
            "Token Obtain Pair",
            "Takes a set of user credentials and returns an access and refresh JSON web\ntoken pair to prove the authentication of those credentials.",
        ),
    };
    HttpResponse::Ok()
        .insert_header((header::ALLOW, "POST, OPTIONS"))
        .json(json!({
            "name": name,
            "description": description,
            "renders": ["application/json", "text/html"],
            "parses": ["application/json", "application/x-www-form-urlencoded", "multipart/form-data"],
        }))
}
