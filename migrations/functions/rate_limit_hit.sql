-- Counts one hit on every subject, or on none of them: when any subject is over its limit
-- nothing is counted and the result is the seconds to wait (NULL when the hit counted).
-- Past p_limits(i) hits in the window, a subject with no p_delays(i) waits for the window
-- to end; one with a delay accepts one more hit per delay, the delay doubling with each
-- hit up to p_max_delays(i).
--
-- One call is one statement: N concurrent callers cannot all read "under the limit"
-- before any of them counts. Rows are locked in subject order, so two callers sharing
-- subjects cannot deadlock.
CREATE OR REPLACE FUNCTION rate_limit_hit(
    p_subjects   TEXT[],
    p_limits     INT[],
    p_windows    FLOAT8[],
    p_delays     FLOAT8[],
    p_max_delays FLOAT8[]
) RETURNS FLOAT8
LANGUAGE plpgsql AS $$
DECLARE
    v_wait FLOAT8;
BEGIN
    WITH policy AS (
        SELECT * FROM unnest(p_subjects, p_limits, p_windows, p_delays, p_max_delays)
            AS p (subject, max_hits, window_secs, delay_secs, max_delay_secs)
    ), counter AS (
        INSERT INTO rate_limits AS r (subject, hits, expires_at, last_at)
        SELECT subject, 0, now() + make_interval(secs => window_secs), now() FROM policy ORDER BY subject
        ON CONFLICT (subject) DO UPDATE SET
            hits       = CASE WHEN r.expires_at <= now() THEN 0 ELSE r.hits END,
            expires_at = CASE WHEN r.expires_at <= now() THEN EXCLUDED.expires_at ELSE r.expires_at END
        RETURNING r.subject, r.hits, r.expires_at, r.last_at
    )
    SELECT max(CASE
               WHEN c.hits < p.max_hits THEN 0
               WHEN p.delay_secs IS NULL THEN extract(epoch FROM c.expires_at - now())
               ELSE extract(epoch FROM c.last_at - now())
                    + least(p.delay_secs * power(2, least(c.hits - p.max_hits, 40)), p.max_delay_secs)
           END)
      INTO v_wait
      FROM counter c JOIN policy p USING (subject);

    IF v_wait > 0 THEN
        RETURN v_wait;
    END IF;
    UPDATE rate_limits SET hits = hits + 1, last_at = now() WHERE subject = ANY (p_subjects);
    RETURN NULL;
END
$$;
