-- Rotates many refresh tokens in one call (issue 12): the batched form of
-- rotate_refresh_token (migration 000009), which it replaces. Item i marks p_old[i] used if it
-- is still live (unused, unexpired at p_now[i], its family not revoked), stores its successor
-- p_new[i] in the same family, marks the family used and records the access token p_jti[i]
-- issued with it. Returns the old hashes it rotated; the others changed nothing. The old hashes
-- must be distinct (the caller keeps the first of each). All the items' statements run once
-- per call instead of once per item: under a refresh flood the per-statement and per-commit
-- work, not the rows, was what PostgreSQL spent its time on. The service calls it on
-- connections that plan for index lookups (src/db/batch.rs).
CREATE FUNCTION rotate_refresh_tokens(
    p_old TEXT[], p_new TEXT[], p_now BIGINT[], p_expires_at BIGINT[],
    p_jti TEXT[], p_user_id TEXT[], p_exp BIGINT[]
) RETURNS TABLE (old_hash TEXT) LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    WITH item AS (
        SELECT * FROM unnest(p_old, p_new, p_now, p_expires_at, p_jti, p_user_id, p_exp)
            AS i(old, new, now, expires_at, jti, user_id, exp)
    ), claimed AS (
        UPDATE refresh_tokens t SET used_at = item.now
        FROM item
        WHERE t.token_hash = item.old AND t.used_at IS NULL AND t.expires_at > item.now
          AND EXISTS (SELECT 1 FROM refresh_families f
                      WHERE f.id = t.family_id AND f.revoked_at IS NULL)
        RETURNING t.family_id, item.*
    ), successors AS (
        INSERT INTO refresh_tokens (token_hash, family_id, created_at, expires_at)
        SELECT c.new, c.family_id, c.now, c.expires_at FROM claimed c
    ), families AS (
        UPDATE refresh_families f SET last_used_at = c.now
        FROM claimed c WHERE f.id = c.family_id
    ), issued AS (
        INSERT INTO issued_access_tokens (jti, user_id, family_id, exp)
        SELECT c.jti, c.user_id, c.family_id, c.exp FROM claimed c
    )
    SELECT c.old FROM claimed c;
END
$$;

DROP FUNCTION rotate_refresh_token(TEXT, TEXT, BIGINT, BIGINT, TEXT, TEXT, BIGINT);
