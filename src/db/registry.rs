//! The `clients` and `scopes` tables: the registry the server decides tokens from. Lists are
//! stored space-separated (client ids, audiences, scope names and grant types never contain
//! whitespace).

use diesel::prelude::*;

use super::DbConn;
use super::schema::{clients, scopes};

/// A stored client.
#[derive(Queryable, Selectable, Insertable, Clone, PartialEq, Eq)]
#[diesel(table_name = clients)]
pub struct ClientRow {
    pub id: String,
    pub confidential: bool,
    pub secret_hash: Option<String>,
    pub audiences: String,
    pub scopes: String,
    pub grant_types: String,
    pub created_at: i64,
    pub updated_at: i64,
}

// The secret hash has no business in logs.
impl std::fmt::Debug for ClientRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRow")
            .field("id", &self.id)
            .field("confidential", &self.confidential)
            .field("audiences", &self.audiences)
            .field("scopes", &self.scopes)
            .field("grant_types", &self.grant_types)
            .finish_non_exhaustive()
    }
}

/// A stored scope.
#[derive(Queryable, Selectable, Insertable, Debug, Clone, PartialEq, Eq)]
#[diesel(table_name = scopes)]
pub struct ScopeRow {
    pub name: String,
    pub roles: String,
    pub description: String,
    pub created_at: i64,
}

/// Every client, by id.
pub fn clients(conn: &mut DbConn) -> QueryResult<Vec<ClientRow>> {
    clients::table
        .order(clients::id.asc())
        .select(ClientRow::as_select())
        .load(conn)
}

/// One client.
pub fn client(conn: &mut DbConn, id: &str) -> QueryResult<Option<ClientRow>> {
    clients::table
        .find(id)
        .select(ClientRow::as_select())
        .get_result(conn)
        .optional()
}

/// Inserts a client; a taken id is a unique violation.
pub fn insert_client(conn: &mut DbConn, row: &ClientRow) -> QueryResult<()> {
    diesel::insert_into(clients::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// Replaces a client's fields (all but its id and creation time); returns whether it existed.
pub fn update_client(conn: &mut DbConn, row: &ClientRow) -> QueryResult<bool> {
    diesel::update(clients::table.find(&row.id))
        .set((
            clients::confidential.eq(row.confidential),
            clients::secret_hash.eq(&row.secret_hash),
            clients::audiences.eq(&row.audiences),
            clients::scopes.eq(&row.scopes),
            clients::grant_types.eq(&row.grant_types),
            clients::updated_at.eq(row.updated_at),
        ))
        .execute(conn)
        .map(|n| n > 0)
}

/// Deletes a client; returns whether it existed.
pub fn delete_client(conn: &mut DbConn, id: &str) -> QueryResult<bool> {
    diesel::delete(clients::table.find(id))
        .execute(conn)
        .map(|n| n > 0)
}

/// Every scope, by name.
pub fn scopes(conn: &mut DbConn) -> QueryResult<Vec<ScopeRow>> {
    scopes::table
        .order(scopes::name.asc())
        .select(ScopeRow::as_select())
        .load(conn)
}

/// Inserts a scope; a taken name is a unique violation.
pub fn insert_scope(conn: &mut DbConn, row: &ScopeRow) -> QueryResult<()> {
    diesel::insert_into(scopes::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// Deletes a scope; returns whether it existed.
pub fn delete_scope(conn: &mut DbConn, name: &str) -> QueryResult<bool> {
    diesel::delete(scopes::table.find(name))
        .execute(conn)
        .map(|n| n > 0)
}
