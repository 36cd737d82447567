-- The client registry and the scope registry: what each client may ask for, and which roles a
-- user needs for a scope. The server decides every claim of a token from these.
--
-- clients.audiences: space-separated and ordered, the first is the default; '' means the
-- issuer's own defaults (`--audience`, and for `default` also ISSUER_URL/admin and
-- ISSUER_URL/introspect). clients.scopes: space-separated; '*' means every registered scope.
-- clients.secret_hash: the SHA-256 (hex) of a confidential client's secret, NULL for a public one.
CREATE TABLE clients (
    id           TEXT    PRIMARY KEY NOT NULL,
    confidential BOOLEAN NOT NULL,
    secret_hash  TEXT,
    audiences    TEXT    NOT NULL DEFAULT '',
    scopes       TEXT    NOT NULL DEFAULT '',
    grant_types  TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL,
    CHECK ((confidential AND secret_hash IS NOT NULL) OR (NOT confidential AND secret_hash IS NULL))
);

-- scopes.roles: space-separated; a user needs one of them for the scope ('' = anyone).
CREATE TABLE scopes (
    name        TEXT   PRIMARY KEY NOT NULL,
    roles       TEXT   NOT NULL DEFAULT '',
    description TEXT   NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);

-- The built-in public client: serves every request that names no client.
INSERT INTO clients (id, confidential, secret_hash, audiences, scopes, grant_types, created_at, updated_at)
VALUES ('default', FALSE, NULL, '', '*',
        'password refresh_token urn:ietf:params:oauth:grant-type:jwt-bearer client_credentials',
        CAST(EXTRACT(EPOCH FROM now()) AS BIGINT), CAST(EXTRACT(EPOCH FROM now()) AS BIGINT));
