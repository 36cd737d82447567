-- Many logins' reservations, and many logins' sessions, in one call each (issue 12): the
-- batched forms of reserve_login_attempt and start_login_session (migrations 000011 and
-- 000012), which they replace. Under a login flood each call of those cost PostgreSQL a
-- wakeup, a round trip, a commit and some ten statements of its own, which was most of what a
-- login cost it (the rows are few): the service hands the calls of concurrent logins to one
-- thread of each kind, which makes them one call (src/db/batch.rs). The throttle's rules are
-- the same as in src/db/throttle.rs, which SQLite runs (and the tests run against both):
-- change them together.
--
-- Item i's throttle keys are p_keys[(i-1)*k+1 .. i*k], and their limits p_limits likewise,
-- k = cardinality(p_keys) / cardinality(p_now) (one limit per key: the service's setting).
-- Every key of a batch is locked first, once, in one order, so a batch and any other
-- transaction on those keys never deadlock. Items may share keys.

-- Serialises the transactions on these throttle keys: advisory locks taken in one order (the
-- keys' bytes, as Rust sorts them), each distinct key once, in one statement (the sort runs
-- before the locks). Replaces migration 000011's loop, which took a key as often as it was
-- given.
CREATE OR REPLACE FUNCTION login_lock_keys(p_keys TEXT[]) RETURNS VOID LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(s.k, 7))
       FROM (SELECT DISTINCT x COLLATE "C" AS k FROM unnest(p_keys) AS x ORDER BY 1) s;
END
$$;

-- Reserves each item's attempt, in order, each seeing the counts of those before it: returns
-- (item, wait) for each item, wait being the seconds to wait when one of its keys is locked
-- (nothing is counted then), else NULL after counting the attempt as a failure on each of its
-- keys. A key at 0 failures, or whose window (p_window seconds) has closed, starts a new
-- window; the failure that reaches the limit locks the key for p_base_lock seconds, each
-- further one doubles it, up to p_max_lock.
--
-- The transaction commits without waiting for its WAL flush (as migration 000012's did): it
-- holds the advisory locks of its keys until it ends, and every login of one address (and of
-- one user) would otherwise wait for two fsyncs in a row under them, its reservation's and
-- its session's. A crash of PostgreSQL within the WAL writer's delay may forget the failures
-- counted last; a successful login's session commit stays durable, and flushes the
-- reservation before it with its own. The setting is local to the transaction: call the
-- function in a transaction of its own (the service does), or the whole transaction commits
-- this way.
CREATE FUNCTION reserve_login_attempts(
    p_keys TEXT[], p_limits INTEGER[], p_window BIGINT, p_now BIGINT[],
    p_base_lock BIGINT, p_max_lock BIGINT
) RETURNS TABLE (item INTEGER, wait BIGINT) LANGUAGE plpgsql AS $$
DECLARE
    k INTEGER := cardinality(p_keys) / cardinality(p_now);
    v_keys TEXT[];
    v_limits INTEGER[];
    v_now BIGINT;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    PERFORM login_lock_keys(p_keys);
    FOR i IN 1 .. cardinality(p_now) LOOP
        item := i;
        v_keys := p_keys[(i - 1) * k + 1 : i * k];
        v_limits := p_limits[(i - 1) * k + 1 : i * k];
        v_now := p_now[i];
        SELECT max(a.locked_until) - v_now INTO wait
          FROM login_attempts a WHERE a.key = ANY(v_keys) AND a.locked_until > v_now;
        IF wait IS NULL THEN
            INSERT INTO login_attempts (key, failures, window_start, locked_until)
            SELECT c.k, n.failures, n.window_start,
                   CASE WHEN n.failures < c.lim THEN 0
                        ELSE v_now + LEAST(p_base_lock << LEAST(n.failures - c.lim, 10),
                                           p_max_lock)
                   END
              FROM unnest(v_keys, v_limits) AS c(k, lim)
              LEFT JOIN login_attempts o ON o.key = c.k,
              LATERAL (SELECT o.failures > 0 AND v_now - o.window_start < p_window AS open) w,
              LATERAL (SELECT CASE WHEN w.open THEN LEAST(o.failures, 2147483646) + 1
                                   ELSE 1 END AS failures,
                              CASE WHEN w.open THEN o.window_start ELSE v_now END
                                  AS window_start) n
            ON CONFLICT (key) DO UPDATE SET failures = excluded.failures,
                window_start = excluded.window_start, locked_until = excluded.locked_until;
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;

-- Successful password logins: gives each item's reservation back (each of its keys drops by
-- one failure, unlocking when it falls under its limit; its key p_forget[i], the username at
-- this address, starts over) and stores the session it starts: its refresh family, first
-- refresh token, first access token and audit event. Every other argument is an array of the
-- items' values of one column, in order. Giving back does not depend on the items' order: a
-- key drops by as many failures as items give it back (not below 0), and a key that an item
-- forgets is at 0 whatever the others do.
CREATE FUNCTION start_login_sessions(
    p_keys TEXT[], p_limits INTEGER[], p_forget TEXT[], p_now BIGINT[],
    f_id TEXT[], f_user_id TEXT[], f_client_id TEXT[], f_scope TEXT[], f_audience TEXT[],
    f_created_at BIGINT[], f_revoked_at BIGINT[], f_revoked_reason TEXT[], f_source TEXT[],
    f_user_agent TEXT[], f_last_used_at BIGINT[],
    t_hash TEXT[], t_family_id TEXT[], t_created_at BIGINT[], t_expires_at BIGINT[],
    t_used_at BIGINT[],
    i_jti TEXT[], i_user_id TEXT[], i_family_id TEXT[], i_exp BIGINT[],
    e_at BIGINT[], e_event TEXT[], e_actor TEXT[], e_subject TEXT[], e_source TEXT[],
    e_detail TEXT[]
) RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
    k INTEGER := cardinality(p_keys) / cardinality(p_now);
BEGIN
    PERFORM login_lock_keys(p_keys);
    WITH given AS (
        SELECT g.key, g.lim, (g.ord - 1) / k + 1 AS i
          FROM unnest(p_keys, p_limits) WITH ORDINALITY AS g(key, lim, ord)
    ), per_key AS (
        SELECT g.key, min(g.lim) AS lim, count(*) AS n,
               max(p_now[g.i]) FILTER (WHERE g.key = p_forget[g.i]) AS forgotten_at
          FROM given g GROUP BY g.key
    )
    UPDATE login_attempts a SET
        failures = CASE WHEN p.forgotten_at IS NOT NULL THEN 0
                        ELSE GREATEST(a.failures - p.n, 0) END,
        window_start = COALESCE(p.forgotten_at, a.window_start),
        locked_until = CASE WHEN p.forgotten_at IS NOT NULL
                                 OR GREATEST(a.failures - p.n, 0) < p.lim THEN 0
                            ELSE a.locked_until END
      FROM per_key p
     WHERE a.key = p.key;
    INSERT INTO login_attempts (key, failures, window_start, locked_until)
    SELECT g.key, 0, max(p_now[(g.ord - 1) / k + 1]), 0
      FROM unnest(p_keys) WITH ORDINALITY AS g(key, ord)
     GROUP BY g.key
    ON CONFLICT (key) DO NOTHING;
    INSERT INTO refresh_families (id, user_id, client_id, scope, audience, created_at,
                                  revoked_at, revoked_reason, source, user_agent, last_used_at)
    SELECT * FROM unnest(f_id, f_user_id, f_client_id, f_scope, f_audience, f_created_at,
                         f_revoked_at, f_revoked_reason, f_source, f_user_agent,
                         f_last_used_at);
    INSERT INTO refresh_tokens (token_hash, family_id, created_at, expires_at, used_at)
    SELECT * FROM unnest(t_hash, t_family_id, t_created_at, t_expires_at, t_used_at);
    INSERT INTO issued_access_tokens (jti, user_id, family_id, exp)
    SELECT * FROM unnest(i_jti, i_user_id, i_family_id, i_exp);
    INSERT INTO audit_log (at, event, actor, subject, source, detail)
    SELECT * FROM unnest(e_at, e_event, e_actor, e_subject, e_source, e_detail);
END
$$;

DROP FUNCTION start_login_session(TEXT[], INTEGER[], TEXT, BIGINT, TEXT, TEXT, TEXT, TEXT, TEXT,
    BIGINT, BIGINT, TEXT, TEXT, TEXT, BIGINT, TEXT, TEXT, BIGINT, BIGINT, BIGINT, TEXT, TEXT,
    TEXT, BIGINT, BIGINT, TEXT, TEXT, TEXT, TEXT, TEXT);
DROP FUNCTION reserve_login_attempt(TEXT[], INTEGER[], BIGINT, BIGINT, BIGINT, BIGINT);
