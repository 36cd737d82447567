//! jwt-issuer: a centralized token-issuing service.
//!
//! The crate is laid out by responsibility:
//! - [`domain`]: values parsed at the edge (usernames, passwords, scopes, refresh tokens);
//! - [`crypto`]: signing keys, their encryption at rest, JWK/PEM, access token encoding;
//! - [`db`]: SQLite/PostgreSQL storage (knows SQL, not HTTP);
//! - [`service`]: the issuer's behaviour — logins, refresh rotation, key ring, bootstrap;
//! - [`http`]: the actix-web edge (knows HTTP, not SQL);
//! - [`config`] and [`cli`]: the command line and its subcommands;
//! - [`startup`]: building and running the application.

pub mod cli;
pub mod config;
pub mod crypto;
pub mod db;
pub mod domain;
pub mod files;
pub mod http;
pub mod service;
pub mod startup;
