DROP TRIGGER audit_log_guard ON audit_log;
DROP FUNCTION jwt_issuer_audit_guard();
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION jwt_issuer_refuse_change();
DROP INDEX audit_log_at;
DROP INDEX audit_log_fold;
ALTER TABLE audit_log DROP COLUMN last_at;
ALTER TABLE audit_log DROP COLUMN repeat_count;
DROP TABLE login_attempts;
CREATE TABLE login_throttle (
    username     TEXT    PRIMARY KEY NOT NULL,
    failures     INTEGER NOT NULL,
    window_start BIGINT  NOT NULL,
    locked_until BIGINT  NOT NULL
);
