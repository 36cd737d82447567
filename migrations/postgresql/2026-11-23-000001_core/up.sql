-- Core schema: users, signing keys with their full state history, refresh token families,
-- and the per-username login throttle. Timestamps are unix seconds (BIGINT) so that both
-- backends compare and index them the same way.

CREATE TABLE users (
    id            TEXT    PRIMARY KEY NOT NULL,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    roles         TEXT    NOT NULL DEFAULT '',
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);

-- One row per key, never deleted. Each transition time is written once.
CREATE TABLE signing_keys (
    kid          TEXT   PRIMARY KEY NOT NULL,
    alg          TEXT   NOT NULL CHECK (alg IN ('RS256', 'ES256')),
    state        TEXT   NOT NULL CHECK (state IN ('next', 'active', 'retired', 'revoked')),
    public_der   BYTEA  NOT NULL,
    private_enc  BYTEA  NOT NULL,
    kek_id       TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    activated_at BIGINT,
    retired_at   BIGINT,
    revoked_at   BIGINT
);
-- The database, not the application, guarantees at most one active key.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (state) WHERE state = 'active';
CREATE INDEX signing_keys_state ON signing_keys (state);

CREATE TABLE refresh_families (
    id             TEXT   PRIMARY KEY NOT NULL,
    user_id        TEXT   NOT NULL REFERENCES users (id),
    client_id      TEXT   NOT NULL,
    scope          TEXT   NOT NULL,
    audience       TEXT   NOT NULL,
    created_at     BIGINT NOT NULL,
    revoked_at     BIGINT,
    revoked_reason TEXT
);
CREATE INDEX refresh_families_user ON refresh_families (user_id);

-- Only the SHA-256 of a refresh token is stored.
CREATE TABLE refresh_tokens (
    token_hash TEXT   PRIMARY KEY NOT NULL,
    family_id  TEXT   NOT NULL REFERENCES refresh_families (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);

CREATE TABLE login_throttle (
    username     TEXT    PRIMARY KEY NOT NULL,
    failures     INTEGER NOT NULL,
    window_start BIGINT  NOT NULL,
    locked_until BIGINT  NOT NULL
);
