//! Building and running the application: bind the listener, open and migrate the database,
//! load the key-encryption key, make sure signing keys and a first user exist, load the key
//! ring, and start the HTTP server.

use std::net::TcpListener;
use std::sync::Arc;

use actix_cors::Cors;
use actix_web::dev::{Server, ServerHandle};
use actix_web::http::{Method, header};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;

use crate::cli::Options;
use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::kek::{Kek, KeyGen};
use crate::db::Db;
use crate::http::metrics::Metrics;
use crate::http::{self, AppState};
use crate::service::Issuer;
use crate::service::keyring::KeyStore;
use crate::service::keys::{self, Custody, ensure_signing_keys};
use crate::service::passwords::{HashProfile, PasswordHasher};
use crate::service::registry::{self, OwnAudiences, RegistryStore};
use crate::service::{bootstrap, maintenance};

/// A built application: bound, with its state loaded, not yet serving.
pub struct Application {
    port: u16,
    server: Server,
    /// `/metrics` on its own listener (`--metrics-bind`), and its port.
    metrics: Option<(Server, u16)>,
    state: web::Data<AppState>,
}

/// What a library user (the test suite) may change that no option can: how costly new
/// password hashes are, and where new signing keys come from. The binary always uses the
/// defaults.
#[derive(Clone, Default)]
pub struct Tuning {
    pub hashing: HashProfile,
    pub keygen: KeyGen,
    /// The clock (default: the system's).
    pub clock: Clock,
}

/// Opens the database, prepares keys and the bootstrap user, and loads the key ring. Blocking.
pub fn prepare(
    options: &Options,
    mut settings: Settings,
    tuning: Tuning,
) -> anyhow::Result<AppState> {
    settings.clock = tuning.clock;
    let db = Db::open(&options.database)?;
    let kek = Kek::load_or_create(&settings.keys_dir)?.with_keygen(tuning.keygen);
    let hasher = PasswordHasher::new(PasswordHasher::default_threads(), tuning.hashing)?;
    let mut conn = db.conn()?;
    ensure_signing_keys(&mut conn, &Custody::new(&kek, &settings))
        .context("preparing signing keys")?;
    if let Some(path) =
        bootstrap::ensure_admin(&mut conn, &settings.keys_dir, &hasher, settings.clock.now())?
    {
        println!(
            "Created user 'admin' (role admin); its password is in {}",
            path.display()
        );
        // The admin API accepts only tokens for its own audience (docs/CONTRACT.md §3).
        println!(
            "Get a token for the admin API with:\n  curl -s {}/oauth/token -d grant_type=password -d username=admin --data-urlencode \"password=$(cat {})\" -d audience={}",
            settings.issuer,
            path.display(),
            settings.admin_audience()
        );
    }
    if settings
        .rotate_every
        .is_some_and(|every| every < i64::from(crate::http::wellknown::JWKS_MAX_AGE))
    {
        tracing::warn!(
            "--rotate-every is shorter than the JWKS max-age ({}s): verifiers that cache the JWKS may meet keys they have not seen yet",
            crate::http::wellknown::JWKS_MAX_AGE
        );
    }
    let keys = Arc::new(KeyStore::load(&mut conn, kek, settings.clone())?);
    let registry = Arc::new(RegistryStore::load(&mut conn, OwnAudiences::of(&settings))?);
    drop(conn);
    let settings = Arc::new(settings);
    Ok(AppState {
        metrics: Metrics::new(&hasher, keys.clone(), settings.clock.clone()),
        issuer: Issuer {
            db,
            keys,
            registry,
            hasher,
            settings,
        },
    })
}

impl Application {
    /// Binds `--bind` (port 0 picks a free port) and prepares everything.
    pub fn build(options: &Options) -> anyhow::Result<Self> {
        Self::build_tuned(options, Tuning::default())
    }

    /// As [`Application::build`], with [`Tuning`].
    pub fn build_tuned(options: &Options, tuning: Tuning) -> anyhow::Result<Self> {
        let listener =
            TcpListener::bind(options.bind).with_context(|| format!("binding {}", options.bind))?;
        let bound = listener.local_addr()?;
        let settings = options.settings(bound);
        let metrics_listener = options
            .metrics_bind
            .map(|addr| {
                TcpListener::bind(addr).with_context(|| format!("binding --metrics-bind {addr}"))
            })
            .transpose()?;
        let deadline = http::params::BodyDeadline(settings.body_timeout);
        let state = web::Data::new(prepare(options, settings, tuning)?);
        let server = serve(
            listener,
            state.clone(),
            metrics_listener.is_none(),
            deadline,
        )?;
        let metrics = match metrics_listener {
            Some(listener) => {
                let port = listener.local_addr()?.port();
                Some((serve_metrics(listener, state.clone())?, port))
            }
            None => None,
        };
        Ok(Self {
            port: bound.port(),
            server,
            metrics,
            state,
        })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port `/metrics` has to itself, with `--metrics-bind`.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(_, port)| *port)
    }

    /// The shared state (for tests and background tasks).
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// A handle to stop the server.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped; keeps the key ring in step with the database meanwhile.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let watcher = actix_web::rt::spawn(keys::watch(
            self.state.issuer.db.clone(),
            self.state.issuer.keys.clone(),
        ));
        let registry_watcher = actix_web::rt::spawn(registry::watch(
            self.state.issuer.db.clone(),
            self.state.issuer.registry.clone(),
        ));
        let settings = &self.state.issuer.settings;
        let purger = actix_web::rt::spawn(maintenance::run(
            self.state.issuer.db.clone(),
            settings.purge_every,
            settings.clone(),
        ));
        let metrics = self.metrics.map(|(server, _)| {
            let handle = server.handle();
            actix_web::rt::spawn(server);
            handle
        });
        let result = self.server.await;
        if let Some(metrics) = metrics {
            metrics.stop(true).await;
        }
        watcher.abort();
        registry_watcher.abort();
        purger.abort();
        result
    }
}

fn cors(origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_NONE_MATCH,
        ])
        .expose_headers([header::ETAG, header::RETRY_AFTER, header::WWW_AUTHENTICATE])
        .max_age(3600)
        // Other origins simply get no CORS headers; the browser enforces the rest.
        .block_on_origin_mismatch(false);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}

fn serve(
    listener: TcpListener,
    state: web::Data<AppState>,
    with_metrics: bool,
    deadline: http::params::BodyDeadline,
) -> anyhow::Result<Server> {
    let origins = state.issuer.settings.cors_origins.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(deadline)
            .app_data(http::params::query_config())
            .configure(|cfg| {
                http::routes(cfg, with_metrics);
            })
            .wrap(from_fn(http::head_as_get))
            .wrap(from_fn(http::limit_body))
            .wrap(cors(&origins))
            .wrap(from_fn(http::security_headers))
            .wrap(from_fn(http::request_log))
    })
    .listen(listener)?
    .shutdown_timeout(5)
    .run();
    Ok(server)
}

/// `/metrics` alone, on its own listener: one worker, no CORS (scrapers are not browsers).
fn serve_metrics(listener: TcpListener, state: web::Data<AppState>) -> anyhow::Result<Server> {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .configure(http::metrics_routes)
            .default_service(web::to(http::not_found))
            .wrap(from_fn(http::head_as_get))
            .wrap(from_fn(http::security_headers))
            .wrap(from_fn(http::request_log))
    })
    .workers(1)
    .listen(listener)?
    .shutdown_timeout(5)
    .run();
    Ok(server)
}
