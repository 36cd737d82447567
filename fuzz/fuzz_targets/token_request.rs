//! The token endpoint's body (form and JSON, with repeatable parameters) and client
//! authentication (`Authorization: Basic`).
#![no_main]

use jwt_issuer::http::client_auth::parse_basic;
use jwt_issuer::http::params::{Params, strict_json};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for params in [Params::from_form(data), Params::from_json(data)]
        .into_iter()
        .flatten()
    {
        for name in [
            "grant_type",
            "username",
            "password",
            "scope",
            "refresh_token",
        ] {
            let _ = params.optional(name);
        }
        let _ = params.all("resource").count();
        let _ = params.all("audience").count();
    }
    let _ = strict_json(data);
    let _ = parse_basic(data);
});
