-- Throttling by client address as well as by username: one row per key ("ua" username and
-- address, "a" address, "u" username), each with its own failure count and lock.
DROP TABLE login_throttle;
CREATE TABLE login_attempts (
    key          TEXT    PRIMARY KEY NOT NULL,
    failures     INTEGER NOT NULL,
    window_start BIGINT  NOT NULL,
    locked_until BIGINT  NOT NULL
);
CREATE INDEX login_attempts_window ON login_attempts (window_start);

-- Repeated identical failures fold into one row with a count; old rows are purged after the
-- retention period.
ALTER TABLE audit_log ADD COLUMN repeat_count BIGINT NOT NULL DEFAULT 1;
ALTER TABLE audit_log ADD COLUMN last_at BIGINT;
CREATE INDEX audit_log_fold ON audit_log (event, subject, source, at);
CREATE INDEX audit_log_at ON audit_log (at);

DROP TRIGGER audit_log_append_only ON audit_log;
-- Only the repeat count and the time of the last repeat may change; rows go only by the
-- retention purge, and never before they are a day old.
CREATE FUNCTION jwt_issuer_audit_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF (NEW.id, NEW.at, NEW.event, NEW.actor, NEW.subject, NEW.source, NEW.detail)
           IS DISTINCT FROM (OLD.id, OLD.at, OLD.event, OLD.actor, OLD.subject, OLD.source, OLD.detail) THEN
            RAISE EXCEPTION 'audit_log rows are never rewritten';
        END IF;
        RETURN NEW;
    END IF;
    IF OLD.at > CAST(EXTRACT(EPOCH FROM now()) AS BIGINT) - 86400 THEN
        RAISE EXCEPTION 'audit_log rows younger than a day are never deleted';
    END IF;
    RETURN OLD;
END
$$;
CREATE TRIGGER audit_log_guard BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION jwt_issuer_audit_guard();
