DROP TABLE issued_access_tokens;
ALTER TABLE refresh_families DROP COLUMN last_used_at;
ALTER TABLE refresh_families DROP COLUMN user_agent;
ALTER TABLE refresh_families DROP COLUMN source;
