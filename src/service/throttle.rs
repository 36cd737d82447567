//! The login throttle: password attempts counted per (username, client address), per client
//! address and per username, each with its own limit inside a window (docs/CONTRACT.md §6). Guessing
//! many usernames from one address is slowed (spraying); failures from one address cannot lock
//! the same user out at another address until the much higher per-username ceiling; every
//! attempt is reserved before its password is hashed, so parallel guesses cannot outrun the
//! count.

use std::net::IpAddr;

use crate::config::Limits;
use crate::db::throttle::{self, Counter, Counters, LoginRelease, Reservation};
use crate::db::{DbConn, write_tx};

/// The counters one password attempt touches.
#[derive(Debug, Clone)]
pub struct Attempt {
    counters: Counters,
}

/// The address as counted: IPv4 whole, IPv6 by its /64 (one host usually holds a whole /64).
fn address_key(address: Option<IpAddr>) -> String {
    match address {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        None => "unknown".to_owned(),
    }
}

impl Attempt {
    /// The counters of an attempt at `username` from `address`.
    pub fn new(limits: &Limits, username: &str, address: Option<IpAddr>) -> Self {
        let address = address_key(address);
        Self {
            counters: [
                Counter {
                    key: format!("ua\u{1f}{username}\u{1f}{address}"),
                    limit: limits.per_user_address,
                },
                Counter {
                    key: format!("a\u{1f}{address}"),
                    limit: limits.per_address,
                },
                Counter {
                    key: format!("u\u{1f}{username}"),
                    limit: limits.per_user,
                },
            ],
        }
    }

    /// The reservation of this attempt at `username` (the one the counters were made for),
    /// made before its password is hashed ([`throttle::reserve`]), which also reads that user
    /// when it is not throttled. Counted, the attempt is a failure until
    /// [`Attempt::succeeded`].
    pub fn reservation(&self, limits: &Limits, now: i64, username: &str) -> Reservation {
        Reservation {
            counters: self.counters.clone(),
            window: limits.window,
            now,
            username: username.to_owned(),
        }
    }

    /// Nothing was checked after all (the hasher was busy): the reservation is given back.
    pub fn cancel(&self, conn: &mut DbConn, now: i64) -> diesel::QueryResult<()> {
        write_tx(conn, |conn| {
            throttle::release(conn, &self.counters, &[], now)
        })
    }

    /// The password was right: the reservation is given back, and this username's failures
    /// from this address are forgotten. Part of the caller's write transaction.
    pub fn succeeded(&self, conn: &mut DbConn, now: i64) -> diesel::QueryResult<()> {
        self.release_after_success(now).run(conn)
    }

    /// What [`Attempt::succeeded`] writes, to be written with a login's session
    /// ([`crate::db::refresh::start_login`]).
    pub fn release_after_success(&self, now: i64) -> LoginRelease {
        LoginRelease {
            counters: self.counters.clone(),
            forget: self.counters[0].key.clone(),
            now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(address_key(Some(a)), address_key(Some(b)));
        assert_eq!(address_key(Some(a)), "2001:db8:1:2::/64");
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(address_key(Some(mapped)), "10.0.0.1");
        assert_eq!(address_key(None), "unknown");
    }
}
