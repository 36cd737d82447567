-- The order in which keys were made, strictly increasing (creation times have one-second
-- resolution, too coarse to order keys made in one burst). The queue of `next` keys is
-- promoted in this order.
ALTER TABLE signing_keys ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
UPDATE signing_keys SET seq = (
    SELECT COUNT(*) FROM signing_keys AS earlier
    WHERE earlier.created_at < signing_keys.created_at
       OR (earlier.created_at = signing_keys.created_at AND earlier.kid <= signing_keys.kid)
);
CREATE UNIQUE INDEX signing_keys_seq ON signing_keys (seq);
