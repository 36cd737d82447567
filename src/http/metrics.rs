//! `GET /metrics`: Prometheus text format (version 0.0.4). Counters live in memory per
//! instance (Prometheus sums them across instances); label values come from fixed sets, so
//! the number of series stays bounded whatever clients send.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::{HttpResponse, web};

use super::AppState;

/// The instance's counters.
#[derive(Default)]
pub struct Metrics {
    /// Responses by status code.
    responses: Mutex<BTreeMap<u16, u64>>,
    /// Token endpoint requests by (grant type, outcome).
    token_requests: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// Seconds spent answering, summed with the count, for an average.
    seconds_micros: AtomicU64,
}

/// The grant types counted by name; anything else is `other`.
const GRANTS: &[&str] = &[
    "password",
    "refresh_token",
    "urn:ietf:params:oauth:grant-type:jwt-bearer",
    "client_credentials",
];

impl Metrics {
    /// Counts one response.
    pub fn response(&self, status: u16, micros: u64) {
        if let Ok(mut map) = self.responses.lock() {
            *map.entry(status).or_default() += 1;
        }
        self.seconds_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Counts one token request; `outcome` is `ok` or an error code.
    pub fn token_request(&self, grant_type: Option<&str>, outcome: &'static str) {
        let grant = grant_type
            .and_then(|g| GRANTS.iter().find(|known| **known == g))
            .copied()
            .unwrap_or(if grant_type.is_some() {
                "other"
            } else {
                "none"
            });
        if let Ok(mut map) = self.token_requests.lock() {
            *map.entry((grant, outcome)).or_default() += 1;
        }
    }

    fn render(&self, state: &AppState) -> String {
        let mut out = String::new();
        let ring = state.issuer.keys.current();
        let _ = writeln!(
            out,
            "# HELP jwt_issuer_up 1 while the service answers.\n# TYPE jwt_issuer_up gauge\njwt_issuer_up 1"
        );
        let _ = writeln!(
            out,
            "# HELP jwt_issuer_http_responses_total HTTP responses by status code."
        );
        let _ = writeln!(out, "# TYPE jwt_issuer_http_responses_total counter");
        let mut total = 0;
        if let Ok(map) = self.responses.lock() {
            for (status, n) in map.iter() {
                total += n;
                let _ = writeln!(
                    out,
                    "jwt_issuer_http_responses_total{{status=\"{status}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP jwt_issuer_http_response_seconds Time spent answering requests."
        );
        let _ = writeln!(out, "# TYPE jwt_issuer_http_response_seconds summary");
        let secs = self.seconds_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "jwt_issuer_http_response_seconds_sum {secs}\njwt_issuer_http_response_seconds_count {total}"
        );
        let _ = writeln!(
            out,
            "# HELP jwt_issuer_token_requests_total Token endpoint requests by grant type and outcome (ok or the OAuth error code)."
        );
        let _ = writeln!(out, "# TYPE jwt_issuer_token_requests_total counter");
        if let Ok(map) = self.token_requests.lock() {
            for ((grant, outcome), n) in map.iter() {
                let _ = writeln!(
                    out,
                    "jwt_issuer_token_requests_total{{grant_type=\"{grant}\",outcome=\"{outcome}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP jwt_issuer_published_keys Signing keys in the JWKS, by state."
        );
        let _ = writeln!(out, "# TYPE jwt_issuer_published_keys gauge");
        let mut states: BTreeMap<&str, u64> = BTreeMap::new();
        for k in &ring.published {
            *states.entry(k.state.as_str()).or_default() += 1;
        }
        for (state, n) in states {
            let _ = writeln!(out, "jwt_issuer_published_keys{{state=\"{state}\"}} {n}");
        }
        out
    }
}

/// `GET /metrics`.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render(&state))
}
