DROP INDEX signing_keys_seq;
ALTER TABLE signing_keys DROP COLUMN seq;
