-- Revoked access tokens (the jti deny list) until they expire. `seq` orders the revocation
-- feed: it never goes backwards or repeats (AUTOINCREMENT), and rows are inserted one at a
-- time under the write lock, so a reader never sees a later entry before an earlier one.
CREATE TABLE revoked_access_tokens (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    jti        TEXT    NOT NULL UNIQUE,
    exp        BIGINT  NOT NULL,
    revoked_at BIGINT  NOT NULL
);
CREATE INDEX revoked_access_tokens_exp ON revoked_access_tokens (exp);
CREATE INDEX login_throttle_locked_until ON login_throttle (locked_until);
CREATE INDEX refresh_families_created ON refresh_families (created_at);
