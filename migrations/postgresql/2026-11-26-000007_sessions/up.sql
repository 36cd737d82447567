-- Sessions: a refresh-token family is one session; it remembers where it came from and when it
-- was last used. Every access token issued to a user is recorded until it expires, so that
-- ending a session (or disabling the user) can deny its access tokens too, through the
-- revocation feed.
ALTER TABLE refresh_families ADD COLUMN source TEXT;
ALTER TABLE refresh_families ADD COLUMN user_agent TEXT;
ALTER TABLE refresh_families ADD COLUMN last_used_at BIGINT;

CREATE TABLE issued_access_tokens (
    jti       TEXT   PRIMARY KEY NOT NULL,
    user_id   TEXT   NOT NULL,
    family_id TEXT,
    exp       BIGINT NOT NULL
);
CREATE INDEX issued_access_tokens_family ON issued_access_tokens (family_id);
CREATE INDEX issued_access_tokens_user ON issued_access_tokens (user_id);
CREATE INDEX issued_access_tokens_exp ON issued_access_tokens (exp);
