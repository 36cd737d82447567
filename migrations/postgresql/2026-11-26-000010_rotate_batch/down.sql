DROP FUNCTION rotate_refresh_tokens(TEXT[], TEXT[], BIGINT[], BIGINT[], TEXT[], TEXT[], BIGINT[]);

CREATE FUNCTION rotate_refresh_token(
    p_old_hash TEXT, p_new_hash TEXT, p_now BIGINT, p_expires_at BIGINT,
    p_jti TEXT, p_user_id TEXT, p_exp BIGINT
) RETURNS BOOLEAN LANGUAGE plpgsql AS $$
DECLARE
    v_family TEXT;
BEGIN
    UPDATE refresh_tokens SET used_at = p_now
    WHERE token_hash = p_old_hash AND used_at IS NULL AND expires_at > p_now
      AND EXISTS (SELECT 1 FROM refresh_families f
                  WHERE f.id = refresh_tokens.family_id AND f.revoked_at IS NULL)
    RETURNING family_id INTO v_family;
    IF NOT FOUND THEN
        RETURN FALSE;
    END IF;
    INSERT INTO refresh_tokens (token_hash, family_id, created_at, expires_at)
    VALUES (p_new_hash, v_family, p_now, p_expires_at);
    UPDATE refresh_families SET last_used_at = p_now WHERE id = v_family;
    INSERT INTO issued_access_tokens (jti, user_id, family_id, exp)
    VALUES (p_jti, p_user_id, v_family, p_exp);
    RETURN TRUE;
END
$$;
