-- Public keys machines log in with, registered per user, and the assertions already used
-- (replay protection) until they expire.
CREATE TABLE client_keys (
    id          TEXT   PRIMARY KEY NOT NULL,
    user_id     TEXT   NOT NULL REFERENCES users (id),
    kty         TEXT   NOT NULL,
    fingerprint TEXT   NOT NULL,
    public_der  BYTEA  NOT NULL,
    comment     TEXT   NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    UNIQUE (user_id, fingerprint)
);

CREATE TABLE assertion_replays (
    user_id    TEXT   NOT NULL,
    jti        TEXT   NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, jti)
);
CREATE INDEX assertion_replays_expires ON assertion_replays (expires_at);
