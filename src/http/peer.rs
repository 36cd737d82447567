//! Who is on the other end of a request: the client address (used by throttling, sessions and
//! the audit log) and the user agent a session remembers.
//!
//! The client address is the TCP peer, unless the peer is a trusted proxy (`--trusted-proxy`):
//! then it is the right-most `X-Forwarded-For` entry that is not itself a trusted proxy — the
//! address the outermost trusted proxy saw. Entries to its left were written by the client and
//! are never believed; headers from untrusted peers are ignored altogether.

use std::net::{IpAddr, SocketAddr};

use actix_web::http::header::{self, HeaderName};
use actix_web::{HttpRequest, web};

use super::AppState;
use crate::domain::Cidr;

/// The longest user agent a session remembers, in characters.
const MAX_USER_AGENT: usize = 256;

/// At most this many `X-Forwarded-For` hops are walked (a real chain has a handful).
const MAX_HOPS: usize = 64;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The client's address (see the module doc).
pub fn client_address(req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let trusted = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.issuer.settings.trusted_proxies.clone())
        .unwrap_or_default();
    if trusted.is_empty() {
        return Some(peer);
    }
    let forwarded: Vec<&str> = req
        .headers()
        .get_all(X_FORWARDED_FOR)
        .filter_map(|v| v.to_str().ok())
        .collect();
    Some(resolve(peer, &forwarded, &trusted))
}

/// The client address behind `peer`, given the `X-Forwarded-For` header values in order.
pub fn resolve(peer: IpAddr, forwarded: &[&str], trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer;
    if !is_trusted(client) {
        return client;
    }
    let hops = forwarded
        .iter()
        .rev()
        .flat_map(|value| value.rsplit(','))
        .take(MAX_HOPS);
    for hop in hops {
        // What a trusted proxy wrote is an address; anything else means the chain is broken
        // here, and the last address a trusted proxy vouched for is all we know.
        let Some(ip) = parse_hop(hop) else {
            return client;
        };
        client = ip;
        if !is_trusted(ip) {
            return ip;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, with or without a port (`[v6]:port`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            hop.strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .and_then(|h| h.parse().ok())
        })
}

/// The `User-Agent`, without control characters, truncated; `None` when absent or empty.
pub fn user_agent(req: &HttpRequest) -> Option<String> {
    let raw = req.headers().get(header::USER_AGENT)?;
    let text = String::from_utf8_lossy(raw.as_bytes());
    let clean: String = text
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_USER_AGENT)
        .collect();
    let clean = clean.trim().to_owned();
    (!clean.is_empty()).then_some(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn untrusted_peers_headers_are_ignored() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            resolve(ip("203.0.113.9"), &["1.2.3.4"], &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(resolve(ip("203.0.113.9"), &[], &[]), ip("203.0.113.9"));
    }

    #[test]
    fn the_rightmost_untrusted_entry_is_the_client() {
        let trusted = nets(&["10.0.0.0/8", "127.0.0.1"]);
        // The client forged the left-most entry; the proxies appended the rest.
        let chain = ["6.6.6.6, 198.51.100.7, 10.0.0.2"];
        assert_eq!(
            resolve(ip("127.0.0.1"), &chain, &trusted),
            ip("198.51.100.7")
        );
        // Several headers read as one list, in order.
        let split = ["6.6.6.6", "198.51.100.7", "10.0.0.2"];
        assert_eq!(
            resolve(ip("127.0.0.1"), &split, &trusted),
            ip("198.51.100.7")
        );
        // Ports and IPv6.
        assert_eq!(
            resolve(ip("10.0.0.1"), &["[2001:db8::7]:4431"], &trusted),
            ip("2001:db8::7")
        );
        assert_eq!(
            resolve(ip("10.0.0.1"), &["198.51.100.7:80"], &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            resolve(ip("10.0.0.1"), &["2001:db8::8"], &trusted),
            ip("2001:db8::8")
        );
    }

    #[test]
    fn garbage_huge_and_empty_chains_fall_back_safely() {
        let trusted = nets(&["127.0.0.1"]);
        let peer = ip("127.0.0.1");
        assert_eq!(resolve(peer, &[], &trusted), peer);
        assert_eq!(resolve(peer, &["not an address"], &trusted), peer);
        assert_eq!(resolve(peer, &["1.2.3.4, garbage"], &trusted), peer);
        assert_eq!(
            resolve(peer, &["garbage, 1.2.3.4"], &trusted),
            ip("1.2.3.4")
        );
        assert_eq!(resolve(peer, &[""], &trusted), peer);
        let huge = vec!["127.0.0.1"; 1000].join(",");
        assert_eq!(resolve(peer, &[huge.as_str()], &trusted), peer);
        let many = format!("{}, 9.9.9.9", "1.1.1.1, ".repeat(1000));
        assert_eq!(resolve(peer, &[many.as_str()], &trusted), ip("9.9.9.9"));
    }
}
