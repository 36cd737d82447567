-- The audit log: append-only, enforced by the database. Signing key history rows may never
-- be deleted either.

CREATE TABLE audit_log (
    id      BIGSERIAL PRIMARY KEY,
    at      BIGINT NOT NULL,
    event   TEXT   NOT NULL,
    actor   TEXT,
    subject TEXT,
    source  TEXT,
    detail  TEXT
);

CREATE FUNCTION jwt_issuer_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are never updated or deleted', TG_TABLE_NAME;
END
$$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION jwt_issuer_refuse_change();

CREATE TRIGGER signing_keys_no_delete BEFORE DELETE ON signing_keys
    FOR EACH ROW EXECUTE FUNCTION jwt_issuer_refuse_change();
