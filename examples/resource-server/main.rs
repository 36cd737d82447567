//! An example service protected by `jwt-issuer-verify`:
//!
//! `cargo run --example resource-server -- [--issuer URL] [--audience AUD] [--bind ADDR]
//! [--feed-interval SECONDS]` serves the routes of `routes.rs` on `--bind` (127.0.0.1:8081)
//! for tokens of `--issuer` (http://127.0.0.1:8080).
#![allow(clippy::print_stderr)]

mod routes;

use std::time::Duration;

use actix_web::{App, HttpServer};

struct Options {
    issuer: String,
    audience: Option<String>,
    bind: String,
    feed_interval: u64,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        issuer: "http://127.0.0.1:8080".into(),
        audience: None,
        bind: "127.0.0.1:8081".into(),
        feed_interval: 5,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--issuer" => o.issuer = value()?,
            "--audience" => o.audience = Some(value()?),
            "--bind" => o.bind = value()?,
            "--feed-interval" => {
                o.feed_interval = value()?
                    .parse()
                    .map_err(|_| "--feed-interval is a number of seconds".to_owned())?;
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let o = options().map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let verifier = routes::verifier(
        &o.issuer,
        o.audience.as_deref(),
        Duration::from_secs(o.feed_interval.max(1)),
    )
    .build()
    .await
    .map_err(std::io::Error::other)?;
    eprintln!(
        "resource-server on http://{}, tokens of {}",
        o.bind, o.issuer
    );
    HttpServer::new(move || {
        App::new()
            .app_data(verifier.clone())
            .configure(routes::routes)
    })
    .bind(&o.bind)?
    .run()
    .await
}
