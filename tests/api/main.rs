//! Integration tests: the real application on a free port, one fresh database per test,
//! talked to over HTTP. Each test runs on SQLite, and on PostgreSQL when `TEST_POSTGRES_URL`
//! is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

/// The example resource server's routes (`cargo run --example resource-server`).
#[path = "../../examples/resource-server/routes.rs"]
mod resource_server;

mod abuse;
mod accounts;
mod admin_users;
mod bearer;
mod cli;
mod clients;
mod crash;
mod deploy;
mod errors;
mod hardening;
mod import;
mod kek;
mod load;
mod login;
mod logs;
mod machine;
mod openapi;
mod outage;
mod refresh;
mod restart;
mod revocation;
mod rotation;
mod sessions;
mod simplejwt;
mod time;
mod verifier;
mod wellknown;
