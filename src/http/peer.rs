//! Who is on the other end of a request: the client address (used by throttling, sessions and
//! the audit log) and the user agent a session remembers.

use std::net::IpAddr;

use actix_web::HttpRequest;
use actix_web::http::header;

/// The longest user agent a session remembers, in characters.
const MAX_USER_AGENT: usize = 256;

/// The client's address: the TCP peer.
pub fn client_address(req: &HttpRequest) -> Option<IpAddr> {
    req.peer_addr().map(|a| a.ip())
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
