//! The HTTP side: fetching the metadata and the JWK Set with a timeout, a body cap, no
//! redirects, https only (but for loopback addresses), `If-None-Match`, and the freshness the
//! answer's `Cache-Control` gives.

use std::net::IpAddr;
use std::time::Duration;

use reqwest::header::{CACHE_CONTROL, ETAG, IF_NONE_MATCH};
use url::Url;

/// Why a fetch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The URL is not https and not a loopback address.
    #[error("{0} is neither https nor a loopback address")]
    Insecure(String),
    /// No answer in time, or the connection failed.
    #[error("{0}")]
    Transport(String),
    /// An answer other than 200 (or 304 to a conditional request).
    #[error("the server answered {0}")]
    Status(u16),
    /// The body was larger than allowed.
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    /// The body is not what was expected.
    #[error("{0}")]
    Invalid(&'static str),
}

/// A fetched document.
pub(crate) enum Fetched {
    /// 200: the body, its `ETag`, and its `max-age` (if it gave one).
    Fresh {
        body: Vec<u8>,
        etag: Option<String>,
        max_age: Option<Duration>,
    },
    /// 304 to `If-None-Match`: what we have is still current, for `max_age`.
    NotModified { max_age: Option<Duration> },
}

/// An HTTP client with the limits every fetch has.
#[derive(Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    max_body: usize,
}

impl Http {
    pub fn new(timeout: Duration, max_body: usize) -> Result<Self, FetchError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("jwt-issuer-verify/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        Ok(Self { client, max_body })
    }

    /// GET `url`, conditional on `etag` when given.
    pub async fn get(&self, url: &Url, etag: Option<&str>) -> Result<Fetched, FetchError> {
        check_secure(url)?;
        let mut request = self.client.get(url.clone());
        if let Some(etag) = etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let response = request
            .send()
            .await
            .map_err(|e| FetchError::Transport(transport(&e)))?;
        let max_age = response
            .headers()
            .get(CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age);
        match response.status().as_u16() {
            304 if etag.is_some() => return Ok(Fetched::NotModified { max_age }),
            200 => {}
            other => return Err(FetchError::Status(other)),
        }
        let new_etag = response
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = self.body(response).await?;
        Ok(Fetched::Fresh {
            body,
            etag: new_etag,
            max_age,
        })
    }
}

impl Http {
    /// POST a form to `url` with HTTP Basic credentials; the body of a 200.
    pub async fn post_form(
        &self,
        url: &Url,
        basic: (&str, &str),
        form: &[(&str, &str)],
    ) -> Result<Vec<u8>, FetchError> {
        check_secure(url)?;
        let response = self
            .client
            .post(url.clone())
            .basic_auth(basic.0, Some(basic.1))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form)
                    .finish(),
            )
            .send()
            .await
            .map_err(|e| FetchError::Transport(transport(&e)))?;
        if response.status().as_u16() != 200 {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        self.body(response).await
    }

    async fn body(&self, mut response: reqwest::Response) -> Result<Vec<u8>, FetchError> {
        if response
            .content_length()
            .is_some_and(|n| n > self.max_body as u64)
        {
            return Err(FetchError::TooLarge(self.max_body));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| FetchError::Transport(transport(&e)))?
        {
            if body.len() + chunk.len() > self.max_body {
                return Err(FetchError::TooLarge(self.max_body));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

fn transport(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer in time".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        "the connection failed".to_owned()
    }
}

/// https, or plain http to a loopback address (a sidecar, a test).
pub(crate) fn check_secure(url: &Url) -> Result<(), FetchError> {
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(FetchError::Insecure(url.to_string())),
    }
}

/// The `max-age` of a `Cache-Control` value; `no-cache`/`no-store` count as zero.
pub(crate) fn max_age(value: &str) -> Option<Duration> {
    let mut age = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-cache" || lower == "no-store" {
            return Some(Duration::ZERO);
        }
        if let Some(n) = lower.strip_prefix("max-age=") {
            age = n
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_max_age() {
        assert_eq!(
            max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(max_age("Max-Age=\"60\""), Some(Duration::from_secs(60)));
        assert_eq!(max_age("no-store, max-age=300"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=-1"), None);
    }

    #[test]
    fn https_or_loopback_only() {
        for ok in [
            "https://issuer.example/jwks",
            "http://127.0.0.1:8080/jwks",
            "http://[::1]/jwks",
            "http://localhost/jwks",
        ] {
            assert!(check_secure(&Url::parse(ok).unwrap()).is_ok(), "{ok}");
        }
        for bad in [
            "http://issuer.example/jwks",
            "http://10.0.0.1/jwks",
            "ftp://127.0.0.1/jwks",
        ] {
            assert!(check_secure(&Url::parse(bad).unwrap()).is_err(), "{bad}");
        }
    }
}
