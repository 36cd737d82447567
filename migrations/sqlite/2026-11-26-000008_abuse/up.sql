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

DROP TRIGGER audit_log_no_update;
DROP TRIGGER audit_log_no_delete;
-- Only the repeat count and the time of the last repeat may change.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
WHEN NEW.id IS NOT OLD.id OR NEW.at IS NOT OLD.at OR NEW.event IS NOT OLD.event
  OR NEW.actor IS NOT OLD.actor OR NEW.subject IS NOT OLD.subject
  OR NEW.source IS NOT OLD.source OR NEW.detail IS NOT OLD.detail
BEGIN
    SELECT RAISE(ABORT, 'audit_log rows are never rewritten');
END;
-- Rows go only by the retention purge, and never before they are a day old.
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
WHEN OLD.at > CAST(strftime('%s', 'now') AS INTEGER) - 86400
BEGIN
    SELECT RAISE(ABORT, 'audit_log rows younger than a day are never deleted');
END;
