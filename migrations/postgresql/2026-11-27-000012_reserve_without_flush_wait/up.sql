-- A reservation (reserve_login_attempt, migration 000011) commits without waiting for its WAL
-- flush (issue 12). Its transaction holds the advisory locks of its throttle keys until it
-- ends, and with a durable commit that was until the disk's fsync returned: every login of one
-- address (and of one user) waited for two fsyncs in a row, its reservation's and its
-- session's, under those locks, and each fsync delayed every other commit (a refresh's
-- rotation) queued behind it. A crash of PostgreSQL within the WAL writer's delay may now
-- forget the failures it counted last; a successful login's session commit stays durable, and
-- flushes the reservation before it with its own. The setting is local to the transaction:
-- call the function in a transaction of its own (the service does), or the whole transaction
-- commits this way.
CREATE OR REPLACE FUNCTION reserve_login_attempt(
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
