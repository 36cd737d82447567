//! Request bodies of the OAuth endpoints: `application/x-www-form-urlencoded` (RFC 6749) or a
//! JSON object with the same fields. Bodies are read up to [`MAX_BODY`] bytes; a parameter
//! may appear once (RFC 6749 §3.2), except the [`REPEATABLE`] ones (RFC 8707 `resource`, and
//! `audience`), which may repeat in a form or be an array of strings in JSON.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::http::header;
use actix_web::web;

use super::error::ApiError;

/// The largest request body accepted anywhere, in bytes.
pub const MAX_BODY: usize = 16 * 1024;

/// How long a whole request body may take to arrive when no app data says otherwise. A client
/// trickling its body (a byte every few seconds) would otherwise hold its connection for ever.
pub const BODY_DEADLINE: Duration = Duration::from_secs(10);

/// This app's deadline for a request body (`--body-timeout`), as app data.
#[derive(Clone, Copy, Debug)]
pub struct BodyDeadline(pub Duration);

/// Reads the whole body, refusing more than [`MAX_BODY`] bytes (also when it arrives without
/// a `Content-Length`, which the middleware checks first) or a body that has not arrived within
/// the deadline (408, and the connection is closed).
pub async fn read_body(req: &HttpRequest, payload: web::Payload) -> Result<web::Bytes, ApiError> {
    let deadline = req
        .app_data::<BodyDeadline>()
        .map_or(BODY_DEADLINE, |d| d.0);
    match tokio::time::timeout(deadline, payload.to_bytes_limited(MAX_BODY)).await {
        Err(_) => Err(ApiError::BodyTimeout(deadline.as_secs().max(1))),
        Ok(Err(_)) => Err(ApiError::PayloadTooLarge(MAX_BODY)),
        Ok(Ok(Err(e))) => Err(ApiError::InvalidRequest(format!(
            "could not read the request body: {e}"
        ))),
        Ok(Ok(Ok(body))) => Ok(body),
    }
}

/// Parses a JSON document, refusing an object that names one key twice, at any depth: a
/// parameter may appear once (RFC 6749 §3.2), in JSON as in a form, and `serde_json` would keep
/// the last of them silently.
pub fn strict_json(body: &[u8]) -> Result<serde_json::Value, String> {
    use serde::de::DeserializeSeed as _;
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = Strict.deserialize(&mut de).map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(value)
}

/// A JSON value whose objects have distinct keys.
struct Strict;

impl<'de> serde::de::DeserializeSeed<'de> for Strict {
    type Value = serde_json::Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Strict {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Strict)? {
            items.push(item);
        }
        Ok(items.into())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                let shown: String = key.chars().take(64).collect();
                return Err(serde::de::Error::custom(format!(
                    "the key {shown:?} is repeated"
                )));
            }
            let value = map.next_value_seed(Strict)?;
            object.insert(key, value);
        }
        Ok(object.into())
    }
}

/// How a malformed query string is answered: a JSON 400 like every other bad parameter.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|e, _| {
        let mut message = e.to_string();
        message.truncate(200);
        ApiError::InvalidRequest(format!("bad query parameters: {message}")).into()
    })
}

/// The request's media type, lower-cased, without parameters (`""` when absent).
fn media_type(req: &HttpRequest) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// The parameters that may be given more than once.
pub const REPEATABLE: &[&str] = &["audience", "resource"];

/// At most this many values of one repeatable parameter.
const MAX_REPEATS: usize = 64;

/// The parameters of one request.
#[derive(Default)]
pub struct Params {
    single: HashMap<String, String>,
    repeated: HashMap<String, Vec<String>>,
}

// Values include passwords and tokens: list the names only.
impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set()
            .entries(self.single.keys().chain(self.repeated.keys()))
            .finish()
    }
}

impl Params {
    /// Parses the body by its `Content-Type`.
    pub async fn from_body(req: &HttpRequest, payload: web::Payload) -> Result<Self, ApiError> {
        let content_type = media_type(req);
        let body = read_body(req, payload).await?;
        match content_type.as_str() {
            "application/x-www-form-urlencoded" => Self::from_form(&body),
            "application/json" => Self::from_json(&body),
            "" => Err(ApiError::InvalidRequest(
                "missing Content-Type: send application/x-www-form-urlencoded".into(),
            )),
            other => Err(ApiError::UnsupportedMediaType(format!(
                "unsupported Content-Type {other}: send application/x-www-form-urlencoded or application/json"
            ))),
        }
    }

    fn insert(&mut self, name: String, value: String) -> Result<(), ApiError> {
        if REPEATABLE.contains(&name.as_str()) {
            let values = self.repeated.entry(name).or_default();
            if values.len() >= MAX_REPEATS {
                return Err(ApiError::InvalidRequest(format!(
                    "at most {MAX_REPEATS} values of one parameter"
                )));
            }
            values.push(value);
            return Ok(());
        }
        let shown = name.chars().take(64).collect::<String>();
        if self.single.insert(name, value).is_some() {
            return Err(ApiError::InvalidRequest(format!(
                "parameter {shown} is repeated"
            )));
        }
        Ok(())
    }

    /// Parses an `application/x-www-form-urlencoded` body.
    pub fn from_form(body: &[u8]) -> Result<Self, ApiError> {
        let mut params = Self::default();
        for (k, v) in url::form_urlencoded::parse(body) {
            params.insert(k.into_owned(), v.into_owned())?;
        }
        Ok(params)
    }

    /// Parses a JSON object body.
    pub fn from_json(body: &[u8]) -> Result<Self, ApiError> {
        let value = strict_json(body).map_err(|e| {
            let mut message = format!("the body is not valid JSON: {e}");
            message.truncate(200);
            ApiError::InvalidRequest(message)
        })?;
        let serde_json::Value::Object(obj) = value else {
            return Err(ApiError::InvalidRequest(
                "the JSON body must be an object".into(),
            ));
        };
        let mut params = Self::default();
        for (k, v) in obj {
            match v {
                serde_json::Value::String(s) => params.insert(k, s)?,
                serde_json::Value::Null => {}
                serde_json::Value::Array(items) if REPEATABLE.contains(&k.as_str()) => {
                    for item in items {
                        let serde_json::Value::String(s) = item else {
                            return Err(ApiError::InvalidRequest(format!(
                                "parameter {k} must be a string or an array of strings"
                            )));
                        };
                        params.insert(k.clone(), s)?;
                    }
                }
                _ => {
                    let shown = k.chars().take(64).collect::<String>();
                    return Err(ApiError::InvalidRequest(format!(
                        "parameter {shown} must be a string"
                    )));
                }
            }
        }
        Ok(params)
    }

    /// An optional parameter; an empty value counts as absent (RFC 6749 §3.1).
    pub fn optional(&self, name: &str) -> Option<&str> {
        self.single
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Every non-empty value of a [`REPEATABLE`] parameter, in order.
    pub fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.repeated
            .get(name)
            .into_iter()
            .flatten()
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A required parameter.
    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.optional(name)
            .ok_or_else(|| ApiError::InvalidRequest(format!("missing parameter {name}")))
    }
}

/// Reads a JSON body into `T`; an empty body is `None`. Other content types get 415, bad JSON
/// or fields a clear 400.
pub async fn optional_json<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Option<T>, ApiError> {
    let body = read_body(req, payload).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let content_type = media_type(req);
    if content_type != "application/json" {
        return Err(ApiError::UnsupportedMediaType(
            "send the body as application/json".into(),
        ));
    }
    strict_json(&body)
        .and_then(|value| serde_json::from_value(value).map_err(|e| e.to_string()))
        .map(Some)
        .map_err(|mut msg| {
            msg.truncate(200);
            ApiError::InvalidRequest(format!("invalid JSON body: {msg}"))
        })
}

/// Reads a required JSON body into `T`.
pub async fn json<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<T, ApiError> {
    optional_json(req, payload)
        .await?
        .ok_or_else(|| ApiError::InvalidRequest("a JSON body is required".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_reject_repeats_and_json_rejects_non_strings() {
        assert!(Params::from_form(b"a=1&a=2").is_err());
        let p = Params::from_form(b"grant_type=password&scope=").unwrap();
        assert_eq!(p.optional("grant_type"), Some("password"));
        assert_eq!(p.optional("scope"), None);
        assert!(Params::from_json(br#"{"grant_type": 1}"#).is_err());
        assert!(Params::from_json(br#"[1]"#).is_err());
        assert!(Params::from_json(b"{").is_err());
        let j = Params::from_json(br#"{"grant_type":"password","scope":null}"#).unwrap();
        assert_eq!(j.optional("grant_type"), Some("password"));
    }

    #[test]
    fn json_refuses_a_repeated_key_at_any_depth() {
        assert!(Params::from_json(br#"{"username": "alice", "username": "admin"}"#).is_err());
        let err = strict_json(br#"{"a": {"b": 1, "b": 2}}"#).unwrap_err();
        assert!(err.contains("\"b\" is repeated"), "{err}");
        assert!(strict_json(br#"[{"a": 1}, {"a": 2}]"#).is_ok());
        assert!(strict_json(br#"{"a": 1} x"#).is_err(), "trailing data");
        assert_eq!(
            strict_json(br#"{"a": [1, 2.5, "x", null, true, {"b": -3}]}"#).unwrap(),
            serde_json::json!({"a": [1, 2.5, "x", null, true, {"b": -3}]})
        );
    }

    #[test]
    fn resource_and_audience_may_repeat() {
        let p = Params::from_form(b"resource=a&resource=b&audience=c&resource=").unwrap();
        assert_eq!(p.all("resource").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(p.all("audience").collect::<Vec<_>>(), ["c"]);
        let j = Params::from_json(br#"{"resource":["a","b"],"audience":"c"}"#).unwrap();
        assert_eq!(j.all("resource").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(j.all("audience").collect::<Vec<_>>(), ["c"]);
        assert!(Params::from_json(br#"{"resource":[1]}"#).is_err());
        assert!(Params::from_json(br#"{"scope":["a"]}"#).is_err());
        let many = "resource=x&".repeat(65);
        assert!(Params::from_form(many.as_bytes()).is_err());
    }
}
