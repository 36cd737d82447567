DROP INDEX refresh_families_created;
DROP INDEX login_throttle_locked_until;
DROP TABLE revoked_access_tokens;
