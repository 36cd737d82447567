DROP TRIGGER signing_keys_no_delete ON signing_keys;
DROP TRIGGER audit_log_append_only ON audit_log;
DROP FUNCTION jwt_issuer_refuse_change();
DROP TABLE audit_log;
