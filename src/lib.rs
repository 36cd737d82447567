//! jwt-issuer: a centralized token-issuing service.
//!
//! The crate is laid out by responsibility, in layers whose arrows point one way (down), as
//! `tests/layers.rs` checks:
//! - [`cli`] and [`startup`]: the command line (grammar and subcommands) and the wiring of the
//!   HTTP service — the two front doors;
//! - [`http`]: the actix-web edge: parses requests, calls the service, shapes responses; knows
//!   HTTP, not SQL;
//! - [`service`]: what the issuer does — grants, sessions, accounts, clients and scopes, keys,
//!   revocation — over [`db`] and [`crypto`];
//! - [`config`]: the resolved settings;
//! - [`db`]: SQLite/PostgreSQL storage (knows SQL and rows, not HTTP); [`crypto`]: signing keys,
//!   their encryption at rest, JWK/PEM, access tokens;
//! - [`domain`]: values parsed at the edge (usernames, passwords, scopes, client ids…),
//!   [`files`]: files that hold secrets, and [`logs`]: where log lines go (stderr, in
//!   batches). None depends on anything above.

pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod db;
pub mod domain;
pub mod files;
pub mod http;
pub mod logs;
pub mod service;
pub mod startup;
