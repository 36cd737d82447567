-- Back to migrations 000011 and 000012's functions, one login per call.
DROP FUNCTION start_login_sessions(TEXT[], INTEGER[], TEXT[], BIGINT[], TEXT[], TEXT[], TEXT[],
    TEXT[], TEXT[], BIGINT[], BIGINT[], TEXT[], TEXT[], TEXT[], BIGINT[], TEXT[], TEXT[],
    BIGINT[], BIGINT[], BIGINT[], TEXT[], TEXT[], TEXT[], BIGINT[], BIGINT[], TEXT[], TEXT[],
    TEXT[], TEXT[], TEXT[]);
DROP FUNCTION reserve_login_attempts(TEXT[], INTEGER[], BIGINT, BIGINT[], BIGINT, BIGINT);

CREATE OR REPLACE FUNCTION login_lock_keys(p_keys TEXT[]) RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
    k TEXT;
BEGIN
    FOR k IN SELECT x FROM unnest(p_keys) AS x ORDER BY x COLLATE "C" LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended(k, 7));
    END LOOP;
END
$$;

CREATE FUNCTION start_login_session(
    p_keys TEXT[], p_limits INTEGER[], p_forget TEXT, p_now BIGINT,
    f_id TEXT, f_user_id TEXT, f_client_id TEXT, f_scope TEXT, f_audience TEXT,
    f_created_at BIGINT, f_revoked_at BIGINT, f_revoked_reason TEXT, f_source TEXT,
    f_user_agent TEXT, f_last_used_at BIGINT,
    t_hash TEXT, t_family_id TEXT, t_created_at BIGINT, t_expires_at BIGINT, t_used_at BIGINT,
    i_jti TEXT, i_user_id TEXT, i_family_id TEXT, i_exp BIGINT,
    e_at BIGINT, e_event TEXT, e_actor TEXT, e_subject TEXT, e_source TEXT, e_detail TEXT
) RETURNS VOID LANGUAGE plpgsql AS $$
BEGIN
    PERFORM login_lock_keys(p_keys);
    UPDATE login_attempts a SET
        failures = CASE WHEN a.key = p_forget THEN 0 ELSE GREATEST(a.failures - 1, 0) END,
        window_start = CASE WHEN a.key = p_forget THEN p_now ELSE a.window_start END,
        locked_until = CASE WHEN a.key = p_forget OR GREATEST(a.failures - 1, 0) < c.lim THEN 0
                            ELSE a.locked_until END
      FROM unnest(p_keys, p_limits) AS c(k, lim)
     WHERE a.key = c.k;
    INSERT INTO login_attempts (key, failures, window_start, locked_until)
    SELECT k, 0, p_now, 0 FROM unnest(p_keys) AS k
    ON CONFLICT (key) DO NOTHING;
    INSERT INTO refresh_families (id, user_id, client_id, scope, audience, created_at,
                                  revoked_at, revoked_reason, source, user_agent, last_used_at)
    VALUES (f_id, f_user_id, f_client_id, f_scope, f_audience, f_created_at,
            f_revoked_at, f_revoked_reason, f_source, f_user_agent, f_last_used_at);
    INSERT INTO refresh_tokens (token_hash, family_id, created_at, expires_at, used_at)
    VALUES (t_hash, t_family_id, t_created_at, t_expires_at, t_used_at);
    INSERT INTO issued_access_tokens (jti, user_id, family_id, exp)
    VALUES (i_jti, i_user_id, i_family_id, i_exp);
    INSERT INTO audit_log (at, event, actor, subject, source, detail)
    VALUES (e_at, e_event, e_actor, e_subject, e_source, e_detail);
END
$$;

CREATE FUNCTION reserve_login_attempt(
    p_keys TEXT[], p_limits INTEGER[], p_window BIGINT, p_now BIGINT,
    p_base_lock BIGINT, p_max_lock BIGINT
) RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    wait BIGINT;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    PERFORM login_lock_keys(p_keys);
    SELECT max(locked_until) - p_now INTO wait
      FROM login_attempts WHERE key = ANY(p_keys) AND locked_until > p_now;
    IF wait IS NOT NULL THEN
        RETURN wait;
    END IF;
    INSERT INTO login_attempts (key, failures, window_start, locked_until)
    SELECT c.k, n.failures, n.window_start,
           CASE WHEN n.failures < c.lim THEN 0
                ELSE p_now + LEAST(p_base_lock << LEAST(n.failures - c.lim, 10), p_max_lock)
           END
      FROM unnest(p_keys, p_limits) AS c(k, lim)
      LEFT JOIN login_attempts o ON o.key = c.k,
      LATERAL (SELECT o.failures > 0 AND p_now - o.window_start < p_window AS open) w,
      LATERAL (SELECT CASE WHEN w.open THEN LEAST(o.failures, 2147483646) + 1 ELSE 1 END
                          AS failures,
                      CASE WHEN w.open THEN o.window_start ELSE p_now END AS window_start) n
    ON CONFLICT (key) DO UPDATE SET failures = excluded.failures,
        window_start = excluded.window_start, locked_until = excluded.locked_until;
    RETURN NULL;
END
$$;
