//! Time as the service shows it: unix seconds (the unit of every stored timestamp) rendered as
//! RFC 3339 in UTC.

/// A unix time as RFC 3339 (UTC), e.g. `2026-11-26T14:05:11Z`.
pub fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map_or_else(
        || t.to_string(),
        |d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}

/// As [`rfc3339`], or `-` for none.
pub fn rfc3339_or_dash(t: Option<i64>) -> String {
    t.map_or_else(|| "-".to_owned(), rfc3339)
}
