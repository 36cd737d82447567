use std::fmt;

/// One role name: 1–64 characters of `A-Z a-z 0-9 _ . : -`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Role(String);

impl Role {
    /// The role that may use the admin endpoints.
    pub const ADMIN: &'static str = "admin";
    /// The role that may introspect tokens.
    pub const INTROSPECT: &'static str = "introspect";

    /// Parses one role name.
    pub fn parse(s: &str) -> Result<Self, String> {
        if super::is_plain_name(s, 64) {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "invalid role {s:?}: use 1-64 characters of letters, digits, '_', '.', ':', '-'"
            ))
        }
    }

    /// The role name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A user's roles, without duplicates, in the order given. Stored space-separated.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Roles(Vec<Role>);

impl Roles {
    /// Builds a set from role names, dropping repeats.
    pub fn new(roles: impl IntoIterator<Item = Role>) -> Self {
        let mut out: Vec<Role> = Vec::new();
        for r in roles {
            if !out.contains(&r) {
                out.push(r);
            }
        }
        Self(out)
    }

    /// Parses role names, failing on the first invalid one.
    pub fn parse_all<S: AsRef<str>>(names: &[S]) -> Result<Self, String> {
        names
            .iter()
            .map(|n| Role::parse(n.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map(Self::new)
    }

    /// Reads the stored form. Unknown garbage is skipped rather than trusted.
    pub fn from_stored(s: &str) -> Self {
        Self::new(s.split_whitespace().filter_map(|r| Role::parse(r).ok()))
    }

    /// The stored form: names separated by single spaces.
    pub fn to_stored(&self) -> String {
        self.names().collect::<Vec<_>>().join(" ")
    }

    /// The role names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(Role::as_str)
    }

    /// Whether the set holds `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.names().any(|r| r == name)
    }
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_stored())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_dedupe() {
        let r = Roles::parse_all(&["admin", "introspect", "admin"]).unwrap();
        assert_eq!(r.to_stored(), "admin introspect");
        assert_eq!(Roles::from_stored("admin introspect"), r);
        assert!(r.contains("admin"));
    }

    #[test]
    fn rejects_bad_role_names() {
        for bad in ["", "a b", "x\n", &"r".repeat(65), "ünïcode"] {
            assert!(Role::parse(bad).is_err(), "{bad:?}");
        }
    }
}
