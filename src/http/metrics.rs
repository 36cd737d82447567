//! `GET /metrics`: the Prometheus text format (0.0.4), or OpenMetrics text when the request's
//! `Accept` asks for it (as Prometheus itself does), encoded by prometheus-client.
//! Metrics live in memory per instance (Prometheus sums them across instances). Label values
//! come from fixed sets (route patterns, not paths; known grant types; status classes), so the
//! number of series stays bounded whatever clients send. With `--metrics-bind` the endpoint is
//! served on its own listener and not on the main one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::AppState;
use crate::clock::Clock;
use crate::service::keyring::KeyStore;
use crate::service::passwords::PasswordHasher;

/// The grant types counted by name; anything else is `other`.
const GRANTS: &[&str] = &[
    "password",
    "refresh_token",
    "urn:ietf:params:oauth:grant-type:jwt-bearer",
    "client_credentials",
];

/// How long the database counts (sessions, revocations) are reused between scrapes.
const COUNTS_MAX_AGE: Duration = Duration::from_secs(15);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    grant_type: &'static str,
    outcome: &'static str,
}

/// The instance's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Histogram>,
    tokens: Family<TokenLabels, Counter>,
    sessions: Gauge,
    revoked: Gauge,
    /// When `sessions` and `revoked` were last read from the database.
    counted: Mutex<Option<Instant>>,
}

impl Metrics {
    /// Registers every metric; `hasher` lends its queue and its wait-time histogram, `keys`
    /// the published keys and the active one's age.
    pub fn new(hasher: &PasswordHasher, keys: Arc<KeyStore>, clock: Clock) -> Self {
        // The process's figures under their usual names; the service's under `jwt_issuer_`.
        START.get_or_init(SystemTime::now);
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Process));
        let ours = registry.sub_registry_with_prefix("jwt_issuer");
        let requests = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            // 0.5 ms to 8 s.
            Histogram::new(exponential_buckets(0.0005, 2.0, 15))
        });
        ours.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by method, route pattern and status class",
            requests.clone(),
        );
        let tokens = Family::<TokenLabels, Counter>::default();
        ours.register(
            "token_requests",
            "Token requests by grant type and outcome (ok or the OAuth error code)",
            tokens.clone(),
        );
        ours.register(
            "password_hash_wait_seconds",
            "Time a password hash or check waited for a hashing thread",
            hasher.wait_histogram(),
        );
        ours.register_collector(Box::new(Scraped {
            hasher: hasher.clone(),
            keys,
            clock,
        }));
        let sessions = Gauge::default();
        ours.register(
            "sessions",
            "Live sessions (refresh-token families not ended nor past their maximum age), read at most every 15 s",
            sessions.clone(),
        );
        let revoked = Gauge::default();
        ours.register(
            "revoked_access_tokens",
            "Access tokens revoked before their expiry and not yet expired, read at most every 15 s",
            revoked.clone(),
        );
        Self {
            registry,
            requests,
            tokens,
            sessions,
            revoked,
            counted: Mutex::new(None),
        }
    }

    /// Counts one answered request; `route` is its route pattern (or `unmatched`).
    pub fn response(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let method = match method {
            "GET" => "GET",
            "HEAD" => "HEAD",
            "POST" => "POST",
            "PUT" => "PUT",
            "PATCH" => "PATCH",
            "DELETE" => "DELETE",
            "OPTIONS" => "OPTIONS",
            _ => "other",
        };
        let status = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route: route.to_owned(),
                status,
            })
            .observe(elapsed.as_secs_f64());
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
        self.tokens
            .get_or_create(&TokenLabels {
                grant_type: grant,
                outcome,
            })
            .inc();
    }

    /// Whether the database counts are older than [`COUNTS_MAX_AGE`]; if so, the caller is
    /// the one to read them (others keep the old values meanwhile).
    fn counts_due(&self) -> bool {
        let Ok(mut counted) = self.counted.lock() else {
            return false;
        };
        let due = counted.is_none_or(|at| at.elapsed() >= COUNTS_MAX_AGE);
        if due {
            *counted = Some(Instant::now());
        }
        due
    }

    fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// What is read at each scrape rather than counted: the hashing queue, the active key's age,
/// the process.
struct Scraped {
    hasher: PasswordHasher,
    keys: Arc<KeyStore>,
    clock: Clock,
}

impl std::fmt::Debug for Scraped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scraped")
    }
}

fn gauge<N: prometheus_client::encoding::EncodeGaugeValue + std::fmt::Debug + Send + Sync>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: N,
) -> std::fmt::Result {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl Collector for Scraped {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        gauge(
            &mut encoder,
            "password_hash_queue",
            "Password hashes and checks queued or running now",
            i64::try_from(self.hasher.waiting()).unwrap_or(i64::MAX),
        )?;
        let ring = self.keys.current();
        if let Some(since) = ring.active_since {
            gauge(
                &mut encoder,
                "active_key_age_seconds",
                "Seconds since the active signing key became active",
                self.clock.now().saturating_sub(since),
            )?;
        }
        let mut states: BTreeMap<&str, i64> = BTreeMap::new();
        for k in &ring.published {
            *states.entry(k.state.as_str()).or_default() += 1;
        }
        let mut published = encoder.encode_descriptor(
            "published_keys",
            "Signing keys in the JWKS, by state",
            None,
            MetricType::Gauge,
        )?;
        for (state, n) in states {
            ConstGauge::new(n).encode(published.encode_family(&[("state", state)])?)?;
        }
        Ok(())
    }
}

/// The process: CPU time, resident memory, open files, start time.
#[derive(Debug)]
struct Process;

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let process = process::read();
        if let Some(cpu) = process.cpu_seconds {
            let metric = ConstCounter::new(cpu);
            metric.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "CPU time of the process, user and system",
                None,
                metric.metric_type(),
            )?)?;
        }
        if let Some(rss) = process.resident_bytes {
            gauge(
                &mut encoder,
                "process_resident_memory_bytes",
                "Resident memory of the process",
                i64::try_from(rss).unwrap_or(i64::MAX),
            )?;
        }
        if let Some(fds) = process.open_fds {
            gauge(
                &mut encoder,
                "process_open_fds",
                "Open file descriptors of the process",
                i64::try_from(fds).unwrap_or(i64::MAX),
            )?;
        }
        let started = START
            .get_or_init(SystemTime::now)
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        gauge(
            &mut encoder,
            "process_start_time_seconds",
            "When the service started, in seconds since the Unix epoch",
            started.as_secs_f64(),
        )
    }
}

/// When the process started serving (the first metrics were made).
static START: std::sync::OnceLock<SystemTime> = std::sync::OnceLock::new();

/// The process's own figures, from `/proc` (Linux); absent elsewhere.
mod process {
    pub struct Process {
        pub cpu_seconds: Option<f64>,
        pub resident_bytes: Option<u64>,
        pub open_fds: Option<u64>,
    }

    pub fn read() -> Process {
        // The first field of schedstat: nanoseconds spent on a CPU (no clock-tick rate needed).
        let cpu_seconds = std::fs::read_to_string("/proc/self/schedstat")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .map(|ns| ns as f64 / 1e9);
        let resident_bytes = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
                line.split_whitespace().nth(1)?.parse::<u64>().ok()
            })
            .map(|kib| kib * 1024);
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|dir| dir.count() as u64);
        Process {
            cpu_seconds,
            resident_bytes,
            open_fds,
        }
    }
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether `Accept` asks for OpenMetrics (any media range `application/openmetrics-text` with
/// a quality above zero); everything else, no `Accept` included, gets the Prometheus text format.
fn wants_openmetrics(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("q") && v.trim().parse::<f32>() == Ok(0.0)
                })
            });
            media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
        })
}

/// The same families in the Prometheus text format (0.0.4): a counter family is named after
/// its `_total` samples, OpenMetrics' `unknown` type is `untyped`, and the `# UNIT` and `# EOF`
/// lines (OpenMetrics only) go.
fn prometheus_text(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let described = ["# HELP ", "# TYPE "].into_iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            let total = if counters.contains(&name) {
                "_total"
            } else {
                ""
            };
            let tail = if prefix == "# TYPE " && tail == "unknown" {
                "untyped"
            } else {
                tail
            };
            Some(format!("{prefix}{name}{total} {tail}"))
        });
        match described {
            Some(line) => out.push_str(line.trim_end()),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// `GET /metrics`. The database counts are refreshed first when due; a database that does not
/// answer leaves them as they were.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "The Prometheus text format (0.0.4); OpenMetrics text when `Accept` names `application/openmetrics-text`", content(
            (String = "text/plain; version=0.0.4; charset=utf-8"),
            (String = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        ))
    )
)]
pub async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let m = &state.metrics;
    if m.counts_due() {
        match state.issuer.gauge_counts().await {
            Ok((sessions, revoked)) => {
                m.sessions.set(sessions);
                m.revoked.set(revoked);
            }
            Err(e) => tracing::warn!(error = %e, "metrics: counting sessions and revocations"),
        }
    }
    let Ok(body) = m.encode() else {
        return HttpResponse::InternalServerError().finish();
    };
    let (content_type, body) = if wants_openmetrics(&req) {
        (OPENMETRICS, body)
    } else {
        (PROMETHEUS_TEXT, prometheus_text(&body))
    };
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::VARY, "Accept"))
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_renames_counters_and_drops_openmetrics_only_lines() {
        let openmetrics = "# HELP logins Logins.\n# TYPE logins counter\n# UNIT logins \n\
                           logins_total{outcome=\"ok\"} 3\n# HELP queue Queued.\n# TYPE queue gauge\n\
                           queue 1\n# TYPE odd unknown\nodd 2\n# EOF\n";
        assert_eq!(
            prometheus_text(openmetrics),
            "# HELP logins_total Logins.\n# TYPE logins_total counter\n\
             logins_total{outcome=\"ok\"} 3\n# HELP queue Queued.\n# TYPE queue gauge\n\
             queue 1\n# TYPE odd untyped\nodd 2\n"
        );
    }

    #[test]
    fn openmetrics_only_when_accept_names_it_without_q_zero() {
        let wants = |accept: Option<&str>| {
            let mut req = actix_web::test::TestRequest::default();
            if let Some(accept) = accept {
                req = req.insert_header((header::ACCEPT, accept));
            }
            wants_openmetrics(&req.to_http_request())
        };
        assert!(!wants(None));
        assert!(!wants(Some("*/*")));
        assert!(!wants(Some("text/plain;version=0.0.4")));
        assert!(wants(Some("application/openmetrics-text")));
        assert!(wants(Some(
            "text/plain;q=0.3, Application/OpenMetrics-Text; version=1.0.0; q=0.5"
        )));
        assert!(!wants(Some("application/openmetrics-text; q=0")));
        assert!(!wants(Some(
            "application/openmetrics-text;q=0.0, text/plain"
        )));
    }
}
