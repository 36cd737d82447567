//! `X-Forwarded-For` behind trusted proxies, and the `--trusted-proxy` networks themselves.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::LazyLock;

use jwt_issuer::domain::Cidr;
use jwt_issuer::http::peer::resolve;
use libfuzzer_sys::fuzz_target;

#[path = "../common/mod.rs"]
mod common;

static TRUSTED: LazyLock<Vec<Cidr>> = LazyLock::new(common::trusted_proxies);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // One header value per line, as several X-Forwarded-For headers.
    let values: Vec<&str> = text.split('\n').collect();
    let peer = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let _ = resolve(peer, &values, &TRUSTED);
    for line in &values {
        let _ = line.parse::<Cidr>();
    }
});
