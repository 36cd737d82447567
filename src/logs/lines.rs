//! What a log line says, and which request it belongs to.
//!
//! Every line logged while a request is answered names the request: `request{request_id=…
//! method=… route="…"}:` before the spans it is in (text), a `request_id` key and, outside any
//! span, a `request` span (JSON). The request is not a tracing span: it is a task-local value
//! ([`Request::scope`]) that these formats read. A span per request cost its registration, the
//! formatting of its fields into a string of their own and an enter and exit at each poll, and
//! with the event formatter's own costs (a date formatted per line) it took 15% of the actix
//! workers' CPU in a JWKS flood (issue 12, `perf`), 7% since: the request's fields are written
//! only into the lines that are logged, and the date once a second per thread ([`Timestamp`]).
//!
//! Lines read as tracing-subscriber's own `Full` and `Json` formats read (its JSON format is
//! used as is, with the request added to each line of a request).

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::Method;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The request being answered: what each of its log lines says about it.
pub struct Request {
    /// Its id, echoed as `X-Request-Id`.
    pub id: String,
    pub method: Method,
    /// The pattern of the route that answers it (never the path: paths may carry usernames).
    pub route: Rc<str>,
}

tokio::task_local! {
    static CURRENT: Rc<Request>;
}

impl Request {
    /// Runs `work`, every line it logs marked as this request's.
    pub async fn scope<F: Future>(self: Rc<Self>, work: F) -> F::Output {
        CURRENT.scope(self, work).await
    }

    /// Runs `f`, every line it logs marked as this request's.
    pub fn sync_scope<R>(self: Rc<Self>, f: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(self, f)
    }

    fn current() -> Option<Rc<Request>> {
        CURRENT.try_with(Rc::clone).ok()
    }
}

/// The time of a line, as tracing's default (RFC 3339, UTC, microseconds:
/// `2026-11-28T03:46:13.346565Z`); the date and time of day are formatted once a second per
/// thread.
pub struct Timestamp;

impl FormatTime for Timestamp {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self::write(now, w)
    }
}

impl Timestamp {
    /// Writes `now` (since the Unix epoch).
    fn write(now: Duration, w: &mut impl fmt::Write) -> fmt::Result {
        thread_local! {
            static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
        }
        SECOND.with_borrow_mut(|(second, text)| {
            if *second != now.as_secs() {
                let at = i64::try_from(now.as_secs())
                    .ok()
                    .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
                    .unwrap_or_default();
                text.clear();
                write!(text, "{}", at.format("%Y-%m-%dT%H:%M:%S"))?;
                *second = now.as_secs();
            }
            write!(w, "{text}.{:06}Z", now.subsec_micros())
        })
    }
}

/// Text lines: `TIME LEVEL request{…}:span{…}: target: message fields`, in colour on a terminal.
pub struct Text;

impl<S, N> FormatEvent<S, N> for Text
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let ansi = w.has_ansi_escapes();
        let style = |code: &'static str| if ansi { (code, "\x1b[0m") } else { ("", "") };
        let (dim, dim_end) = style("\x1b[2m");
        let (bold, bold_end) = style("\x1b[1m");
        let meta = event.metadata();
        let (colour, colour_end) = style(match *meta.level() {
            Level::TRACE => "\x1b[35m",
            Level::DEBUG => "\x1b[34m",
            Level::INFO => "\x1b[32m",
            Level::WARN => "\x1b[33m",
            Level::ERROR => "\x1b[31m",
        });
        w.write_str(dim)?;
        Timestamp.format_time(&mut w)?;
        write!(
            w,
            "{dim_end} {colour}{:>5}{colour_end} ",
            meta.level().as_str()
        )?;

        let mut in_scope = false;
        if let Some(r) = Request::current() {
            write!(
                w,
                "{bold}request{{{bold_end}request_id={} method={} route={:?}{bold}}}{bold_end}{dim}:{dim_end}",
                r.id, r.method, r.route
            )?;
            in_scope = true;
        }
        for span in ctx.event_scope().into_iter().flat_map(|s| s.from_root()) {
            write!(w, "{bold}{}{bold_end}", span.name())?;
            let extensions = span.extensions();
            if let Some(fields) = extensions.get::<FormattedFields<N>>()
                && !fields.is_empty()
            {
                write!(w, "{bold}{{{bold_end}{fields}{bold}}}{bold_end}")?;
            }
            write!(w, "{dim}:{dim_end}")?;
            in_scope = true;
        }
        if in_scope {
            w.write_char(' ')?;
        }
        write!(w, "{dim}{}:{dim_end} ", meta.target())?;
        ctx.format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// JSON lines: tracing-subscriber's (`timestamp`, `level`, `fields`, `target`, and `span`: the
/// innermost span's fields and name), with the request's id as `request_id` on each line of a
/// request, and the request as the `span` of those logged outside any span.
pub struct Json(pub format::Format<format::Json, Timestamp>);

impl Json {
    pub fn new() -> Self {
        Self(
            format::format()
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .with_timer(Timestamp),
        )
    }
}

impl Default for Json {
    fn default() -> Self {
        Self::new()
    }
}

impl<S, N> FormatEvent<S, N> for Json
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    format::Format<format::Json, Timestamp>: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Some(r) = Request::current() else {
            return self.0.format_event(ctx, w, event);
        };
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        // The object tracing wrote, without its closing brace: the request's keys go last.
        let Some(open) = line.trim_end().strip_suffix('}') else {
            return w.write_str(&line);
        };
        let quoted = |s: &str| serde_json::to_string(s).map_err(|_| fmt::Error);
        let id = quoted(&r.id)?;
        w.write_str(open)?;
        let in_span = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current())
            .is_some();
        if !in_span {
            write!(
                w,
                r#","span":{{"request_id":{id},"method":{},"route":{},"name":"request"}}"#,
                quoted(r.method.as_str())?,
                quoted(&r.route)?
            )?;
        }
        writeln!(w, r#","request_id":{id}}}"#)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    /// Lines written by a subscriber into memory.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    impl Lines {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn request() -> Rc<Request> {
        Rc::new(Request {
            id: "req-1".into(),
            method: Method::POST,
            route: "/oauth/token".into(),
        })
    }

    /// What a request logs: a line inside a span of its own, and its closing line.
    fn log_a_request() {
        request().sync_scope(|| {
            tracing::info_span!("password", username = ?Some("ann"), client_id = %"web")
                .in_scope(|| tracing::warn!(source = "10.0.0.1", "login failed"));
            tracing::info!(status = 401u16, latency_ms = 0.25, "answered");
        });
        tracing::info!(port = 8080u16, "serving");
    }

    /// A timestamp, then the rest of the line.
    fn split_time(line: &str) -> (&str, &str) {
        line.split_once(' ').unwrap()
    }

    #[test]
    fn text_lines_read_as_tracings_own_with_the_request_first() {
        let out = Lines::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(out.clone())
            .with_ansi(false)
            .event_format(Text)
            .finish();
        tracing::subscriber::with_default(subscriber, log_a_request);
        let text = out.text();
        let lines: Vec<(&str, &str)> = text.lines().map(split_time).collect();
        assert_eq!(
            lines.iter().map(|l| l.1).collect::<Vec<_>>(),
            [
                r#" WARN request{request_id=req-1 method=POST route="/oauth/token"}:password{username=Some("ann") client_id=web}: jwt_issuer::logs::lines::tests: login failed source="10.0.0.1""#,
                r#" INFO request{request_id=req-1 method=POST route="/oauth/token"}: jwt_issuer::logs::lines::tests: answered status=401 latency_ms=0.25"#,
                r#" INFO jwt_issuer::logs::lines::tests: serving port=8080"#,
            ]
        );
        for (time, _) in lines {
            assert_eq!(time.len(), "2026-11-28T03:46:13.346565Z".len(), "{time}");
            assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{time}");
        }
    }

    #[test]
    fn json_lines_carry_the_request_on_each_line_of_it() {
        let out = Lines::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(out.clone())
            .event_format(Json::new())
            .finish();
        tracing::subscriber::with_default(subscriber, log_a_request);
        let lines: Vec<serde_json::Value> = out
            .text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(lines.len(), 3);
        let failed = &lines[0];
        assert_eq!(failed["request_id"], "req-1");
        assert_eq!(failed["span"]["name"], "password");
        assert_eq!(failed["span"]["client_id"], "web");
        assert_eq!(failed["fields"]["message"], "login failed");
        assert_eq!(failed["level"], "WARN");
        let answered = &lines[1];
        assert_eq!(answered["request_id"], "req-1");
        assert_eq!(
            answered["span"],
            serde_json::json!({"request_id": "req-1", "method": "POST",
                "route": "/oauth/token", "name": "request"})
        );
        assert_eq!(answered["fields"]["status"], 401);
        assert_eq!(answered["fields"]["latency_ms"], 0.25);
        let serving = &lines[2];
        assert!(serving.get("request_id").is_none() && serving.get("span").is_none());
        assert_eq!(serving["fields"]["port"], 8080);
        let time = serving["timestamp"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{time}");
    }

    #[test]
    fn a_timestamp_is_right_across_seconds_and_days() {
        let start = Duration::new(1_795_830_399, 999_999_000);
        for now in [
            start,
            start,
            start + Duration::from_micros(1),
            start + Duration::from_millis(1_500),
            start + Duration::from_secs(86_400),
            Duration::from_micros(7),
        ] {
            let mut text = String::new();
            Timestamp::write(now, &mut text).unwrap();
            let at =
                chrono::DateTime::from_timestamp(now.as_secs() as i64, now.subsec_micros() * 1000)
                    .unwrap();
            assert_eq!(text, at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string());
        }
    }
}
